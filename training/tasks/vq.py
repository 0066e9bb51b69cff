"""Training a VQ tokenizer codec (``vq-f16``, :mod:`codec.models.vq`).

The data and its crops are the image task's (:class:`~codec.training.tasks.image_rd.ImageRDTask`);
the loss is ``loss.mse_weight * MSE + loss.ssim_weight * (1 - MS-SSIM) + loss.commit_weight *
commitment`` (no rate term: the rate is the codebook's size and the token prior, which
validation and export fit on training pictures, :meth:`~codec.models.vq.VQModel.fit_prior`).
The codebook learns by moving averages inside the model's forward pass; each logged row has the batch's codebook **perplexity** and **utilisation** (the share of the
4096 entries of the FSQ grid that some token of the batch used).  Validation codes the validation pictures for
real at every quality (every codebook size): bytes, PSNR, MS-SSIM and the share of each
codebook's entries the validation tokens used.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from codec.training.tasks import Context, RegistryModelTask
from codec.training.tasks.image_rd import ImageRDTask


class VQTask(ImageRDTask):
    name = "vq"
    sums = ("loss", "mse", "ms_ssim", "commit", "perplexity", "utilisation")
    train_fields = ("epoch", "loss", "mse", "psnr", "ms_ssim", "commit", "perplexity", "utilisation")
    val_fields = ("quality", "loss", "bpp", "psnr", "ms_ssim", "images", "bytes", "utilisation")

    def __init__(self, cfg):
        RegistryModelTask.__init__(self, cfg)
        from codec.models.vq import SIZES

        self.points = tuple((float(q), None) for q in range(1, len(SIZES) + 1))
        self.files, self.val_images = [], []

    def start(self, model: nn.Module) -> None:
        pass  # (no gains: the rate is the codebook's size)

    def forward_module(self, ctx: Context) -> nn.Module:
        return self.model

    def step(self, net: nn.Module, batch, ctx: Context) -> dict:
        from pytorch_msssim import ms_ssim

        lo = self.cfg.loss
        x = batch.to(ctx.device, non_blocking=True).float().div_(255)
        out = net(x)
        mse = F.mse_loss(out["x_hat"], x)
        total = lo.mse_weight * mse + lo.commit_weight * out["commit"]
        res = {"mse": mse.detach(), "commit": out["commit"].detach(), "perplexity": out["perplexity"],
               "utilisation": out["utilisation"], "ms_ssim": torch.zeros(())}
        if lo.ssim_weight:
            s = ms_ssim(out["x_hat"].clamp(0, 1), x, data_range=1.0)
            total = total + lo.ssim_weight * (1 - s)
            res["ms_ssim"] = s.detach()
        res["loss"] = total.detach()
        res["total"] = total
        return res

    def train_row(self, means: dict, step: int, ctx: Context) -> dict:
        from codec.media.image_metrics import psnr

        seen = step * self.cfg.data.batch_size * ctx.world
        return {"epoch": seen / len(self.files), "loss": means["loss"], "mse": means["mse"],
                "psnr": psnr(means["mse"], peak=1.0), "ms_ssim": means["ms_ssim"] if self.cfg.loss.ssim_weight else None,
                "commit": means["commit"], "perplexity": means["perplexity"], "utilisation": means["utilisation"]}

    @torch.no_grad()
    def validate(self, ctx: Context) -> dict:
        return validate_vq(self.model, self.val_images, ctx.device, prior_pictures(self.files, PRIOR_FIT_PICTURES))

    def describe(self, ctx: Context) -> str:
        cfg = self.cfg
        n_params = sum(p.numel() for p in self.model.parameters()) if self.model is not None else 0
        lo = cfg.loss
        return (f"{cfg.model.name} {self.arch_kwargs} ({n_params / 1e6:.2f} M parameters), loss {lo.mse_weight:g} MSE"
                f" + {lo.ssim_weight:g} (1 - MS-SSIM) + {lo.commit_weight:g} commitment, {len(self.files)} images, "
                f"{len(self.val_images)} validation images, batch {cfg.data.batch_size}x{ctx.world}, crop {cfg.data.crop}")

    def describe_validation(self, v: dict, best: bool) -> str:
        levels = "".join(f"\n  q{r['quality']}: {r['bpp']:.4f} bpp, {r['psnr']:.2f} dB, "
                         f"codebook used {100 * r['utilisation']:.1f}%" for r in v.get("per_quality", []))
        return f"validation {v['images']} images, {v['psnr']:.2f} dB (mean)" + (" (best)" if best else "") + levels

    def postfix(self, row: dict) -> dict:
        return {"loss": f"{row['loss']:.4g}", "psnr": f"{row['psnr'] or 0:.2f}",
                "used": f"{100 * row['utilisation']:.0f}%"}


#: training pictures the token prior is fitted on at each validation (export fits it on all)
PRIOR_FIT_PICTURES = 120


def prior_pictures(files: list, limit: int | None = None):
    """Pictures ``[1, 3, H, W]`` in [0, 1] (a generator) to fit a VQ model's token prior on:
    ``files``, or ``limit`` of them evenly spread over the list."""
    from codec.training.data import load_rgb

    files = list(files)
    if limit is not None and len(files) > limit:
        files = [files[i * len(files) // limit] for i in range(limit)]
    for f in files:
        yield torch.from_numpy(load_rgb(f)).permute(2, 0, 1)[None].float().div_(255)


@torch.no_grad()
def validate_vq(model, images: list, device, fit_on) -> dict:
    """Real coding of ``images`` (uint8 ``H x W x 3``) by a frozen copy of ``model`` at every
    quality, its token prior fitted on ``fit_on`` (pictures ``[1, 3, H, W]``, see
    :func:`prior_pictures`): ``loss`` (the mean MSE, 8-bit scale), ``bpp``, ``psnr``, ``ms_ssim``
    (means over the qualities) and ``per_quality`` rows with each codebook's ``utilisation``."""
    from codec.media.image import Picture, rate, to_8bit
    from codec.media.image_metrics import ms_ssim_rgb, mse, psnr
    from codec.models.vq import SIZES

    m = copy.deepcopy(model).cpu().eval()
    m.fit_prior(fit_on)
    m.freeze()
    m.to(device)
    rows = []
    for qi, k in enumerate(SIZES):
        q = qi + 1
        n = nbytes = 0
        bpp = ps = err = ss = 0.0
        n_ss = 0
        used = torch.zeros(k, dtype=torch.bool)
        for ref in images:
            H, W = ref.shape[:2]
            pic = Picture(ref)
            x = pic.tensor(device)
            payload = m.compress(x, q)
            used[m.tokens(x, q).reshape(-1).cpu()] = True
            rec = to_8bit(m.decompress(payload, q, device=device)[0, :, :H, :W])
            e = mse(rec, ref)
            n += 1
            nbytes += payload.nbytes
            bpp += rate(payload.nbytes, pic.info)
            ps += psnr(e)
            err += e
            s = ms_ssim_rgb(rec, ref)
            if s is not None:
                ss += s
                n_ss += 1
        n = max(n, 1)
        rows.append({"quality": q, "loss": err / n, "bpp": bpp / n, "psnr": ps / n, "mse": err / n / 255 ** 2,
                     "ms_ssim": ss / n_ss if n_ss else None, "images": n, "bytes": nbytes,
                     "utilisation": float(used.float().mean())})
    res = {key: (sum(r[key] for r in rows) / len(rows) if all(r[key] is not None for r in rows) else None)
           for key in ("loss", "bpp", "psnr", "mse", "ms_ssim", "utilisation")}
    res.update(quality="mean", images=rows[0]["images"], bytes=sum(r["bytes"] for r in rows), per_quality=rows)
    return res
