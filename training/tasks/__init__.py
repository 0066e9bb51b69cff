"""Training tasks: what is optimised.  The loop (:mod:`codec.training.loop`) owns *how*.

The loop owns optimisation: one Adam per parameter group, the learning-rate schedule,
the backward pass, clipping and skipping of non-finite steps, AMP and channels-last
settings, DistributedDataParallel, checkpoints and their exact resume, the CSV and
TensorBoard logs, the progress bar and the stop signals.  A task owns the objective:
its model, its batches, the losses of one step, its parameter groups and its
validation.  One file per objective:

- :mod:`~codec.training.tasks.image_rd` -- rate-distortion training of a registry image
  model on random crops of folders of pictures, validated by really coding pictures
  (``codec train``);
- :mod:`~codec.training.tasks.vq` -- a VQ tokenizer (``vq-f16``): reconstruction and
  commitment losses, EMA codebook, utilisation and perplexity logged, validated by coding
  pictures at every codebook size;
- :mod:`~codec.training.tasks.fit_picture` -- fits a small coordinate network to ONE
  picture (a per-item fit, as an INR codec's encoder would run it) and reports the
  fitted PSNR.

The interface (subclass :class:`Task`; the loop calls these, in this order)::

    task.name                  str, written into checkpoints ("image-rd")
    task.optim, task.run       the loop's settings: an OptimConfig and a RunConfig
    task.out_dir               Path of the run folder, or None (no files: nothing to resume)
    task.config()              dict: the resolved config (OUT/config.json, the checkpoint's "config")
    task.check_resume(ck)      ValueError when checkpoint ck does not fit this task's model
    task.prepare(ctx)          list/read data; fail fast (nothing is written before it)
    task.build(ctx, init)      -> nn.Module, the trained model, created under the run's seed
                               (init: a fresh run, not a resume); the loop moves it to ctx.device
    task.param_groups()        -> [ParamGroup]: parameters, lr, weight decay, clipping, schedule
    task.forward_module(ctx)   -> nn.Module that step() calls (the loop wraps it in DDP / compile);
                               its parameters must be the model's
    task.batches(a, b, ctx)    iterable of the batches of steps a..b-1 of this process: a pure
                               function of (seed, step, rank), so that a resumed run sees the same
    task.step(net, batch, ctx) -> {"total": the scalar to minimise, ...logged tensors}
    task.sums                  keys of step()'s dict averaged over a log interval (in checkpoints)
    task.train_row(means, step, ctx) -> the train.csv values of task.train_fields
    task.validate(ctx)         -> {"loss": lower is better (best.pt), ...task.val_fields}; only when
                               task.has_validation; may hold "per_quality": rows of its own
    task.label(), task.describe(ctx), task.describe_validation(result, best), task.postfix(row): messages

``ctx`` (:class:`Context`) tells the device, rank and world size, whether bf16 autocast
and channels-last are on, and sums tensors over the processes (``ctx.all_reduce``).
The loop adds ``step`` and ``lr, grad_norm, skipped, it_per_s, elapsed_s`` to each
train.csv row and ``step`` and ``seconds`` to each val.csv row.

A per-item fitting task (an INR codec's encoder) is the same kind of task: one item,
batches of its samples, a validation that reports the fitted quality.  Its ``out_dir``
may be None to fit in memory only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from codec.training.optim import ParamGroup

__all__ = ["Context", "ParamGroup", "RegistryModelTask", "Task", "sample_qualities", "split_parameters", "task_for",
           "train"]


@dataclass
class Context:
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    rank: int = 0
    world: int = 1
    amp_dtype: torch.dtype | None = None  # autocast dtype of the task's heavy parts (bf16), or None
    channels_last: bool = False
    quiet: bool = False

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """The sum of ``t`` over the processes, in place."""
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(t)
        return t


class Task:
    """Base of training tasks (see the module docstring); subclasses set the attributes and
    implement ``build``, ``param_groups``, ``batches``, ``step`` and ``train_row``."""

    name = "task"
    sums: tuple = ("loss",)
    train_fields: tuple = ("loss",)
    val_fields: tuple = ("loss",)
    has_validation = False
    optim = None  # OptimConfig
    run = None  # RunConfig
    model: nn.Module = None  # set by build

    @property
    def out_dir(self) -> Path | None:
        return Path(self.run.out) if self.run.out else None

    def config(self) -> dict:
        raise NotImplementedError

    def check_resume(self, ck: dict) -> None:
        pass

    def arch(self) -> dict:
        """What the checkpoint records to rebuild the model (its "arch")."""
        return {"name": self.name}

    def prepare(self, ctx: Context) -> None:
        pass

    def build(self, ctx: Context, init: bool) -> nn.Module:
        raise NotImplementedError

    def param_groups(self) -> list:
        raise NotImplementedError

    def forward_module(self, ctx: Context) -> nn.Module:
        return self.model

    def batches(self, start: int, stop: int, ctx: Context):
        raise NotImplementedError

    def step(self, net: nn.Module, batch, ctx: Context) -> dict:
        raise NotImplementedError

    def train_row(self, means: dict, step: int, ctx: Context) -> dict:
        return dict(means)

    def validate(self, ctx: Context) -> dict:
        raise NotImplementedError

    def label(self) -> str:
        """A few words for the progress bar."""
        return self.name

    def describe(self, ctx: Context) -> str:
        return self.name

    def describe_validation(self, result: dict, best: bool) -> str:
        return f"validation loss {result['loss']:.4f}" + (" (best)" if best else "")

    def postfix(self, row: dict) -> dict:
        """What the progress bar shows of a train.csv row."""
        return {"loss": f"{row['loss']:.4g}"}



def freeze_parameters(model: nn.Module, prefixes) -> int:
    """Stop training the parameters named ``PREFIX`` or ``PREFIX.*`` for one of ``prefixes``
    (``optim.frozen``); returns how many were frozen.  A prefix that names no parameter is an error."""
    def match(name, pre):
        return name == pre or name.startswith(pre + ".")

    named = list(model.named_parameters())
    for pre in prefixes:
        if not any(match(n, pre) for n, _ in named):
            raise ValueError(f"optim.frozen: no parameter of the model is named '{pre}' or '{pre}.*'")
    frozen = [p for n, p in named if any(match(n, pre) for pre in prefixes)]
    for p in frozen:
        p.requires_grad_(False)
    return len(frozen)


def split_parameters(model: nn.Module):
    """(main parameters, quantile parameters of the factorized densities)."""
    main, aux = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (aux if name.endswith("quantiles") else main).append(p)
    return main, aux


def sample_qualities(n: int, lambdas, device):
    """``n`` random qualities, uniform in ``[1, L]``, and their lambdas (interpolated
    linearly in log-lambda between the levels, as the gains are)."""
    from codec.models.latent_codecs import interpolate_levels

    log_lam = torch.log(torch.as_tensor(lambdas, dtype=torch.float32, device=device))
    q = 1 + (len(lambdas) - 1) * torch.rand(n, device=device)
    return q, torch.exp(interpolate_levels(log_lam, q))


class RegistryModelTask(Task):
    """What the rate-distortion tasks of registry models share (image-rd, audio-rd): the
    config (:class:`codec.training.config.Config`), the model's spec and kwargs, resume
    checks, and two parameter groups: ``main`` (transforms and densities: ``optim.lr``,
    clipped to ``optim.clip_norm``, scheduled) and ``aux`` (the quantiles of the factorized
    densities: ``optim.aux_lr``)."""

    def __init__(self, cfg):
        self.cfg = cfg.validate()
        self.optim, self.run = cfg.optim, cfg.run
        self.spec = cfg.spec
        self.arch_kwargs = {**self.spec.kwargs, **cfg.model.arch_kwargs}

    @property
    def out_dir(self):
        return self.cfg.out_dir

    def config(self) -> dict:
        return self.cfg.resolved()

    def arch(self) -> dict:
        return {"name": self.cfg.model.name, "quality": self.cfg.model.quality, "arch_kwargs": self.arch_kwargs}

    def check_resume(self, ck: dict) -> None:
        a = ck["arch"]
        if a["name"] != self.cfg.model.name or {**a["arch_kwargs"]} != self.arch_kwargs:
            raise ValueError(f"checkpoint {ck['path']} holds model '{a['name']}' {a['arch_kwargs']}, "
                             f"the config asks for '{self.cfg.model.name}' {self.arch_kwargs}")

    def param_groups(self) -> list:
        freeze_parameters(self.model, self.optim.frozen)
        main, aux = split_parameters(self.model)
        o = self.optim
        groups = [ParamGroup("main", main, o.lr, o.weight_decay, clip_norm=o.clip_norm),
                  ParamGroup("aux", aux, o.aux_lr, scheduled=False)]
        return [g for g in groups if g.params]  # (optim.frozen may leave the quantiles none)


def task_for(cfg) -> Task:
    """The rate-distortion task of ``cfg``'s model: by the medium of its registry spec."""
    if cfg.spec.modality == "audio":
        from codec.training.tasks.audio_rd import AudioRDTask

        return AudioRDTask(cfg)
    if getattr(cfg.spec.arch_class(), "training_task", None) == "vq":
        from codec.training.tasks.vq import VQTask

        return VQTask(cfg)
    from codec.training.tasks.image_rd import ImageRDTask

    return ImageRDTask(cfg)


def train(cfg, resume=None, stop_at: int | None = None, quiet: bool = False):
    """Train ``cfg`` (the task of :func:`task_for` in :func:`codec.training.loop.run_task`);
    ``resume``: a checkpoint path, a run folder, or ``"auto"``; ``stop_at``: save and return
    at this step."""
    from codec.training.loop import run_task

    return run_task(task_for(cfg), resume=resume, stop_at=stop_at, quiet=quiet)
