"""The video medium: files and user objects in, 8-bit RGB frames out, kilobits per second.

One signal type through a video codec: a :class:`Video` (its frames, each a uint8
``H x W x 3`` RGB array, possibly produced lazily so that a long clip streams in bounded
memory; its frame rate as a :class:`~fractions.Fraction`; its size; and its number of
frames when known).  Everything that takes video from users or files goes through
:func:`from_user` / :func:`read` (:class:`Reader`); everything that gives it back through
:func:`to_user` / :func:`write` (:class:`Writer`).  A stream's descriptor says RGB, 8
bits (:meth:`Video.info`), so any frame size is coded, odd ones included.

Colour: YUV sources are turned into RGB by this module's own integer arithmetic
(:func:`yuv_to_rgb`), not by libswscale, so that a file gives the same frames on every
install (planar 4:2:0, 4:2:2, 4:4:0, 4:4:4, ``yuvj*``, nv12/nv21, gray, packed and planar
RGB; only rarer formats, such as palettes, packed 4:2:2 or 4:1:1, go through libswscale
to rgb24).  The matrix and range are the file's when it tags them (BT.709, BT.2020;
full range for ``yuvj*`` formats or a full-range tag), else BT.601 limited range (what
FFmpeg assumes for an untagged file).  4:2:0 / 4:2:2 chroma is taken as centred between
its luma samples (what a 2x2 average makes, and what ``C420jpeg`` says in Y4M) and is
upsampled bilinearly with weights 3/4, 1/4 (edges replicated); see :func:`yuv_to_rgb`.
:func:`rgb_to_yuv` is the inverse: BT.601 limited range by default, chroma the rounded
average of each 2x2 block (at an odd edge, of the pixels there are).

Inputs accepted by :func:`from_user`: a :class:`Video`; a numpy array ``[T, H, W, 3]``
(uint8, or float in [0, 1]) or a torch tensor ``[T, 3, H, W]`` (same dtypes, any device),
with ``fps``; or a list / iterator of frames (numpy ``[H, W, 3]`` or torch ``[3, H, W]``)
with ``fps``.  Anything else is an :class:`~codec.errors.InputError` that names what was
passed; so is a bad frame of a lazy source, when it is reached.

Files read by :func:`read` (:class:`Reader`, :func:`probe`): anything FFmpeg demuxes and
decodes to 8-bit frames (mp4, mkv, webm, mov, avi, y4m, ...: the first video stream);
raw ``.yuv`` files with their ``size``, ``fps`` and ``pix_fmt`` (:data:`RAW_FORMATS`,
default ``yuv420p``: read by this module, exact); and folders of PNG frames (sorted by
name, with ``fps``).  Refused with one-line errors: files FFmpeg cannot open or decode
(decoding is strict: a decoder's detected error is an error, not concealed), files with
no video stream, no frames, frames of more than 8 bits, a variable frame rate (from the
stream's rates when opening, and for certain from each frame's timestamp while reading),
a size that changes midway, and frames over the pixel limit of
:func:`codec.media.image.max_pixels` (``limit=`` is pixels per frame).  At most
:data:`~codec.container.MAX_FRAMES` frames (the descriptor's limit).

Files written by :func:`write` (:class:`Writer`), chosen by the extension or ``format``:
``.y4m`` (4:2:0 limited-range BT.601 by :func:`rgb_to_yuv420`: lossy by that conversion),
``.mkv`` (FFV1 in ``bgr0``: lossless, the RGB frames come back exactly) and a folder of
PNG frames ``frame_000001.png`` ... (lossless; a path ending in ``/``, with no extension,
or ``format="png"``).  Writing is atomic (:mod:`codec.fileio`): nothing is at the path
until the writer closes without an error.
"""
from __future__ import annotations

import functools
import math
import numbers
import os
import re
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from codec.container import MAX_FRAMES, MAX_SIDE, VideoInfo
from codec.errors import InputError, LimitError
from codec.media import image, objects

NAME = "video"
RATE_UNIT = "kbps"  # kilobits per second of video, from the bytes of the stream
OUTPUTS = ("video", "numpy", "torch")  # what decode gives: the first by default
#: extensions of raw (headerless) video: needs size, fps and pix_fmt
RAW_EXTENSIONS = (".yuv",)
#: pixel formats of raw files (planar yuv, nv12/nv21, gray, packed and planar RGB)
RAW_FORMATS = ("yuv420p", "yuv422p", "yuv444p", "yuvj420p", "yuvj422p", "yuvj444p", "nv12", "nv21", "gray",
               "rgb24", "bgr24", "gbrp")
DEFAULT_RAW_FORMAT = "yuv420p"
#: what is written, by extension (a folder of PNG frames: "png")
WRITE_FORMATS = {".y4m": "y4m", ".mkv": "ffv1"}
_FORMAT_NAMES = {"y4m": "y4m", "mkv": "ffv1", "ffv1": "ffv1", "png": "png"}
FRAME_NAME = "frame_{:06d}.png"  # frames of a PNG folder, from 1
_FRAME_RE = re.compile(r"frame_\d{6,}\.png\Z")
#: the Y4M stream header this module writes: 4:2:0 with chroma centred (a 2x2 average),
#: limited range (FFmpeg reads XCOLORRANGE; it is an mjpegtools-style X tag others skip)
Y4M_TAGS = "Ip A1:1 C420jpeg XYSCSS=420JPEG XCOLORRANGE=LIMITED"
#: FFV1 (lossless) in packed 8-bit RGB: FFV1 takes 8-bit RGB as bgr0 (gbrp only from 9 bits)
FFV1_PIX_FMT = "bgr0"
FFV1_OPTIONS = {"level": "3"}  # version 3: per-slice CRCs, so a corrupt file is detected when read
#: decoder options: a decoder that detects an error stops (instead of concealing it)
DECODER_OPTIONS = {"err_detect": "explode"}
#: more than this relative difference between a stream's average and nominal frame rates
#: (FFmpeg's avg_frame_rate and av_guess_frame_rate) is taken as a variable frame rate when
#: the file is opened; while reading, each frame's timestamp is checked
VFR_HINT = 0.01


# ----------------------------------------------------------------------------- the signal
@dataclass
class Video:
    """Frames (uint8 ``H x W x 3`` RGB; a list, an array ``[T, H, W, 3]`` or a lazy iterable:
    a file's frames are decoded as they are iterated), frame rate, size and the number of
    frames when it is known (``None``: count them by iterating)."""

    frames: object
    fps: Fraction
    width: int
    height: int
    count: int | None = None

    @property
    def info(self) -> VideoInfo:
        """The stream descriptor: RGB, 8 bits (needs :attr:`count`)."""
        if self.count is None:
            raise InputError("the video's number of frames is not known before its frames are read "
                             "(count them, or set Video.count)")
        fps = Fraction(self.fps)
        return VideoInfo(int(self.width), int(self.height), int(self.count), (fps.numerator, fps.denominator),
                         "rgb", 8)

    @property
    def duration(self) -> float | None:
        """Seconds (``None`` when the count is unknown)."""
        return None if self.count is None else float(self.count / Fraction(self.fps))


# ----------------------------------------------------------------------------- limits, rates
def check_frames(count: int, what: str = "the video") -> None:
    """:class:`LimitError` for more frames than a stream holds (:data:`MAX_FRAMES`)."""
    if count > MAX_FRAMES:
        raise LimitError(f"{what} has {count} frames, more than the {MAX_FRAMES} a stream can hold")


