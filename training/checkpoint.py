"""Checkpoints and random-number state: what a run writes so that a resumed run continues exactly.

A checkpoint (``OUT/last.pt``, ``OUT/best.pt``; ``torch.save`` of plain tensors and
containers, read back with ``weights_only=True``) holds::

    format        CHECKPOINT_FORMAT
    task          the task's name ("image-rd"; checkpoints without it are image-rd)
    step          optimisation steps done
    config        the resolved config of the run (loading it again gives the same run)
    arch          what the task needs to rebuild its model (image-rd: name, quality, arch_kwargs)
    model         the model's state dict
    optimizer     the first parameter group's optimiser; NAME_optimizer for the others (aux_optimizer)
    scheduler     the first group's learning-rate schedule (NAME_scheduler for other scheduled groups)
    processes     per process: its RNG states ("rng") and its log accumulators ("acc")
    best, val     the best validation so far ({"loss", "step"}) and the last validation
    skipped       steps skipped for non-finite gradients
    world_size, elapsed_s, torch_version

Files are written with :func:`codec.fileio.atomic_path`: a crash leaves the old file or
the new one, never a partial one.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch

from codec.fileio import atomic_path

CHECKPOINT_FORMAT = "codec.training.checkpoint/v1"


# ----------------------------------------------------------------------------- RNG states
def rng_state(device) -> dict:
    """The RNG states of this process (torch, Python, numpy and, on CUDA, the device's)."""
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


# ----------------------------------------------------------------------------- files
def save_checkpoint(path, state: dict):
    with atomic_path(path, force=True) as tmp:
        torch.save(state, tmp)


def copy_checkpoint(src, dst):
    """``dst`` becomes a copy of ``src`` (atomically): ``best.pt`` from ``last.pt``."""
    with atomic_path(dst, force=True) as tmp:
        shutil.copyfile(src, tmp)


def load_checkpoint(path) -> dict:
    """A training checkpoint (a ``.pt`` file, or a run folder: its last.pt, else best.pt),
    with ``"path"`` added; ``ValueError`` for anything else."""
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


def task_of(ck: dict) -> str:
    """The name of the task that wrote checkpoint ``ck``."""
    return ck.get("task", "image-rd")
