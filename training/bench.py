"""Training speed: iterations/s of the training step, plain fp32 against the fast variants, in one run.

    python -m codec.training.bench                      # mean-scale, batch 16, 256x256 crops, all variants
    python -m codec.training.bench --device cpu --N 64 --M 96 --batch 4 --crop 128 --variants fp32,channels-last,bf16
    python -m codec.training.bench --model wavelet-audio --crop 16000 --variants fp32,compile   # audio

Every variant runs the loop's own step (the model's task, :func:`codec.training.tasks.task_for`:
image-rd or audio-rd; its ``step``: forward, rate-distortion + auxiliary loss; then
:meth:`codec.training.optim.Optimisers.step`: backward, clipping, both Adam steps) on the
same synthetic 8-bit batch held on the device (so the loader is not measured), from the
same initial weights, after warm-up steps (compilation happens there).  The timed steps run
in interleaved rounds (fp32, variant, ..., fp32, variant, ...) and the median round
counts, so a machine shared with other work slows every variant alike.  A variant that
fails (e.g. ``torch.compile`` without a working compiler) is reported, not hidden.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

VARIANTS = {
    "fp32": dict(amp=False, channels_last=False, compile=False),
    "channels-last": dict(amp=False, channels_last=True, compile=False),
    "bf16": dict(amp=True, channels_last=False, compile=False),
    "bf16+channels-last": dict(amp=True, channels_last=True, compile=False),
    "compile": dict(amp=False, channels_last=False, compile=True),
    "bf16+channels-last+compile": dict(amp=True, channels_last=True, compile=True),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Variant:
    """One variant's model, optimisers and step, from the same seed as every other."""

    def __init__(self, name, model_name, arch_kwargs, batch, crop, device, seed):
        from codec.training.config import Config, DataConfig, LossConfig, ModelConfig, OptimConfig, RunConfig
        from codec.training.optim import Optimisers
        from codec.models.registry import get_spec
        from codec.training.tasks import Context, task_for

        v = VARIANTS[name]
        self.name, self.device, self.compiled = name, device, v["compile"]
        audio = get_spec(model_name).modality == "audio"
        cfg = Config(model=ModelConfig(model_name, 4, dict(arch_kwargs or {})), loss=LossConfig("mel" if audio else "mse"),
                     data=DataConfig(crop=crop, batch_size=batch), optim=OptimConfig(schedule="constant"),
                     run=RunConfig(steps=10 ** 9))
        self.task = task_for(cfg)
        self.ctx = Context(device=device, amp_dtype=torch.bfloat16 if v["amp"] else None,
                           channels_last=v["channels_last"])
        torch.manual_seed(seed)
        model = self.task.build(self.ctx, init=False)
        self.kwargs = self.task.arch_kwargs
        model.to(device).train()
        if v["channels_last"]:
            model.to(memory_format=torch.channels_last)
        g = torch.Generator().manual_seed(seed)
        if audio:  # (excerpts [B, 1, crop], their files' Nyquist [B]) as the audio task's batches are
            # (smoothed noise, about -20 dBFS, from 48 kHz files)
            x = torch.nn.functional.avg_pool1d(torch.randn(batch, 1, crop + 3, generator=g), 4, stride=1)
            self.x = ((0.2 * x).clamp(-1, 1).to(device), torch.full((batch,), 24_000.0))
        else:
            x = torch.nn.functional.avg_pool2d(torch.rand(batch, 3, crop + 3, crop + 3, generator=g), 4, stride=1)
            self.x = torch.round(x * 255).to(torch.uint8).to(device)  # what the loader gives
        self.opts = Optimisers(self.task.param_groups(), cfg.optim, cfg.run.steps)
        net = self.task.forward_module(self.ctx)
        self.net = torch.compile(net) if v["compile"] else net

    def steps(self, n):
        for _ in range(n):
            losses = self.task.step(self.net, self.x, self.ctx)
            self.opts.step(losses["total"])
            self.opts.schedule()
        _sync(self.device)
        return float(losses["loss"].detach())


def _error(exc) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0][:200] if msg else ''}"


