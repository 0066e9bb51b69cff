"""Video metrics: distortion of a decoded clip against its source (pure numpy/torch, no PyAV).

A clip is a sequence of frames.  The YUV metrics take frames as ``(y, u, v)`` 4:2:0 planes
(2-D integer arrays: luma ``H x W``, chroma ``ceil(H/2) x ceil(W/2)``, 8 bit unless a
``peak`` is given); the RGB metrics take ``H x W x 3`` uint8 RGB frames.  Both sides must
have the same number of frames and the same shapes (:class:`~codec.errors.InputError`
otherwise).  The dB conversion and its cap are the image metric's
(:func:`codec.media.image_metrics.psnr`: ``10*log10(peak^2 / MSE)``, capped at
:data:`~codec.media.image_metrics.PSNR_MAX` = 100 dB, so identical planes or frames give
100 dB, never infinity, and JSON stays valid); MSEs are float64.

- **PSNR-YUV** (dB, the primary video metric; the 6:1:1 weighting of JCT-VC/JVET common
  test conditions): per frame, ``PSNR_YUV = (6*PSNR_Y + PSNR_U + PSNR_V) / 8`` with each
  plane's PSNR from that plane's MSE (each capped at 100 dB before weighting); the
  sequence value is the **mean over frames** of the per-frame values.  The per-plane
  sequence values PSNR-Y, -U, -V are likewise means over frames of per-frame PSNRs.
- **PSNR-RGB** (dB): the sequence value is computed **from the mean MSE over all frames**
  (the MSE over every pixel and RGB channel of the whole clip, then converted to dB once),
  not the mean of per-frame PSNRs; :func:`psnr_rgb_frame` is the per-frame value (the
  image metric, :func:`codec.media.image_metrics.psnr_rgb`).
- **MS-SSIM** (RGB, in [0, 1]): the image metric (:func:`codec.media.image_metrics.ms_ssim_rgb`,
  pytorch_msssim on 8-bit RGB, data_range 255) per frame, the sequence value the mean over
  frames; ``None`` when the frames are too small for five scales (a side under
  :data:`~codec.media.image_metrics.MS_SSIM_MIN_SIDE` = 161 pixels), as for images.

:class:`SequenceScore` accumulates all of them frame by frame (memory does not grow with
the clip's length); :func:`psnr_yuv`, :func:`psnr_rgb` and :func:`ms_ssim_rgb` are the
one-call forms for whole sequences.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from codec.errors import InputError
from codec.media import image_metrics
from codec.media.image_metrics import MS_SSIM_MIN_SIDE, PSNR_MAX

__all__ = ["PSNR_MAX", "MS_SSIM_MIN_SIDE", "YUV_WEIGHTS", "plane_mse", "psnr_yuv_frame", "psnr_rgb_frame",
           "psnr_yuv", "psnr_rgb", "ms_ssim_rgb", "SequenceScore"]

#: weights of the Y, U and V PSNRs in PSNR-YUV (6:1:1, divided by 8)
YUV_WEIGHTS = (6.0, 1.0, 1.0)


def plane_mse(a, b) -> float:
    """Mean squared error of two planes (any integer or float arrays of the same shape), float64."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise InputError(f"plane shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise InputError("empty plane")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def _planes(f, which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        y, u, v = f
    except (TypeError, ValueError):
        raise InputError(f"the {which} frame is not a (y, u, v) triple of planes") from None
    y, u, v = np.asarray(y), np.asarray(u), np.asarray(v)
    h, w = y.shape[:2] if y.ndim == 2 else (None, None)
    if y.ndim != 2 or u.shape != ((h + 1) // 2, (w + 1) // 2) or v.shape != u.shape:
        raise InputError(f"the {which} frame is not 4:2:0 planes: Y {y.shape}, U {u.shape}, V {v.shape} "
                         "(chroma must be ceil(H/2) x ceil(W/2))")
    return y, u, v


def psnr_yuv_frame(ref, rec, peak: float = 255.0) -> dict[str, float]:
    """PSNR of one frame: ``{"y", "u", "v", "yuv"}`` in dB, ``yuv`` the 6:1:1 weighted mean
    of the capped per-plane values (module docstring)."""
    r, e = _planes(ref, "reference"), _planes(rec, "decoded")
    out = {}
    for name, a, b in zip("yuv", r, e):
        if a.shape != b.shape:
            raise InputError(f"{name.upper()} planes differ in shape: {a.shape} vs {b.shape}")
        out[name] = image_metrics.psnr(plane_mse(a, b), peak)
    wy, wu, wv = YUV_WEIGHTS
    out["yuv"] = (wy * out["y"] + wu * out["u"] + wv * out["v"]) / (wy + wu + wv)
    return out


def psnr_rgb_frame(ref, rec) -> float:
    """PSNR-RGB of one 8-bit RGB frame (the image metric)."""
    return image_metrics.psnr_rgb(ref, rec)


def _rgb_pair(ref, rec) -> tuple[np.ndarray, np.ndarray]:
    try:
        a, b = image_metrics.as_uint8_rgb(ref), image_metrics.as_uint8_rgb(rec)
    except ValueError as exc:
        raise InputError(f"RGB frame: {exc}") from None
    if a.shape != b.shape:
        raise InputError(f"RGB frame shapes differ: {a.shape} vs {b.shape}")
    return a, b


class SequenceScore:
    """Frame-by-frame accumulator of every video metric (module docstring).

    ``add_yuv(ref, rec)`` takes one frame's ``(y, u, v)`` planes, ``add_rgb(ref, rec)`` one
    frame's RGB (and, unless ``ms_ssim=False``, its MS-SSIM); :meth:`result` gives the
    sequence values: ``psnr-yuv``, ``psnr-y``, ``psnr-u``, ``psnr-v`` (means over frames of
    the per-frame dB), ``psnr-rgb`` (from the mean MSE over all frames) and ``ms-ssim-rgb``
    (mean over frames, ``None`` for frames too small); a metric no frame was given for is
    ``None``.
    """

    def __init__(self, peak: float = 255.0, ms_ssim: bool = True) -> None:
        self.peak = float(peak)
        self.ms_ssim = ms_ssim
        self.yuv_frames: list[dict[str, float]] = []
        self.rgb_mse: list[float] = []
        self.rgb_ms_ssim: list[float | None] = []

    def add_yuv(self, ref, rec) -> dict[str, float]:
        f = psnr_yuv_frame(ref, rec, self.peak)
        self.yuv_frames.append(f)
        return f

    def add_rgb(self, ref, rec) -> None:
        a, b = _rgb_pair(ref, rec)
        d = a.astype(np.float64) - b.astype(np.float64)
        self.rgb_mse.append(float(np.mean(d * d)))
        if self.ms_ssim:
            self.rgb_ms_ssim.append(image_metrics.ms_ssim_rgb(a, b))

    def result(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for k in ("yuv", "y", "u", "v"):
            out[f"psnr-{k}"] = float(np.mean([f[k] for f in self.yuv_frames])) if self.yuv_frames else None
        out["psnr-rgb"] = image_metrics.psnr(float(np.mean(self.rgb_mse))) if self.rgb_mse else None
        vals = self.rgb_ms_ssim
        out["ms-ssim-rgb"] = (float(np.mean(vals)) if vals and all(v is not None for v in vals) else None)
        return out


def _zip_frames(ref: Iterable, rec: Iterable):
    ref = ref if isinstance(ref, Sequence) else list(ref)
    rec = rec if isinstance(rec, Sequence) else list(rec)
    if len(ref) != len(rec):
        raise InputError(f"the reference has {len(ref)} frames and the decoded clip {len(rec)}: they must match")
    if not len(ref):
        raise InputError("no frames")
    return zip(ref, rec)


def psnr_yuv(ref: Iterable, rec: Iterable, peak: float = 255.0) -> float:
    """Sequence PSNR-YUV in dB: the mean over frames of the per-frame 6:1:1 values."""
    s = SequenceScore(peak, ms_ssim=False)
    for a, b in _zip_frames(ref, rec):
        s.add_yuv(a, b)
    return s.result()["psnr-yuv"]


def psnr_rgb(ref: Iterable, rec: Iterable) -> float:
    """Sequence PSNR-RGB in dB, from the mean MSE over all frames (and RGB channels)."""
    s = SequenceScore(ms_ssim=False)
    for a, b in _zip_frames(ref, rec):
        s.add_rgb(a, b)
    return s.result()["psnr-rgb"]


def ms_ssim_rgb(ref: Iterable, rec: Iterable) -> float | None:
    """Sequence MS-SSIM on RGB: the mean over frames; ``None`` when the frames are too small."""
    s = SequenceScore()
    for a, b in _zip_frames(ref, rec):
        a, b = _rgb_pair(a, b)
        if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
            return None
        s.rgb_ms_ssim.append(image_metrics.ms_ssim_rgb(a, b))
    return s.result()["ms-ssim-rgb"]
