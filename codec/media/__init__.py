"""Media: each medium owns its files, its conversion to and from tensors, its rate unit
and its metrics (``codec.media.image``, ``codec.media.audio``, ``codec.media.video``).

The API, the CLI, evaluation and training take media only through these modules, so
that a new medium is a module here plus models that declare its modality.

:func:`medium_of` tells the medium of a file from its name; :func:`get` returns the
module of a medium, or an :class:`~codec.errors.InputError` saying that the medium has
no codec yet.
"""
from __future__ import annotations

import importlib
import os

from codec.errors import InputError

#: media this codec knows of, and the module that implements each (None: not yet)
MEDIA = {"image": "codec.media.image", "audio": "codec.media.audio", "video": "codec.media.video"}
AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma"}
VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".y4m", ".mpg", ".mpeg", ".ts", ".264",
                    ".h264", ".265", ".hevc", ".ivf", ".yuv"}


def medium_of(path) -> str:
    """``"image"``, ``"audio"`` or ``"video"`` for a file name (images: anything else, Pillow decides)."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return "image"


def get(medium: str):
    """The module of ``medium``; :class:`InputError` for a medium with no codec yet."""
    if medium not in MEDIA:
        raise InputError(f"unknown medium {medium!r} (known: {', '.join(MEDIA)})")
    if MEDIA[medium] is None:
        raise InputError(f"no {medium} codec ships yet")
    return importlib.import_module(MEDIA[medium])
