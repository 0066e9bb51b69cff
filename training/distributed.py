"""Processes: the device of this process and, under ``torchrun`` (``WORLD_SIZE`` > 1), the
process group (NCCL on GPUs, gloo on CPUs), DistributedDataParallel and the checks that
the processes stay in sync."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn as nn


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


def init_distributed(want: str = "auto") -> Dist:
    """This process's rank, world size and device (``run.device``: auto, cpu, cuda, cuda:N);
    joins the process group when ``WORLD_SIZE`` > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
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


def set_threads(threads: int, d: Dist):
    """``run.threads`` CPU threads (0: torch's default, or the CPUs shared out under DDP on CPUs)."""
    n = threads
    if not n and d.active and d.device.type == "cpu":
        local = int(os.environ.get("LOCAL_WORLD_SIZE", d.world))
        n = max(1, (os.cpu_count() or 1) // local)
    if n:
        torch.set_num_threads(n)


def wrap(net: nn.Module, d: Dist) -> nn.Module:
    """``net`` under DistributedDataParallel when there are several processes."""
    if not d.active:
        return net
    import inspect

    # the buffers (e.g. scale tables, offsets) never change in training: no sync per forward
    params = inspect.signature(nn.parallel.DistributedDataParallel).parameters
    no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
    return nn.parallel.DistributedDataParallel(net, device_ids=[d.device] if d.device.type == "cuda" else None,
                                               **no_sync)


def all_reduce(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """The sum of ``t`` over the processes (``t`` itself with one process)."""
    if d.active:
        dist.all_reduce(t)
    return t


def all_gather(obj, d: Dist) -> list:
    if not d.active:
        return [obj]
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def param_digest(model: nn.Module) -> torch.Tensor:
    """A cheap fingerprint of the parameters (to check that processes stay in sync)."""
    with torch.no_grad():
        return torch.stack([p.detach().double().sum() for p in model.parameters()]).cpu()


def check_in_sync(model: nn.Module, d: Dist, step: int):
    """RuntimeError when the processes' parameters differ."""
    if not d.active:
        return
    dig = all_gather(param_digest(model), d)
    if any(not torch.equal(dig[0], g) for g in dig[1:]):
        raise RuntimeError(f"step {step}: the processes' parameters differ (out of sync)")
