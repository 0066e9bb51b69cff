"""Image media and image codecs for the evaluator.

Classical codecs run in-process through Pillow (JPEG, WebP, AVIF, JPEG 2000) and PyAV
(HEVC intra with libx265, AV1 intra with SVT-AV1); no external binaries.  ``ours`` wraps
this project's public API (``codec.encode`` / ``codec.decode``).

What the byte count covers (also written to each results JSON as ``bits_counted``):

- Pillow codecs: the complete file as Pillow writes it to memory (JFIF, RIFF/WebP,
  HEIF/AVIF, raw JPEG 2000 codestream ``.j2k``), headers included, no metadata (no
  EXIF/ICC: images are written from bare arrays).
- PyAV codecs: the encoded elementary stream, i.e. the concatenated packets out of the
  encoder: HEVC Annex-B NAL units including VPS/SPS/PPS, AV1 OBUs including the
  sequence header; no container (an MP4/MKV/HEIF wrapper would add a few hundred bytes).
  x265's informational SEI (~2 kB of encoder settings text) is switched off (``info=0``)
  because no decoder needs it.
- ``ours``: the bytes returned by ``codec.encode`` (the project's container).

Colour conversion for PyAV codecs is done here in numpy, not by swscale: full-range
BT.601 YCbCr (the JFIF matrix, 8 bit); 4:2:0 chroma is the mean of each 2x2 block
(centred siting) and is upsampled bilinearly on decode.  Round trip without coding:
52.7 dB (4:4:4) and 46.9 dB (4:2:0) PSNR-RGB on kodim01, against 52.5 / 42.3 dB with
swscale's defaults.
"""
from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from codec.errors import CodecError
from codec.media import image_metrics as metrics
from codec.media.image import EXTENSIONS as IMAGE_EXTENSIONS
from codec.tools.registry import Codec, Media, register_codec, register_media


# --------------------------------------------------------------------------- media
class ImageMedia(Media):
    """Still images through the media layer (:mod:`codec.media.image`): files are read
    with its pixel limit, rates are its bits per pixel, metrics its PSNR-RGB and MS-SSIM
    (:mod:`codec.media.image_metrics`).  Items are uint8 ``H x W x 3`` RGB arrays."""

    name = "image"
    rate_key = "bpp"  # = codec.media.image.RATE_UNIT (a test checks it); bdrate/report need no media import
    rate_unit = "bpp"
    rate_label = "bits per pixel"
    rate_plot_max = 2.0  # the default grids span about 0.05-2 bpp on Kodak
    metric_keys = ("psnr-rgb", "ms-ssim-rgb")
    metric_info = {
        "psnr-rgb": {"label": "PSNR-RGB", "unit": "dB",
                     "description": "8-bit RGB, peak 255, per-image dB averaged"},
        "ms-ssim-rgb": {"label": "MS-SSIM", "unit": "", "db_scale": True,
                        "description": "pytorch_msssim on 8-bit RGB, data_range 255, float32"},
    }

    items_name = "images"
    extensions = IMAGE_EXTENSIONS

    def load(self, path: Path) -> np.ndarray:
        from codec.media import image

        return np.ascontiguousarray(image.read(path).rgb)

    def rate(self, nbytes: int, item: np.ndarray) -> float:
        from codec.media import image

        return image.rate(nbytes, image.Picture(item).info)

    def score(self, ref: np.ndarray, rec: np.ndarray) -> dict[str, float | None]:
        rec = metrics.as_uint8_rgb(rec)
        if rec.shape != ref.shape:
            raise CodecError(f"decoded image has shape {rec.shape}, original {ref.shape}")
        return {"psnr-rgb": metrics.psnr_rgb(ref, rec), "ms-ssim-rgb": metrics.ms_ssim_rgb(ref, rec)}


IMAGE = register_media(ImageMedia())


# --------------------------------------------------------------------------- Pillow
def _pil_versions() -> dict[str, str]:
    import PIL

    return {"pillow": PIL.__version__}


