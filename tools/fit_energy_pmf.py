"""Fit the probabilities of an audio model's band-energy correction indexes (scheme 1's
``PMF``, scheme 2's counts per context ``COUNTS2`` in :mod:`codec.models.audio_energy`, from
which the stored coding table is built) on training files, and print them as a Python tuple
to paste there.

For every ``--every``-th audio file under the folders (sorted, the config's
``data.holdout`` files left out), its first ``--seconds`` at the model's rate are coded at
each ``--qualities`` with the shipped weights (or ``--weights``) and the scheme's
correction (the groups an encoder codes for the file's own rate); the indexes' counts plus one,
normalised, are the probabilities (scheme 2: the counts in each context, made into rows by
:func:`~codec.models.audio_energy.context_pmf`).  Also prints what they cost: bits an index
and the share clamped at either end.

    python -m codec.tools.fit_energy_pmf ../shared/data/audio --scheme 2 \\
        --holdout training/configs/wavelet-audio-cpu-7.json
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m codec.tools.fit_energy_pmf", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="folders of training audio")
    ap.add_argument("--scheme", type=int, default=2, help="band-energy scheme (default 2)")
    ap.add_argument("--holdout", help="a training config whose data.holdout files are left out")
    ap.add_argument("--every", type=int, default=6, help="take every N-th file (default 6)")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of each file (default 10)")
    ap.add_argument("--qualities", default="2,3.5,5,6.5,8", help="qualities to code at (default 2,3.5,5,6.5,8)")
    ap.add_argument("--weights", help="a weights file (default: the shipped wavelet-audio weights)")
    args = ap.parse_args(argv)

    import torch

    from codec.media import AUDIO_EXTENSIONS
    from codec.media import audio as A
    from codec.models import registry
    from codec.models.audio import Chunker, gray_rank
    from codec.models.audio_energy import CONTEXTS, SCHEMES, BandEnergy, context_pmf, contexts

    model = registry.load_model("wavelet-audio", path=args.weights)
    energy = model.energy = BandEnergy([gray_rank(c) for c in range(model.packet.bands)], args.scheme)
    R = SCHEMES[args.scheme][0]
    held = set()
    if args.holdout:
        held = {Path(p).resolve() for p in json.loads(Path(args.holdout).read_text())["data"].get("holdout") or []}
    files = sorted(p for d in args.folders for p in Path(d).rglob("*")
                   if p.suffix.lower() in AUDIO_EXTENSIONS and p.resolve() not in held)[::args.every]
    qualities = [float(q) for q in args.qualities.split(",")]
    rows = 1 if args.scheme == 1 else CONTEXTS
    counts = np.zeros((rows, 2 * R + 1), np.int64)
    for i, path in enumerate(files):
        src = A.read(path)
        coded = model.energy_groups(src.sample_rate)  # the groups an encoder codes for it
        audio = A.resample(src, model.sample_rate)
        x = torch.from_numpy(np.ascontiguousarray(audio.samples[:, :int(args.seconds * model.sample_rate)]))
        chunker = Chunker(model, x.shape[0])
        segs = chunker.push(x) + chunker.finish()
        for q in qualities:
            for _, seg in segs:
                _, c, c_hat = model.code_chunk(seg, q)
                r = energy.indexes(c, c_hat, model.audible_bands(src.sample_rate), model.energy_cell(q))[:, :coded]
                ctx = contexts(r).flatten().numpy() if rows > 1 else np.zeros(r.numel(), np.int64)
                np.add.at(counts, (ctx, (r.flatten() + R).numpy()), 1)
        print(f"[{i + 1}/{len(files)}] {path.name}: {int(counts.sum())} indexes so far", flush=True)
    n = int(counts.sum())
    if rows == 1:
        p = (counts[0] + 1) / (counts[0] + 1).sum()
        bits = -float((counts[0] * np.log2(p)).sum() / n)
    else:
        p = context_pmf(counts)
        bits = -float((counts * np.log2(p)).sum() / n)
        pooled = (counts.sum(0) + 1) / (counts.sum(0) + 1).sum()
        print(f"one row for every context: {-float((counts.sum(0) * np.log2(pooled)).sum() / n):.2f} bits an index")
    total = counts.sum(0)
    print(f"scheme {args.scheme}: {n} indexes from {len(files)} files at qualities {args.qualities}, "
          f"{bits:.2f} bits an index; clamped at -{R}: {total[0] / n:.1%}, at +{R}: {total[-1] / n:.1%}")
    if rows == 1:
        print("PMF = (" + ", ".join(f"{v:.4f}".rstrip("0") if v >= 1e-4 else "0.0001" for v in p) + ")")
    else:
        print("COUNTS2 = (\n" + "".join("    (" + ", ".join(str(int(v)) for v in row) + "),\n" for row in counts) + ")")
    assert math.isclose(float(np.sum(p)), float(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
