"""Exceptions a user can cause.  The CLI prints them as one line, no traceback."""
from __future__ import annotations


class CodecError(Exception):
    """A user-facing error: bad input, unreadable or corrupt file, wrong model, ..."""
