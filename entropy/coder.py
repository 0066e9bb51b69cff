"""Public coding API: torch tensors in, bytes out, and back.

``encode(symbols, table_index, tables) -> bytes`` codes every element of
``symbols`` (any shape, any integer dtype, values in int32) with row
``table_index[...]`` (same number of elements) of ``tables``.
``decode(data, table_index, tables) -> torch.int32 tensor`` shaped like
``table_index``.  The batched forms take lists and run one lane loop for all of
them.  The CPU coder (numpy, ``codec.entropy.rans``) is used here; the format is
in ``FORMAT.md``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from . import rans
from .tables import TOTAL, CDFTables


def _shape(t) -> tuple:
    return tuple(t.shape) if hasattr(t, "shape") else np.shape(t)


def encode(symbols, table_index, tables: CDFTables) -> bytes:
    """Encode ``symbols`` with rows ``table_index`` of ``tables``; returns one rANS stream."""
    return rans.encode_many([(symbols, table_index)], tables)[0]


def decode(data: bytes, table_index, tables: CDFTables, device=None) -> torch.Tensor:
    """Decode a stream made by :func:`encode` with the same ``table_index`` and ``tables``.

    Returns an int32 tensor shaped like ``table_index`` (on ``device``, default CPU).
    Raises :class:`~codec.entropy.rans.CorruptStreamError` or
    :class:`~codec.entropy.rans.TableMismatchError` for bad streams.
    """
    return decode_batch([data], [table_index], tables, device=device)[0]


def encode_batch(items: Sequence[tuple], tables: CDFTables) -> list[bytes]:
    """Encode many ``(symbols, table_index)`` pairs at once; one stream each."""
    return rans.encode_many(list(items), tables)


def decode_batch(streams: Sequence[bytes], table_indexes: Sequence, tables: CDFTables,
                 device=None) -> list[torch.Tensor]:
    """Decode many streams at once; ``table_indexes[i]`` belongs to ``streams[i]``."""
    if len(streams) != len(table_indexes):
        raise ValueError("one table_index per stream is needed")
    flat = rans.decode_many(list(streams), list(table_indexes), tables)
    return [torch.from_numpy(v).reshape(_shape(i)).to(device or "cpu") for v, i in zip(flat, table_indexes)]


def ideal_bits(symbols, table_index, tables: CDFTables) -> float:
    """Information content ``sum(-log2 p)`` of the symbols under the quantised tables
    (escaped values count their escape symbol plus their escape-section bytes)."""
    view = tables.coder_view()
    p = rans._prepare(symbols, table_index, view)
    if p.n == 0:
        return 0.0
    freq = view.cdf_flat[p.pos + 1] - view.cdf_flat[p.pos]
    return float(-np.log2(freq / TOTAL).sum()) + 8.0 * len(p.escapes)


def sample_symbols(tables: CDFTables, table_index, seed: int = 0) -> torch.Tensor:
    """Draw symbols from the quantised tables (for tests and benchmarks).

    An escape draw becomes a value just outside the row's range (1..8 beyond it)."""
    view = tables.coder_view()
    rows = rans._flat_int(table_index, "table_index")
    rng = np.random.default_rng([seed, 0x5A3F])  # never the stream of a caller's default_rng(seed)
    slot = rng.integers(0, TOTAL, rows.size)
    s = view.lut[rows * TOTAL + slot].astype(np.int64)
    val = s + view.offsets[rows]
    esc = s == view.lengths[rows]
    if esc.any():
        k = rng.integers(1, 9, int(esc.sum()))
        side = rng.integers(0, 2, int(esc.sum())).astype(bool)
        lo = view.offsets[rows[esc]]
        hi = lo + view.lengths[rows[esc]] - 1
        val[esc] = np.where(side, hi + k, lo - k)
    return torch.from_numpy(val.astype(np.int32)).reshape(_shape(table_index))
