"""Training pictures for a video model's residual (inter) coder, made from still photos.

Each sample is a pair of frames with synthetic motion: a crop of a photo (the reference)
and the same scene moved by a random sub-pixel shift, a small zoom and rotation and a
brightness change (the current frame).  The reference is first coded by the image model
at a random quality (a P-frame predicts from a *decoded* frame), then the video model's
own motion search and half-pel compensation predict the current frame from it.  What is
written is the residual, ``clip(current - prediction + 128)``, as an 8-bit PNG: a picture
that the image RD task trains on as it is (the inter coder codes ``residual / 255 + 0.5``,
which is this picture / 255; its MSE is the frame's MSE).

    python -m codec.training.video_residuals ../shared/data/train-images -o runs/residuals --count 3000

No video clip is used, so every shared clip stays an evaluation clip.
"""
from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from codec.training.data import list_images


def _warp(img: torch.Tensor, size: int, rng: random.Random):
    """(reference, current) crops ``[3, size, size]`` in [0, 1] of ``img`` ``[3, H, W]``."""
    _, H, W = img.shape
    m = 16
    top, left = rng.randint(0, H - size - 2 * m), rng.randint(0, W - size - 2 * m)
    ref = img[:, top + m:top + m + size, left + m:left + m + size]
    dx, dy = rng.uniform(-8, 8), rng.uniform(-8, 8)
    if rng.random() < 0.2:
        dx, dy = rng.uniform(-1, 1), rng.uniform(-1, 1)  # nearly still scenes are common
    zoom = 1 + rng.uniform(-0.03, 0.03)
    rot = math.radians(rng.uniform(-1.5, 1.5))
    # output pixel grid of the current frame, mapped into the photo
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    cy = cx = (size - 1) / 2
    u, v = (xs - cx) / zoom, (ys - cy) / zoom
    sx = math.cos(rot) * u - math.sin(rot) * v + cx + left + m + dx
    sy = math.sin(rot) * u + math.cos(rot) * v + cy + top + m + dy
    grid = torch.stack([sx / (W - 1) * 2 - 1, sy / (H - 1) * 2 - 1], -1)[None].float()
    cur = F.grid_sample(img[None], grid, mode="bilinear", padding_mode="border", align_corners=True)[0]
    cur = torch.clamp(cur * (1 + rng.uniform(-0.04, 0.04)) + rng.uniform(-0.02, 0.02), 0, 1)
    return ref, cur


def make(images, out: Path, count: int, size: int = 192, seed: int = 0, quiet: bool = False) -> int:
    from PIL import Image

    from codec.models import registry

    vr = registry.load_model("mean-scale-vr")
    video = registry.get_spec("video-ip").arch_class()()
    rng = random.Random(seed)
    paths = [p for p in images if min(Image.open(p).size) >= size + 40]
    if not paths:
        raise SystemExit(f"no picture of at least {size + 40} pixels")
    out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    for i in tqdm(range(count), disable=quiet, desc="residuals"):
        img = torch.from_numpy(np.asarray(Image.open(rng.choice(paths)).convert("RGB"), dtype=np.float32) / 255.0)
        ref, cur = _warp(img.permute(2, 0, 1).contiguous(), size, rng)
        with torch.no_grad():
            q = rng.uniform(1, 8)
            dec = _decoded(vr, ref, q)
        ref_i = torch.round(dec * 255).to(torch.int32)
        cur_i = torch.round(cur * 255).to(torch.int32)
        pred = video.compensate(ref_i, video.search(cur_i, ref_i))
        res = torch.clamp(cur_i - pred + 128, 0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(res).save(out / f"res_{seed:02d}_{i:05d}.png")
    return count


def _decoded(vr, ref: torch.Tensor, q: float) -> torch.Tensor:
    """The image model's reconstruction of ``ref`` at quality ``q`` (rounded latents)."""
    x = vr.pad(ref[None])
    y = vr.g_a(x)
    lc = vr.latent_codec
    g, gi = lc.gains(q, 1, "cpu")
    z = lc.inner.h_a(y * g)
    z_hat = torch.round(z)
    scales, means = lc.inner._params(z_hat)
    y_hat = (torch.round(y * g - means) + means) * gi
    return torch.clamp(vr.g_s(y_hat), 0, 1)[0, :, :ref.shape[1], :ref.shape[2]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m codec.training.video_residuals", description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+", help="folders of photos")
    ap.add_argument("-o", "--out", required=True, help="folder for the residual PNGs")
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    paths = [p for d in a.images for p in list_images(d)]
    make(paths, Path(a.out), a.count, a.size, a.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
