"""What the context model alone saves: the same transforms coded with and without it.

    python -m codec.tools.context_gain IMAGES_OR_FOLDER... [--model context-vr] [--qualities 1,2,...,8]

A context model's (``context-vr``'s) scale and mean are the hyperprior's plus a correction
from the channel and checkerboard context networks.  *Without* the context, the
correction is zero (the aggregation networks' last layers zeroed, then frozen again): the
same analysis, synthesis, hyperprior and tables, the same single stream, so what differs
is only what the context model predicts.  Every picture is coded for real at every
quality both ways; the rate is from the bytes.  Prints bpp and PSNR per quality, the
BD-rate (PCHIP, PSNR-RGB) of "with" against "without" and the bits saved at each
quality (the two reconstructions differ a little: the means, and so the rounded
latents, are not the same).  Bytes are the model's payload (header and sections): the
container's envelope, the same few dozen bytes for both, is left out, so bpp here is a
little below ``codec eval``'s.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

from codec.entropy import CodecError
from codec.media import image
from codec.media.image_metrics import psnr_rgb
from codec.models import registry
from codec.models.context import ContextLatentCodec
from codec.tools.bdrate import bd_rate
from codec.tools.registry import get_media

def without_context(model):
    """A copy of ``model`` whose context corrections are zero (then frozen again)."""
    m = copy.deepcopy(model)
    inner = m.latent_codec.inner
    with torch.no_grad():
        for agg in inner.aggregate:
            agg[-1].weight.zero_()
            agg[-1].bias.zero_()
    m.freeze()
    return m


@torch.no_grad()
def measure(model, pictures, qualities) -> list[dict]:
    """Per quality: bpp and mean PSNR-RGB with and without the context (sums over ``pictures``)."""
    if not isinstance(getattr(model.latent_codec, "inner", None), ContextLatentCodec):
        raise ValueError(f"model '{model.name}' has no context model")
    plain = without_context(model)
    rows = []
    for q in qualities:
        row = {"quality": q}
        for key, m in (("with", model), ("without", plain)):
            nbytes, px, psnrs = 0, 0, []
            for pic in pictures:
                p = m.compress(pic.tensor("cpu"), q, effort="fast")  # (the same latent both ways)
                rec = image.model_output(m.decompress(p, q), pic.info).rgb
                nbytes += p.nbytes
                px += pic.info.pixels
                psnrs.append(psnr_rgb(pic.rgb, rec))
            row[key] = {"bytes": nbytes, "bpp": 8 * nbytes / px, "psnr": float(np.mean(psnrs))}
        rows.append(row)
    return rows


def main(argv=None) -> int:
    from codec import api

    ap = argparse.ArgumentParser(prog="python -m codec.tools.context_gain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+", help="image files or folders of them")
    ap.add_argument("--model", default="context-vr")
    ap.add_argument("--qualities", default="1,2,3,4,5,6,7,8")
    ap.add_argument("--limit", type=int, default=None, help="only the first N pictures")
    args = ap.parse_args(argv)
    try:
        m = api.load_model(args.model, None, device="cpu")
        spec = registry.get_spec(m.name)
        qualities = [spec.check_quality(v) for v in args.qualities.split(",")]
        medium = get_media("image")
        files = [f for p in args.images for f in medium.list_items(Path(p))][: args.limit]
        pictures = [image.read(f) for f in files]
        rows = measure(m, pictures, qualities)
    except (CodecError, ValueError, OSError) as exc:
        print(f"codec: error: {exc}", file=sys.stderr)
        return 2
    print(f"{m.name}{'' if m.trained else ' [UNTRAINED]'}, {len(pictures)} pictures: the same transforms "
          "coded with and without the context model")
    print(f"{'quality':>7}  {'with bpp':>9} {'PSNR':>7}  {'without bpp':>11} {'PSNR':>7}  {'bytes saved':>11}")
    for r in rows:
        w, o = r["with"], r["without"]
        print(f"{r['quality']:>7g}  {w['bpp']:>9.4f} {w['psnr']:>7.3f}  {o['bpp']:>11.4f} {o['psnr']:>7.3f}  "
              f"{100 * (1 - w['bytes'] / o['bytes']):>10.2f}%")
    if len(rows) >= 2:
        try:
            bd = bd_rate([r["without"]["bpp"] for r in rows], [r["without"]["psnr"] for r in rows],
                         [r["with"]["bpp"] for r in rows], [r["with"]["psnr"] for r in rows], method="pchip")
            print(f"BD-rate (PCHIP, PSNR-RGB) with the context against without: {bd.value:+.2f}%")
        except ValueError as exc:  # (curves that are not rate-distortion curves: an untrained model)
            print(f"no BD-rate: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