def check_fps(fps, what: str = "the frame rate") -> Fraction:
    """``fps`` (a number, a Fraction or text such as ``"25"``, ``"30000/1001"``, ``"29.97"``)
    as a positive Fraction whose terms fit 32 bits; :class:`InputError` otherwise."""
    given = fps
    if isinstance(fps, str):
        try:
            fps = Fraction(fps.strip())
        except (ValueError, ZeroDivisionError):
            raise InputError(f"{what} must be a number of frames per second such as 25 or 30000/1001, "
                             f"not {given!r}") from None
    if isinstance(fps, (bool, np.bool_)) or not isinstance(fps, numbers.Real):
        raise InputError(f"{what} must be a number of frames per second, not {_describe(given)}")
    if isinstance(fps, numbers.Rational):
        fps = Fraction(int(fps.numerator), int(fps.denominator))
    else:
        if not math.isfinite(fps):
            raise InputError(f"{what} must be a finite number of frames per second, not {given!r}")
        fps = Fraction(float(fps)).limit_denominator(1_000_000)
    if fps <= 0:
        raise InputError(f"{what} must be positive, not {given!r}")
    if fps.numerator >= 1 << 32 or fps.denominator >= 1 << 32:
        raise InputError(f"{what} {given!r} does not fit a stream (numerator and denominator below 2**32)")
    return fps


def parse_size(size, what: str = "the frame size") -> tuple[int, int]:
    """``"WxH"`` or ``(W, H)`` -> ``(W, H)``, each side 1..:data:`MAX_SIDE`."""
    given = size
    if isinstance(size, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", size)
        if not m:
            raise InputError(f"{what} is WIDTHxHEIGHT (e.g. 352x288), not {given!r}")
        size = (int(m.group(1)), int(m.group(2)))
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) for s in size):
        raise InputError(f"{what} is (width, height) or 'WxH', not {given!r}")
    w, h = int(size[0]), int(size[1])
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        raise InputError(f"{what} {w}x{h} is out of range (1..{MAX_SIDE} a side)")
    return w, h


def rate(nbytes: int, info: VideoInfo) -> float:
    """Kilobits per second of ``nbytes`` bytes for video of ``info``'s duration."""
    return 8 * nbytes * info.fps[0] / (info.frames * info.fps[1]) / 1000


def bpp(nbytes: int, info: VideoInfo) -> float:
    """Bits per pixel (of all frames) of ``nbytes`` bytes."""
    return 8 * nbytes / info.pixels


def _fps_text(fps) -> str:
    return f"{float(Fraction(*fps) if isinstance(fps, tuple) else fps):.4g}"


def describe(info: VideoInfo) -> str:
    """e.g. ``"352x288, 300 frames at 25 fps (12.00 s)"``."""
    n = info.frames
    return (f"{info.width}x{info.height}, {n} frame{'s' if n != 1 else ''} at {_fps_text(info.fps)} fps "
            f"({objects.duration_text(n * info.fps[1] / info.fps[0])})")


def check_work(info: VideoInfo, limit=None) -> None:
    """Refuse a stream whose frames are over the pixel limit, or too many, before any network runs."""
    image.check_size(info.width, info.height, limit=limit, what="the stream's frames")
    check_frames(info.frames, "the stream")


def checked_payload(model, c, limit=None):
    """The payload of container ``c`` for video ``model``, checked before any network runs:
    its header must be the model's and give the descriptor's frame size, the frame must be
    within the pixel limit, and the section table must hold each frame's two sections in
    order (a key frame first)."""
    from codec.container import ContainerError
    from codec.models.payload import PayloadError

    p = c.payload
    try:
        w, h = model.parse_header(p.header)
    except PayloadError as exc:
        raise ContainerError(f"corrupt stream: {exc}") from None
    if (w, h) != (c.media.width, c.media.height):
        raise ContainerError(f"the stream's model header ({w}x{h}) does not fit its {c.media.width}x"
                             f"{c.media.height} video (corrupt file)")
    image.check_size(w, h, limit, what="the stream's frames")
    image.check_memory(model, p.header, w, h, limit, what="the stream's frames")
    try:
        model.check_sections(p, c.media.frames)
    except PayloadError as exc:
        raise ContainerError(f"corrupt stream: {exc}") from None
    return p


# ----------------------------------------------------------------------------- colour
#: (Kr, Kb) of each colour matrix
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
#: FFmpeg's AVColorSpace values of the matrices a file may tag (anything else: BT.601)
_AVCOL_SPC = {1: "bt709", 9: "bt2020", 10: "bt2020"}
_AVCOL_RANGE_JPEG = 2
_ONE = 1 << 16  # the coefficients' fixed point


@dataclass(frozen=True)
class _Coefficients:
    yo: int  # luma offset (16 limited, 0 full)
    y: tuple  # Y = yo + (R, G, B) . y / 2**16
    u: tuple  # U = 128 + (R, G, B) . u / 2**16 (the terms sum to 0: gray has U = 128)
    v: tuple
    c: int  # R, G, B = c (Y - yo) + ... / 2**16
    rv: int
    gu: int
    gv: int
    bu: int


@functools.lru_cache(maxsize=None)
def coefficients(matrix: str = "bt601", full_range: bool = False) -> _Coefficients:
    """The integer coefficients (16 fractional bits) of the conversion: from Kr, Kb of
    ``matrix`` and the range (limited: Y 16..235, U, V 16..240; full: 0..255), each
    rounded to the nearest integer (IEEE arithmetic: the same on every machine), the
    chroma rows adjusted so that each sums to 0 and the luma row to the range's gain."""
    if matrix not in MATRICES:
        raise InputError(f"colour matrix is one of {', '.join(MATRICES)}, not {matrix!r}")
    kr, kb = MATRICES[matrix]
    kg = 1 - kr - kb
    ys, cs, yo = (255, 255, 0) if full_range else (219, 224, 16)
    yr, yb = round(kr * ys / 255 * _ONE), round(kb * ys / 255 * _ONE)
    yg = round(ys / 255 * _ONE) - yr - yb
    su, sv = cs / 255 / (2 * (1 - kb)), cs / 255 / (2 * (1 - kr))
    ur, ug = round(-kr * su * _ONE), round(-kg * su * _ONE)
    vg, vb = round(-kg * sv * _ONE), round(-kb * sv * _ONE)
    return _Coefficients(yo, (yr, yg, yb), (ur, ug, -ur - ug), (-vg - vb, vg, vb),
                         round(255 / ys * _ONE), round(2 * (1 - kr) * 255 / cs * _ONE),
                         round(-2 * (1 - kb) * kb / kg * 255 / cs * _ONE),
                         round(-2 * (1 - kr) * kr / kg * 255 / cs * _ONE), round(2 * (1 - kb) * 255 / cs * _ONE))


def _uint8_plane(a, what: str) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 2 or a.size == 0:
        raise InputError(f"{what} must be a non-empty 2-D uint8 array, not {_describe(a)}")
    return a


def _rgb_frame(rgb) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 \
            or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise InputError(f"an RGB frame is a uint8 [H, W, 3] array, not {_describe(rgb)}")
    return rgb


def _pool(x: np.ndarray, sx: int, sy: int) -> np.ndarray:
    """Sums of 2x2 (``sx``, ``sy`` = 1, 1), 2x1 or 1x2 blocks; an odd last row / column is
    repeated, so that an edge block sums what it has, scaled as a whole block."""
    if sy:
        if x.shape[0] % 2:
            x = np.concatenate([x, x[-1:]], 0)
        x = x[0::2] + x[1::2]
    if sx:
        if x.shape[1] % 2:
            x = np.concatenate([x, x[:, -1:]], 1)
        x = x[:, 0::2] + x[:, 1::2]
    return x


