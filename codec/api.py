"""Python API: ``encode(item) -> bytes``, ``decode(bytes) -> item``, ``info(bytes)``, ``load_model(name)``.

The API is an envelope around the models: a medium (``codec.media``) turns what the
user passes into the model's input and the model's output back into what the user
gets; the model codes (``model.compress(x, quality) -> Payload``,
``model.decompress(payload, quality)``); the container (``codec.container``) wraps the
payload with the model's name, weights id and quality and the medium's descriptor.

Images in: PIL images, numpy arrays and torch tensors (see :mod:`codec.media.image`).
Images out (``decode(..., output=...)``): ``"numpy"`` (uint8 ``H x W x 3``, or ``H x W``
for grayscale), ``"torch"`` (float32 ``[C, H, W]``, exactly the 8-bit values / 255) or
``"pil"``.  Every mistake a user can make raises a :class:`~codec.errors.CodecError`.
"""
from __future__ import annotations

import contextlib
import functools
import warnings

from codec import container as ct
from codec import media
from codec.errors import CodecError, InputError, ResourceError


class UntrainedModelWarning(UserWarning):
    """The model has no trained weights: its output is not meaningful."""


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_device(device) -> str:
    import torch

    dev = str(device or default_device())
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but no CUDA device is available")
    if not (dev == "cpu" or dev.startswith("cuda")):
        raise InputError(f"unknown device {dev!r} (use cpu or cuda)")
    return dev


def list_models() -> list[str]:
    from codec.models.registry import list_models as _lm

    return _lm()


def _spec(name):
    from codec.models import registry

    try:
        return registry.get_spec(name)
    except registry.UnknownModelError as exc:
        raise InputError(str(exc)) from None


def resolve(name: str | None = None, quality=None, medium: str = "image"):
    """(model name, quality as the model takes it) for user input: ``name`` defaults to the
    best shipped model of ``medium``, ``quality`` to the model's default.  A model with
    quality levels takes whole numbers (``4``); a variable-rate model any quality in its
    range on its step grid (``3.25``).  :class:`CodecError` for an unknown model or quality."""
    from codec.models import registry

    if name is None:
        media.get(medium)
        try:
            name = registry.default_model(medium)
        except registry.UnknownModelError as exc:
            raise InputError(str(exc)) from None
    spec = _spec(name)
    try:
        return name, spec.check_quality(quality)
    except ValueError as exc:
        raise InputError(str(exc)) from None


@functools.lru_cache(maxsize=8)
def _load(name, key, device):
    from codec.models import registry

    return registry.load_model(name, key, device=device)


def load_model(name: str | None = None, quality=None, device=None, medium: str = "image"):
    """A frozen model from the registry (cached).  ``name`` defaults to the best shipped
    model of ``medium``.  A variable-rate model is one object for every quality (its
    ``quality`` attribute is None): pass the quality to its ``compress``/``decompress``."""
    name, q = resolve(name, quality, medium)
    spec = _spec(name)
    model = _load(name, spec.quality.weights_key(q), _check_device(device))
    if not model.trained:
        warnings.warn(f"{spec.label(q)} has no trained weights (random initialisation): "
                      "its output is not meaningful", UntrainedModelWarning, stacklevel=2)
    return model


@contextlib.contextmanager
def _resources(what: str):
    """Allocation failures (CPU or GPU) as one-line :class:`ResourceError` s."""
    import torch

    try:
        yield
    except (MemoryError, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)) as exc:
        raise ResourceError(f"not enough memory to {what} ({exc.__class__.__name__}); "
                            "try a smaller input or another device") from None
    except RuntimeError as exc:
        text = str(exc)
        if "memory" in text and ("allocate" in text or "out of" in text or "not enough" in text):
            first = text.strip().splitlines()[0][:160]
            raise ResourceError(f"not enough memory to {what} ({first}); "
                                "try a smaller input or another device") from None
        raise


