"""The rate-distortion training loop.

``train(cfg)`` trains one registry model (``cfg.model``) with

- loss ``lmbda * 255**2 * MSE + bpp`` (or ``lmbda * (1 - MS-SSIM) + bpp``), bpp from the
  likelihoods; plus the auxiliary loss of the factorized densities' quantiles (its own
  Adam; it only reaches the quantiles, as in CompressAI);
- gradient clipping of the main parameters, a step-based learning-rate schedule, steps
  with non-finite gradients skipped;
- validation with real coding: the model is frozen (CDF tables, integer index path) on a
  copy, every validation image is compressed, rate = bytes of the streams, distortion
  on the 8-bit reconstruction;
- ``OUT/last.pt`` and ``OUT/best.pt`` (lowest validation loss) holding model,
  optimisers, scheduler, step, log accumulators and the RNG states of every process,
  so a resumed run continues exactly where it stopped;
- ``OUT/config.json`` (the resolved config), ``OUT/train.csv``, ``OUT/val.csv`` and,
  when the ``tensorboard`` package is installed, ``OUT/tb``;
- speed: bf16 autocast of the analysis/synthesis transforms (the entropy models stay
  fp32), channels-last, optional ``torch.compile``;
- many processes: under ``torchrun`` (``WORLD_SIZE`` > 1) DistributedDataParallel with
  NCCL on GPUs and gloo on CPUs; the batch size is per process.
"""
from __future__ import annotations

import copy
import csv
import math
import os
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from codec.training.config import Config, write_config
from codec.training.data import list_images, load_rgb, make_batches

CHECKPOINT_FORMAT = "codec.training.checkpoint/v1"
TRAIN_FIELDS = ["step", "epoch", "loss", "bpp", "mse", "psnr", "ms_ssim", "aux", "lr", "grad_norm",
                "skipped", "it_per_s", "elapsed_s"]
VAL_FIELDS = ["step", "quality", "loss", "bpp", "bpp_est", "psnr", "ms_ssim", "images", "bytes", "seconds"]


def log(msg: str, rank: int = 0, quiet: bool = False):
    if rank == 0 and not quiet:
        print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- model
def build_model(name: str, arch_kwargs: dict | None = None):
    """A fresh (float, training) registry model with the spec's kwargs overridden; and the kwargs."""
    from codec.models.registry import get_spec

    spec = get_spec(name)
    kwargs = {**spec.kwargs, **(arch_kwargs or {})}
    return spec.arch(**kwargs), kwargs


class RDForward(nn.Module):
    """What one training step computes: ``{"x_hat", "likelihoods", "aux"}``.

    With ``amp_dtype`` the analysis and synthesis transforms run under autocast; the
    latent codec (hyper-transforms, densities, likelihoods) stays in fp32.
    """

    def __init__(self, model: nn.Module, amp_dtype=None):
        super().__init__()
        self.model, self.amp_dtype = model, amp_dtype

    def forward(self, x, quality=None):
        m = self.model
        if self.amp_dtype is None:
            out = m(x, quality)
            return {"x_hat": out["x_hat"], "likelihoods": out["likelihoods"], "aux": m.aux_loss()}
        with torch.autocast(x.device.type, dtype=self.amp_dtype):
            y = m.g_a(x)
        lc = m.latent_codec(y.float(), *m._q(quality))
        with torch.autocast(x.device.type, dtype=self.amp_dtype):
            x_hat = m.g_s(lc["y_hat"])
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


def sample_qualities(n: int, lambdas, device):
    """``n`` random qualities, uniform in ``[1, L]``, and their lambdas (interpolated
    linearly in log-lambda between the levels, as the gains are)."""
    from codec.models.latent_codecs import interpolate_levels

    log_lam = torch.log(torch.as_tensor(lambdas, dtype=torch.float32, device=device))
    q = 1 + (len(lambdas) - 1) * torch.rand(n, device=device)
    return q, torch.exp(interpolate_levels(log_lam, q))


