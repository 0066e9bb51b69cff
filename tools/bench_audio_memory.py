"""Peak memory of chunked audio coding: ``codec encode`` / ``codec decode`` of long files.

Writes synthetic stereo 44.1 kHz WAV files of each ``--minutes`` length (a chord with
vibrato, noise and silence), then runs ``codec encode FILE -o S.nmc`` and ``codec decode
S.nmc -o OUT.wav`` each in a fresh process, and prints each process's peak resident
memory (``VmHWM``) and its ratio to the shortest file's, measured in the same run.
Chunked coding should give ratios near 1 (memory does not grow with the length); the
in-memory API (``codec.decode(data)``, which returns the whole signal) is measured
beside it as the reference that does grow.

    python -m codec.tools.bench_audio_memory                 # 1 and 10 minutes
    python -m codec.tools.bench_audio_memory --minutes 1 10 60
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def _peak_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def _child(argv) -> int:
    """Run one command in this process and print its peak memory (kB) last."""
    import warnings

    warnings.simplefilter("ignore")
    if argv[0] == "api-decode":
        import codec

        with open(argv[1], "rb") as f:
            codec.decode(f.read())
        rc = 0
    else:
        from codec.cli import main

        rc = main(argv)
    print(f"PEAK_KB {_peak_kb()}")
    return rc


def write_test_file(path, minutes: float, rate: int = 44100) -> None:
    """A stereo 16-bit WAV of ``minutes``, written block by block."""
    from codec.media.audio import Writer

    n = int(minutes * 60 * rate)
    g = np.random.default_rng(0)
    block = 10 * rate
    with Writer(path, rate, 2, force=True) as w:
        for s in range(0, n, block):
            t = (np.arange(s, min(n, s + block)) / rate)[None]
            tone = sum(np.sin(2 * np.pi * f * t + 2 * np.sin(2 * np.pi * 4 * t)) for f in (196, 247, 294)) / 8
            gate = (np.sin(2 * np.pi * t / 7) > -0.8)
            x = (tone * gate + 0.01 * g.standard_normal((2, t.shape[1]))).astype(np.float32)
            w.write(np.clip(x * [[1.0], [0.8]], -1, 1))


def _run(args) -> tuple[int, float]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "codec.tools.bench_audio_memory", "--child", *map(str, args)],
                       capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed:\n{r.stderr[-2000:]}")
    peak = [ln for ln in r.stdout.splitlines() if ln.startswith("PEAK_KB")]
    return int(peak[-1].split()[1]), dt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    p.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return _child(a.child)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for minutes in sorted(a.minutes):
            src, s, out = (os.path.join(d, f"{minutes:g}min.{e}") for e in ("wav", "nmc", "out.wav"))
            write_test_file(src, minutes)
            enc, t_enc = _run(["encode", src, "-o", s, "-q"])
            dec, t_dec = _run(["decode", s, "-o", out, "-q"])
            api, t_api = _run(["api-decode", s])
            rows.append((minutes, os.path.getsize(src), os.path.getsize(s), enc, t_enc, dec, t_dec, api, t_api))
            for f in (src, s, out):
                os.unlink(f)
    base = rows[0]
    print(f"{'minutes':>8} {'wav MB':>8} {'stream kB':>10} {'encode MB':>10} {'x':>6} {'s':>6} "
          f"{'decode MB':>10} {'x':>6} {'s':>6} {'api decode MB':>14} {'x':>6}")
    for m, wav, st, enc, te, dec, td, api, ta in rows:
        print(f"{m:>8g} {wav / 1e6:>8.1f} {st / 1e3:>10.1f} {enc / 1024:>10.0f} {enc / base[3]:>6.2f} {te:>6.1f} "
              f"{dec / 1024:>10.0f} {dec / base[5]:>6.2f} {td:>6.1f} {api / 1024:>14.0f} {api / base[7]:>6.2f}")
    print("peak resident memory (VmHWM) of each process; x: ratio to the shortest file's, same run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
