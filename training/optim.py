"""Optimisation: one Adam per parameter group of the task, the learning-rate schedule and the step.

A task names its parameter groups (:class:`ParamGroup`: image-rd has ``main``, the
transforms and densities, and ``aux``, the quantiles of the factorized densities; a GAN
task would add a discriminator).  :class:`Optimisers` gives each group its own Adam;
one :meth:`~Optimisers.step` backpropagates the task's total loss once, clips each
group that asks for it and steps every optimiser, or none when a gradient is not finite
(the same decision on every process: the gradients are all-reduced).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class ParamGroup:
    name: str  # "main", "aux", ...: the first group's state is saved as "optimizer", the others' as NAME_optimizer
    params: list
    lr: float
    weight_decay: float = 0.0
    clip_norm: float | None = None  # max gradient norm (0: measured, not clipped; None: only checked finite)
    scheduled: bool = True  # the learning-rate schedule (optim.schedule, warm-up) applies


def lr_factor(step: int, optim, total: int) -> float:
    """Learning-rate multiplier at ``step`` (0-based) of ``total`` (``optim``: an OptimConfig)."""
    o = optim
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


def _key(i: int, group: ParamGroup, what: str) -> str:
    return what if i == 0 else f"{group.name}_{what}"


class Optimisers:
    """The optimisers and schedules of ``groups`` (``optim``: an OptimConfig; ``total``: run.steps)."""

    def __init__(self, groups: list, optim, total: int):
        if not groups:
            raise ValueError("a task needs at least one parameter group")
        self.groups = groups
        self.opts = [torch.optim.Adam(g.params, lr=g.lr, weight_decay=g.weight_decay) for g in groups]
        self.scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_factor(s, optim, total))
                       if g.scheduled else None for g, o in zip(groups, self.opts)]

    @property
    def lr(self) -> float:
        """The first group's learning rate now."""
        return self.opts[0].param_groups[0]["lr"]

    def step(self, total: torch.Tensor):
        """Backpropagate ``total``, clip, step -> (the first measured gradient norm, whether the step was taken)."""
        for o in self.opts:
            o.zero_grad(set_to_none=True)
        total.backward()
        finite, gnorm = None, None
        for g in self.groups:
            if g.clip_norm is not None:
                n = torch.nn.utils.clip_grad_norm_(g.params, g.clip_norm if g.clip_norm > 0 else float("inf"))
                gnorm = n if gnorm is None else gnorm
                ok = torch.isfinite(n)
                finite = ok if finite is None else finite & ok
            else:
                for p in g.params:
                    if p.grad is not None:
                        ok = torch.isfinite(p.grad).all()
                        finite = ok if finite is None else finite & ok
        taken = finite is None or bool(finite)
        if taken:
            for o in self.opts:
                o.step()
        return (gnorm if gnorm is not None else torch.tensor(float("nan"))), taken

    def schedule(self):
        """Advance the schedules by one step (after every step, taken or skipped)."""
        for s in self.scheds:
            if s is not None:
                s.step()

    def state_dict(self) -> dict:
        out = {}
        for i, (g, o, s) in enumerate(zip(self.groups, self.opts, self.scheds)):
            out[_key(i, g, "optimizer")] = o.state_dict()
            if s is not None:
                out[_key(i, g, "scheduler")] = s.state_dict()
        return out

    def load_state_dict(self, ck: dict):
        for i, (g, o, s) in enumerate(zip(self.groups, self.opts, self.scheds)):
            o.load_state_dict(ck[_key(i, g, "optimizer")])
            if s is not None:
                s.load_state_dict(ck[_key(i, g, "scheduler")])