def rgb_to_yuv(rgb, chroma: str = "420", matrix: str = "bt601", full_range: bool = False):
    """uint8 ``[H, W, 3]`` RGB -> uint8 planes ``(y, u, v)``: ``y`` ``[H, W]``, ``u`` and ``v``
    ``[ceil(H/2), ceil(W/2)]`` for ``chroma="420"``, ``[H, ceil(W/2)]`` for ``"422"``,
    ``[H, W]`` for ``"444"``.  Integer arithmetic (:func:`coefficients`); each chroma sample is
    the rounded mean of its block's full-resolution chroma (no intermediate rounding);
    results clipped to 0..255."""
    sx, sy = {"420": (1, 1), "422": (1, 0), "444": (0, 0)}.get(chroma, (None, None))
    if sx is None:
        raise InputError(f"chroma is '420', '422' or '444', not {chroma!r}")
    a = _rgb_frame(rgb)
    k = coefficients(matrix, full_range)
    r, g, b = (a[..., i].astype(np.int32) for i in range(3))
    y = (k.y[0] * r + k.y[1] * g + k.y[2] * b + ((k.yo << 16) + (1 << 15))) >> 16
    shift = 16 + sx + sy
    planes = [y]
    for c in (k.u, k.v):
        x = _pool(c[0] * r + c[1] * g + c[2] * b, sx, sy)
        planes.append((x + ((128 << shift) + (1 << (shift - 1)))) >> shift)
    return tuple(np.clip(p, 0, 255).astype(np.uint8) for p in planes)


def rgb_to_yuv420(rgb, matrix: str = "bt601", full_range: bool = False):
    """:func:`rgb_to_yuv` to 4:2:0 (what Y4M output holds)."""
    return rgb_to_yuv(rgb, "420", matrix, full_range)


def rgb_to_yuv444(rgb, matrix: str = "bt601", full_range: bool = False):
    """:func:`rgb_to_yuv` at full chroma resolution."""
    return rgb_to_yuv(rgb, "444", matrix, full_range)


def _up(x: np.ndarray, axis: int, n: int) -> np.ndarray:
    """``x`` (int32) to ``n`` samples along ``axis``, times 4: the same length is multiplied;
    half the length (rounded up) is upsampled with chroma centred between two luma
    samples: output ``2k`` is ``3 x[k] + x[k-1]``, ``2k+1`` is ``3 x[k] + x[k+1]`` (the
    ends repeated)."""
    if x.shape[axis] == n:
        return x * 4
    x = np.moveaxis(x, axis, 0)
    x3 = x * 3
    out = np.empty((2 * x.shape[0],) + x.shape[1:], np.int32)
    out[0::2] = x3 + np.concatenate([x[:1], x[:-1]], 0)
    out[1::2] = x3 + np.concatenate([x[1:], x[-1:]], 0)
    return np.moveaxis(out[:n], 0, axis)


