"""Python API: ``encode(image) -> bytes``, ``decode(bytes) -> image``, ``load_model(name)``.

Images in: PIL images (any mode Pillow can turn into RGB or L), numpy arrays
(``H x W`` or ``H x W x C`` with C in 1, 3, 4; uint8, or float in [0, 1]) and torch
tensors (``[C, H, W]`` or ``[1, C, H, W]``; uint8, or float in [0, 1]).  Alpha is
dropped.  Images out (``decode(..., output=...)``): ``"numpy"`` (uint8 ``H x W x 3``,
or ``H x W`` for grayscale), ``"torch"`` (float32 ``[C, H, W]`` in [0, 1], exactly the
8-bit values / 255) or ``"pil"``.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from codec import container as ct
from codec.errors import CodecError

HYPER, LATENT = 2, 1


class UntrainedModelWarning(UserWarning):
    """The model has no trained weights: its output is not meaningful."""


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_device(device) -> str:
    dev = str(device or default_device())
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise CodecError("--device cuda was asked for, but no CUDA device is available")
    if not (dev == "cpu" or dev.startswith("cuda")):
        raise CodecError(f"unknown device '{dev}' (use cpu or cuda)")
    return dev


def list_models() -> list[str]:
    from codec.models.registry import list_models as _lm

    return _lm()


@functools.lru_cache(maxsize=8)
def _load(name, quality, device):
    from codec.models import registry

    try:
        return registry.load_model(name, quality, device=device)
    except registry.UnknownModelError as exc:
        raise CodecError(str(exc)) from None


def resolve(name: str | None = None, quality=None):
    """(model name, quality as the model takes it) for user input: ``name`` defaults to the
    best shipped model, ``quality`` to the model's default.  A fixed-rate model has whole
    qualities (``4``); a variable-rate model takes any quality in its range in steps of
    0.01 (``3.25``).  Raises :class:`CodecError` for an unknown model or quality."""
    from codec.models.registry import DEFAULT_MODEL, get_spec

    name = name or DEFAULT_MODEL
    try:
        spec = get_spec(name)
        return name, spec.check_quality(quality)
    except (KeyError, ValueError) as exc:
        raise CodecError(str(exc)) from None


def load_model(name: str | None = None, quality=None, device=None):
    """A frozen model from the registry (cached).  ``name`` defaults to the best shipped model.

    A variable-rate model is one object for every quality (its ``quality`` attribute is
    None): pass the quality to its ``compress``/``decompress``."""
    from codec.models.registry import get_spec

    name, q = resolve(name, quality)
    vr = get_spec(name).variable_rate
    model = _load(name, None if vr else q, _check_device(device))
    if not model.trained:
        what = f"model '{name}'" if vr else f"model '{name}' quality {q}"
        warnings.warn(f"{what} has no trained weights (random initialisation): "
                      "its output is not meaningful", UntrainedModelWarning, stacklevel=2)
    return model


# ----------------------------------------------------------------------------- images
def to_uint8(image) -> tuple[np.ndarray, str]:
    """Any accepted image -> (uint8 ``H x W x 3`` array, colour ``"rgb"`` or ``"gray"``)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            raise CodecError(f"only 8-bit images are supported (this one is mode {image.mode})")
        if image.mode in ("L", "LA", "1"):
            return np.repeat(np.asarray(image.convert("L"))[..., None], 3, axis=2), "gray"
        return np.asarray(image.convert("RGB")), "rgb"
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise CodecError("encode takes one image at a time ([C, H, W] or [1, C, H, W])")
            t = t[0]
        if t.ndim != 3:
            raise CodecError(f"a tensor image must be [C, H, W] or [1, C, H, W], got {tuple(image.shape)}")
        image = t.permute(1, 2, 0).numpy()
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise CodecError(f"an image array must be H x W or H x W x C (C = 1, 3 or 4), got shape {a.shape}")
    if a.dtype == np.uint8:
        pass
    elif a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
            raise CodecError("float images must hold values in [0, 1]")
        a = np.round(a * 255).astype(np.uint8)
    else:
        raise CodecError(f"image arrays must be uint8 or float in [0, 1], got {a.dtype}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise CodecError("the image is empty")
    if a.shape[2] == 1:
        return np.repeat(a, 3, axis=2), "gray"
    return np.ascontiguousarray(a[..., :3]), "rgb"


def _pad(x: torch.Tensor, multiple: int) -> torch.Tensor:
    H, W = x.shape[-2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def _output(rgb8: np.ndarray, colour: str, output: str):
    if colour == "gray":
        img = np.round(rgb8.astype(np.float32).mean(axis=2)).astype(np.uint8)
    else:
        img = rgb8
    if output == "numpy":
        return img
    if output == "torch":
        t = torch.from_numpy(np.ascontiguousarray(img if img.ndim == 3 else img[..., None])).permute(2, 0, 1)
        return t.float() / 255
    if output == "pil":
        from PIL import Image

        return Image.fromarray(img)
    raise ValueError(f"output must be 'numpy', 'torch' or 'pil', not {output!r}")


# ----------------------------------------------------------------------------- coding
def encode(image, *, model: str | None = None, quality=None, device=None) -> bytes:
    """Compress one image to a self-describing stream (see ``codec/CONTAINER.md``).

    ``quality``: a whole number for fixed-rate models; any value in the range (steps of
    0.01) for variable-rate ones (see ``codec models``).  Higher means more bits."""
    from codec.models.registry import get_spec

    name, q = resolve(model, quality)
    spec = get_spec(name)
    m = load_model(name, q, device)
    dev = next(m.parameters()).device
    rgb, colour = to_uint8(image)
    H, W = rgb.shape[:2]
    if H > ct.MAX_SIDE or W > ct.MAX_SIDE:
        raise CodecError(f"images up to {ct.MAX_SIDE} pixels a side are supported, got {W}x{H}")
    x = torch.from_numpy(np.array(rgb)).to(dev).permute(2, 0, 1)[None].float() / 255
    streams, _ = m.compress(_pad(x, m.multiple), q if spec.variable_rate else None)
    kinds = [HYPER] * (len(streams) - 1) + [LATENT]
    c = ct.Container(model=m.name, weights_id=m.weights_id, quality=spec.quality_code(q), width=W, height=H,
                     colour=colour, sections=[ct.Section(k, 0, s) for k, s in zip(kinds, streams)])
    return ct.pack(c)


def decode(data: bytes, *, device=None, output: str = "numpy"):
    """Decompress a stream made by :func:`encode` (on any device) to an 8-bit image."""
    from codec import entropy

    if output not in ("numpy", "torch", "pil"):
        raise ValueError(f"output must be 'numpy', 'torch' or 'pil', not {output!r}")
    c = ct.unpack(data)
    if c.modality != "image":
        raise CodecError(f"this is a {c.modality} stream; only images can be decoded so far")
    q = stream_quality(c)
    m = load_model(c.model, q, device)
    vr = m.variable_rate
    if c.weights_id != m.weights_id:
        raise CodecError(f"stream was made with other weights for model '{c.model}' "
                         f"{'' if vr else f'q{q} '}"
                         f"({c.weights_id.hex()}) than the installed ones ({m.weights_id.hex()})")
    dev = next(m.parameters()).device
    Hp, Wp = -(-c.height // m.multiple) * m.multiple, -(-c.width // m.multiple) * m.multiple
    try:
        x_hat = m.decompress([s.data for s in c.sections], Hp, Wp, device=dev, quality=q if vr else None)
    except entropy.StreamError as exc:
        raise CodecError(f"corrupt stream: {exc}") from None
    except ValueError as exc:
        raise CodecError(f"stream does not fit its model: {exc}") from None
    rgb8 = to_8bit(x_hat[0, :, : c.height, : c.width])
    return _output(rgb8, c.colour, output)


def to_8bit(x: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` float -> uint8 ``H x W x 3`` (clamp to [0, 1], round half to even)."""
    return torch.round(x.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def stream_quality(c: ct.Container):
    """The quality of a stream, as its model takes it (the container holds quality x 100 for
    variable-rate models).  :class:`CodecError` for an unknown model or a quality it lacks."""
    from codec.models.registry import get_spec

    try:
        return get_spec(c.model).quality_from_code(c.quality)
    except KeyError as exc:
        raise CodecError(f"stream was made by an {exc}") from None
    except ValueError as exc:
        raise CodecError(f"stream does not fit its model: {exc}") from None


def info(data: bytes) -> dict:
    """What a stream holds: model, weights, picture, sections and sizes (bytes and bpp)."""
    c = ct.unpack(data)
    names = {HYPER: "hyper-latent", LATENT: "latent"}
    try:
        quality = stream_quality(c)
    except CodecError:  # a model this installation does not know: the raw field
        quality = c.quality
    return {
        "modality": c.modality, "model": c.model, "quality": quality, "weights_id": c.weights_id.hex(),
        "width": c.width, "height": c.height, "colour": c.colour, "bit_depth": c.bit_depth,
        "bytes": len(data), "header_bytes": ct.header_size(c),
        "bpp": 8 * len(data) / (c.width * c.height),
        "sections": [{"kind": names.get(s.kind, str(s.kind)), "index": s.index, "bytes": len(s.data)}
                     for s in c.sections],
    }
