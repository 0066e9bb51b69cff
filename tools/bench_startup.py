"""Benchmark: wall time of whole ``codec`` commands, against the floor they stand on.

    python -m codec.tools.bench_startup [--repeat 5] [--folder DIR] [--codec 'CMD ...']

Runs, each ``--repeat`` times in fresh processes, and prints the median and best wall
times:

- ``codec encode PICTURE -o x.nmc --effort fast`` (the default model; ``--effort fast``
  so that the time is the command's own start-up and coding, not latent refinement),
- ``codec decode x.nmc -o x.png``,
- the reference measured in the same run: ``python -c "import torch"``, the floor of
  every command that runs a network (ratio = command / floor),
- with ``--folder``: ``codec encode DIR/*.png -o OUT/ --effort fast`` once per repeat,
  printed as pictures per second (the model is loaded once for all of them).

``PICTURE`` is the shipped sample (``codec/assets/kodim23.png``) unless ``--picture``
names another.  ``--codec`` replaces the command that runs ``codec`` (default: this
Python's ``-m codec.cli``), e.g. to time another install the same way.
"""
from __future__ import annotations

import argparse
import glob
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _time(cmd: list[str], env=None) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"{shlex.join(cmd)} failed ({out.returncode}):\n{out.stderr.strip()}")
    return dt


def _runs(cmd, repeat, env=None) -> list[float]:
    return [_time(cmd, env) for _ in range(repeat)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="runs of each command (default 5)")
    ap.add_argument("--picture", default=str(Path(__file__).resolve().parents[1] / "codec" / "assets" / "kodim23.png"),
                    help="the picture to encode (default: the shipped sample)")
    ap.add_argument("--folder", help="also encode every PNG of this folder in one command (pictures/s)")
    ap.add_argument("--codec", help="the command that runs codec (default: this Python's -m codec.cli)")
    args = ap.parse_args(argv)
    codec = shlex.split(args.codec) if args.codec else [sys.executable, "-m", "codec.cli"]
    env = dict(os.environ, TQDM_DISABLE="1")
    with tempfile.TemporaryDirectory() as tmp:
        stream, png = os.path.join(tmp, "x.nmc"), os.path.join(tmp, "x.png")
        rows = [
            ("import torch (floor)", _runs([sys.executable, "-c", "import torch"], args.repeat, env)),
            ("codec encode", _runs([*codec, "encode", args.picture, "-o", stream, "--effort", "fast", "--force"],
                                   args.repeat, env)),
            ("codec decode", _runs([*codec, "decode", stream, "-o", png, "--force"], args.repeat, env)),
        ]
        print(f"{len(os.sched_getaffinity(0))} cores, {args.repeat} runs each, picture {args.picture}")
        floor = statistics.median(rows[0][1])
        for name, t in rows:
            med = statistics.median(t)
            print(f"  {name:22s} median {med:5.2f} s   best {min(t):5.2f} s   ratio to the floor {med / floor:4.2f}")
        if args.folder:
            pics = sorted(glob.glob(os.path.join(args.folder, "*.png")))
            if not pics:
                raise SystemExit(f"no PNG files in {args.folder}")
            out = os.path.join(tmp, "out")
            os.makedirs(out)
            t = _runs([*codec, "encode", *pics, "-o", out + os.sep, "--effort", "fast", "--force"], args.repeat, env)
            med = statistics.median(t)
            print(f"  codec encode {len(pics)} pictures: median {med:5.2f} s, {len(pics) / med:.2f} pictures/s "
                  f"(best {len(pics) / min(t):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
