"""What the exact integer index path costs in rate, measured in bytes.

    python -m codec.tools.index_path_cost IMAGES... [--model mean-scale] [--quality 4]

For each image, codes the latents twice with the same entropy coder and tables:

- **integer**: the codec's real path (frozen integer hyper-synthesis -> scale levels
  and exact means), i.e. the bytes ``codec encode`` writes;
- **float**: CompressAI's path (float32 hyper-synthesis -> scale levels by comparing
  float scales with the scale table, float means), which is *not* decodable across
  devices.  For a context model (``context-vr``) the float path runs the float context
  networks too, on the float path's own decoded latents.

Prints bytes of both, the rate difference in percent and the PSNR of both
reconstructions (the means differ by < 2**-9).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from codec import entropy
from codec.media import image
from codec.media.image_metrics import psnr_rgb
from codec.models.context import ContextLatentCodec


@torch.no_grad()
def measure(model, pic: image.Picture, quality=None) -> dict:
    """Bytes and PSNR of the integer (real) and the float (CompressAI) path for one
    picture; ``quality``: for a variable-rate model (its gains scale the latent around
    the same hyperprior latent codec), None for a fixed-rate one."""
    lc = model.latent_codec
    info = pic.info
    x = pic.tensor("cpu")
    # the integer path: the model's own bitstream, decoded as codec decode does
    payload = model.compress(x, quality, effort="fast")  # (the latent g_a gives, as the float path codes)
    rec_int = image.model_output(model.decompress(payload, quality), info).rgb
    sections = {s.kind: s.data for s in payload.sections}
    # float path, same z; the padding the model applies itself in compress
    y = model.g_a(model.pad(x))
    gain = inv_gain = 1.0
    if model.variable_rate:
        gain, inv_gain = lc.gains(quality, 1, y.device)
        lc = lc.inner
        y = y * gain
    if isinstance(lc, ContextLatentCodec):
        streams, y_hat_f = lc.compress(y, exact=False)
        rec_float = image.model_output(model.synthesize(y_hat_f * inv_gain), info).rgb
        int_bytes = sum(len(d) for d in sections.values())
        return dict(pixels=info.pixels, int_bytes=int_bytes, float_bytes=len(streams[0]),
                    psnr_int=psnr_rgb(pic.rgb, rec_int), psnr_float=psnr_rgb(pic.rgb, rec_float))
    z = lc.h_a(torch.abs(y) if lc.abs_input else y)
    z_sym = torch.round(z)
    scales, means = lc._params(z_sym)
    levels = torch.bucketize(scales, lc.scale_table[:-1].to(scales), right=False).to(torch.int32)
    if means is not None:
        y_sym = torch.round(y - means).to(torch.int32)
        y_hat_f = y_sym.float() + means
    else:
        y_sym = torch.round(y).to(torch.int32)
        y_hat_f = y_sym.float()
    y_bytes = len(entropy.encode(y_sym, levels, lc.tables))
    rec_float = image.model_output(model.synthesize(y_hat_f * inv_gain), info).rgb
    int_bytes = sum(len(d) for d in sections.values())
    float_bytes = len(sections["hyper-latent"]) + y_bytes
    return dict(pixels=info.pixels, int_bytes=int_bytes, float_bytes=float_bytes,
                psnr_int=psnr_rgb(pic.rgb, rec_int), psnr_float=psnr_rgb(pic.rgb, rec_float))


def main(argv=None) -> int:
    from codec import api

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--model", default="mean-scale", help="a hyperprior model (hyperprior, mean-scale, "
                    "mean-scale-small, mean-scale-vr, context-vr)")
    ap.add_argument("--quality", type=float, default=None)
    args = ap.parse_args(argv)
    name, q = api.resolve(args.model, args.quality)
    m = api.load_model(name, q, device="cpu")
    if not hasattr(getattr(m.latent_codec, "inner", m.latent_codec), "index_path"):
        print("codec: error: the model has no hyperprior index path", file=sys.stderr)
        return 2
    rows = []
    for path in args.images:
        r = measure(m, image.read(path), q if m.variable_rate else None)
        rows.append(r)
        print(f"{path}: integer {r['int_bytes']} B, float {r['float_bytes']} B "
              f"({100 * (r['int_bytes'] / r['float_bytes'] - 1):+.3f}%), "
              f"PSNR {r['psnr_int']:.3f} / {r['psnr_float']:.3f} dB")
    ib = sum(r["int_bytes"] for r in rows)
    fb = sum(r["float_bytes"] for r in rows)
    px = sum(r["pixels"] for r in rows)
    print(f"\n{m.name} q{q:g}{'' if m.trained else ' [UNTRAINED]'} over {len(rows)} images: "
          f"integer {8 * ib / px:.4f} bpp, float {8 * fb / px:.4f} bpp, rate cost {100 * (ib / fb - 1):+.3f}%, "
          f"mean PSNR {np.mean([r['psnr_int'] for r in rows]):.3f} vs {np.mean([r['psnr_float'] for r in rows]):.3f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