# ----------------------------------------------------------------------------- coding
def encode(item, *, model: str | None = None, quality=None, device=None, medium: str | None = None,
           max_pixels=None) -> bytes:
    """Compress one item (a picture, for now) to a self-describing stream (``codec/CONTAINER.md``).

    ``model`` picks the codec (default: the best shipped one of ``medium``, default
    ``"image"``); ``quality``: a whole number for models with levels, any value in the
    range (steps of 0.01) for variable-rate ones (see ``codec models``); higher means
    more bits.  ``max_pixels`` raises the size limit (default
    :data:`codec.media.image.DEFAULT_MAX_PIXELS`, or ``$CODEC_MAX_PIXELS``)."""
    if model is not None:
        spec = _spec(model)
        if medium is not None and medium != spec.modality:
            raise InputError(f"model '{model}' codes {spec.modality}, not {medium}")
        medium = spec.modality
    med = media.get(medium or "image")
    name, q = resolve(model, quality, med.NAME)
    item = med.from_user(item, limit=max_pixels)  # the input is checked before a model loads
    m = load_model(name, q, device)
    spec = _spec(name)
    dev = next(m.parameters()).device
    with _resources(f"encode a {med.describe(item.info)}"):
        payload = m.compress(med.model_input(item, dev), q)
    c = ct.Container(model=m.name, weights_id=m.weights_id, quality=spec.quality_code(q), media=item.info,
                     payload=payload)
    return ct.pack(c)


def decode(data: bytes, *, device=None, output: str = "numpy", max_pixels=None):
    """Decompress a stream made by :func:`encode` (on any device, by any install).

    The work a stream asks for is bounded before any network runs: its picture must
    be within the pixel limit (``max_pixels``, as for :func:`encode`) and its model
    header must fit its picture size."""
    c = ct.unpack(data)
    med = media.get(c.modality)
    if output not in med.OUTPUTS:
        raise InputError(f"output must be one of {', '.join(med.OUTPUTS)}, not {output!r}")
    q = stream_quality(c)
    med.check_work(c.media, max_pixels)
    m = load_model(c.model, q, device)
    spec = _spec(c.model)
    if c.weights_id != m.weights_id:
        raise InputError(f"stream was made with other weights for {spec.label(q)} "
                         f"({c.weights_id.hex()}) than the installed ones ({m.weights_id.hex()})")
    payload = med.checked_payload(m, c)
    dev = next(m.parameters()).device
    from codec.models.payload import PayloadError

    try:
        with _resources(f"decode a {med.describe(c.media)}"):
            x_hat = m.decompress(payload, q, device=dev)
    except ResourceError:
        raise
    except PayloadError as exc:
        raise InputError(f"stream does not fit its model: {exc}") from None
    except CodecError as exc:  # the entropy stage's StreamError family
        raise ct.ContainerError(f"corrupt stream: {exc}") from None
    except ValueError as exc:
        raise InputError(f"stream does not fit its model: {exc}") from None
    return med.to_user(med.model_output(x_hat, c.media), output)


def stream_quality(c: ct.Container):
    """The quality of a stream, as its model takes it.  :class:`CodecError` for an unknown
    model, a model of another medium, or a quality the model lacks."""
    spec = _spec(c.model)
    if spec.modality != c.modality:
        raise ct.ContainerError(f"stream says it is {c.modality}, but its model '{c.model}' codes {spec.modality}")
    try:
        return spec.quality_from_code(c.quality)
    except ValueError as exc:
        raise InputError(f"stream does not fit its model: {exc}") from None


def info(data: bytes) -> dict:
    """What a stream holds: model, weights, medium, sections and sizes (bytes and rate)."""
    c = ct.unpack(data)
    try:
        quality = stream_quality(c)
    except CodecError:  # a model this installation does not know: the raw field
        quality = c.quality
    d = {"modality": c.modality, "model": c.model, "quality": quality, "weights_id": c.weights_id.hex(),
         "version": c.version, "bytes": len(data), "header_bytes": ct.header_size(data, c),
         "model_header_bytes": len(c.payload.header),
         "sections": [{"kind": s.kind, "index": s.index, "flags": s.flags, "bytes": len(s.data)}
                      for s in c.sections]}
    d.update({k: v for k, v in vars(c.media).items()})
    try:
        med = media.get(c.modality)
    except InputError:
        return d
    d["rate_unit"] = med.RATE_UNIT
    d[med.RATE_UNIT] = med.rate(len(data), c.media)
    return d
