"""Video coding around a video model: frames in, a stream's payload out, and back.

``stream_payload`` codes an iterator of frames with bounded memory (the model keeps one
reference frame; only the compressed sections accumulate); ``decoded_frames`` yields a frame range, decoding from the nearest key frame before it;
``frame_range`` parses ``--frames 100-150``.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from codec.errors import InputError

DEFAULT_GOP = 32
MAX_GOP = 1 << 16


def check_gop(gop) -> int:
    """The key-frame interval as an int in 1..65536 (:class:`InputError` otherwise)."""
    if isinstance(gop, bool):
        raise InputError(f"gop must be a whole number of frames, not {gop!r}")
    try:
        g = int(gop)
    except (TypeError, ValueError):
        raise InputError(f"gop must be a whole number of frames, not {gop!r}") from None
    if g != gop and not (isinstance(gop, float) and gop == g) and not isinstance(gop, str):
        raise InputError(f"gop must be a whole number of frames, not {gop!r}")
    if not 1 <= g <= MAX_GOP:
        raise InputError(f"gop must lie in 1..{MAX_GOP} frames (1: every frame a key frame), not {gop}")
    return g


def stream_payload(model, frames: Iterable, width: int, height: int, quality, gop: int = DEFAULT_GOP,
                   progress=None, effort=None, fit_progress=None):
    """(payload, frame count) of ``frames`` (RGB uint8 ``[H, W, 3]``, all ``height x width``).
    ``progress``: called with each frame's byte count; a fitted model's (``inr-video``) ``effort``
    and ``fit_progress(epoch, epochs, psnr)`` as it fits each group."""
    from codec.models.payload import Payload

    sections = []
    n = 0

    def checked():
        nonlocal n
        for f in frames:
            if f.shape[:2] != (height, width):
                raise InputError(f"frame {n} is {f.shape[1]}x{f.shape[0]}, the video {width}x{height}")
            n += 1
            if n > model.max_frames:
                raise InputError(f"the video has more than {model.max_frames} frames")
            yield f

    extra = {"effort": effort, "progress": fit_progress} if getattr(model, "fitted", False) else {}
    for secs, _ in model.compress_frames(checked(), quality, gop, **extra):
        sections.extend(secs)
        if progress is not None:
            progress(sum(len(s.data) for s in secs))
    if n == 0:
        raise InputError("the video has no frames")
    return Payload(sections, model.header_for(width, height)), n


def frame_range(info, spec=None) -> tuple:
    """``(start, stop)`` frame numbers (0-based, stop exclusive) of ``spec``: None (all),
    ``"A-B"`` (frames A to B, both included, 0-based), ``"A-"`` or ``"A"`` (one frame)."""
    n = info.frames
    if spec is None:
        return 0, n
    text = str(spec).strip()
    try:
        if "-" in text:
            a, b = text.split("-", 1)
            start = int(a)
            stop = n if b.strip() == "" else int(b) + 1
        else:
            start = int(text)
            stop = start + 1
    except ValueError:
        raise InputError(f"--frames takes A-B, A- or A (frame numbers from 0), not {spec!r}") from None
    if not 0 <= start < stop or start >= n:
        raise InputError(f"frames {spec} are outside the video's 0-{n - 1}")
    return start, min(stop, n)


def decoded_frames(model, payload, info, quality, device, start: int = 0, stop=None) -> Iterator:
    """Frames ``start .. stop - 1`` of a checked payload, as RGB uint8 ``[H, W, 3]``."""
    return model.decode_frames(payload, quality, info.frames, start, stop, device=device)
