"""The training loop: optimises any task (:mod:`codec.training.tasks`).

``run_task(task)`` runs ``task.run.steps`` optimisation steps of ``task``:

- the optimisers of the task's parameter groups, the step-based learning-rate schedule,
  gradient clipping, steps with non-finite gradients skipped (:mod:`~codec.training.optim`);
- bf16 autocast (where the task applies it), channels-last, optional ``torch.compile``;
- under ``torchrun`` (``WORLD_SIZE`` > 1) DistributedDataParallel, NCCL on GPUs and gloo on
  CPUs (:mod:`~codec.training.distributed`);
- the task's validation every ``run.val_every`` steps; ``OUT/last.pt`` and ``OUT/best.pt``
  (lowest validation loss) holding model, optimisers, schedules, step, log accumulators
  and the RNG states of every process, so that a resumed run continues exactly
  (:mod:`~codec.training.checkpoint`);
- ``OUT/config.json``, ``OUT/train.csv``, ``OUT/val.csv`` and, when the ``tensorboard``
  package is installed, ``OUT/tb`` (:mod:`~codec.training.logs`);
- SIGTERM or Ctrl-C: every process stops at the next log step, after writing last.pt.
"""
from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn

from codec.training.checkpoint import (CHECKPOINT_FORMAT, copy_checkpoint, load_checkpoint, rng_state,
                                       save_checkpoint, seed_all, set_rng_state, task_of)
from codec.training.config import write_json
from codec.training.distributed import all_gather, all_reduce, check_in_sync, init_distributed, set_threads, wrap
from codec.training.logs import Logs, log
from codec.training.optim import Optimisers
from codec.training.tasks import Context, Task

#: the loop's own columns of train.csv, after the task's
LOOP_FIELDS = ("lr", "grad_norm", "skipped", "it_per_s", "elapsed_s")


@dataclass
class TrainResult:
    step: int
    out: Path | None
    train: dict  # the last log row
    val: dict | None  # the last validation
    best: dict
    model: nn.Module = None  # the trained (unwrapped) model of this process
    stopped: bool = False  # stopped before run.steps (stop_at or a signal)
    interrupted: bool = False  # stopped by SIGTERM/SIGINT (last.pt written)
    task: Task = None


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


def run_task(task: Task, resume=None, stop_at: int | None = None, quiet: bool = False) -> TrainResult:
    """Optimise ``task``; ``resume``: a checkpoint path, a run folder, or ``"auto"``
    (``OUT/last.pt`` if it exists); ``stop_at``: save and return once this step is reached
    (the schedule still runs to ``run.steps``)."""
    d = init_distributed(task.run.device)
    try:
        return _run(task, d, resume, stop_at, quiet)
    finally:
        if d.owns_group:
            dist.destroy_process_group()


