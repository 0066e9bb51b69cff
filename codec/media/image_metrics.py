"""Image metrics: distortion of 8-bit RGB images (CompressAI conventions); the one PSNR of the project.

- PSNR-RGB: ``10*log10(255^2 / MSE)`` with the MSE over all pixels and the three RGB
  channels of the 8-bit images.  Data-set figures average the per-image PSNR (in dB),
  as CompressAI does.  Identical images give :data:`PSNR_MAX` instead of infinity so
  that JSON stays valid.
- MS-SSIM: ``pytorch_msssim.ms_ssim`` on the 8-bit RGB values as float32 with
  ``data_range=255`` (the default 11x11 Gaussian window, five scales; same value as
  CompressAI's ``data_range=1`` on images scaled to [0, 1]).  It needs both sides longer
  than 160 pixels; below that it is undefined and :func:`ms_ssim_rgb` returns ``None``.
- ``ms_ssim_db`` = ``-10*log10(1 - MS-SSIM)``, the scale used for BD-rates on MS-SSIM.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["PSNR_MAX", "MS_SSIM_MIN_SIDE", "mse", "psnr", "psnr_rgb", "ms_ssim_rgb", "ms_ssim_db", "as_uint8_rgb"]

PSNR_MAX = 100.0
#: pytorch_msssim with the default window (11) and 5 scales asserts min side > 160
MS_SSIM_MIN_SIDE = 161


def as_uint8_rgb(x) -> np.ndarray:
    """HxWx3 uint8 array from a numpy array, a PIL image or a CHW/HWC uint8 tensor."""
    if hasattr(x, "convert") and hasattr(x, "mode"):  # PIL
        x = np.asarray(x.convert("RGB"))
    elif hasattr(x, "detach"):  # torch
        t = x.detach().cpu()
        if t.ndim == 3 and t.shape[0] == 3 and t.shape[-1] != 3:
            t = t.permute(1, 2, 0)
        x = t.numpy()
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"expected 8-bit samples (uint8), got {x.dtype}")
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {tuple(x.shape)}")
    return x


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_uint8_rgb(a), as_uint8_rgb(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    return a, b


def mse(a, b) -> float:
    a, b = _pair(a, b)
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(m: float, peak: float = 255.0) -> float:
    """PSNR in dB of a mean squared error, capped at :data:`PSNR_MAX`."""
    if m <= 0:
        return PSNR_MAX
    return min(PSNR_MAX, 10.0 * math.log10(peak * peak / m))


def psnr_rgb(a, b) -> float:
    """PSNR over the RGB channels of two 8-bit images, peak 255."""
    return psnr(mse(a, b))


def ms_ssim_rgb(a, b) -> float | None:
    """MS-SSIM of two 8-bit RGB images (pytorch_msssim, data_range 255); ``None`` when
    the image is too small for five scales."""
    a, b = _pair(a, b)
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None
    import torch
    from pytorch_msssim import ms_ssim

    # float32 like CompressAI; float64 agrees to ~1e-7 but is 8x slower on a CPU
    ta = torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1)[None]
    tb = torch.from_numpy(np.array(b, dtype=np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        return float(ms_ssim(ta, tb, data_range=255.0, size_average=True))


def ms_ssim_db(v: float) -> float:
    """MS-SSIM on a dB scale, ``-10*log10(1 - v)`` (capped like PSNR)."""
    if v >= 1.0:
        return PSNR_MAX
    return min(PSNR_MAX, -10.0 * math.log10(1.0 - v))
