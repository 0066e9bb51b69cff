"""What the video model's exact integer synthesis costs: PSNR of the integer synthesis
(``IntegerNet`` with inverse GDN, the video model's 12 fractional bits) against the float
one, on the same latents of the image model ``mean-scale-vr`` (whose weights the video
model's key frames use), per picture and quality.

    python -m codec.tools.synthesis_exactness ../shared/data/kodak/kodim{01,04,15,23}.png
"""
from __future__ import annotations

import argparse
import math

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m codec.tools.synthesis_exactness", description=__doc__.split("\n\n")[0])
    ap.add_argument("pictures", nargs="+")
    ap.add_argument("--qualities", default="2,4,6,8")
    a = ap.parse_args(argv)

    import torch

    from codec.media.image import read
    from codec.models import registry
    from codec.models.integer import IntegerNet
    from codec.models.video import SYNTH_BITS, VideoModel

    torch.set_num_threads(1)
    m = registry.load_model("mean-scale-vr")
    net = IntegerNet.freeze(m.g_s, act_bits=SYNTH_BITS)
    video = VideoModel()
    video.synth_int["intra"] = net
    video.intra = m
    diffs = []
    for path in a.pictures:
        img = read(path).rgb
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255
        H, W = img.shape[:2]
        orig = x[0] * 255
        for q in (float(v) for v in a.qualities.split(",")):
            with torch.no_grad():
                y = m.g_a(m.pad(x))
                g, gi = m.latent_codec.gains(q, 1, "cpu")
                _, y_inner = m.latent_codec.inner.compress(y * g)
                f = torch.clamp(torch.round(m.g_s(y_inner * gi) * 255), 0, 255)[0, :, :H, :W]
                i = video._pixels(video._synthesize("intra", y_inner, q))[:, :H, :W].float()
            psnr = [10 * math.log10(255 ** 2 / float(((p - orig) ** 2).mean())) for p in (f, i)]
            diffs.append(psnr[1] - psnr[0])
            print(f"{path} q{q:g}: float {psnr[0]:.3f} dB, integer {psnr[1]:.3f} dB ({diffs[-1]:+.4f}); "
                  f"{float((i != f).float().mean()) * 100:.1f}% of the values differ, by at most "
                  f"{int((i - f).abs().max())}")
    print(f"mean {np.mean(diffs):+.4f} dB, worst {min(diffs):+.4f} dB over {len(diffs)} pictures x qualities")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
