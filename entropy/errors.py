"""The error family of the whole project, rooted in the bottom layer.

:class:`CodecError` is the root of every error a user can cause, in every layer
(``codec.errors`` re-exports it and adds the API's own errors).  It lives here, in
``codec.entropy`` (which imports nothing else of ours), so that every layer can raise
it.  The entropy stage's own errors are members; each also keeps :class:`ValueError`
as a second base, as before, so ``except ValueError`` still catches them.

This module imports nothing (no numpy, no torch).
"""
from __future__ import annotations

__all__ = ["CodecError", "TableError", "StreamError", "CorruptStreamError", "TableMismatchError"]


class CodecError(Exception):
    """Root of every user-facing error of ``codec`` (bad input, bad stream, bad tables, ...)."""


class TableError(CodecError, ValueError):
    """Tables are malformed (bad shapes, zero frequencies, wrong totals, ...)."""


class StreamError(CodecError, ValueError):
    """A stream cannot be decoded."""


class CorruptStreamError(StreamError):
    """The bytes are not a valid stream (truncated, flipped bits, bad header, ...)."""


class TableMismatchError(StreamError):
    """The stream was coded with other tables than the ones given to the decoder."""