def _pil_decode(data: bytes) -> np.ndarray:
    from PIL import Image

    from codec.media import image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return image.from_user(im).rgb


class _PillowCodec(Codec):
    media = "image"
    pil_format = ""
    feature = ""
    bits_counted = "complete file written by Pillow (headers included, no metadata)"

    def _check(self) -> None:
        from PIL import features

        if self.feature and not features.check(self.feature):
            raise CodecError(f"{self.key}: this Pillow build has no {self.feature} support")

    def __init__(self) -> None:
        self._check()

    def save_options(self, quality) -> dict:
        raise NotImplementedError

    def encode(self, item: np.ndarray, quality) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(item, "RGB").save(buf, format=self.pil_format, **self.save_options(quality))
        return buf.getvalue()

    def decode(self, data: bytes, item: Any) -> np.ndarray:
        return _pil_decode(data)

    def library(self) -> str:
        from PIL import features

        names = {"webp": "libwebp", "jpg_2000": "OpenJPEG"}
        return f"{names.get(self.feature, self.feature)} {features.version(self.feature)}"

    def info(self) -> dict[str, Any]:
        return {
            "library": f"Pillow {_pil_versions()['pillow']}, {self.library()}",
            "chroma": self.chroma,
            "settings": self.settings,
            "quality": self.quality_meaning,
            "bits_counted": self.bits_counted,
        }


@register_codec("jpeg")
class JPEG(_PillowCodec):
    display_name = "JPEG"
    pil_format = "JPEG"
    feature = "jpg"
    chroma = "4:2:0 (YCbCr, libjpeg default subsampling)"
    settings = "optimize=True (optimised Huffman tables), baseline"
    quality_meaning = "libjpeg quality 1..100 (higher = better)"
    quality_range = (1, 100)
    default_qualities = (2, 3, 5, 8, 12, 16, 20, 30, 40, 50, 60, 70, 80, 90)

    def library(self) -> str:
        from PIL import features

        turbo = features.version("libjpeg_turbo")
        return f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}"

    def save_options(self, quality) -> dict:
        return {"quality": int(quality), "subsampling": "4:2:0", "optimize": True}


@register_codec("webp")
class WebP(_PillowCodec):
    display_name = "WebP"
    pil_format = "WEBP"
    feature = "webp"
    chroma = "4:2:0 (lossy WebP supports only 4:2:0)"
    settings = "lossy, method=6 (slowest, best compression)"
    quality_meaning = "libwebp quality 0..100 (higher = better)"
    quality_range = (0, 100)
    default_qualities = (0, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90)

    def save_options(self, quality) -> dict:
        return {"quality": int(quality), "method": 6, "lossless": False}


@register_codec("avif")
class AVIF(_PillowCodec):
    display_name = "AVIF"
    pil_format = "AVIF"
    feature = "avif"
    chroma = "4:4:4 (YCbCr full range)"
    settings = "libaom encoder, speed=6 (Pillow default), libavif default tuning, 1 thread, 8 bit"
    quality_meaning = "libavif quality 0..100 (higher = better)"
    quality_range = (0, 100)
    default_qualities = (2, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 85)

    def _check(self) -> None:
        super()._check()
        from PIL import AvifImagePlugin

        if not AvifImagePlugin.get_codec_version("aom"):
            raise CodecError("avif: this Pillow build has no libaom AV1 encoder")

    def library(self) -> str:
        from PIL import AvifImagePlugin, features

        return f"libavif {features.version('avif')}, libaom {AvifImagePlugin.get_codec_version('aom')}"

    def save_options(self, quality) -> dict:
        return {"quality": int(quality), "subsampling": "4:4:4", "speed": 6, "codec": "aom",
                "max_threads": 1, "range": "full"}


