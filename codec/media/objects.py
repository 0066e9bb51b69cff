"""What every medium does with the objects users pass: name them in errors, and turn
torch tensors into numpy arrays after refusing those that hold no real, dense data;
durations as people read them; FFmpeg's complaints (through PyAV) as one-line errors."""
from __future__ import annotations

import os
import sys

from codec.errors import InputError


def describe(obj, medium: str) -> str:
    """``obj`` in a few words, for an error message (a path: how to read it instead)."""
    shape = getattr(obj, "shape", None)
    kind = type(obj).__name__
    if shape is not None:
        return f"a {kind} of shape {tuple(shape)} and dtype {getattr(obj, 'dtype', None)}"
    if isinstance(obj, (str, bytes, os.PathLike)):
        return (f"a {kind} ({str(obj)[:60]!r}; to code a file, read it first: "
                f"from codec.media import {medium}; codec.encode({medium}.read(path)))")
    if isinstance(obj, (int, float)):
        return f"a {kind} ({obj!r})"
    return f"a {kind}"


def is_tensor(obj) -> bool:
    """Whether ``obj`` is a torch tensor (without importing torch when nobody has)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def dense(t, medium: str):
    """A detached tensor of real data (float16/bfloat16/float8 widened to float32, exactly);
    :class:`InputError` for meta, sparse, quantized or complex tensors."""
    import torch

    if t.is_meta or t.layout != torch.strided or t.is_complex() or t.is_quantized:
        raise InputError(f"cannot code {describe(t, medium)} on device {t.device} (layout {t.layout}): "
                         "pass a dense real tensor with data")
    x = t.detach()
    if x.dtype.is_floating_point and x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return x


def duration_text(seconds: float) -> str:
    """``"9.70 s"``, ``"3 min 2.5 s"``, ``"1 h 2 min 3 s"``."""
    if seconds < 60:
        return f"{seconds:.2f} s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{int(m)} min {s:.1f} s"
    h, m = divmod(m, 60)
    return f"{int(h)} h {int(m)} min {s:.0f} s"


def av_text(exc) -> str:
    """The first line of a PyAV/FFmpeg error, for a one-line message."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).strip().splitlines()[0][:160]


def decoded(container, stream, path):
    """The decoded frames of ``stream`` (PyAV); :class:`InputError` naming ``path`` for data
    FFmpeg cannot decode."""
    import av

    it = container.decode(stream)
    while True:
        try:
            frame = next(it)
        except StopIteration:
            return
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise InputError(f"cannot decode {path}: {av_text(exc)} (a corrupt or truncated file?)") from None
        yield frame