def yuv_to_rgb(y, u, v, matrix: str = "bt601", full_range: bool = False) -> np.ndarray:
    """uint8 planes -> uint8 ``[H, W, 3]`` RGB.  The chroma layout comes from the planes'
    shapes: ``[H, W]`` (4:4:4), ``[H, ceil(W/2)]`` (4:2:2), ``[ceil(H/2), W]`` (4:4:0) or
    ``[ceil(H/2), ceil(W/2)]`` (4:2:0).  Subsampled chroma is upsampled bilinearly, taken
    as centred between its luma samples (weights 3/4 and 1/4 per axis, the edges
    repeated), without rounding; then ``R = c (Y - yo) + rv (V - 128)``,
    ``G = c (Y - yo) + gu (U - 128) + gv (V - 128)``, ``B = c (Y - yo) + bu (U - 128)``
    (:func:`coefficients`), rounded half up once and clipped to 0..255.  All in int32
    (the largest intermediate is below 2**30)."""
    y = _uint8_plane(y, "the Y plane")
    u, v = _uint8_plane(u, "the U plane"), _uint8_plane(v, "the V plane")
    h, w = y.shape
    ok = {(h, w), (h, -(-w // 2)), (-(-h // 2), w), (-(-h // 2), -(-w // 2))}
    if u.shape != v.shape or u.shape not in ok:
        raise InputError(f"chroma planes {u.shape} and {v.shape} do not fit a {w}x{h} luma plane "
                         f"(4:4:4, 4:2:2, 4:4:0 or 4:2:0)")
    k = coefficients(matrix, full_range)
    yy = (y.astype(np.int32) - k.yo) * (k.c * 16)  # the chroma below is scaled by 16
    uu = _up(_up(u.astype(np.int32), 1, w), 0, h) - 16 * 128
    vv = _up(_up(v.astype(np.int32), 1, w), 0, h) - 16 * 128
    half = 1 << 19
    out = np.empty((h, w, 3), np.uint8)
    out[..., 0] = np.clip((yy + k.rv * vv + half) >> 20, 0, 255)
    out[..., 1] = np.clip((yy + k.gu * uu + k.gv * vv + half) >> 20, 0, 255)
    out[..., 2] = np.clip((yy + k.bu * uu + half) >> 20, 0, 255)
    return out


def yuv420_to_rgb(y, u, v, matrix: str = "bt601", full_range: bool = False) -> np.ndarray:
    """:func:`yuv_to_rgb` of 4:2:0 planes (``u``, ``v``: ``[ceil(H/2), ceil(W/2)]``)."""
    _check_chroma(y, u, v, 1, "4:2:0")
    return yuv_to_rgb(y, u, v, matrix, full_range)


def yuv444_to_rgb(y, u, v, matrix: str = "bt601", full_range: bool = False) -> np.ndarray:
    """:func:`yuv_to_rgb` of 4:4:4 planes (all ``[H, W]``)."""
    _check_chroma(y, u, v, 0, "4:4:4")
    return yuv_to_rgb(y, u, v, matrix, full_range)


def _check_chroma(y, u, v, shift: int, name: str) -> None:
    h, w = _uint8_plane(y, "the Y plane").shape
    want = (-(-h >> shift), -(-w >> shift))
    if np.shape(u) != want or np.shape(v) != want:
        raise InputError(f"{name} chroma planes of a {w}x{h} frame are {want}, not {np.shape(u)} and {np.shape(v)}")


# planar YUV formats: (log2 chroma width, log2 chroma height, full range)
_YUV = {"yuv420p": (1, 1, False), "yuvj420p": (1, 1, True), "yuv422p": (1, 0, False), "yuvj422p": (1, 0, True),
        "yuv444p": (0, 0, False), "yuvj444p": (0, 0, True), "yuv440p": (0, 1, False), "yuvj440p": (0, 1, True),
        "yuva420p": (1, 1, False), "yuva422p": (1, 0, False), "yuva444p": (0, 0, False)}
_NV = {"nv12": 0, "nv21": 1}  # 4:2:0, chroma interleaved: the index of U
# packed RGB: (bytes per pixel, the byte of R, G, B)
_PACKED = {"rgb24": (3, (0, 1, 2)), "bgr24": (3, (2, 1, 0)), "rgba": (4, (0, 1, 2)), "bgra": (4, (2, 1, 0)),
           "argb": (4, (1, 2, 3)), "abgr": (4, (3, 2, 1)), "rgb0": (4, (0, 1, 2)), "bgr0": (4, (2, 1, 0)),
           "0rgb": (4, (1, 2, 3)), "0bgr": (4, (3, 2, 1))}
_GBR = ("gbrp", "gbrap")  # planes G, B, R (and alpha)


def _plane_shapes(fmt: str, w: int, h: int) -> list:
    """(rows, bytes per row) of each plane of a frame, as a raw file stores them."""
    if fmt in _YUV:
        sx, sy, _ = _YUV[fmt]
        return [(h, w)] + [(-(-h // (1 << sy)), -(-w // (1 << sx)))] * 2
    if fmt in _NV:
        return [(h, w), (-(-h // 2), 2 * -(-w // 2))]
    if fmt in _PACKED:
        return [(h, w * _PACKED[fmt][0])]
    if fmt in _GBR:
        return [(h, w)] * 3
    return [(h, w)]  # gray


def _planes_to_rgb(fmt: str, planes: list, matrix: str = "bt601", full_range: bool | None = None) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB from the planes of a frame of ``fmt`` (one this module converts
    itself: :data:`_YUV`, :data:`_NV`, :data:`_PACKED`, :data:`_GBR`, ``gray``).  ``full_range``:
    the file's tag (``None``: the format's own, limited for ``yuv*``)."""
    if fmt in _YUV:
        full = _YUV[fmt][2] or bool(full_range)
        return yuv_to_rgb(planes[0], planes[1], planes[2], matrix, full)
    if fmt in _NV:
        i = _NV[fmt]
        return yuv_to_rgb(planes[0], planes[1][:, i::2], planes[1][:, 1 - i::2], matrix, bool(full_range))
    if fmt in _PACKED:
        n, (r, g, b) = _PACKED[fmt]
        p = planes[0].reshape(planes[0].shape[0], -1, n)
        return np.stack([p[..., r], p[..., g], p[..., b]], axis=-1)
    if fmt in _GBR:
        return np.stack([planes[2], planes[0], planes[1]], axis=-1)
    if fmt == "gray":  # FFmpeg's gray is full range: R = G = B = Y
        return np.repeat(planes[0][..., None], 3, axis=2)
    raise InputError(f"pixel format {fmt} is not converted here")  # pragma: no cover - callers check


def _converts(fmt: str) -> bool:
    return fmt in _YUV or fmt in _NV or fmt in _PACKED or fmt in _GBR or fmt == "gray"


@functools.lru_cache(maxsize=None)
def _depth_of(fmt: str) -> int | None:
    """Bits of a pixel format's deepest component (``None``: FFmpeg does not know the name)."""
    import av

    try:
        comps = av.VideoFormat(fmt).components
    except (ValueError, TypeError, av.error.FFmpegError):
        return None
    return max((c.bits for c in comps), default=8)


def _check_depth(fmt: str, path: str) -> None:
    bits = _depth_of(fmt)
    if bits is not None and bits > 8:
        raise InputError(f"{bits}-bit video is not supported: this codec codes 8-bit frames ({path} is {fmt}; "
                         f"convert it to 8 bits first, e.g. ffmpeg -i IN -pix_fmt yuv420p OUT.mkv)")


def colour_tags(frame) -> tuple:
    """``(matrix, full_range)`` a decoded PyAV frame is tagged with: ``"bt709"`` / ``"bt2020"``
    for those AVColorSpace values, else ``"bt601"``; full range for ``yuvj*`` formats or a
    JPEG range tag.  What this module's reader converts with, and what evaluation scores with."""
    matrix = _AVCOL_SPC.get(int(frame.colorspace or 0), "bt601")
    return matrix, frame.format.name.startswith("yuvj") or int(frame.color_range or 0) == _AVCOL_RANGE_JPEG


def _frame_to_rgb(frame) -> np.ndarray:
    """A decoded PyAV frame -> uint8 ``[H, W, 3]`` RGB: its planes read as they are and
    converted by :func:`_planes_to_rgb`; a format that function does not know (palette,
    packed 4:2:2, 4:1:1, bit streams, ...) goes through libswscale to rgb24."""
    fmt = frame.format.name
    if not _converts(fmt):
        frame, fmt = frame.reformat(format="rgb24"), "rgb24"
    n = _PACKED[fmt][0] if fmt in _PACKED else 1
    planes = []
    for i, (rows, cols) in enumerate(_plane_shapes(fmt, frame.width, frame.height)):
        p = frame.planes[i]
        a = np.frombuffer(p, np.uint8)
        planes.append(a[:p.height * p.line_size].reshape(p.height, p.line_size)[:rows, :cols])
    matrix, full = colour_tags(frame)
    # a new array in every case (nothing of the decoder's buffers is kept)
    return _planes_to_rgb(fmt, planes, matrix, full)


# ----------------------------------------------------------------------------- user objects
def _describe(obj) -> str:
    return objects.describe(obj, NAME)


def _frame(obj, i: int, what: str, size: tuple | None) -> np.ndarray:
    """Frame ``i`` of ``what`` as uint8 ``[H, W, 3]`` (numpy ``[H, W, 3]`` or torch ``[3, H, W]``,
    uint8 or float in [0, 1]), of ``size`` (W, H) when given."""
    if objects.is_tensor(obj):
        import torch

        t = objects.dense(obj, NAME)
        if t.ndim != 3 or t.shape[0] != 3:
            raise InputError(f"a tensor frame is [3, H, W], but frame {i} of {what} is {_describe(obj)}")
        if not t.dtype.is_floating_point and t.dtype != torch.uint8:
            raise InputError(f"frame samples must be uint8, or float in [0, 1], not {t.dtype} "
                             f"(frame {i} of {what})")
        a = t.cpu().permute(1, 2, 0).numpy()
    elif isinstance(obj, np.ndarray):
        a = obj
        if a.ndim != 3 or a.shape[2] != 3:
            hint = " (channels first? numpy frames are [H, W, 3])" if a.ndim == 3 and a.shape[0] == 3 else ""
            raise InputError(f"a numpy frame is [H, W, 3], but frame {i} of {what} is {_describe(obj)}{hint}")
    else:
        raise InputError(f"a frame is a numpy array [H, W, 3] or a torch tensor [3, H, W], but frame {i} of "
                         f"{what} is {_describe(obj)}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise InputError(f"frame {i} of {what} is empty: {_describe(obj)}")
    if size is not None and (a.shape[1], a.shape[0]) != tuple(size):
        raise InputError(f"frame {i} of {what} is {a.shape[1]}x{a.shape[0]}, not {size[0]}x{size[1]} like "
                         f"the first (all frames of a video have one size)")
    return np.ascontiguousarray(_to_uint8(a, f"frame {i} of {what}"))


def _to_uint8(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind != "f":
        raise InputError(f"frame samples must be uint8, or float in [0, 1], not {a.dtype} ({what})")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)  # NaN when any sample is
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or hi > 1:
        raise InputError(f"float frames must hold finite values in [0, 1] ({what} reaches {lo:.4g}..{hi:.4g})")
    return np.round(a.astype(np.float64) * 255).astype(np.uint8)


class _Checked:
    """The frames of a source, checked one by one as they are iterated (:func:`_frame`);
    iterable again when the source is (a one-shot iterator: once).  At the end: at least
    one frame, and :attr:`count` frames when that was stated."""

    def __init__(self, source, first, size, what, count):
        self.source, self.first, self.size, self.what, self.count = source, first, size, what, count
        self.one_shot = first is not None  # an iterator whose first frame was taken
        self.used = False

    def __iter__(self):
        if self.one_shot:
            if self.used:
                raise InputError(f"the frames of {self.what} came from an iterator and were read already "
                                 "(pass a list, or read the file again, to go over them twice)")
            self.used = True
            it = _chain([self.first], self.source)
        else:
            it = iter(self.source)
        n = 0
        for f in it:
            if n >= MAX_FRAMES:
                check_frames(n + 1, self.what)
            yield _frame(f, n, self.what, self.size)
            n += 1
        if n == 0:
            raise InputError(f"{self.what} has no frames")
        if self.count is not None and n != self.count:
            raise InputError(f"{self.what} has {n} frames, not the {self.count} its count says")


_NOTHING = object()


def _chain(first, rest):
    yield from first
    yield from rest


def from_user(video, fps=None, limit=None) -> Video:
    """Any accepted video -> :class:`Video` (frames checked lazily when they come from a
    list or an iterator); :class:`InputError` naming what was passed."""
    if isinstance(video, Video):
        rate_ = check_fps(video.fps, "the video's frame rate")
        if fps is not None and check_fps(fps) != rate_:
            raise InputError(f"the video is at {_fps_text(rate_)} fps, not {_fps_text(check_fps(fps))} fps")
        w, h = video.width, video.height
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) and s > 0
                   for s in (w, h)):
            raise InputError(f"Video.width and Video.height must be positive integers, not {w!r} and {h!r}")
        image.check_size(int(w), int(h), limit=limit, what="the video's frames")
        count = video.count
        if count is not None:
            if isinstance(count, (bool, np.bool_)) or not isinstance(count, numbers.Integral) or count < 1:
                raise InputError(f"Video.count is a number of frames >= 1 (or None), not {count!r}")
            check_frames(int(count))
            count = int(count)
        frames = video.frames
        if isinstance(frames, _Checked) and frames.size == (w, h) and frames.count == count:
            return video if rate_ == video.fps else Video(frames, rate_, int(w), int(h), count)
        if isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.shape[1:] == (h, w, 3) \
                and count in (None, frames.shape[0]) and frames.shape[0]:
            return Video(frames, rate_, int(w), int(h), frames.shape[0])
        if frames is None or isinstance(frames, (str, bytes)) or not hasattr(frames, "__iter__"):
            raise InputError(f"Video.frames must be an iterable of frames, not {_describe(frames)}")
        first = None
        if iter(frames) is frames:  # a one-shot iterator: its first frame is taken (and given back)
            first = next(frames, _NOTHING)
            if first is _NOTHING:
                raise InputError("the video has no frames")
        return Video(_Checked(frames, first, (int(w), int(h)), "the video", count), rate_, int(w), int(h), count)
    if objects.is_tensor(video) or isinstance(video, np.ndarray):
        a = _array_frames(video)
        fps = _needed_fps(video, fps)
        image.check_size(a.shape[2], a.shape[1], limit=limit, what="the video's frames")
        return Video(a, fps, a.shape[2], a.shape[1], a.shape[0])
    if isinstance(video, (str, bytes, os.PathLike)) or video is None or isinstance(video, (numbers.Number, dict)) \
            or not hasattr(video, "__iter__"):
        raise InputError(f"a video is a codec.media.video.Video, a numpy array [T, H, W, 3] or torch tensor "
                         f"[T, 3, H, W] with its fps, or a list of frames with its fps, not {_describe(video)}")
    fps = _needed_fps(video, fps)
    if isinstance(video, (list, tuple)):
        if not video:
            raise InputError("the video has no frames (an empty list)")
        f0 = _frame(video[0], 0, "the video", None)
        check_frames(len(video))
        count, first, source = len(video), None, video
    else:
        it = iter(video)
        item = next(it, _NOTHING)
        if item is _NOTHING:
            raise InputError(f"the video has no frames (an empty {type(video).__name__})")
        f0 = _frame(item, 0, "the video", None)
        count, first, source = None, item, it
    size = (f0.shape[1], f0.shape[0])
    image.check_size(*size, limit=limit, what="the video's frames")
    return Video(_Checked(source, first, size, "the video", count), fps, size[0], size[1], count)


def _needed_fps(video, fps) -> Fraction:
    if fps is None:
        raise InputError(f"video frames need their frame rate (e.g. fps=25), got {_describe(video)} without one")
    return check_fps(fps)


def _array_frames(video) -> np.ndarray:
    """numpy ``[T, H, W, 3]`` / torch ``[T, 3, H, W]`` -> uint8 numpy ``[T, H, W, 3]``."""
    if objects.is_tensor(video):
        import torch

        t = objects.dense(video, NAME)
        if t.ndim != 4 or t.shape[1] != 3:
            hint = " (channels last? torch videos are [T, 3, H, W]: .permute(0, 3, 1, 2))" \
                if t.ndim == 4 and t.shape[-1] == 3 else ""
            raise InputError(f"a torch video is [T, 3, H, W], not {_describe(video)}{hint}")
        if not t.dtype.is_floating_point and t.dtype != torch.uint8:
            raise InputError(f"video samples must be uint8, or float in [0, 1], not {t.dtype} ({_describe(video)})")
        a = t.cpu().permute(0, 2, 3, 1).numpy()
    else:
        a = video
        if a.ndim != 4 or a.shape[3] != 3:
            hint = (" (channels first? numpy videos are [T, H, W, 3]: .transpose(0, 2, 3, 1))"
                    if a.ndim == 4 and a.shape[1] == 3 else
                    " (one frame? add an axis: x[None])" if a.ndim == 3 and a.shape[2] == 3 else "")
            raise InputError(f"a numpy video is [T, H, W, 3], not {_describe(video)}{hint}")
    if a.shape[0] < 1 or a.shape[1] < 1 or a.shape[2] < 1:
        raise InputError(f"the video is empty: {_describe(video)}")
    check_frames(a.shape[0])
    return np.ascontiguousarray(_to_uint8(a, _describe(video)))


def to_user(video: Video, output: str = "video"):
    """``"video"`` (the :class:`Video` itself: its frames as they are, lazy ones unread),
    ``"numpy"`` (uint8 ``[T, H, W, 3]``) or ``"torch"`` (float32 ``[T, 3, H, W]``, exactly the
    8-bit values / 255).  The last two hold every frame in memory."""
    if output not in OUTPUTS:
        raise InputError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    if output == "video":
        return video
    frames = video.frames
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        a = frames
    elif video.count:
        a = np.empty((video.count, video.height, video.width, 3), np.uint8)
        n = 0
        for n, f in enumerate(frames, 1):
            if n > video.count:
                raise InputError(f"the video has more frames than its count ({video.count})")
            a[n - 1] = f
        if n != video.count:
            raise InputError(f"the video has {n} frames, not its count of {video.count}")
    else:
        a = np.stack(list(frames))
    if output == "numpy":
        return a
    import torch

    t = torch.from_numpy(a if a.flags.writeable else np.array(a))
    return t.permute(0, 3, 1, 2).float().div_(255)


# ----------------------------------------------------------------------------- reading files
def _snap_rate(r: Fraction) -> Fraction:
    """A rate within 1e-5 of an NTSC rate ``k * 1000/1001`` (Matroska's millisecond
    timestamps give 29011/242 for 120000/1001) is taken as that rate."""
    ntsc = Fraction(round(r * Fraction(1001, 1000)) * 1000, 1001)
    return ntsc if ntsc and r != ntsc and abs(r / ntsc - 1) < 1e-5 else r


def _q(x) -> Fraction | None:
    if x is None:
        return None
    try:
        f = Fraction(x)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return f if f > 0 else None


class _AvSource:
    """A file FFmpeg demuxes: the first video stream (not a cover picture), decoded
    strictly; the first frame decoded when opened."""

    def __init__(self, path, limit):
        self.path, self.limit = path, limit
        self.container, self.stream = self._open()
        try:
            self._header()
            self._decoded = self._decode(self.container, self.stream)
            self._first = next(self._decoded, None)
            if self._first is None:
                raise InputError(f"{path} has no frames")
            f = self._first
            if (f.width, f.height) != (self.width, self.height):
                self.width, self.height = f.width, f.height
                image.check_size(self.width, self.height, limit=limit, what=path)
            self.pix_fmt = f.format.name
            _check_depth(self.pix_fmt, path)
        except BaseException:
            self.container.close()
            raise

    def _open(self):
        import av

        path = self.path
        try:
            container = av.open(path, metadata_errors="ignore")
        except PermissionError:
            raise InputError(f"cannot read {path} (permission denied)") from None
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise InputError(f"{path} is not a video file FFmpeg can decode ({objects.av_text(exc)})") from None
        streams = [s for s in container.streams.video if not _is_cover(s)]
        if not streams:
            kinds = sorted({s.type for s in container.streams} - {"video"})
            cover = any(True for _ in container.streams.video)
            container.close()
            only = (["a cover picture"] if cover else []) + kinds
            raise InputError(f"{path} has no video stream" + (f" (only {', '.join(only)})" if only else ""))
        stream = streams[0]
        # slice threads only: FFmpeg's frame threads may log while the decoder is freed, and
        # with PyAV's Python log callback installed (av.logging.set_level) that deadlocks on the GIL
        stream.thread_type = "SLICE"
        stream.codec_context.options = dict(DECODER_OPTIONS)
        return container, stream

    def _header(self):
        path, s = self.path, self.stream
        cc = s.codec_context
        self.width, self.height = int(cc.width or 0), int(cc.height or 0)
        if self.width and self.height:
            image.check_size(self.width, self.height, limit=self.limit, what=path)
        if cc.pix_fmt:
            _check_depth(cc.pix_fmt, path)
        avg, base, guessed = _q(s.average_rate), _q(s.base_rate), _q(s.guessed_rate)
        fps = guessed or avg or base
        if fps is None:
            raise InputError(f"{path} states no frame rate")
        nominal = _rate_mismatch(avg, guessed, base)
        if nominal is not None:
            raise InputError(f"{path} has a variable frame rate (its stream says {float(avg):.4g} fps on average, "
                             f"{float(nominal):.4g} fps nominal): this codec codes constant-rate video "
                             f"(convert it first, e.g. ffmpeg -i IN -fps_mode cfr -r {_fps_text(fps)} OUT.mkv)")
        self.fps = check_fps(_snap_rate(fps), f"{path}: its frame rate")
        self.count = int(s.frames) if s.frames and s.frames > 0 else None  # what the header states (mp4, mov)
        est = None
        if s.duration and s.time_base:
            est = round(s.duration * s.time_base * self.fps)
        elif self.container.duration:
            est = round(Fraction(self.container.duration, 1_000_000) * self.fps)
        if self.count is None and self.container.format.name == "yuv4mpegpipe":
            self.count = _y4m_count(path, cc.pix_fmt, self.width, self.height)
        self.estimated = self.count or (est if est and est > 0 else None)
        if self.count:
            check_frames(self.count, path)
        elif self.estimated and self.estimated > MAX_FRAMES * 1.01 + 1:
            check_frames(self.estimated, path)

    def _decode(self, container, stream):
        return objects.decoded(container, stream, self.path)

    def count_frames(self) -> int:
        """Frames by demuxing the whole file (packets, not decoded)."""
        import av

        container, stream = self._open()
        with container:
            try:
                return sum(1 for p in container.demux(stream) if p.size)
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                raise InputError(f"cannot read {self.path}: {objects.av_text(exc)} (a corrupt or truncated file?)") \
                    from None

    def frames(self, start, stop):
        if self._first is not None:
            container, decoded, first = self.container, self._decoded, [self._first]
            self._first = None
        else:
            container, stream = self._open()
            decoded, first = self._decode(container, stream), []
        tb = self.stream.time_base
        period = 1 / self.fps
        t0 = None
        n = 0
        try:
            for frame in _chain(first, decoded):
                if n >= MAX_FRAMES:
                    check_frames(n + 1, self.path)
                if (frame.width, frame.height) != (self.width, self.height):
                    raise InputError(f"{self.path} changes its frame size from {self.width}x{self.height} to "
                                     f"{frame.width}x{frame.height} at frame {n} (not supported)")
                if frame.pts is not None and tb:
                    t0 = frame.pts if t0 is None else t0
                    t = (frame.pts - t0) * tb
                    if abs(t - n * period) > period / 2:
                        raise InputError(
                            f"{self.path} has a variable frame rate (frame {n} is at {float(t):.3f} s, not "
                            f"{float(n * period):.3f} s at {_fps_text(self.fps)} fps): this codec codes "
                            f"constant-rate video (convert it first, e.g. ffmpeg -i IN -fps_mode cfr -r "
                            f"{_fps_text(self.fps)} OUT.mkv)")
                if n >= start:
                    _check_depth(frame.format.name, self.path)
                    yield _frame_to_rgb(frame)
                n += 1
                if stop is not None and n >= stop:
                    return
        finally:
            if container is not self.container:
                container.close()
        if n == 0:
            raise InputError(f"{self.path} has no frames")
        if self.count is not None and n != self.count:
            raise InputError(f"{self.path} has {n} frames, not the {self.count} its header states "
                             f"(a corrupt or truncated file?)")
        self.count = n

    def close(self):
        self.container.close()


def _y4m_count(path, pix_fmt, width, height) -> int | None:
    """The frames of a Y4M file from its size, when its frames have no parameters (the
    first has none) and its pixel format is one this module reads; :class:`InputError`
    when the size is not a whole number of them (FFmpeg would drop a truncated last
    frame silently); ``None`` when it cannot be told."""
    if not pix_fmt or not _converts(pix_fmt) or not width or not height:
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
            nbytes = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    end = head.find(b"\n")
    if not head.startswith(b"YUV4MPEG2 ") or end < 0:
        return None
    per = len(b"FRAME\n") + sum(r * c for r, c in _plane_shapes(pix_fmt, width, height))
    rest = nbytes - (end + 1)
    if rest and head[end + 1:end + 7] != b"FRAME\n":
        return None
    if rest % per:
        raise InputError(f"{path} is not a whole number of {width}x{height} {pix_fmt} frames "
                         f"({rest % per} bytes left over: a truncated file?)")
    return rest // per or None


def _rate_mismatch(avg, guessed, base):
    """The nominal rate (FFmpeg's guess, or r_frame_rate) that differs from the average by
    more than :data:`VFR_HINT`, or ``None``; an r_frame_rate of twice the average is the
    field rate of interlaced video, not a mismatch."""
    if not avg:
        return None
    for nominal in (guessed, base):
        if nominal and abs(avg / nominal - 1) > VFR_HINT and not (
                nominal is base and abs(nominal / (2 * avg) - 1) <= VFR_HINT):
            return nominal
    return None


def _is_cover(stream) -> bool:
    try:
        import av

        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):  # pragma: no cover - older PyAV
        return False


class _RawSource:
    """A headerless file of frames of one pixel format, read plane by plane with numpy."""

    def __init__(self, path, size, fps, pix_fmt, limit):
        self.path = path
        if size is None or fps is None:
            raise InputError(f"{path} is raw video: pass its frame size, rate and pixel format "
                             f"(--size WxH --fps F --pix-fmt yuv420p; size=(W, H), fps=, pix_fmt= in Python)")
        self.width, self.height = parse_size(size, f"the frame size of {path}")
        image.check_size(self.width, self.height, limit=limit, what=path)
        self.fps = check_fps(fps, f"the frame rate of {path}")
        fmt = DEFAULT_RAW_FORMAT if pix_fmt is None else pix_fmt
        if not isinstance(fmt, str) or fmt not in RAW_FORMATS:
            if isinstance(fmt, str):
                _check_depth(fmt, path)
            raise InputError(f"raw video is read in {', '.join(RAW_FORMATS)}, not {fmt!r} ({path})")
        self.pix_fmt = fmt
        self.shapes = _plane_shapes(fmt, self.width, self.height)
        self.frame_bytes = sum(r * c for r, c in self.shapes)
        try:
            nbytes = os.path.getsize(path)
            with open(path, "rb"):
                pass
        except PermissionError:
            raise InputError(f"cannot read {path} (permission denied)") from None
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        if nbytes == 0:
            raise InputError(f"{path} has no frames (an empty file)")
        if nbytes % self.frame_bytes:
            raise InputError(f"{path} is {nbytes} bytes, not a whole number of {self.width}x{self.height} {fmt} "
                             f"frames ({self.frame_bytes} bytes each): is the size or pixel format right?")
        self.count = self.estimated = nbytes // self.frame_bytes
        check_frames(self.count, path)

    def frames(self, start, stop):
        stop = self.count if stop is None else min(stop, self.count)
        try:
            f = open(self.path, "rb")
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        with f:
            f.seek(start * self.frame_bytes)
            for n in range(start, stop):
                buf = f.read(self.frame_bytes)
                if len(buf) != self.frame_bytes:
                    raise InputError(f"{self.path} ends in frame {n} of {self.count} (it was truncated while read)")
                a, planes, pos = np.frombuffer(buf, np.uint8), [], 0
                for rows, cols in self.shapes:
                    planes.append(a[pos:pos + rows * cols].reshape(rows, cols))
                    pos += rows * cols
                yield np.ascontiguousarray(_planes_to_rgb(self.pix_fmt, planes))

    def close(self):
        pass


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


class _PngSource:
    """A folder of PNG frames (any ``*.png``, in natural name order), read with Pillow."""

    def __init__(self, path, fps, limit):
        self.path, self.limit = path, limit
        try:
            names = os.listdir(path)
        except OSError as exc:
            raise InputError(f"cannot read the folder {path}: {exc.strerror or exc}") from None
        self.files = [os.path.join(path, n) for n in sorted(
            (n for n in names if n.lower().endswith(".png") and not n.startswith(".")), key=_natural)]
        if not self.files:
            raise InputError(f"{path} is a folder with no PNG frames (a video is read from a file, or a folder "
                             f"of PNG frames)")
        if fps is None:
            raise InputError(f"{path} is a folder of PNG frames: pass its frame rate (--fps F; fps= in Python)")
        self.fps = check_fps(fps, f"the frame rate of {path}")
        info = image.probe(self.files[0], limit=limit)
        self.width, self.height = info.width, info.height
        self.pix_fmt = "rgb24" if info.colour == "rgb" else "gray"
        self.count = self.estimated = len(self.files)
        check_frames(self.count, path)

    def frames(self, start, stop):
        for n, name in enumerate(self.files[start:stop], start):
            rgb = image.read(name, limit=self.limit).rgb
            if rgb.shape[:2] != (self.height, self.width):
                raise InputError(f"{name} is {rgb.shape[1]}x{rgb.shape[0]}, not {self.width}x{self.height} like "
                                 f"the first frame of {self.path} (all frames of a video have one size)")
            yield rgb

    def close(self):
        pass


class Reader:
    """A video file's frames, decoded one at a time (bounded memory for any length).

    Opening checks everything that can be checked before the frames: the file (it
    exists, can be read, FFmpeg can open it), a video stream, the frame size against the
    pixel limit (``limit``: pixels per frame), the frame rate, the bit depth (8), a
    variable rate the stream's rates show; and it decodes the first frame (a file with
    none is refused).  Then :attr:`width`, :attr:`height`, :attr:`fps` (a Fraction),
    :attr:`pix_fmt` (the source's), :attr:`count` (the number of frames when the file
    states it: mp4/mov headers, raw and PNG folders by their size; else ``None`` until
    :meth:`frames` has read the file to its end) and :attr:`estimated` (``count``, or one
    from the file's duration) are known.

    ``size`` / ``fps`` / ``pix_fmt`` are for raw ``.yuv`` files (``fps`` also for a folder
    of PNG frames).  Use as a context manager (it closes the file)."""

    def __init__(self, path, size=None, fps=None, pix_fmt=None, limit=None):
        self.path = p = os.fspath(path)
        raw = os.path.splitext(p)[1].lower() in RAW_EXTENSIONS
        if not os.path.exists(p):
            raise InputError(f"no such file: {p}")
        if os.path.isdir(p):
            _no_raw_args(p, size, pix_fmt, "a folder of PNG frames")
            self._src = _PngSource(p, fps, limit)
        elif raw:
            self._src = _RawSource(p, size, fps, pix_fmt, limit)
        else:
            _no_raw_args(p, size, pix_fmt, "a video file")
            self._src = _AvSource(p, limit)
            if fps is not None and check_fps(fps) != self._src.fps:
                self._src.close()
                raise InputError(f"{p} is at {_fps_text(self._src.fps)} fps, not {_fps_text(check_fps(fps))} "
                                 f"(fps is for raw .yuv files and folders of PNG frames)")
        s = self._src
        self.width, self.height, self.fps, self.pix_fmt = s.width, s.height, s.fps, s.pix_fmt

    @property
    def count(self) -> int | None:
        return self._src.count

    @property
    def estimated(self) -> int | None:
        return self._src.estimated

    def info(self) -> VideoInfo:
        """The descriptor of what is read: RGB, 8 bits; ``frames`` is :attr:`count`, else the
        estimate, else the file's packets counted (demuxed, not decoded)."""
        n = self.count or self.estimated
        if not n:
            n = self._src.count_frames()
            if n == 0:
                raise InputError(f"{self.path} has no frames")
        check_frames(n, self.path)
        return VideoInfo(self.width, self.height, n, (self.fps.numerator, self.fps.denominator), "rgb", 8)

    def frames(self, start: int = 0, stop: int | None = None):
        """uint8 ``[H, W, 3]`` RGB frames ``start`` .. ``stop - 1`` (all by default), decoded in
        order (a container's frames before ``start`` are decoded and dropped; a raw file's
        are skipped).  :class:`InputError` for corrupt data, a variable frame rate (a
        frame's timestamp more than half a frame from ``n / fps``), a size that changes,
        frames of more than 8 bits, a count other than the header's, or no frames."""
        for v, name in ((start, "start"), (stop, "stop")):
            if v is not None and (isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < 0):
                raise InputError(f"{name} is a frame number >= 0, not {v!r}")
        start = int(start)
        stop = None if stop is None else int(stop)
        if stop is not None and stop <= start:
            return
        yield from self._src.frames(start, stop)

    def close(self) -> None:
        self._src.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _no_raw_args(path, size, pix_fmt, what) -> None:
    if size is not None or pix_fmt is not None:
        raise InputError(f"{path} is {what}, which states its own frame size and format: size and pix_fmt "
                         f"(--size, --pix-fmt) are for raw {' / '.join(RAW_EXTENSIONS)} files")


def probe(path, size=None, fps=None, pix_fmt=None, limit=None) -> VideoInfo:
    """What :func:`read` would give, without decoding past the first frame: the same errors
    for a missing, undecodable, empty, 10-bit, variable-rate (as the stream's rates show)
    or over-the-limit file.  ``frames`` is exact for raw files, PNG folders, y4m and files
    whose header states it (mp4, mov), else estimated from the duration (or the packets
    counted when the file states none)."""
    with Reader(path, size, fps, pix_fmt, limit) as r:
        return r.info()


class _FileFrames:
    """The frames of a file, decoded each time they are iterated (a :class:`Reader` each time)."""

    def __init__(self, path, size, fps, pix_fmt, limit):
        self.args = (path, size, fps, pix_fmt, limit)

    def __iter__(self):
        with Reader(*self.args) as r:
            yield from r.frames()


def read(path, size=None, fps=None, pix_fmt=None, limit=None) -> Video:
    """A :class:`Video` of a file (:class:`Reader`'s checks now), whose frames are decoded
    as they are iterated, each time anew (bounded memory).  ``count`` is the number of
    frames the file states (see :attr:`Reader.count`), else ``None``."""
    with Reader(path, size, fps, pix_fmt, limit) as r:
        w, h, rate_, count = r.width, r.height, r.fps, r.count
    return Video(_FileFrames(os.fspath(path), size, fps, pix_fmt, limit), rate_, w, h, count)


# ----------------------------------------------------------------------------- writing files
def _format_of(path, format) -> str:
    if format is not None:
        if format not in _FORMAT_NAMES:
            raise InputError(f"video is written as y4m, mkv (FFV1) or png (a folder of frames), not {format!r}")
        return _FORMAT_NAMES[format]
    p = os.fspath(path)
    if p.endswith(("/", os.sep)) or os.path.isdir(p):
        return "png"
    ext = os.path.splitext(p)[1].lower()
    if ext in WRITE_FORMATS:
        return WRITE_FORMATS[ext]
    if not ext:
        return "png"
    raise InputError(f"cannot write {p}: video is written as .y4m, .mkv (lossless FFV1) or a folder of PNG "
                     f"frames (a name without an extension, or format='png')")


def _check_folder(path: str, force: bool) -> None:
    """Refuse before any work: an existing file or link, a non-empty folder without
    ``force``, and (even with it) a folder holding anything but ``frame_NNNNNN.png`` files."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise InputError(f"output {path} is a symbolic link: only folders of frames are ever replaced")
        if not stat.S_ISDIR(st.st_mode):
            raise InputError(f"output {path} exists and is not a folder (PNG frames are written into a folder)")
        names = os.listdir(path)
        if names and not force:
            raise InputError(f"output folder {path} exists and is not empty (use --force to replace it)")
        if any(not _FRAME_RE.match(n) or not os.path.isfile(os.path.join(path, n)) for n in names):
            raise InputError(f"output folder {path} holds files other than frame_NNNNNN.png: only a folder of "
                             f"frames is ever replaced")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise InputError(f"output directory {d} does not exist")
    if not os.access(d, os.W_OK):
        raise InputError(f"cannot write to {d} (permission denied)")


def is_frame_folder(path) -> bool:
    """Whether ``path`` is an existing, non-empty folder of ``frame_NNNNNN.png`` files only (what
    the PNG writer makes; ``codec decode -o FOLDER`` replaces it with ``--force``)."""
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return bool(names) and all(_FRAME_RE.match(n) for n in names)


def _check_output(path: str, format: str, force: bool) -> None:
    from codec.fileio import check_output

    if format == "png":
        _check_folder(path.rstrip("/" + os.sep) or path, force)
    else:
        check_output(path, force)


class _Y4m:
    def __init__(self, target, width, height, fps):
        self.f = open(target, "wb")
        self.f.write(f"YUV4MPEG2 W{width} H{height} F{fps.numerator}:{fps.denominator} {Y4M_TAGS}\n".encode())

    def write(self, rgb):
        y, u, v = rgb_to_yuv420(rgb)
        self.f.write(b"FRAME\n")
        for p in (y, u, v):
            self.f.write(p.tobytes())

    def close(self):
        self.f.close()

    abort = close


class _Ffv1:
    def __init__(self, target, width, height, fps):
        import av

        self.out = av.open(target, "w", format="matroska")
        try:
            self.stream = self.out.add_stream("ffv1", rate=fps, options=dict(FFV1_OPTIONS))
            self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, FFV1_PIX_FMT
        except BaseException:
            self.out.close()
            raise
        self.width, self.height, self.n = width, height, 0

    def write(self, rgb):
        import av

        frame = av.VideoFrame(self.width, self.height, FFV1_PIX_FMT)
        p = frame.planes[0]
        a = np.frombuffer(p, np.uint8)[:p.height * p.line_size].reshape(p.height, p.line_size)
        a = a[:, :4 * self.width].reshape(self.height, self.width, 4)
        a[..., 0], a[..., 1], a[..., 2], a[..., 3] = rgb[..., 2], rgb[..., 1], rgb[..., 0], 0
        frame.pts = self.n
        self.n += 1
        for packet in self.stream.encode(frame):
            self.out.mux(packet)

    def close(self):
        for packet in self.stream.encode(None):
            self.out.mux(packet)
        self.out.close()

    def abort(self):
        self.out.close()


class _PngFolder:
    """PNG frames into a temporary folder beside ``path``, renamed onto it by :meth:`close`."""

    def __init__(self, path, force):
        self.path, self.force = path.rstrip("/" + os.sep) or path, force
        d = os.path.dirname(os.path.abspath(self.path))
        self.tmp = tempfile.mkdtemp(dir=d, prefix="." + os.path.basename(self.path) + ".", suffix=".tmp")
        self.n = 0

    def write(self, rgb):
        from PIL import Image

        self.n += 1
        with open(os.path.join(self.tmp, FRAME_NAME.format(self.n)), "wb") as f:
            Image.fromarray(rgb).save(f, format="PNG")
            f.flush()
            os.fsync(f.fileno())

    def close(self):
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o777 & ~umask)
        _check_folder(self.path, self.force)  # the target may have changed while we wrote
        d = os.path.dirname(os.path.abspath(self.path))
        old = None
        if os.path.lexists(self.path):
            old = tempfile.mkdtemp(dir=d, prefix="." + os.path.basename(self.path) + ".", suffix=".old")
            os.rename(self.path, old)  # onto the empty folder just made
        try:
            os.rename(self.tmp, self.path)
        except BaseException:
            if old is not None:
                os.rename(old, self.path)
            self.abort()
            raise
        if old is not None:  # the frames it held (checked above), then the folder if that empties it
            for n in os.listdir(old):
                if _FRAME_RE.match(n):
                    os.unlink(os.path.join(old, n))
            try:
                os.rmdir(old)
            except OSError:  # pragma: no cover - something was added meanwhile: left as it is
                pass

    def abort(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class Writer:
    """Frames into a video file one at a time (bounded memory): ``with Writer(path, width,
    height, fps) as w: w.write(frame)``.  The format is ``format`` (``"y4m"``, ``"mkv"`` /
    ``"ffv1"`` or ``"png"``) or the path's (see :data:`WRITE_FORMATS`; a folder of PNG frames
    for a path ending in ``/`` or without an extension).  Atomic: the output appears,
    whole, when the block ends without an error and at least one frame was written, and
    nothing is left otherwise (an error, KeyboardInterrupt).  An existing output is
    refused unless ``force`` (and even then only a regular file, or a folder of frames,
    is replaced)."""

    def __init__(self, path, width: int, height: int, fps, force: bool = False, format: str | None = None):
        self.path, self.force = os.fspath(path), bool(force)
        self.format = _format_of(self.path, format)
        self.width, self.height = parse_size((width, height), "the output's frame size")
        self.fps = check_fps(fps, "the output's frame rate")
        _check_output(self.path, self.format, self.force)  # before the work
        self.count = 0
        self._sink = None
        self._ctx = None

    def __enter__(self):
        if self.format == "png":
            self._sink = _PngFolder(self.path, self.force)
            return self
        from codec.fileio import atomic_path

        self._ctx = atomic_path(self.path, self.force)
        tmp = self._ctx.__enter__()
        try:
            self._sink = (_Y4m if self.format == "y4m" else _Ffv1)(tmp, self.width, self.height, self.fps)
        except BaseException:
            self._ctx.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, frame) -> None:
        """One frame: uint8 ``[H, W, 3]`` RGB (or float in [0, 1], or a torch ``[3, H, W]``), of the writer's size."""
        if self._sink is None:
            raise InputError("Writer is a context manager: with Writer(path, width, height, fps) as w: w.write(frame)")
        self._sink.write(_frame(frame, self.count, "the output", (self.width, self.height)))
        self.count += 1

    def __exit__(self, *exc):
        sink, self._sink = self._sink, None
        if exc[0] is None and self.count == 0:
            err = InputError(f"no frames were written to {self.path} (a video needs at least one; nothing was written)")
            exc = (InputError, err, None)
        else:
            err = None
        try:
            if exc[0] is None:
                sink.close()
            else:
                try:
                    sink.abort()
                except Exception:  # noqa: BLE001 - the first error is the one to report
                    pass
        except BaseException:
            if self._ctx is not None:
                self._ctx.__exit__(*sys.exc_info())
            else:
                sink.abort()
            raise
        if self._ctx is not None:
            self._ctx.__exit__(*exc)  # renames the file into place, or removes it
        if err is not None:
            raise err
        return False


def write(path, video, force: bool = False, format: str | None = None) -> None:
    """Write ``video`` (a :class:`Video`, or anything :func:`from_user` takes with its fps
    given in the Video) with a :class:`Writer`: atomically, the whole video or nothing."""
    if not isinstance(video, Video):
        raise InputError(f"write takes a codec.media.video.Video, not {_describe(video)} "
                         "(make one with codec.media.video.from_user(x, fps=...))")
    video = from_user(video, limit=MAX_SIDE * MAX_SIDE)  # what was decoded, at any pixel limit
    with Writer(path, video.width, video.height, video.fps, force, format) as w:
        for f in video.frames:
            w.write(f)
