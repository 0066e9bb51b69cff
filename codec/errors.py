"""Exceptions a user can cause.  The CLI prints them as one line, no traceback.

:class:`CodecError` is the root of the family; it is defined in the bottom layer
(``codec.entropy.errors``) so that the entropy stage's errors (``StreamError``,
``TableError``) belong to it too.
"""
from __future__ import annotations

from codec.entropy.errors import CodecError


class InputError(CodecError, ValueError):
    """What the user passed cannot be coded (wrong type, shape, dtype, size, file)."""


class LimitError(CodecError):
    """A stream or an input asks for more work than the set limit (``--max-pixels``)."""


class ResourceError(CodecError, MemoryError):
    """The machine ran out of memory for a request within the limits."""


__all__ = ["CodecError", "InputError", "LimitError", "ResourceError"]