@register_codec("jpeg2000")
class JPEG2000(_PillowCodec):
    display_name = "JPEG 2000"
    pil_format = "JPEG2000"
    feature = "jpg_2000"
    chroma = "4:4:4 (irreversible colour transform, YCbCr)"
    settings = "irreversible 9/7 wavelet, 6 resolutions, 1 quality layer, raw .j2k codestream"
    bits_counted = "complete raw JPEG 2000 codestream (.j2k, no JP2 boxes)"
    quality_meaning = "target compression ratio (24/ratio = bpp; lower = better)"
    quality_type = float
    quality_range = (1.0, 10000.0)
    default_qualities = (12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 480)

    def save_options(self, quality) -> dict:
        return {"quality_mode": "rates", "quality_layers": [float(quality)], "irreversible": True,
                "mct": 1, "no_jp2": True}


class _Downscaled:
    """A classical codec on the picture downscaled ``factor`` times (bicubic, Pillow's
    antialiased resize), upscaled back (bicubic) after decoding: how a classical codec reaches
    the very low rates of a VQ tokenizer fairly.  The data is a 4-byte header (the picture's
    width and height, u16 each: the decoder needs them) and the small picture's file."""

    factor = 4
    base = None  # the codec class whose encoder runs on the small picture
    bits_counted = "4-byte size header + the complete file of the downscaled picture"

    def __init__(self) -> None:
        self.inner = self.base()

    def encode(self, item: np.ndarray, quality) -> bytes:
        import struct

        from PIL import Image

        h, w = item.shape[:2]
        small = Image.fromarray(item, "RGB").resize((max(1, round(w / self.factor)), max(1, round(h / self.factor))),
                                                  Image.BICUBIC)
        return struct.pack("<HH", w, h) + self.inner.encode(np.asarray(small), quality)

    def decode(self, data: bytes, item: Any) -> np.ndarray:
        import struct

        from PIL import Image

        w, h = struct.unpack("<HH", data[:4])
        small = self.inner.decode(data[4:], None)
        return np.asarray(Image.fromarray(small, "RGB").resize((w, h), Image.BICUBIC))

    def info(self) -> dict[str, Any]:
        out = self.inner.info()
        out["settings"] = (f"downscaled {self.factor}x (bicubic, antialiased), then {out['settings']}; "
                           f"upscaled back (bicubic)")
        out["bits_counted"] = self.bits_counted
        return out


def _downscaled(base, factor: int):
    name = f"{base.key}-down{factor}"
    cls = type(f"{base.__name__}Down{factor}", (_Downscaled, base), {
        "key": name, "factor": factor, "base": base, "display_name": f"{base.display_name} at 1/{factor} size, bicubic",
        "bits_counted": _Downscaled.bits_counted, "encode": _Downscaled.encode, "decode": _Downscaled.decode,
        "info": _Downscaled.info, "__init__": _Downscaled.__init__})
    globals()[cls.__name__] = cls  # (module-level, so that the evaluator's worker processes can unpickle it)
    return register_codec(name)(cls)


for _base in (WebP, AVIF):
    for _f in (2, 4):
        _downscaled(_base, _f)


# --------------------------------------------------------------------------- colour
_M601 = np.array([[0.299, 0.587, 0.114],
                  [-0.168735892, -0.331264108, 0.5],
                  [0.5, -0.418687589, -0.081312411]])
_M601_INV = np.linalg.inv(_M601)


def rgb_to_ycbcr(x: np.ndarray) -> np.ndarray:
    """8-bit RGB -> full-range BT.601 (JFIF) YCbCr, float64 (not rounded)."""
    y = x.astype(np.float64) @ _M601.T
    y[..., 1:] += 128.0
    return y


def ycbcr_to_rgb(y: np.ndarray) -> np.ndarray:
    y = y.astype(np.float64, copy=True)
    y[..., 1:] -= 128.0
    return np.clip(np.rint(y @ _M601_INV.T), 0, 255).astype(np.uint8)


