"""Rate-distortion training of a registry image model (``codec train``).

The objective of one step, on random crops (:mod:`codec.training.data`):

- loss ``lmbda * 255**2 * MSE + bpp`` (or ``lmbda * (1 - MS-SSIM) + bpp``), bpp from the
  likelihoods, plus ``loss.aux_weight`` times the auxiliary loss of the factorized
  densities' quantiles, in one backward pass (that loss reaches only the quantiles);
- two parameter groups: ``main`` (transforms and densities: ``optim.lr``, clipped to
  ``optim.clip_norm``, scheduled) and ``aux`` (the quantiles: ``optim.aux_lr``);
- where the model sits on the rate-distortion curve comes from its registry spec: a
  fixed-rate model trains at one lambda; a model with a continuous quality (variable
  rate) gives every crop a random quality, uniform over the spec's range, and the lambda
  interpolated log-linearly between its levels' lambdas;
- bf16 autocast of the analysis and synthesis transforms (the latent codec stays fp32).

Validation codes pictures for real: a frozen copy of the model (CDF tables, integer
index path) compresses every validation picture (``model.compress(x, q) -> Payload``);
``bpp = 8 * payload.nbytes / pixels``, PSNR (and MS-SSIM) on the 8-bit reconstruction
with :mod:`codec.media.image_metrics`; ``bpp_est`` from the likelihoods, for comparison.
A variable-rate model is coded at each of its levels: ``val.csv`` gets the mean row,
then one row per level.
"""
from __future__ import annotations

import contextlib
import copy
import math

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from codec.training.config import Config
from codec.training.data import list_images, load_rgb, make_batches
from codec.training.logs import log
from codec.training.models import build_model, init_weights
from codec.training.tasks import Context, RegistryModelTask, sample_qualities