def _run(task: Task, d, resume, stop_at, quiet) -> TrainResult:
    run = task.run
    set_threads(run.threads, d)
    device, rank = d.device, d.rank
    out = task.out_dir
    ck = None
    if resume == "auto":
        resume = out / "last.pt" if out is not None and (out / "last.pt").is_file() else None
    if resume is not None:
        ck = load_checkpoint(resume)
        if task_of(ck) != task.name:
            raise ValueError(f"checkpoint {ck['path']} is of task '{task_of(ck)}', not '{task.name}'")
        task.check_resume(ck)
    elif out is not None and (out / "last.pt").is_file():
        raise ValueError(f"{out} already holds a run (last.pt): resume it (--resume auto) "
                         "or choose another run.out")
    start = int(ck["step"]) if ck else 0
    end = run.steps if stop_at is None else min(run.steps, int(stop_at))
    if start >= run.steps:
        raise ValueError(f"the checkpoint is at step {start}; run.steps is {run.steps}: nothing to do "
                         "(raise run.steps to train further)")
    if ck and end <= start:
        raise ValueError(f"the checkpoint is at step {start}: stop at a later step")

    cuda = device.type == "cuda"
    amp = run.amp == "bf16" or (run.amp == "auto" and cuda and torch.cuda.is_bf16_supported())
    channels_last = run.channels_last == "on" or (run.channels_last == "auto" and cuda)
    ctx = Context(device=device, rank=rank, world=d.world, amp_dtype=torch.bfloat16 if amp else None,
                  channels_last=channels_last, quiet=quiet)

    task.prepare(ctx)  # data first: a bad folder fails before anything is written
    if rank == 0 and out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(task.config(), out / "config.json")

    # -- model, optimisers, schedule -----------------------------------------------
    seed_all(run.seed)  # the same initial weights on every process
    model = task.model = task.build(ctx, init=ck is None)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opts = Optimisers(task.param_groups(), task.optim, run.steps)
    best = {"loss": float("inf"), "step": None}
    acc = torch.zeros(1 + len(task.sums), dtype=torch.float64)  # steps, then the sums (this log interval)
    skipped, last_val = 0, None
    if ck:
        model.load_state_dict(ck["model"])
        opts.load_state_dict(ck)
        best, skipped, last_val = ck["best"], int(ck["skipped"]), ck.get("val")
    net = wrap(task.forward_module(ctx), d)
    if run.compile:
        net = torch.compile(net)
    acc = acc.to(device)

    # -- RNG: per process; restored exactly on resume ---------------------------------
    seed_all(run.seed + 1000003 * (rank + 1))
    if ck:
        states = ck["processes"]
        if len(states) == d.world:
            set_rng_state(states[rank]["rng"], device)
            acc = states[rank]["acc"].to(device=device, dtype=torch.float64)
        else:
            log(f"note: checkpoint written by {len(states)} processes, resumed by {d.world}: "
                "RNG states re-seeded (the run continues, but not bit-exactly)", rank, quiet)
            seed_all(run.seed + 1000003 * (rank + 1) + start)

    batches = task.batches(start, end, ctx)
    columns = {"train": ("step", *task.train_fields, *LOOP_FIELDS), "val": ("step", *task.val_fields, "seconds")}
    logs = Logs(out, columns, start, rank == 0, run.tensorboard, quiet)
    log(f"training {task.describe(ctx)}; {d.world} process(es) on {device.type}, "
        f"bf16 {'on' if amp else 'off'}, channels-last {'on' if channels_last else 'off'}, "
        f"compile {'on' if run.compile else 'off'}; steps {start}..{end} of {run.steps}"
        + (f" -> {out}" if out is not None else ""), rank, quiet)

    def checkpoint(step, is_best=False):
        states = all_gather({"rng": rng_state(device), "acc": acc.detach().cpu()}, d)
        if rank != 0 or out is None:
            return
        state = {"format": CHECKPOINT_FORMAT, "task": task.name, "step": step, "config": task.config(),
                 "arch": task.arch(), "model": model.state_dict(), **opts.state_dict(), "processes": states,
                 "best": best, "val": last_val, "skipped": skipped, "world_size": d.world,
                 "elapsed_s": elapsed0 + time.perf_counter() - t_start, "torch_version": str(torch.__version__)}
        save_checkpoint(out / "last.pt", state)
        if is_best:
            copy_checkpoint(out / "last.pt", out / "best.pt")

    from tqdm import tqdm

    bar = tqdm(total=run.steps, initial=start, disable=not (run.progress and rank == 0 and not quiet),
               dynamic_ncols=True, desc=task.label(), unit="step")

    def say(msg):
        if rank == 0 and not quiet:
            (bar.write(msg, file=sys.stderr) if not bar.disable else log(msg))

    t_start = t_log = time.perf_counter()
    elapsed0 = float(ck.get("elapsed_s", 0.0)) if ck else 0.0
    step, step_log, last_row, stopped = start, start, {}, False
    zero = torch.zeros((), device=device)
    one = torch.ones((), dtype=torch.float64, device=device)
    model.train()
    with _StopFlag() as stop:
        it = iter(batches)
        while step < end:
            losses = task.step(net, next(it), ctx)
            gnorm, ok = opts.step(losses["total"])
            skipped += not ok
            opts.schedule()
            step += 1
            acc += torch.stack([one, *(losses.get(k, zero).detach().double() for k in task.sums)])
            bar.update(1)

            stop_now = False
            if step % run.log_every == 0 or step == run.steps:  # (not at stop_at: exact resumes)
                red = all_reduce(torch.cat([acc, torch.tensor([float(stop.set)], dtype=torch.float64,
                                                              device=device)]), d)
                n = max(1.0, float(red[0]))
                now = time.perf_counter()
                means = {k: float(red[1 + i]) / n for i, k in enumerate(task.sums)}
                last_row = {"step": step, **task.train_row(means, step, ctx), "lr": opts.lr,
                            "grad_norm": float(gnorm), "skipped": skipped,
                            "it_per_s": (step - step_log) / max(1e-9, now - t_log),
                            "elapsed_s": elapsed0 + now - t_start}
                t_log, step_log = now, step
                acc.zero_()
                logs.row("train", last_row)
                bar.set_postfix(task.postfix(last_row), refresh=False)
                if float(red[-1]) > 0:  # a process got a signal: all stop at this step
                    stop_now = True
            if skipped > 100 and skipped * 2 > step - start:
                raise RuntimeError(f"more than half of the steps had non-finite gradients ({skipped}); "
                                   "lower optim.lr or check the data")

            is_val = task.has_validation and (step % run.val_every == 0 or step == run.steps)
            is_best = False
            if is_val:
                model.eval()
                t0 = time.perf_counter()
                last_val = {"step": step, **task.validate(ctx)}
                last_val["seconds"] = time.perf_counter() - t0
                model.train()
                check_in_sync(model, d, step)  # the processes must hold the same weights
                for row in last_val.get("per_quality", []):
                    row["step"] = step
                logs.row("val", last_val)
                for row in last_val.get("per_quality", []):
                    logs.row("val", row, tag=f"val/q{row['quality']}")
                if last_val["loss"] < best["loss"]:
                    best, is_best = {"loss": last_val["loss"], "step": step}, True
                say(f"step {step}: {task.describe_validation(last_val, is_best)}")
            if not d.active and stop.set:
                stop_now = True
            if is_val or step % run.ckpt_every == 0 or step == end or stop_now:
                checkpoint(step, is_best)
            if stop_now and step < end:
                stopped = True
                say(f"stopped at step {step}" + (f"; resume with --resume {out / 'last.pt'}" if out else ""))
                break
    bar.close()
    logs.close()
    if d.active:
        dist.barrier()
    return TrainResult(step=step, out=out, train=last_row, val=last_val, best=best, model=model,
                       stopped=stopped or step < run.steps, interrupted=stopped, task=task)