def split_parameters(model: nn.Module):
    """(main parameters, quantile parameters of the factorized densities)."""
    main, aux = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (aux if name.endswith("quantiles") else main).append(p)
    return main, aux


def lr_factor(step: int, cfg: Config) -> float:
    """Learning-rate multiplier at ``step`` (0-based)."""
    o, total = cfg.optim, cfg.run.steps
    f = 1.0
    if o.warmup_steps and step < o.warmup_steps:
        f = (step + 1) / o.warmup_steps
    if o.schedule == "multistep":
        for frac in o.decay_at:
            if step >= int(frac * total):
                f *= o.gamma
    elif o.schedule == "cosine":
        t = min(1.0, max(0.0, (step - o.warmup_steps) / max(1, total - o.warmup_steps)))
        f *= o.min_lr_factor + (1 - o.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * t))
    return f


def train_step(net, x, opt, aux_opt, main_params, aux_params, cfg: Config):
    """One optimisation step -> (losses incl. ``aux``, gradient norm, whether the step was taken).

    The auxiliary (quantile) loss is added to the rate-distortion loss for one backward
    pass: it reaches only the quantiles (CompressAI stops its gradient to the densities).
    A step whose gradients are not finite is skipped (the same on every process: the
    gradients are all-reduced)."""
    if cfg.variable_rate:
        quality, lmbda = sample_qualities(x.shape[0], cfg.lambdas, x.device)
        out = net(x, quality)
    else:
        lmbda = cfg.lmbda
        out = net(x)
    losses = rd_loss(out, x, cfg.loss.metric, lmbda)
    losses["aux"] = out["aux"]
    total = losses["loss"] + cfg.loss.aux_weight * out["aux"]
    opt.zero_grad(set_to_none=True)
    aux_opt.zero_grad(set_to_none=True)
    total.backward()
    max_norm = cfg.optim.clip_norm if cfg.optim.clip_norm > 0 else float("inf")
    gnorm = torch.nn.utils.clip_grad_norm_(main_params, max_norm)
    finite = torch.isfinite(gnorm)
    for p in aux_params:
        if p.grad is not None:
            finite = finite & torch.isfinite(p.grad).all()
    ok = bool(finite)
    if ok:
        opt.step()
        aux_opt.step()
    return losses, gnorm, ok


