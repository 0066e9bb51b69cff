"""Files: read images with clear errors, write outputs atomically, never overwrite by accident."""
from __future__ import annotations

import os
import tempfile

from codec.errors import CodecError


def check_output(path: str, force: bool) -> None:
    """Refuse before any work is done: an existing file without --force, or an unwritable place."""
    if os.path.isdir(path):
        raise CodecError(f"output {path} is a directory")
    if os.path.exists(path) and not force:
        raise CodecError(f"output {path} exists (use --force to overwrite)")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise CodecError(f"output directory {d} does not exist")
    if not os.access(d, os.W_OK):
        raise CodecError(f"cannot write to {d} (permission denied)")


def atomic_write(path: str, data: bytes, force: bool = False) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place.

    A crash or error leaves either the old file or none, never a partial one."""
    check_output(path, force)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_image_file(path: str):
    """Open an image with Pillow (fully decoded), or raise a one-line CodecError."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.exists(path):
        raise CodecError(f"no such file: {path}")
    if os.path.isdir(path):
        raise CodecError(f"{path} is a directory, not an image")
    try:
        img = Image.open(path)
        img.load()
    except UnidentifiedImageError:
        raise CodecError(f"{path} is not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CodecError(f"cannot read image {path}: {exc}") from None
    if img.size[0] < 1 or img.size[1] < 1:
        raise CodecError(f"{path} is empty")
    return img
