"""Writing files: atomically, never over anything by accident.

The one atomic writer of the project (API, CLI, evaluation, training): data goes to a
temporary file beside the target, is flushed to disk and renamed into place, so an
error or a crash leaves the old file or none, never a partial one.  An existing target
is replaced only with ``force`` and only when it is a regular file: a directory, a
device node, a FIFO, a socket or a symbolic link is never replaced.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile

from codec.errors import InputError


def check_output(path, force: bool) -> None:
    """Refuse before any work is done: an existing file without ``force``, anything but a
    regular file even with it, or a folder that does not exist or cannot be written."""
    path = os.fspath(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"output {path} is a directory")
        if not stat.S_ISREG(st.st_mode):
            what = ("a symbolic link" if stat.S_ISLNK(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                    or stat.S_ISBLK(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else
                    "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise InputError(f"output {path} is {what}: only regular files are ever replaced")
        if not force:
            raise InputError(f"output {path} exists (use --force to overwrite)")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise InputError(f"output directory {d} does not exist")
    if not os.access(d, os.W_OK):
        raise InputError(f"cannot write to {d} (permission denied)")


@contextlib.contextmanager
def atomic_path(path, force: bool = False):
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block
    ends without an error, removed otherwise (for writers that take a file name)."""
    path = os.fspath(path)
    check_output(path, force)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        check_output(path, force)  # the target may have changed while we wrote
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write(path, data: bytes, force: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_path(path, force) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