# ----------------------------------------------------------------------------- validation
def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    H, W = x.shape[-2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x


@torch.no_grad()
def validate(model: nn.Module, images: list, cfg: Config, device, rank: int = 0, world: int = 1) -> dict:
    """Real coding of ``images`` (uint8 ``H x W x 3``): a frozen copy of ``model`` compresses
    each image; ``bpp = 8 * bytes / pixels`` from the streams, PSNR (and MS-SSIM for sides
    > 160) on the 8-bit reconstruction; ``bpp_est`` from the likelihoods, for comparison.
    Under DDP the images are shared out and the sums all-reduced.

    A variable-rate model is coded at each of its levels: the result holds the means over
    the levels (``quality = "mean"``; ``loss``, ``bpp``, ``psnr``...; ``bytes`` summed) and
    ``per_quality``, one result per level (``val.csv`` gets the mean row, then one row per
    level)."""
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        m = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
        m.freeze()
        if not cfg.variable_rate:
            res = _validate_at(m, images, cfg, device, rank, world, None, cfg.lmbda)
            res["seconds"] = time.perf_counter() - t0
            return res
        rows = [{"quality": q, **_validate_at(m, images, cfg, device, rank, world, float(q), lam)}
                for q, lam in enumerate(cfg.lambdas, start=1)]
    res = {k: (sum(r[k] for r in rows) / len(rows) if all(r[k] is not None for r in rows) else None)
           for k in ("loss", "bpp", "bpp_est", "psnr", "mse", "ms_ssim")}
    res.update(quality="mean", images=rows[0]["images"], bytes=sum(r["bytes"] for r in rows), per_quality=rows,
               seconds=time.perf_counter() - t0)
    return res


def _validate_at(m, images, cfg, device, rank, world, quality, lmbda) -> dict:
    # count, bpp, bpp_est, psnr, mse, ms_ssim sum, ms_ssim count, bytes
    sums = torch.zeros(8, dtype=torch.float64)
    for i in range(rank, len(images), world):
        ref = torch.from_numpy(images[i]).to(device).permute(2, 0, 1)[None]
        H, W = ref.shape[-2:]
        x = pad_to(ref.float() / 255, m.multiple)
        streams, _ = m.compress(x, quality)
        nbytes = sum(len(s) for s in streams)
        x_hat = m.decompress(streams, x.shape[-2], x.shape[-1], device=device, quality=quality)[..., :H, :W]
        rec = torch.round(x_hat.clamp(0, 1) * 255)
        mse = float(((rec - ref.float()) ** 2).mean())
        lik = m(x, quality)["likelihoods"]
        bits = float(sum(torch.log2(v).sum() for v in lik.values()))
        sums[0] += 1
        sums[1] += 8 * nbytes / (H * W)
        sums[2] += -bits / (H * W)
        sums[3] += 10 * math.log10(255 ** 2 / mse) if mse > 0 else 100.0
        sums[4] += mse / 255 ** 2
        if min(H, W) > 160:
            from pytorch_msssim import ms_ssim

            sums[5] += float(ms_ssim(rec / 255, ref.float() / 255, data_range=1.0))
            sums[6] += 1
        sums[7] += nbytes
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


def init_weights(model: nn.Module, path) -> tuple[int, int]:
    """Load the parameters of ``path`` (a training checkpoint or a weights file) that fit
    ``model``; a fixed-rate model's latent codec maps onto a variable-rate model's inner
    codec and back.  Returns (tensors loaded, tensors of the model left as they were)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model.init: no such file: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        src = {k: v for k, v in load_file(str(path)).items() if not k.startswith("frozen.")}
    else:
        src = load_checkpoint(path)["model"]
    own = model.state_dict()
    params = {k for k, _ in model.named_parameters()}
    mapped = {}
    for k, v in src.items():
        for cand in (k, k.replace("latent_codec.", "latent_codec.inner.", 1),
                     k.replace("latent_codec.inner.", "latent_codec.", 1)):
            if cand in own:
                if own[cand].shape == v.shape:
                    mapped[cand] = v.to(own[cand].dtype)
                elif cand in params:
                    raise ValueError(f"model.init: {path}: '{k}' has shape {tuple(v.shape)}, "
                                     f"the model's has {tuple(own[cand].shape)}")
                break
    if not any(k in params for k in mapped):
        raise ValueError(f"model.init: {path} holds no parameter of this model")
    model.load_state_dict(mapped, strict=False)
    return len(mapped), len(own) - len(mapped)


# ----------------------------------------------------------------------------- RNG states
def rng_state(device) -> dict:
    st = np.random.get_state()
    out = {"torch": torch.get_rng_state(), "python": random.getstate(),
           "numpy": {"keys": torch.from_numpy(st[1].astype(np.int64)), "pos": int(st[2]),
                     "has_gauss": int(st[3]), "cached_gaussian": float(st[4])}}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def set_rng_state(st: dict, device):
    torch.set_rng_state(st["torch"])
    random.setstate(st["python"])
    n = st["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if device.type == "cuda" and "cuda" in st:
        torch.cuda.set_rng_state(st["cuda"], device)


def seed_all(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, state: dict):
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path) -> dict:
    path = Path(path)
    if path.is_dir():
        for name in ("last.pt", "best.pt"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise ValueError(f"no checkpoint (last.pt, best.pt) in {path}")
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a training checkpoint of this codec")
    ck["path"] = str(path)
    return ck


# ----------------------------------------------------------------------------- logging
class Logs:
    """CSV files (and TensorBoard when installed) of rank 0."""

    def __init__(self, out: Path, start_step: int, enabled: bool, tensorboard: bool, quiet: bool):
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        self.files = {}
        for name, fields in (("train", TRAIN_FIELDS), ("val", VAL_FIELDS)):
            path = out / f"{name}.csv"
            rows = []
            if start_step > 0 and path.is_file():  # drop rows written after the checkpoint
                with open(path, newline="") as f:
                    rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
            f = open(path, "w", newline="")
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
            f.flush()
            self.files[name] = (f, w)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"), purge_step=start_step + 1 if start_step else None)
            except ImportError:
                log("note: the tensorboard package is not installed; logging to CSV only", quiet=quiet)

    def row(self, name: str, values: dict, tag: str | None = None):
        """A CSV row of file ``name`` (and TensorBoard scalars under ``tag``, default ``name``)."""
        if not self.enabled:
            return
        f, w = self.files[name]
        w.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in values.items()})
        f.flush()
        if self.tb is not None:
            for k, v in values.items():
                if k != "step" and isinstance(v, (int, float)) and v is not None:
                    self.tb.add_scalar(f"{tag or name}/{k}", v, values["step"])

    def close(self):
        if not self.enabled:
            return
        for f, _ in self.files.values():
            f.close()
        if self.tb is not None:
            self.tb.close()


# ----------------------------------------------------------------------------- processes
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def active(self):
        return self.world > 1


def init_distributed(cfg: Config) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want = cfg.run.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("run.device asks for CUDA, but no CUDA device is available")
        device = torch.device(want if ":" in want else f"cuda:{local_rank % torch.cuda.device_count()}")
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    d = Dist(rank, world, local_rank, device)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
        d.owns_group = True
    return d


def _threads(cfg: Config, d: Dist):
    n = cfg.run.threads
    if not n and d.active and d.device.type == "cpu":
        local = int(os.environ.get("LOCAL_WORLD_SIZE", d.world))
        n = max(1, (os.cpu_count() or 1) // local)
    if n:
        torch.set_num_threads(n)


def _param_digest(model: nn.Module) -> torch.Tensor:
    """A cheap fingerprint of the parameters (to check that processes stay in sync)."""
    with torch.no_grad():
        return torch.stack([p.detach().double().sum() for p in model.parameters()]).cpu()


# ----------------------------------------------------------------------------- the loop
@dataclass
class TrainResult:
    step: int
    out: Path
    train: dict  # the last log row
    val: dict | None  # the last validation
    best: dict
    model: nn.Module = None  # the trained (unwrapped) model of this process
    stopped: bool = False  # stopped before cfg.run.steps (stop_at or a signal)
    interrupted: bool = False  # stopped by SIGTERM/SIGINT (last.pt written)


class _StopFlag:
    def __init__(self):
        self.set = False
        self._old = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.set:  # second signal: give up at once
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def train(cfg: Config, resume=None, stop_at: int | None = None, quiet: bool = False) -> TrainResult:
    """Train ``cfg``; ``resume``: a checkpoint path, a run folder, or ``"auto"`` (``OUT/last.pt``
    if it exists); ``stop_at``: save and return once this step is reached (the schedule still
    runs to ``cfg.run.steps``)."""
    cfg.validate()
    d = init_distributed(cfg)
    try:
        return _train(cfg, d, resume, stop_at, quiet)
    finally:
        if d.owns_group:
            dist.destroy_process_group()


def _train(cfg: Config, d: Dist, resume, stop_at, quiet) -> TrainResult:
    _threads(cfg, d)
    device, rank = d.device, d.rank
    out = cfg.out_dir
    ck = None
    if resume == "auto":
        resume = out / "last.pt" if (out / "last.pt").is_file() else None
    if resume is not None:
        ck = load_checkpoint(resume)
        a = ck["arch"]
        if a["name"] != cfg.model.name or {**a["arch_kwargs"]} != {**build_spec_kwargs(cfg)}:
            raise ValueError(f"checkpoint {ck['path']} holds model '{a['name']}' {a['arch_kwargs']}, "
                             f"the config asks for '{cfg.model.name}' {build_spec_kwargs(cfg)}")
    elif (out / "last.pt").is_file():
        raise ValueError(f"{out} already holds a run (last.pt): resume it (--resume auto) "
                         "or choose another run.out")
    start = int(ck["step"]) if ck else 0
    end = cfg.run.steps if stop_at is None else min(cfg.run.steps, int(stop_at))
    if start >= cfg.run.steps:
        raise ValueError(f"the checkpoint is at step {start}; run.steps is {cfg.run.steps}: nothing to do "
                         "(raise run.steps to train further)")
    if ck and end <= start:
        raise ValueError(f"the checkpoint is at step {start}: stop at a later step")

    # -- data (listed before anything is written: a bad folder fails fast) ----------
    files = list_images(cfg.data.train)
    val_images = []
    if cfg.data.val is not None:
        vfiles = list_images([cfg.data.val], what="data.val")[: cfg.data.val_limit]
        val_images = [load_rgb(f) for f in vfiles]
        small = [str(f) for f, im in zip(vfiles, val_images) if min(im.shape[:2]) <= 160]
        if cfg.loss.metric == "ms-ssim" and small:
            raise ValueError(f"data.val: MS-SSIM needs images larger than 160 pixels a side: {small[0]}")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_config(cfg, out / "config.json")

    # -- model, optimisers, schedule -----------------------------------------------
    seed_all(cfg.run.seed)  # the same initial weights on every process
    model, arch_kwargs = build_model(cfg.model.name, cfg.model.arch_kwargs)
    if cfg.variable_rate:
        model.latent_codec.init_gains(cfg.lambdas, ref=cfg.model.quality)
    if cfg.model.init is not None and ck is None:
        n_in, n_kept = init_weights(model, cfg.model.init)
        log(f"initialised {n_in} tensors from {cfg.model.init} ({n_kept} kept their initialisation)", rank, quiet)
    cuda = device.type == "cuda"
    amp = cfg.run.amp == "bf16" or (cfg.run.amp == "auto" and cuda and torch.cuda.is_bf16_supported())
    channels_last = cfg.run.channels_last == "on" or (cfg.run.channels_last == "auto" and cuda)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    main_params, aux_params = split_parameters(model)
    opt = torch.optim.Adam(main_params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    aux_opt = torch.optim.Adam(aux_params, lr=cfg.optim.aux_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    best = {"loss": float("inf"), "step": None}
    acc = torch.zeros(6, dtype=torch.float64)  # steps, loss, bpp, mse, aux, ms_ssim (this log interval)
    skipped, last_val = 0, None
    if ck:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        aux_opt.load_state_dict(ck["aux_optimizer"])
        sched.load_state_dict(ck["scheduler"])
        best, skipped, last_val = ck["best"], int(ck["skipped"]), ck.get("val")
    net = RDForward(model, torch.bfloat16 if amp else None)
    if d.active:
        import inspect

        # the buffers (scale tables, offsets) never change in training: no sync per forward
        params = inspect.signature(nn.parallel.DistributedDataParallel).parameters
        no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device] if cuda else None, **no_sync)
    if cfg.run.compile:
        net = torch.compile(net)
    acc = acc.to(device)

    # -- RNG: per process; restored exactly on resume ---------------------------------
    seed_all(cfg.run.seed + 1000003 * (rank + 1))
    if ck:
        states = ck["processes"]
        if len(states) == d.world:
            set_rng_state(states[rank]["rng"], device)
            acc = states[rank]["acc"].to(device=device, dtype=torch.float64)
        else:
            log(f"note: checkpoint written by {len(states)} processes, resumed by {d.world}: "
                "RNG states re-seeded (the run continues, but not bit-exactly)", rank, quiet)
            seed_all(cfg.run.seed + 1000003 * (rank + 1) + start)

    batches = make_batches(files, cfg.data.crop, cfg.data.batch_size, cfg.run.seed, start, end, rank, d.world,
                           cfg.data.resident, cfg.data.workers, device)
    logs = Logs(out, start, rank == 0, cfg.run.tensorboard, quiet)
    n_params = sum(p.numel() for p in model.parameters())
    lam = (f"lambdas {', '.join(f'{v:g}' for v in cfg.lambdas)}" if cfg.variable_rate else f"lambda {cfg.lmbda:g}")
    log(f"training {cfg.model.name} q{cfg.model.quality} {arch_kwargs} ({n_params / 1e6:.2f} M parameters), "
        f"{lam} ({cfg.loss.metric}), {len(files)} images, {len(val_images)} validation images; "
        f"{d.world} process(es) on {device.type}, batch {cfg.data.batch_size}x{d.world}, crop {cfg.data.crop}, "
        f"bf16 {'on' if amp else 'off'}, channels-last {'on' if channels_last else 'off'}, "
        f"compile {'on' if cfg.run.compile else 'off'}; steps {start}..{end} of {cfg.run.steps} -> {out}",
        rank, quiet)

    def checkpoint(step, is_best=False):
        mine = {"rng": rng_state(device), "acc": acc.detach().cpu()}
        states = [mine]
        if d.active:
            states = [None] * d.world
            dist.all_gather_object(states, mine)
        if rank != 0:
            return
        state = {"format": CHECKPOINT_FORMAT, "step": step, "config": cfg.resolved(),
                 "arch": {"name": cfg.model.name, "quality": cfg.model.quality, "arch_kwargs": arch_kwargs},
                 "model": model.state_dict(), "optimizer": opt.state_dict(), "aux_optimizer": aux_opt.state_dict(),
                 "scheduler": sched.state_dict(), "processes": states, "best": best, "val": last_val,
                 "skipped": skipped, "world_size": d.world, "elapsed_s": elapsed0 + time.perf_counter() - t_start,
                 "torch_version": str(torch.__version__)}
        save_checkpoint(out / "last.pt", state)
        if is_best:
            shutil.copyfile(out / "last.pt", out / "best.pt.tmp")
            os.replace(out / "best.pt.tmp", out / "best.pt")

    from tqdm import tqdm

    bar = tqdm(total=cfg.run.steps, initial=start, disable=not (cfg.run.progress and rank == 0 and not quiet),
               dynamic_ncols=True, desc=f"{cfg.model.name} q{cfg.model.quality}", unit="step")

    def say(msg):
        if rank == 0 and not quiet:
            (bar.write(msg, file=sys.stderr) if not bar.disable else log(msg))

    t_start = t_log = time.perf_counter()
    elapsed0 = float(ck.get("elapsed_s", 0.0)) if ck else 0.0
    step, step_log, last_row, stopped = start, start, {}, False
    seen_per_step = cfg.data.batch_size * d.world
    model.train()
    with _StopFlag() as stop:
        it = iter(batches)
        while step < end:
            xb = next(it).to(device, non_blocking=True)
            x = xb.float().div_(255)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            losses, gnorm, ok = train_step(net, x, opt, aux_opt, main_params, aux_params, cfg)
            skipped += not ok
            sched.step()
            step += 1
            acc += torch.stack([torch.ones((), dtype=torch.float64, device=device),
                                losses["loss"].detach().double(), losses["bpp"].detach().double(),
                                losses["mse"].detach().double(), losses["aux"].detach().double(),
                                losses.get("ms_ssim", torch.zeros((), device=device)).detach().double()])
            bar.update(1)

            stop_now = False
            if step % cfg.run.log_every == 0 or step == cfg.run.steps:  # (not at stop_at: exact resumes)
                red = torch.cat([acc, torch.tensor([float(stop.set)], dtype=torch.float64, device=device)])
                if d.active:
                    dist.all_reduce(red)
                n = max(1.0, float(red[0]))
                now = time.perf_counter()
                mse = float(red[3]) / n
                last_row = {"step": step, "epoch": step * seen_per_step / len(files), "loss": float(red[1]) / n,
                            "bpp": float(red[2]) / n, "mse": mse,
                            "psnr": 10 * math.log10(1 / mse) if mse > 0 else None,
                            "ms_ssim": float(red[5]) / n if cfg.loss.metric == "ms-ssim" else None,
                            "aux": float(red[4]) / n, "lr": opt.param_groups[0]["lr"], "grad_norm": float(gnorm),
                            "skipped": skipped, "it_per_s": (step - step_log) / max(1e-9, now - t_log),
                            "elapsed_s": elapsed0 + now - t_start}
                t_log, step_log = now, step
                acc.zero_()
                logs.row("train", last_row)
                bar.set_postfix(loss=f"{last_row['loss']:.4g}", bpp=f"{last_row['bpp']:.3f}",
                                psnr=f"{last_row['psnr'] or 0:.2f}", refresh=False)
                if float(red[-1]) > 0:  # a process got a signal: all stop at this step
                    stop_now = True
            if skipped > 100 and skipped * 2 > step - start:
                raise RuntimeError(f"more than half of the steps had non-finite gradients ({skipped}); "
                                   "lower optim.lr or check the data")

            is_val = bool(val_images) and (step % cfg.run.val_every == 0 or step == cfg.run.steps)
            is_best = False
            if is_val:
                model.eval()
                last_val = {"step": step, **validate(model, val_images, cfg, device, rank, d.world)}
                model.train()
                if d.active:  # the processes must hold the same weights
                    dig = [None] * d.world
                    dist.all_gather_object(dig, _param_digest(model))
                    if any(not torch.equal(dig[0], g) for g in dig[1:]):
                        raise RuntimeError(f"step {step}: the processes' parameters differ (out of sync)")
                for row in last_val.get("per_quality", []):
                    row["step"] = step
                logs.row("val", last_val)
                for row in last_val.get("per_quality", []):
                    logs.row("val", row, tag=f"val/q{row['quality']}")
                if last_val["loss"] < best["loss"]:
                    best, is_best = {"loss": last_val["loss"], "step": step}, True
                levels = "".join(f"\n  q{r['quality']}: {r['bpp']:.4f} bpp, {r['psnr']:.2f} dB, loss {r['loss']:.4f}"
                                 for r in last_val.get("per_quality", []))
                say(f"step {step}: validation {last_val['images']} images, {last_val['bpp']:.4f} bpp "
                    f"(estimated {last_val['bpp_est']:.4f}), {last_val['psnr']:.2f} dB, loss {last_val['loss']:.4f}"
                    + (" (best)" if is_best else "") + levels)
            if not d.active and stop.set:
                stop_now = True
            if is_val or step % cfg.run.ckpt_every == 0 or step == end or stop_now:
                checkpoint(step, is_best)
            if stop_now and step < end:
                stopped = True
                say(f"stopped at step {step}; resume with --resume {out / 'last.pt'}")
                break
    bar.close()
    logs.close()
    if d.active:
        dist.barrier()
    return TrainResult(step=step, out=out, train=last_row, val=last_val, best=best, model=model,
                       stopped=stopped or step < cfg.run.steps, interrupted=stopped)


def build_spec_kwargs(cfg: Config) -> dict:
    from codec.models.registry import get_spec

    return {**get_spec(cfg.model.name).kwargs, **cfg.model.arch_kwargs}
