"""Metrics of the evaluator: PSNR-RGB, MS-SSIM (against pytorch_msssim), colour conversion."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codec.media import image_metrics as metrics
from codec.tools.image_codecs import from_planes, to_planes

from pictures import smooth_image


def test_psnr_of_known_mse():
    a = smooth_image(40, 30)
    b = a.astype(np.int16)
    b[..., 0] += np.where(a[..., 0] < 255, 1, -1)  # every red sample off by one: MSE = 1/3
    b = b.astype(np.uint8)
    assert metrics.mse(a, b) == pytest.approx(1 / 3)
    assert metrics.psnr_rgb(a, b) == pytest.approx(10 * math.log10(255**2 * 3))


def test_psnr_matches_direct_formula_on_random_images():
    rng = np.random.default_rng(1)
    for _ in range(5):
        a = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
        b = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
        m = np.mean((a.astype(float) - b.astype(float)) ** 2)
        assert metrics.psnr_rgb(a, b) == pytest.approx(10 * np.log10(255.0**2 / m), rel=1e-12)


def test_psnr_identical_is_capped_not_infinite():
    a = smooth_image(8, 8)
    assert metrics.psnr_rgb(a, a) == metrics.PSNR_MAX
    assert math.isfinite(metrics.psnr_rgb(a, a))


def test_ms_ssim_matches_pytorch_msssim_compressai_convention():
    from pytorch_msssim import ms_ssim

    a = smooth_image(192, 176, seed=2)
    rng = np.random.default_rng(3)
    b = np.clip(a.astype(int) + rng.normal(0, 12, a.shape).round().astype(int), 0, 255).astype(np.uint8)
    ours = metrics.ms_ssim_rgb(a, b)
    # CompressAI: float images in [0, 1], data_range=1.0
    ta = torch.from_numpy(a).permute(2, 0, 1)[None].double() / 255
    tb = torch.from_numpy(b).permute(2, 0, 1)[None].double() / 255
    ref = float(ms_ssim(ta, tb, data_range=1.0))
    assert 0.5 < ours < 1.0
    assert ours == pytest.approx(ref, abs=1e-5)
    assert metrics.ms_ssim_rgb(a, a) == pytest.approx(1.0, abs=1e-6)
    # worse image, lower score
    c = np.clip(a.astype(int) + rng.normal(0, 30, a.shape).round().astype(int), 0, 255).astype(np.uint8)
    assert metrics.ms_ssim_rgb(a, c) < ours


def test_ms_ssim_undefined_below_161_pixels():
    a = smooth_image(160, 300)
    assert metrics.ms_ssim_rgb(a, a) is None
    assert metrics.ms_ssim_rgb(smooth_image(161, 161), smooth_image(161, 161)) is not None


def test_ms_ssim_db():
    assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)
    assert metrics.ms_ssim_db(0.9) == pytest.approx(10.0)
    assert metrics.ms_ssim_db(1.0) == metrics.PSNR_MAX


def test_inputs_checked_and_converted():
    from PIL import Image

    a = smooth_image(12, 10)
    chw = torch.from_numpy(a).permute(2, 0, 1)
    assert metrics.psnr_rgb(a, chw) == metrics.PSNR_MAX
    assert metrics.psnr_rgb(a, Image.fromarray(a)) == metrics.PSNR_MAX
    with pytest.raises(ValueError, match="uint8"):
        metrics.psnr_rgb(a, a.astype(np.float32))
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.psnr_rgb(a, a[:-1])
    with pytest.raises(ValueError, match="HxWx3"):
        metrics.psnr_rgb(a[..., 0], a[..., 0])


@pytest.mark.parametrize("chroma,floor", [("444", 50.0), ("420", 38.0)])
def test_colour_conversion_round_trip(chroma, floor):
    a = smooth_image(64, 48)
    planes = to_planes(a, chroma)
    assert all(p.dtype == np.uint8 for p in planes)
    if chroma == "420":
        assert planes[1].shape == (32, 24)
    back = from_planes(planes, chroma)
    assert back.shape == a.shape
    assert metrics.psnr_rgb(a, back) > floor
    # grey stays grey and exact
    g = np.full((8, 8, 3), 117, np.uint8)
    assert np.array_equal(from_planes(to_planes(g, chroma), chroma), g)
