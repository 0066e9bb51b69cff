"""The image medium: files and user objects in, 8-bit pictures out, bits per pixel.

One signal type through the image codec: a :class:`Picture` (uint8 ``H x W x 3`` RGB
samples and whether the original was gray).  Everything that takes pictures from users
or files goes through :func:`from_user` / :func:`read`; everything that gives them back
through :func:`to_user` / :func:`write`.  Metrics are in
:mod:`codec.media.image_metrics`.

Inputs accepted by :func:`from_user`: PIL images (any mode Pillow turns into RGB or L;
alpha is dropped), numpy arrays (``H x W`` or ``H x W x C``, C in 1, 3, 4; uint8, or
float in [0, 1]) and torch tensors (``[C, H, W]`` or ``[1, C, H, W]``, same dtypes, on
any device).  Anything else is an :class:`~codec.errors.InputError` that names what was
passed.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import os
import threading
from dataclasses import dataclass

import numpy as np

from codec.container import MAX_SIDE, ImageInfo
from codec.errors import InputError, LimitError
from codec.media import objects

NAME = "image"
RATE_UNIT = "bpp"  # bits per pixel, from the bytes of the stream
#: the largest default limit of pixels a picture (or a stream's picture) may have
DEFAULT_MAX_PIXELS = 1 << 25  # 33.5 Mpx: an 8K UHD picture (7680 x 4320) fits
#: peak memory per pixel of the default model on a CPU (measured at 1 Mpx: decode 333, encode 283)
BYTES_PER_PIXEL = 350
MAX_PIXELS_ENV = "CODEC_MAX_PIXELS"
OUTPUTS = ("numpy", "torch", "pil")
#: the file name extensions data-set folders are searched for (evaluation, training); any
#: file Pillow reads can be coded by name
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".pnm", ".tif", ".tiff", ".webp")


@dataclass
class Picture:
    rgb: np.ndarray  # uint8 H x W x 3
    colour: str = "rgb"  # "rgb" or "gray" (then the three channels are equal)

    @property
    def info(self) -> ImageInfo:
        h, w = self.rgb.shape[:2]
        return ImageInfo(w, h, self.colour, 8)

    def tensor(self, device="cpu"):
        """``[1, 3, H, W]`` float32 in [0, 1] on ``device``."""
        import torch

        return torch.from_numpy(np.array(self.rgb)).to(device).permute(2, 0, 1)[None].float() / 255


_PIL_LIMIT = threading.Lock()


def default_max_pixels() -> int:
    """:data:`DEFAULT_MAX_PIXELS`, or fewer on a machine whose memory would not hold the
    work (half the physical memory at :data:`BYTES_PER_PIXEL`)."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not a POSIX system
        return DEFAULT_MAX_PIXELS
    return max(1 << 20, min(DEFAULT_MAX_PIXELS, memory // 2 // BYTES_PER_PIXEL))


def max_pixels(limit=None) -> int:
    """The pixel limit in force: ``limit``, else ``$CODEC_MAX_PIXELS``, else :func:`default_max_pixels`."""
    what = "the pixel limit"
    if limit is None:
        limit = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not limit:
            return default_max_pixels()
        what = f"${MAX_PIXELS_ENV}"
        try:
            limit = float(limit)
        except ValueError:
            raise InputError(f"{what} must be a number of pixels, not {limit!r}") from None
    if isinstance(limit, bool) or not isinstance(limit, numbers.Real) or not math.isfinite(limit) or limit < 1:
        raise InputError(f"{what} must be a finite number of pixels >= 1, not {limit!r}")
    return int(limit)


def check_size(width: int, height: int, limit=None, what: str = "the picture") -> None:
    """:class:`LimitError` when ``width x height`` exceeds the pixel limit or a side the container's."""
    if width > MAX_SIDE or height > MAX_SIDE:
        raise LimitError(f"{what} is {width}x{height}: the format holds pictures up to {MAX_SIDE} pixels a side")
    lim = max_pixels(limit)
    if width * height > lim:
        raise LimitError(f"{what} is {width}x{height} = {width * height / 1e6:.1f} Mpx, more than the limit of "
                         f"{lim / 1e6:.1f} Mpx (raise it with --max-pixels N, max_pixels=N or ${MAX_PIXELS_ENV}; "
                         f"coding needs about {BYTES_PER_PIXEL} bytes of memory per pixel)")


def check_memory(model, header: bytes, width: int, height: int, limit=None, what: str = "the stream's picture"):
    """For a model whose header sizes its decoder (an INR): :class:`LimitError` when the decoder
    would need more memory than the pixel limit allows at :data:`BYTES_PER_PIXEL`."""
    per = getattr(model, "decoder_bytes_per_pixel", None)
    if per is None:
        return
    need = per(header)
    if need > BYTES_PER_PIXEL and width * height * need > max_pixels(limit) * BYTES_PER_PIXEL:
        raise LimitError(f"{what} ({width}x{height}) asks for a network that needs about {need} bytes per pixel "
                         f"to decode, {width * height * need / 1e9:.1f} GB; the limit allows "
                         f"{max_pixels(limit) * BYTES_PER_PIXEL / 1e9:.1f} GB (raise it with --max-pixels N, "
                         f"max_pixels=N or ${MAX_PIXELS_ENV})")


def rate(nbytes: int, info: ImageInfo) -> float:
    """Bits per pixel of ``nbytes`` bytes for a picture of ``info``'s size."""
    return 8 * nbytes / info.pixels


# ----------------------------------------------------------------------------- user objects
def _describe(obj) -> str:
    return objects.describe(obj, NAME)


def from_user(image, limit=None) -> Picture:
    """Any accepted image -> :class:`Picture`; :class:`InputError` naming what was passed."""
    if isinstance(image, Picture):
        check_size(image.rgb.shape[1], image.rgb.shape[0], limit=limit)
        return image
    pil = _pil_image_type()
    if pil is not None and isinstance(image, pil):
        return _from_pil(image, limit, "the image")
    a = _tensor_to_numpy(image) if _is_tensor(image) else image
    if not isinstance(a, np.ndarray):
        raise InputError(f"an image is a PIL image, a numpy array or a torch tensor, not {_describe(image)}")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise InputError(f"an image array must be H x W or H x W x C (C = 1, 3 or 4), got {_describe(image)}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise InputError(f"the image is empty: {_describe(image)}")
    check_size(a.shape[1], a.shape[0], limit=limit)
    if a.dtype == np.uint8:
        pass
    elif a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
            raise InputError(f"float images must hold finite values in [0, 1] ({_describe(image)})")
        a = np.round(a.astype(np.float64) * 255).astype(np.uint8)
    else:
        raise InputError(f"image samples must be uint8, or float in [0, 1], not {a.dtype} ({_describe(image)})")
    if a.shape[2] == 1:
        return Picture(np.repeat(a, 3, axis=2), "gray")
    return Picture(np.ascontiguousarray(a[..., :3]), "rgb")


def _from_pil(img, limit, what) -> Picture:
    if _check_pil(img, limit, what) == "gray":
        return Picture(np.repeat(np.asarray(img.convert("L"))[..., None], 3, axis=2), "gray")
    return Picture(np.asarray(img.convert("RGB")), "rgb")


def _check_pil(img, limit, what) -> str:
    """The colour ("rgb" or "gray") of a PIL image; InputError/LimitError for what cannot be coded."""
    w, h = img.size
    if w < 1 or h < 1:
        raise InputError(f"{what} is empty")
    check_size(w, h, limit=limit, what=what)
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        raise InputError(f"{what} is animated ({frames} frames): only still images are coded "
                         "(save the frame you want as a PNG)")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise InputError(f"{what}: only 8-bit images are supported (this one is mode {img.mode})")
    return "gray" if img.mode in ("L", "LA", "1") else "rgb"


def _pil_image_type():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return None
    return Image.Image


def _is_tensor(obj) -> bool:
    return objects.is_tensor(obj)


def _tensor_to_numpy(t) -> np.ndarray:
    import torch

    x = objects.dense(t, NAME)
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise InputError(f"encode takes one image at a time ([C, H, W] or [1, C, H, W]), got {_describe(t)}")
        x = x[0]
    if x.ndim != 3:
        raise InputError(f"a tensor image must be [C, H, W] or [1, C, H, W], got {_describe(t)}")
    if not x.dtype.is_floating_point and x.dtype != torch.uint8:
        raise InputError(f"image samples must be uint8, or float in [0, 1], not {x.dtype} ({_describe(t)})")
    return x.cpu().permute(1, 2, 0).numpy()


def to_8bit(x) -> np.ndarray:
    """``[3, H, W]`` float tensor -> uint8 ``H x W x 3`` (clamp to [0, 1], round half to even)."""
    import torch

    return torch.round(x.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def to_user(pic: Picture, output: str = "numpy"):
    """``"numpy"`` (uint8 ``H x W x 3``, or ``H x W`` for gray), ``"torch"`` (float32
    ``[C, H, W]``, exactly the 8-bit values / 255) or ``"pil"``."""
    if output not in OUTPUTS:
        raise InputError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    # gray: the mean of the decoded channels (a model's three outputs need not be equal)
    img = np.round(pic.rgb.astype(np.float32).mean(axis=2)).astype(np.uint8) if pic.colour == "gray" else pic.rgb
    if output == "numpy":
        return img
    if output == "torch":
        import torch

        t = torch.from_numpy(np.ascontiguousarray(img if img.ndim == 3 else img[..., None])).permute(2, 0, 1)
        return t.float() / 255
    from PIL import Image

    return Image.fromarray(img)


# ----------------------------------------------------------------------------- files
def probe(path, limit=None) -> ImageInfo:
    """What :func:`read` would give, from the file's header only (no pixel is decoded):
    the same errors for a missing, unreadable, animated or over-the-limit file."""
    with _open(path, limit) as img:
        return ImageInfo(*img.size, _check_pil(img, limit, os.fspath(path)))


def read(path, limit=None) -> Picture:
    """Read an image file with Pillow: :class:`InputError` for a missing, unreadable or
    animated file, :class:`LimitError` before decoding a picture over the pixel limit."""
    with _open(path, limit) as img:
        try:
            img.load()
        except MemoryError:
            raise LimitError(f"{path}: not enough memory to decode it") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"cannot read image {path}: {exc}") from None
        return _from_pil(img, limit, os.fspath(path))


@contextlib.contextmanager
def _open(path, limit):
    """The opened (not yet decoded) image, its size, frames and limit checked."""
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"no such file: {path}")
    if os.path.isdir(path):
        raise InputError(f"{path} is a directory, not an image")
    with _PIL_LIMIT:  # Pillow's limit is a global: one open at a time changes it (codec encode reads ahead)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own limit below, checked before any pixel is decoded
        try:
            img = Image.open(path)
        except UnidentifiedImageError:
            raise InputError(f"{path} is not an image Pillow can read") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"cannot read image {path}: {exc}") from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    with img:
        _check_pil(img, limit, path)
        yield img


def encode_png(pic: Picture) -> bytes:
    import io

    buf = io.BytesIO()
    to_user(pic, "pil").save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- the codec's side
def describe(info: ImageInfo) -> str:
    return f"{info.width}x{info.height} picture"


def model_input(pic: Picture, device):
    """What an image model's ``compress`` takes: ``[1, 3, H, W]`` float in [0, 1]."""
    return pic.tensor(device)


def model_output(x_hat, info: ImageInfo) -> Picture:
    """An image model's (padded) reconstruction -> the 8-bit picture of ``info``'s size."""
    if x_hat.shape[-2] < info.height or x_hat.shape[-1] < info.width:
        raise InputError(f"the model decoded {x_hat.shape[-1]}x{x_hat.shape[-2]} pixels for a "
                         f"{info.width}x{info.height} picture")
    return Picture(to_8bit(x_hat[0, :, : info.height, : info.width]), info.colour)


def check_work(info: ImageInfo, limit=None) -> None:
    """Refuse a stream whose picture is over the pixel limit, before any network runs."""
    check_size(info.width, info.height, limit=limit, what="the stream's picture")


def checked_payload(model, c, limit=None):
    """The payload of container ``c`` for ``model``: its sections must be the kinds the
    model writes and its header the latent grid of the picture's size (a version 1
    stream has no header: the grid comes from the size, as version 1 decoders did)."""
    from codec.container import ContainerError

    p = c.payload
    if hasattr(model, "check_header"):  # a model whose header says more than the grid (an INR's layers)
        from codec.models.payload import PayloadError

        try:
            model.check_header(p.header, c.media.height, c.media.width)
        except PayloadError as exc:
            raise ContainerError(f"the stream's model header does not fit its {describe(c.media)}: {exc}") from None
        check_memory(model, p.header, c.media.width, c.media.height, limit)
    else:
        want = model.header_for(c.media.height, c.media.width)
        if c.version == 1:
            p.header = want
        elif p.header != want:
            raise ContainerError(f"the stream's model header does not fit its {describe(c.media)} (corrupt file)")
    if p.kinds() != tuple(model.section_kinds):
        raise ContainerError(f"model '{c.model}' writes sections {', '.join(model.section_kinds)}; this stream "
                             f"has {', '.join(p.kinds()) or 'none'}")
    return p
