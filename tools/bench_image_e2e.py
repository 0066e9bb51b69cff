"""Benchmark: time per image of ``codec.encode`` / ``codec.decode``, with the entropy stage
split out, for the CPU coder (its compiled loops where the install built them, else
numpy) and, on CUDA, the GPU (Triton) coder.

    python -m codec.tools.bench_image_e2e [IMAGE ...] [--model NAME[@EFFORT] ...] [--quality Q] [--repeat 5]

Default image: the bundled Kodak ``kodim23`` (768x512).  For each device present (the
CPU; CUDA when there is one) and each coder that can serve it (the CPU coder everywhere;
``auto`` on CUDA, which is the GPU coder once it has passed its self-check), it times
the whole public call (image in, bytes out and back) and the time spent inside
``codec.entropy.encode``/``decode`` (the entropy stage: symbols and indexes in, bytes
out; with ``torch.cuda.synchronize`` around it on CUDA).  Best of ``--repeat`` after a
warm-up.  The ratio column divides the CPU coder's time on the same device, measured
in the same run, by the row's time (> 1: faster).  On one device every coder must
write the same streams; the run fails if one does not.  With several ``--model`` s, the
last column divides the first model's whole encode and decode times (same image, device
and coder, same run) by each row's: a new model's cost against the default's.
``NAME@EFFORT`` encodes at that ``effort`` (``context-vr@fast``: no latent refinement;
without it, the model's default effort).  The entropy stage includes sequential streams
(``encode_sequential``, ``SequentialDecoder``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import torch


class _StageTimer:
    """Accumulates the time spent in ``codec.entropy.encode``/``decode`` while active, and
    notes which of the wrapped functions ran (``used``)."""

    def __init__(self, cuda: bool):
        self.cuda, self.t, self.used = cuda, 0.0, set()

    def wrap(self, fn, name: str = "lanes"):
        def timed(*a, **k):
            self.used.add(name)
            if self.cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = fn(*a, **k)
            if self.cuda:
                torch.cuda.synchronize()
            self.t += time.perf_counter() - t0
            return out

        return timed


def _time(fn, repeat, timer, cuda):
    best, best_stage, out = float("inf"), float("inf"), None
    for _ in range(repeat + 1):  # the first call warms up (kernels, caches)
        timer.t = 0.0
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter() - t0
        if t < best:
            best, best_stage = t, timer.t
    return best, best_stage, out


def run(images, model=None, quality=None, repeat: int = 5) -> list[dict]:
    """Rows of timings; ``model``: a name (``NAME@EFFORT``: at that effort), a list of them or
    None (the default model)."""
    import codec
    from codec import entropy
    from codec.entropy import coder, rans, sequential

    models = model if isinstance(model, (list, tuple)) else [model]

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows, streams = [], {}
    cuda_any = torch.cuda.is_available()
    timer = _StageTimer(cuda_any)
    enc0, dec0 = entropy.encode, entropy.decode
    seq0, seqdec0 = entropy.encode_sequential, sequential.SequentialDecoder.decode
    entropy.encode, entropy.decode = timer.wrap(enc0), timer.wrap(dec0)
    entropy.encode_sequential = timer.wrap(seq0, "sequential")
    sequential.SequentialDecoder.decode = timer.wrap(seqdec0, "sequential")
    old_env = os.environ.get(coder.BACKEND_ENV)
    try:
        for name, img in images:
            h, w = img.shape[:2]
            cpu = "native" if rans.native_available() else "numpy"  # the CPU coder a user gets
            runs = [(d, c, m) for d in devices for c in [cpu] + (["auto"] if d == "cuda" else []) for m in models]
            for dev, choice, label in runs:
                model, _, effort = (label or "").partition("@")
                model, extra = model or None, ({"effort": effort} if effort else {})
                os.environ[coder.BACKEND_ENV] = choice
                codec.load_model(model, quality, dev)  # load outside the timing
                timer.used.clear()
                t_enc, s_enc, data = _time(lambda: codec.encode(img, model=model, quality=quality, device=dev, **extra),
                                           repeat, timer, cuda_any)
                t_dec, s_dec, _ = _time(lambda: codec.decode(data, device=dev), repeat, timer, cuda_any)
                used = choice
                if timer.used == {"sequential"}:  # (sequential streams: always the CPU's loop)
                    used = "sequential" if choice != "auto" else "sequential (auto)"
                elif choice == "auto":
                    used = "triton" if coder._gpu_checked.get(str(torch.device(dev))) else "CPU (fallback)"
                # (streams may differ between devices: the float analysis transform rounds
                # differently; on one device every coder must write the same bytes)
                if (name, dev, label) in streams and streams[name, dev, label] != data:
                    raise RuntimeError(f"{name}: the {used} coder on {dev} wrote other bytes than the CPU coder")
                streams[name, dev, label] = data
                rows.append({"image": name, "model": codec.load_model(model, quality, dev).name
                             + (f"@{effort}" if effort else ""),
                             "pixels": h * w, "device": dev, "backend": choice, "coder": used, "bytes": len(data),
                             "encode_s": t_enc, "encode_entropy_s": s_enc, "decode_s": t_dec,
                             "decode_entropy_s": s_dec})
    finally:
        entropy.encode, entropy.decode = enc0, dec0
        entropy.encode_sequential, sequential.SequentialDecoder.decode = seq0, seqdec0
        if old_env is None:
            os.environ.pop(coder.BACKEND_ENV, None)
        else:
            os.environ[coder.BACKEND_ENV] = old_env
    return rows


def _print(rows):
    ref = {(r["image"], r["device"], r["model"]): r for r in rows if r["coder"] in ("native", "numpy", "sequential")}
    first = {}
    for r in rows:
        first.setdefault((r["image"], r["device"], r["backend"]), r)
    several = len({r["model"] for r in rows}) > 1
    print(f"{'image':<14} {'model':<18} {'device':<6} {'coder':<10} {'bytes':>8}  {'encode ms':>10} {'(entropy)':>10} "
          f"{'decode ms':>10} {'(entropy)':>10}  {'entropy speed-up enc/dec':>24}"
          + (f"  {'speed vs first model enc/dec':>28}" if several else ""))
    for r in rows:
        b = ref[(r["image"], r["device"], r["model"])]
        ratio = (f"{b['encode_entropy_s'] / r['encode_entropy_s']:.2f}x / "
                 f"{b['decode_entropy_s'] / r['decode_entropy_s']:.2f}x")
        f = first[(r["image"], r["device"], r["backend"])]
        vs = f"{f['encode_s'] / r['encode_s']:.2f}x / {f['decode_s'] / r['decode_s']:.2f}x"
        print(f"{r['image']:<14} {r['model']:<18} {r['device']:<6} {r['coder']:<10} {r['bytes']:>8}  "
              f"{1e3 * r['encode_s']:>10.1f} {1e3 * r['encode_entropy_s']:>10.1f} {1e3 * r['decode_s']:>10.1f} "
              f"{1e3 * r['decode_entropy_s']:>10.1f}  {ratio:>24}" + (f"  {vs:>28}" if several else ""))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m codec.tools.bench_image_e2e", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", help="image files (default: the bundled kodim23)")
    p.add_argument("--model", action="append", default=None,
                   help="model name, repeatable: times against the first one's (default: the default model); "
                        "NAME@EFFORT: encoded at that --effort (e.g. context-vr@fast)")
    p.add_argument("--quality", type=float, default=None, help="quality (default: the model's default)")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions after a warm-up (best is kept)")
    args = p.parse_args(argv)
    from importlib import resources

    from codec.media import image

    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    if args.images:
        images = [(os.path.basename(f), image.read(f).rgb) for f in args.images]
    else:
        with resources.as_file(resources.files("codec").joinpath("assets", "kodim23.png")) as f:
            images = [("kodim23.png", image.read(f).rgb)]
    if not torch.cuda.is_available():
        print("note: no CUDA device: only the CPU coder on the CPU is timed", file=sys.stderr)
    _print(run(images, args.model or [None], args.quality, max(1, args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
