"""Fit a small coordinate network to ONE picture: a per-item fitting task.

An implicit-neural-representation (INR) codec codes a picture by overfitting a network
to it and coding the network.  This task is the fitting half, and shows that the loop
takes such a task as it takes dataset training: the same optimiser, learning-rate
schedule, logs, checkpoints and exact resume (:func:`codec.training.loop.run_task`).
It codes nothing; the validation reports the fitted quality, PSNR of the 8-bit
reconstruction against the picture (:mod:`codec.media.image_metrics`).

The network maps pixel centres ``(y, x)`` in ``[-1, 1]`` through Fourier features
(``sin`` and ``cos`` of ``2^k pi y``, ``2^k pi x``, ``k < frequencies``) and a ReLU MLP to
RGB in [0, 1].  A step fits a batch of pixels (all of them, or ``batch_pixels`` drawn
as a pure function of (seed, step, rank), so a resumed fit sees the same batches)::

    from codec.training.tasks.fit_picture import fit_picture
    res = fit_picture("photo.png", steps=500, lr=1e-2)        # in memory (no run folder)
    res.val["psnr"], res.task.start_psnr                       # fitted and initial PSNR
    fit_picture("photo.png", out="runs/fit", stop_at=200)      # with checkpoints and logs ...
    fit_picture("photo.png", out="runs/fit", resume="auto")    # ... continued exactly
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from codec.training.config import OptimConfig, RunConfig
from codec.training.tasks import Context, ParamGroup, Task


@dataclass
class FitConfig:
    picture: str  # the picture to fit: any file codec.media.image.read takes
    width: int = 32  # hidden units per layer
    depth: int = 2  # hidden layers
    frequencies: int = 6  # Fourier features per coordinate
    batch_pixels: int = 0  # pixels per step (0: every pixel)

    def validate(self) -> "FitConfig":
        for k in ("width", "depth", "frequencies"):
            if not isinstance(getattr(self, k), int) or getattr(self, k) < 1:
                raise ValueError(f"fit.{k}: must be a positive integer, got {getattr(self, k)!r}")
        if self.batch_pixels < 0:
            raise ValueError("fit.batch_pixels: must be >= 0")
        return self


class CoordinateNet(nn.Module):
    """``(y, x)`` in [-1, 1] -> RGB: Fourier features and a ReLU MLP."""

    def __init__(self, width: int, depth: int, frequencies: int):
        super().__init__()
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(frequencies, dtype=torch.float32),
                             persistent=False)
        layers, n_in = [], 2 + 4 * frequencies
        for _ in range(depth):
            layers += [nn.Linear(n_in, width), nn.ReLU()]
            n_in = width
        layers.append(nn.Linear(n_in, 3))
        self.mlp = nn.Sequential(*layers)

    def forward(self, coords):
        a = (coords[:, :, None] * self.freqs).flatten(1)
        return self.mlp(torch.cat([coords, torch.sin(a), torch.cos(a)], dim=1))


class FitPictureTask(Task):
    """Fit :class:`CoordinateNet` to ``fit.picture`` (see the module docstring)."""

    name = "fit-picture"
    sums = ("loss",)
    train_fields = ("loss", "psnr")
    val_fields = ("loss", "psnr", "params")
    has_validation = True

    def __init__(self, fit: FitConfig, optim: OptimConfig, run: RunConfig):
        self.fit, self.optim, self.run = fit.validate(), optim, run
        self.start_psnr = None  # the PSNR of the network before the run's first step

    def config(self) -> dict:
        d = {"task": self.name, "fit": asdict(self.fit), "optim": asdict(self.optim), "run": asdict(self.run)}
        d["fit"]["picture"] = str(Path(self.fit.picture).resolve())
        if self.run.out:
            d["run"]["out"] = str(Path(self.run.out).resolve())
        return d

    def arch(self) -> dict:
        f = self.fit
        return {"name": self.name, "width": f.width, "depth": f.depth, "frequencies": f.frequencies}

    def check_resume(self, ck: dict) -> None:
        if ck["arch"] != self.arch():
            raise ValueError(f"checkpoint {ck['path']} holds {ck['arch']}, the task asks for {self.arch()}")

    def prepare(self, ctx: Context) -> None:
        from codec.errors import CodecError
        from codec.media.image import read

        try:
            self.picture = read(self.fit.picture).rgb
        except CodecError as exc:
            raise ValueError(f"fit.picture: {exc}") from None
        h, w = self.picture.shape[:2]
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h * 2 - 1
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w * 2 - 1
        self.coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2).to(ctx.device)
        self.target = (torch.from_numpy(np.array(self.picture)).reshape(-1, 3).float() / 255).to(ctx.device)

    def build(self, ctx: Context, init: bool) -> nn.Module:
        f = self.fit
        self.model = CoordinateNet(f.width, f.depth, f.frequencies).to(ctx.device)
        self.start_psnr = self.evaluate()["psnr"]
        return self.model

    def param_groups(self) -> list:
        o = self.optim
        return [ParamGroup("main", list(self.model.parameters()), o.lr, o.weight_decay, clip_norm=o.clip_norm)]

    def batches(self, start: int, stop: int, ctx: Context):
        n, k = self.coords.shape[0], self.fit.batch_pixels
        for step in range(start, stop):
            if not k or k >= n:
                yield None
            else:
                g = np.random.default_rng([self.run.seed, step, ctx.rank])
                yield torch.from_numpy(g.choice(n, size=k, replace=False)).to(ctx.device)

    def step(self, net: nn.Module, idx, ctx: Context) -> dict:
        coords, target = (self.coords, self.target) if idx is None else (self.coords[idx], self.target[idx])
        loss = F.mse_loss(net(coords), target)
        return {"total": loss, "loss": loss}

    def train_row(self, means: dict, step: int, ctx: Context) -> dict:
        from codec.media.image_metrics import psnr

        return {"loss": means["loss"], "psnr": psnr(means["loss"], peak=1.0)}

    @torch.no_grad()
    def reconstruction(self) -> np.ndarray:
        """The fitted picture, uint8 ``H x W x 3``."""
        h, w = self.picture.shape[:2]
        out = self.model(self.coords).reshape(h, w, 3)
        return torch.round(out.clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()

    def evaluate(self) -> dict:
        from codec.media.image_metrics import mse, psnr

        err = mse(self.reconstruction(), self.picture)
        return {"loss": err / 255 ** 2, "psnr": psnr(err), "params": sum(p.numel() for p in self.model.parameters())}

    def validate(self, ctx: Context) -> dict:
        return self.evaluate()

    def label(self) -> str:
        return f"fit {Path(self.fit.picture).name}"

    def describe(self, ctx: Context) -> str:
        h, w = self.picture.shape[:2]
        n = sum(p.numel() for p in self.model.parameters())
        return (f"{self.name}: {self.fit.picture} ({w}x{h}), network {self.fit.width}x{self.fit.depth} with "
                f"{self.fit.frequencies} frequencies ({n} parameters), {self.start_psnr:.2f} dB before the fit")

    def describe_validation(self, v: dict, best: bool) -> str:
        return f"fitted {v['psnr']:.2f} dB (from {self.start_psnr:.2f} dB)" + (" (best)" if best else "")

    def postfix(self, row: dict) -> dict:
        return {"loss": f"{row['loss']:.4g}", "psnr": f"{row['psnr']:.2f}"}


def fit_picture(picture, out=None, steps: int = 500, lr: float = 1e-2, resume=None, stop_at=None,
                quiet: bool = True, device: str = "cpu", seed: int = 0, **fit):
    """Fit a :class:`CoordinateNet` to ``picture`` with the training loop; ``out``: a run
    folder (checkpoints, logs, resume), or None to fit in memory.  ``fit``: fields of
    :class:`FitConfig`.  Returns the loop's :class:`~codec.training.loop.TrainResult`
    (``.val["psnr"]``: the fitted PSNR; ``.task.start_psnr``: the PSNR before the fit)."""
    from codec.training.loop import run_task

    optim = OptimConfig(lr=lr, schedule="cosine", clip_norm=0.0, min_lr_factor=0.05)
    run = RunConfig(steps=steps, out=None if out is None else str(out), seed=seed, device=device,
                    log_every=max(1, steps // 10), val_every=max(1, steps // 2), ckpt_every=max(1, steps // 2),
                    progress=not quiet, tensorboard=False)
    task = FitPictureTask(FitConfig(str(picture), **fit), optim, run)
    return run_task(task, resume=resume, stop_at=stop_at, quiet=quiet)