class RDForward(nn.Module):
    """What one training step computes: ``{"x_hat", "likelihoods", "aux"}``.

    With ``amp_dtype`` the analysis and synthesis transforms run under autocast; the
    latent codec (hyper-transforms, densities, likelihoods) stays in fp32.  ``rounded``:
    the synthesis sees the latent rounded as the decoder will have it (straight-through)
    instead of the noisy one (``model.synthesis_input``).
    """

    def __init__(self, model: nn.Module, amp_dtype=None, rounded: bool = False):
        super().__init__()
        self.model, self.amp_dtype, self.rounded = model, amp_dtype, rounded

    def forward(self, x, quality=None):
        m = self.model
        amp = (torch.autocast(x.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
               else contextlib.nullcontext())
        with amp:
            y = m.g_a(x)
        lc = m.latent_codec(y.float(), *m._q(quality))
        with amp:
            x_hat = m.g_s(lc["y_rounded" if self.rounded else "y_hat"])
        return {"x_hat": x_hat.float(), "likelihoods": lc["likelihoods"], "aux": m.aux_loss()}


def rd_loss(out: dict, x: torch.Tensor, metric: str, lmbda) -> dict:
    """Rate-distortion loss of a batch: ``loss``, ``bpp``, ``mse`` (and ``ms_ssim``), batch means.

    ``lmbda``: a float, or a tensor ``[B]`` with one lambda per batch item (variable rate)."""
    n, _, h, w = x.shape
    x_hat = out["x_hat"]
    if not torch.is_tensor(lmbda):
        bpp = sum(torch.log(lik).sum() for lik in out["likelihoods"].values()) / (-math.log(2) * n * h * w)
        mse = F.mse_loss(x_hat, x)
        res = {"bpp": bpp, "mse": mse}
        if metric == "mse":
            res["loss"] = lmbda * 255 ** 2 * mse + bpp
        else:
            from pytorch_msssim import ms_ssim

            res["ms_ssim"] = ms_ssim(x_hat, x, data_range=1.0)
            res["loss"] = lmbda * (1 - res["ms_ssim"]) + bpp
        return res
    bpp_i = sum(torch.log(lik).flatten(1).sum(1) for lik in out["likelihoods"].values()) / (-math.log(2) * h * w)
    mse_i = (x_hat - x).pow(2).flatten(1).mean(1)
    res = {"bpp": bpp_i.mean(), "mse": mse_i.mean()}
    if metric == "mse":
        res["loss"] = (lmbda * 255 ** 2 * mse_i + bpp_i).mean()
    else:
        from pytorch_msssim import ms_ssim

        ssim_i = ms_ssim(x_hat, x, data_range=1.0, size_average=False)
        res["ms_ssim"] = ssim_i.mean()
        res["loss"] = (lmbda * (1 - ssim_i) + bpp_i).mean()
    return res


# ----------------------------------------------------------------------------- the task
class ImageRDTask(RegistryModelTask):
    """Rate-distortion training of ``cfg.model`` (see the module docstring)."""

    name = "image-rd"
    sums = ("loss", "bpp", "mse", "aux", "ms_ssim")
    train_fields = ("epoch", "loss", "bpp", "mse", "psnr", "ms_ssim", "aux")
    val_fields = ("quality", "loss", "bpp", "bpp_est", "psnr", "ms_ssim", "images", "bytes")

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        # the points of the rate-distortion curve: (quality, lambda) per validation point
        if self.spec.quality.continuous:  # the levels 1..L of the model's gains
            self.points = tuple((float(q), lam) for q, lam in enumerate(cfg.lambdas, start=1))
        else:
            self.points = ((None, cfg.lmbda),)
        self.files, self.val_images = [], []

    @property
    def continuous(self) -> bool:
        return self.points[0][0] is not None

    @property
    def has_validation(self) -> bool:
        return bool(self.val_images)

    # -- data -----------------------------------------------------------------------
    def prepare(self, ctx: Context) -> None:
        cfg = self.cfg
        self.files = list_images(cfg.data.train)
        self.val_images = []
        if cfg.data.val is not None:
            vfiles = list_images([cfg.data.val], what="data.val")[: cfg.data.val_limit]
            self.val_images = [load_rgb(f) for f in vfiles]
            small = [str(f) for f, im in zip(vfiles, self.val_images) if min(im.shape[:2]) <= 160]
            if cfg.loss.metric == "ms-ssim" and small:
                raise ValueError(f"data.val: MS-SSIM needs images larger than 160 pixels a side: {small[0]}")

    def batches(self, start: int, stop: int, ctx: Context):
        d = self.cfg.data
        return make_batches(self.files, d.crop, d.batch_size, self.run.seed, start, stop, ctx.rank, ctx.world,
                            d.resident, d.workers, ctx.device)

    # -- model ----------------------------------------------------------------------
    def build(self, ctx: Context, init: bool) -> nn.Module:
        cfg = self.cfg
        model, _ = build_model(cfg.model.name, cfg.model.arch_kwargs)
        self.start(model)
        if cfg.model.init is not None and init:
            n_in, n_kept = init_weights(model, cfg.model.init)
            log(f"initialised {n_in} tensors from {cfg.model.init} ({n_kept} kept their initialisation)",
                ctx.rank, ctx.quiet)
        self.model = model
        return model

    def start(self, model: nn.Module) -> None:
        """What a new model gets before any weights are loaded: a variable-rate model's gains
        from the levels' lambdas."""
        if self.continuous:
            model.latent_codec.init_gains([lam for _, lam in self.points], ref=self.cfg.model.quality)

    def forward_module(self, ctx: Context) -> nn.Module:
        return RDForward(self.model, ctx.amp_dtype, rounded=self.cfg.model.synthesis_input == "rounded")

    # -- one step -------------------------------------------------------------------
    def draw(self, n: int, device):
        """(qualities, lambdas) of a batch of ``n`` crops: random ones over a continuous
        quality range, else (None, the model's lambda)."""
        if self.continuous:
            return sample_qualities(n, [lam for _, lam in self.points], device)
        return self.points[0]

    def step(self, net: nn.Module, batch, ctx: Context) -> dict:
        x = batch.to(ctx.device, non_blocking=True).float().div_(255)
        if ctx.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        quality, lmbda = self.draw(x.shape[0], x.device)
        out = net(x, quality)
        losses = rd_loss(out, x, self.cfg.loss.metric, lmbda)
        losses["aux"] = out["aux"]
        losses["total"] = losses["loss"] + self.cfg.loss.aux_weight * out["aux"]
        return losses

    def train_row(self, means: dict, step: int, ctx: Context) -> dict:
        from codec.media.image_metrics import psnr

        seen = step * self.cfg.data.batch_size * ctx.world
        return {"epoch": seen / len(self.files), "loss": means["loss"], "bpp": means["bpp"], "mse": means["mse"],
                "psnr": psnr(means["mse"], peak=1.0),
                "ms_ssim": means["ms_ssim"] if self.cfg.loss.metric == "ms-ssim" else None, "aux": means["aux"]}

    # -- validation -----------------------------------------------------------------
    def validate(self, ctx: Context) -> dict:
        return validate(self.model, self.val_images, self.cfg, ctx.device, ctx.rank, ctx.world, self.points)

    # -- messages -------------------------------------------------------------------
    def label(self) -> str:
        return f"{self.cfg.model.name} q{self.cfg.model.quality}"

    def describe(self, ctx: Context) -> str:
        cfg = self.cfg
        n_params = sum(p.numel() for p in self.model.parameters()) if self.model is not None else 0
        lams = ", ".join(f"{lam:g}" for _, lam in self.points)
        return (f"{cfg.model.name} q{cfg.model.quality} {self.arch_kwargs} ({n_params / 1e6:.2f} M parameters), "
                f"lambda{'s' if self.continuous else ''} {lams} ({cfg.loss.metric}), {len(self.files)} images, "
                f"{len(self.val_images)} validation images, batch {cfg.data.batch_size}x{ctx.world}, "
                f"crop {cfg.data.crop}")

    def describe_validation(self, v: dict, best: bool) -> str:
        levels = "".join(f"\n  q{r['quality']}: {r['bpp']:.4f} bpp, {r['psnr']:.2f} dB, loss {r['loss']:.4f}"
                         for r in v.get("per_quality", []))
        return (f"validation {v['images']} images, {v['bpp']:.4f} bpp (estimated {v['bpp_est']:.4f}), "
                f"{v['psnr']:.2f} dB, loss {v['loss']:.4f}" + (" (best)" if best else "") + levels)

    def postfix(self, row: dict) -> dict:
        return {"loss": f"{row['loss']:.4g}", "bpp": f"{row['bpp']:.3f}", "psnr": f"{row['psnr'] or 0:.2f}"}


def train(cfg: Config, resume=None, stop_at: int | None = None, quiet: bool = False):
    """Train ``cfg`` (:class:`ImageRDTask` in :func:`codec.training.loop.run_task`); ``resume``:
    a checkpoint path, a run folder, or ``"auto"``; ``stop_at``: save and return at this step."""
    from codec.training.loop import run_task

    return run_task(ImageRDTask(cfg), resume=resume, stop_at=stop_at, quiet=quiet)


# ----------------------------------------------------------------------------- validation
@torch.no_grad()
def validate(model: nn.Module, images: list, cfg: Config, device, rank: int = 0, world: int = 1,
             points=None) -> dict:
    """Real coding of ``images`` (uint8 ``H x W x 3``) by a frozen copy of ``model`` at each
    of ``points`` ((quality, lambda) pairs; default: the config's).  Under DDP the images
    are shared out and the sums all-reduced.

    One point (a fixed-rate model): its result.  Several (the levels of a variable-rate
    model): the means over the levels (``quality = "mean"``; ``loss``, ``bpp``, ``psnr``...;
    ``bytes`` summed) and ``per_quality``, one result per level."""
    if points is None:
        points = ImageRDTask(cfg).points
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        m = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
        m.freeze()
        rows = [_validate_at(m, images, cfg, device, rank, world, q, lam) for q, lam in points]
    if len(rows) == 1 and points[0][0] is None:
        return rows[0]
    rows = [{"quality": int(q) if float(q).is_integer() else q, **r} for (q, _), r in zip(points, rows)]
    res = {k: (sum(r[k] for r in rows) / len(rows) if all(r[k] is not None for r in rows) else None)
           for k in ("loss", "bpp", "bpp_est", "psnr", "mse", "ms_ssim")}
    res.update(quality="mean", images=rows[0]["images"], bytes=sum(r["bytes"] for r in rows), per_quality=rows)
    return res


def _validate_at(m, images, cfg, device, rank, world, quality, lmbda) -> dict:
    from codec.media.image import Picture, rate, to_8bit
    from codec.media.image_metrics import ms_ssim_rgb, mse, psnr

    # count, bpp, bpp_est, psnr, mse, ms_ssim sum, ms_ssim count, bytes
    sums = torch.zeros(8, dtype=torch.float64)
    for i in range(rank, len(images), world):
        ref = images[i]
        H, W = ref.shape[:2]
        pic = Picture(ref)
        x = pic.tensor(device)
        payload = m.compress(x, quality, effort="fast")  # (the trained networks, no latent refinement)
        rec = to_8bit(m.decompress(payload, quality, device=device)[0, :, :H, :W])
        lik = m(m.pad(x), quality)["likelihoods"]
        bits = float(sum(torch.log2(v).sum() for v in lik.values()))
        sums[0] += 1
        sums[1] += rate(payload.nbytes, pic.info)
        sums[2] += -bits / (H * W)
        err = mse(rec, ref)
        sums[3] += psnr(err)  # = psnr_rgb(rec, ref)
        sums[4] += err / 255 ** 2
        ssim = ms_ssim_rgb(rec, ref)
        if ssim is not None:
            sums[5] += ssim
            sums[6] += 1
        sums[7] += payload.nbytes
    if world > 1:
        t = sums.to(device)
        dist.all_reduce(t)
        sums = t.cpu()
    n = max(1.0, float(sums[0]))
    res = {"images": int(sums[0]), "bytes": int(sums[7]), "bpp": float(sums[1]) / n, "bpp_est": float(sums[2]) / n,
           "psnr": float(sums[3]) / n, "mse": float(sums[4]) / n,
           "ms_ssim": float(sums[5] / sums[6]) if sums[6] > 0 else None}
    if cfg.loss.metric == "mse":
        res["loss"] = lmbda * 255 ** 2 * res["mse"] + res["bpp"]
    else:
        res["loss"] = (lmbda * (1 - res["ms_ssim"]) + res["bpp"]) if res["ms_ssim"] is not None else float("nan")
    return res
