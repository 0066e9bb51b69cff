"""Codebook utilisation of a VQ model on a set of pictures, and what its prior saves.

    python -m codec.tools.vq_usage ../shared/data/kodak [--model vq-f16]

For each quality (codebook size): the share of the codebook's entries that some token of
the pictures uses, the tokens' perplexity (exp of their empirical entropy), and the coded
size of the token sections (the prior's bytes, from real coding) against fixed-length
indexes (``log2 K`` bits a token) and against the same tokens coded without the spatial
context (every token with the prior's table of the grid's first phase: real coding too),
which is what the context earns alone.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def usage(model, pictures) -> list:
    """One row per quality: ``quality``, ``size``, ``tokens``, ``utilisation``, ``perplexity``,
    ``coded_bytes`` (the token sections), ``no_context_bytes`` (the tokens coded with the
    first phase's table alone), ``fixed_bytes`` (``log2 K`` bits a token)."""
    import numpy as np
    import torch

    from codec import entropy
    from codec.models.vq import SIZES

    rows = []
    for q, k in enumerate(SIZES, start=1):
        counts = torch.zeros(k, dtype=torch.long)
        coded = plain = 0
        for pic in pictures:
            x = pic.tensor("cpu")
            tok = model.tokens(x, q).reshape(-1)
            counts += torch.bincount(tok, minlength=k)
            coded += len(model.compress(x, q).sections[0].data)
            plain += len(entropy.encode_sequential(tok.numpy(), np.zeros(tok.numel(), dtype=np.int64),
                                                   model.tables[q - 1]))
        n = int(counts.sum())
        p = counts[counts > 0].double() / n
        rows.append({"quality": q, "size": k, "tokens": n, "utilisation": float((counts > 0).double().mean()),
                     "perplexity": float(torch.exp(-(p * p.log()).sum())), "coded_bytes": coded,
                     "no_context_bytes": plain,
                     "fixed_bytes": n * math.log2(k) / 8})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m codec.tools.vq_usage", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="a folder of pictures")
    p.add_argument("--model", default="vq-f16")
    args = p.parse_args(argv)
    import codec
    from codec.errors import CodecError
    from codec.media import image

    try:
        files = sorted(f for f in Path(args.folder).iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise CodecError(f"no pictures in {args.folder}")
        model = codec.load_model(args.model, device="cpu")
        if not hasattr(model, "tokens"):
            raise CodecError(f"model '{args.model}' is not a VQ model")
        rows = usage(model, [image.read(f) for f in files])
    except (CodecError, OSError) as exc:
        print(f"vq_usage: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.model} on {len(files)} pictures ({args.folder})")
    print("quality  codebook  tokens  used    perplexity  coded bytes  fixed-length bytes  saved   "
          "no-context bytes  context saves")
    for r in rows:
        print(f"{r['quality']:>7}  {r['size']:>8}  {r['tokens']:>6}  {100 * r['utilisation']:5.1f}%  "
              f"{r['perplexity']:>10.1f}  {r['coded_bytes']:>11}  {r['fixed_bytes']:>18.0f}  "
              f"{100 * (1 - r['coded_bytes'] / r['fixed_bytes']):5.1f}%  {r['no_context_bytes']:>16}  "
              f"{100 * (1 - r['coded_bytes'] / r['no_context_bytes']):12.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