def bench(variants=None, model_name="mean-scale", arch_kwargs=None, batch=16, crop=256, steps=20, warmup=3,
          device="cpu", seed=0, rounds=3) -> list[dict]:
    """Time ``steps`` training steps of every variant, in ``rounds`` interleaved rounds (so that a
    busy machine slows all variants alike); it/s is the median over the rounds."""
    names = list(variants or VARIANTS)
    if "fp32" not in names:  # the baseline always runs, in the same process
        names.insert(0, "fp32")
    for name in names:
        if name not in VARIANTS:
            raise ValueError(f"unknown variant '{name}' (known: {', '.join(VARIANTS)})")
    device = torch.device(device)
    rows, live = {}, {}
    for name in names:
        r = rows[name] = {"variant": name, "model": model_name, "batch": batch, "crop": crop, "device": str(device)}
        try:
            v = _Variant(name, model_name, arch_kwargs, batch, crop, device, seed)
            r["arch_kwargs"] = v.kwargs
            t0 = time.perf_counter()
            v.steps(warmup)
            r["warmup_s"] = time.perf_counter() - t0
            live[name] = v
        except Exception as exc:  # report, do not hide
            r.update(ok=False, error=_error(exc))
    per_round = max(1, steps // rounds)
    times = {n: [] for n in live}
    for _ in range(rounds):
        for name, v in list(live.items()):
            try:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                t0 = time.perf_counter()
                rows[name]["loss"] = v.steps(per_round)
                times[name].append(per_round / (time.perf_counter() - t0))
                if device.type == "cuda":
                    rows[name]["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
            except Exception as exc:
                rows[name].update(ok=False, error=_error(exc))
                del live[name]
    for name in live:
        r = rows[name]
        r["it_per_s"] = sorted(times[name])[len(times[name]) // 2]
        r["images_per_s"] = r["it_per_s"] * batch
        r["ok"] = bool(torch.isfinite(torch.tensor(r["loss"])))
    if any(v.compiled for v in live.values()):
        torch._dynamo.reset()
    out = [rows[n] for n in names]
    base = rows.get("fp32")
    for r in out:
        if base and "it_per_s" in base and "it_per_s" in r:
            r["speedup"] = r["it_per_s"] / base["it_per_s"]
    return out


def format_rows(rows) -> str:
    lines = [f"{'variant':28s} {'it/s':>8s} {'items/s':>8s} {'vs fp32':>8s} {'loss':>9s} {'warm-up s':>9s}  note"]
    for r in rows:
        if "it_per_s" in r:
            lines.append(f"{r['variant']:28s} {r['it_per_s']:8.3f} {r['images_per_s']:8.2f} "
                         f"{r.get('speedup', float('nan')):7.2f}x {r['loss']:9.4g} {r['warmup_s']:9.1f}  "
                         + (f"peak {r['peak_mem_gb']:.2f} GiB" if "peak_mem_gb" in r else "")
                         + ("" if r["ok"] else " NON-FINITE LOSS"))
        else:
            lines.append(f"{r['variant']:28s} {'-':>8s} {'-':>8s} {'-':>8s} {'-':>9s} {'-':>9s}  failed: {r['error']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    import warnings

    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    p = argparse.ArgumentParser(prog="python -m codec.training.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mean-scale")
    p.add_argument("--N", type=int, help="override the model's N")
    p.add_argument("--M", type=int, help="override the model's M")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=None,
                   help="crop side (images, default 256) or excerpt length in samples (audio, default 16000)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per variant (split into --rounds)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (the median is reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ak = {k: v for k, v in (("N", args.N), ("M", args.M)) if v}
    if args.crop is None:
        from codec.models.registry import get_spec

        args.crop = 16000 if get_spec(args.model).modality == "audio" else 256
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"training-step benchmark: {args.model} {ak or ''} batch {args.batch}, crop {args.crop}, "
          f"{args.steps} timed steps in {args.rounds} interleaved rounds after {args.warmup} warm-up; {name}; "
          f"torch {torch.__version__}", flush=True)
    try:
        rows = bench([v.strip() for v in args.variants.split(",") if v.strip()], model_name=args.model,
                     arch_kwargs=ak, batch=args.batch, crop=args.crop, steps=args.steps, warmup=args.warmup,
                     device=args.device, rounds=args.rounds)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