def _to8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _pad_even(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    return np.pad(x, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _downsample2(c: np.ndarray) -> np.ndarray:
    h, w = c.shape
    return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _upsample2(c: np.ndarray) -> np.ndarray:
    """Bilinear x2 upsampling for centred chroma siting (edge replicated)."""
    p = np.pad(c.astype(np.float64), 1, mode="edge")
    # output sample 2i (2i+1) lies a quarter sample before (after) input sample i
    a, b = p[:-2], p[2:]
    mid = p[1:-1]
    rows = np.empty((2 * c.shape[0], p.shape[1]))
    rows[0::2] = 0.75 * mid + 0.25 * a
    rows[1::2] = 0.75 * mid + 0.25 * b
    l, r, m = rows[:, :-2], rows[:, 2:], rows[:, 1:-1]
    out = np.empty((rows.shape[0], 2 * c.shape[1]))
    out[:, 0::2] = 0.75 * m + 0.25 * l
    out[:, 1::2] = 0.75 * m + 0.25 * r
    return out


def to_planes(x: np.ndarray, chroma: str) -> list[np.ndarray]:
    """RGB -> list of 8-bit Y, Cb, Cr planes (4:4:4 or 4:2:0 on an even-padded image)."""
    ycc = rgb_to_ycbcr(x)
    planes = [_to8(ycc[..., 0])]
    for k in (1, 2):
        c = ycc[..., k]
        planes.append(_to8(_downsample2(c) if chroma == "420" else c))
    return planes


def from_planes(planes: list[np.ndarray], chroma: str) -> np.ndarray:
    y, cb, cr = (p.astype(np.float64) for p in planes)
    if chroma == "420":
        cb, cr = _upsample2(cb), _upsample2(cr)
    return ycbcr_to_rgb(np.stack([y, cb, cr], axis=-1))


# --------------------------------------------------------------------------- PyAV
def _quiet_av() -> None:
    import av

    try:
        av.logging.set_level(av.logging.ERROR)
    except Exception:  # pragma: no cover - older PyAV
        pass


class _PyAVCodec(Codec):
    media = "image"
    encoder = ""
    decoder = ""
    chroma_mode = "444"  # or "420"
    bits_counted = "encoded elementary stream: concatenated encoder packets, no container"

    def __init__(self) -> None:
        import av

        for name in (self.encoder, self.decoder):
            if name not in av.codecs_available:
                raise CodecError(f"{self.key}: PyAV {av.__version__} has no {name} codec")

    def encoder_options(self, quality) -> dict:
        raise NotImplementedError

    @property
    def pix_fmt(self) -> str:
        return "yuv444p" if self.chroma_mode == "444" else "yuv420p"

    def encode(self, item: np.ndarray, quality) -> bytes:
        import av

        _quiet_av()
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 logs to stderr unless told otherwise
        x = _pad_even(item) if self.chroma_mode == "420" else item
        h, w = x.shape[:2]
        cc = av.CodecContext.create(self.encoder, "w")
        cc.width, cc.height, cc.pix_fmt = w, h, self.pix_fmt
        cc.time_base = Fraction(1, 25)
        cc.framerate = Fraction(25, 1)
        try:
            cc.color_range = 2  # full range (JPEG), signalled in the VUI / sequence header
        except Exception:  # pragma: no cover
            pass
        cc.options = self.encoder_options(quality)
        frame = av.VideoFrame(w, h, self.pix_fmt)
        for plane, arr in zip(frame.planes, to_planes(x, self.chroma_mode)):
            ph, pw = arr.shape
            buf = np.frombuffer(plane, dtype=np.uint8).reshape(ph, plane.line_size)
            buf[:, :pw] = arr
        frame.pts = 0
        packets = list(cc.encode(frame)) + list(cc.encode(None))
        data = b"".join(bytes(p) for p in packets)
        if not data:
            raise CodecError(f"{self.key}: encoder produced no data")
        return data

    def decode(self, data: bytes, item: np.ndarray) -> np.ndarray:
        import av

        _quiet_av()
        dc = av.CodecContext.create(self.decoder, "r")
        frames = list(dc.decode(av.Packet(data))) + list(dc.decode(None))
        if len(frames) != 1:
            raise CodecError(f"{self.key}: decoder returned {len(frames)} frames, expected 1")
        f = frames[0]
        if f.format.name != self.pix_fmt:
            raise CodecError(f"{self.key}: decoded pixel format {f.format.name}, expected {self.pix_fmt}")
        planes = []
        for i, plane in enumerate(f.planes):
            arr = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
            planes.append(arr[:, : plane.width])
        rgb = from_planes(planes, self.chroma_mode)
        return np.ascontiguousarray(rgb[: item.shape[0], : item.shape[1]])

    def info(self) -> dict[str, Any]:
        import av

        return {
            "library": f"PyAV {av.__version__} (libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}), "
            f"encoder {self.encoder}, decoder {self.decoder}",
            "chroma": self.chroma,
            "settings": self.settings,
            "colour": "full-range BT.601 YCbCr 8 bit, converted in numpy"
            + ("; 4:2:0 by 2x2 mean, bilinear upsampling, odd sizes edge-padded" if self.chroma_mode == "420" else ""),
            "quality": self.quality_meaning,
            "bits_counted": self.bits_counted,
        }


@register_codec("hevc-intra")
class HEVCIntra(_PyAVCodec):
    display_name = "HEVC intra (x265)"
    encoder, decoder = "libx265", "hevc"
    chroma_mode = "444"
    chroma = "4:4:4 (Main 4:4:4 Intra profile)"
    preset = "veryslow"  # Kodak: 0.7 s/image; -2.9% BD-rate against medium (0.3 s)
    settings = (f"x265 preset {preset}, tune psnr, constant QP (ipratio=1), keyint=1, single frame, "
                "1 thread, info SEI off")
    quality_meaning = "x265 QP 0..51 (lower = better)"
    quality_range = (0, 51)
    default_qualities = (20, 23, 26, 29, 32, 35, 38, 41, 44, 47, 50)

    def encode(self, item: np.ndarray, quality) -> bytes:
        if min(item.shape[:2]) < 16:
            raise CodecError(f"{self.key}: x265 needs images of at least 16x16 pixels, got "
                             f"{item.shape[1]}x{item.shape[0]}")
        return super().encode(item, quality)

    def encoder_options(self, quality) -> dict:
        params = (f"qp={int(quality)}:ipratio=1:keyint=1:info=0:pools=1:frame-threads=1:"
                  "lookahead-threads=1:log-level=error")
        return {"preset": self.preset, "tune": "psnr", "x265-params": params}


@register_codec("av1-intra")
class AV1Intra(_PyAVCodec):
    display_name = "AV1 intra (SVT-AV1)"
    encoder, decoder = "libsvtav1", "libdav1d"
    chroma_mode = "420"
    chroma = "4:2:0 (SVT-AV1 encodes only 4:2:0, main profile)"
    preset = "2"  # Kodak: 2 s/image; -8% BD-rate against preset 6 (0.12 s), -3% against preset 4
    settings = (f"SVT-AV1 preset {preset}, tune PSNR, CQP, intra only (keyint=1: no key-frame QP offset), "
                "single frame, 1 thread (lp=1)")
    quality_meaning = "SVT-AV1 QP 1..63 (lower = better)"
    quality_range = (1, 63)
    default_qualities = (10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60)

    def __init__(self) -> None:
        super().__init__()
        if "libdav1d" not in __import__("av").codecs_available:  # pragma: no cover
            self.decoder = "av1"

    def encoder_options(self, quality) -> dict:
        return {"preset": self.preset, "qp": str(int(quality)), "svtav1-params": "lp=1:tune=1:keyint=1"}


# --------------------------------------------------------------------------- ours
# ``ours:MODEL`` (this project's codec, for an image or an audio model) lives in
# codec.tools.ours; imported here so that loading the image codecs registers it, as before.
from codec.tools.ours import Ours  # noqa: E402,F401
