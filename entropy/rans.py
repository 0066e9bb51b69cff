"""Lane-interleaved rANS, CPU reference coder in numpy.

The byte format is specified in ``entropy/FORMAT.md`` and its host-side parts
(header, layout rule, escape section, CRCs, packing, parsing and validation) are
implemented once, in ``codec.entropy.format``, for both coders; this module runs the
lane loops step by step and is the reference every other coder (the Triton GPU coder)
must match byte for byte.  Names below follow the spec: ``L`` lanes per segment, ``T``
steps per segment, ``S`` segments, ``N`` symbols.

The same loops are compiled in C (``entropy/_ransc.c``, built by ``setup.py`` as
``codec.entropy._ransc``; optional): where the build succeeded they serve by default,
one symbol at a time, so that a stream's lane count costs no speed; ``native=False``
(or ``CODEC_RANS_BACKEND=numpy``) runs the numpy loops instead.  Both write the same
bytes (tests check it).

The state of one lane is an integer in ``[2**16, 2**32)``; it is carried in numpy
int64 so that products never overflow.  Padding positions of the layout are coded
with the *identity row* (one symbol of frequency ``2**16``), which leaves a state
unchanged and emits or reads nothing, so every lane runs the same number of steps.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import format as fmt
from .errors import CorruptStreamError, StreamError, TableMismatchError  # noqa: F401  (re-exported)
from .format import (  # noqa: F401  (re-exported: the format's names, as before)
    DIR_ENTRY,
    HEADER,
    HEADER_SIZE,
    LANE_QUANTUM,
    MAGIC,
    MAX_ESCAPE_BYTES,
    MAX_LANES_PER_SEGMENT,
    STATE_BUDGET,
    STATE_LOW,
    VERSION,
    WORD_MASK,
    Layout,
    choose_layout,
    parse_header,
)
from .tables import TOTAL, CDFTables

#: the interface of ``_ransc`` this module calls (``RANSC_ABI`` in ``_ransc.c``)
RANSC_ABI = 1

try:  # the compiled lane loops (setup.py builds them where a C compiler is found)
    from . import _ransc
except ImportError:  # pragma: no cover - an install without the C core: numpy serves
    _ransc = None
else:
    if getattr(_ransc, "ABI", None) != RANSC_ABI:  # a build left over from older sources
        import warnings

        where = getattr(_ransc, "__file__", "?")
        warnings.warn(f"codec.entropy._ransc ({where}) was built from other sources than this install's "
                      "(reinstall: pip install -e .); the numpy coder serves, with the same bytes",
                      RuntimeWarning, stacklevel=2)
        _ransc = None


def native_available() -> bool:
    """Whether the compiled lane loops (``codec.entropy._ransc``) were built."""
    return _ransc is not None


#: the environment variable that picks a coder (``native``, ``numpy``, ``triton``, ``auto``)
BACKEND_ENV = "CODEC_RANS_BACKEND"


def _use_native(native) -> bool:
    if native is None:  # where built, unless the environment asks for the numpy reference
        return _ransc is not None and os.environ.get(BACKEND_ENV, "").strip().lower() != "numpy"
    if native and _ransc is None:
        raise RuntimeError("the compiled rANS coder (codec.entropy._ransc) was not built with this install; "
                           "reinstall with a C compiler, or use the numpy coder")
    return bool(native)


# --------------------------------------------------------------------------------------
# symbol preparation
# --------------------------------------------------------------------------------------
def _flat_int(a, name) -> np.ndarray:
    try:
        import torch

        if isinstance(a, torch.Tensor):
            if a.is_floating_point() or a.is_complex():
                raise TypeError(f"{name} must be an integer tensor, got {a.dtype}")
            a = a.detach().to("cpu").numpy()
    except ImportError:  # pragma: no cover
        pass
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got {a.dtype}")
    return a.reshape(-1).astype(np.int64, copy=False)


def _fits_int32(a) -> bool:
    """True when ``a``'s integer dtype cannot hold values outside int32 (no range check needed)."""
    dt = getattr(a, "dtype", None)
    try:
        import torch

        if isinstance(dt, torch.dtype):
            return dt in (torch.int8, torch.uint8, torch.int16, torch.int32)
    except ImportError:  # pragma: no cover
        pass
    return dt is not None and np.dtype(dt).kind in "iu" and (np.dtype(dt).itemsize < 4 or np.dtype(dt) == np.int32)


@dataclass
class _Prepared(fmt.StreamInfo):
    pos: np.ndarray = None  # int64 [N]: row * stride + symbol index (escape = row length), into cdf_flat


def _prepare(symbols, indexes, view, native=None) -> _Prepared:
    v = _flat_int(symbols, "symbols")
    rows = _flat_int(indexes, "table_index")
    if v.shape != rows.shape:
        raise ValueError(f"symbols and table_index differ in size ({v.size} vs {rows.size})")
    n = int(v.size)
    if n == 0:
        return _Prepared(0, b"", 0, fmt.choose_layout(0, 0), pos=rows)
    if rows.view(np.uint64).max() >= view.R:  # negative indexes wrap to huge values
        raise ValueError(f"table_index must lie in 0..{view.R - 1}")
    if not _fits_int32(symbols) and (v.min() < -(1 << 31) or v.max() >= (1 << 31)):
        raise ValueError("symbols must fit in int32")
    if _use_native(native):  # the same mapping and cost, in C
        v, rows = np.ascontiguousarray(v), np.ascontiguousarray(rows)
        pos, esc = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.uint8)
        cost, n_esc = _ransc.prepare(v, rows, view.offsets, view.lengths, view.stride, view.cost_flat, pos, esc)
        escapes = b""
        if n_esc:
            e = esc.view(bool)
            r_e = rows[e]
            escapes = fmt.escape_section(v[e] - view.offsets[r_e], view.lengths[r_e])
        return _Prepared(n, escapes, n_esc, fmt.layout_for(n, cost, len(escapes)), pos=pos)
    s = v - view.offsets.take(rows)
    length = view.lengths.take(rows)
    esc = s.view(np.uint64) >= length.view(np.uint64)  # below the range wraps to a huge value
    n_esc = int(np.count_nonzero(esc))
    escapes = b""
    if n_esc:
        escapes = fmt.escape_section(s[esc], length[esc])
        np.copyto(s, length, where=esc)
    pos = rows * view.stride
    pos += s
    cost = int(view.cost_flat.take(pos).sum())
    return _Prepared(n, escapes, n_esc, fmt.layout_for(n, cost, len(escapes)), pos=pos)


def _lane_matrix(values: np.ndarray, layout: Layout, fill) -> np.ndarray:
    """``[N]`` in symbol order -> ``[T, S*L]`` (step, segment-major lanes), padded with ``fill``."""
    L, T, S = layout.lanes, layout.steps, layout.segments
    out = np.full(S * T * L, fill, dtype=values.dtype)
    out[: values.size] = values
    return out.reshape(S, T, L).transpose(1, 0, 2).reshape(T, S * L)


def _stack_lanes(items, fill) -> np.ndarray:
    """``[(values [N], layout), ...]`` -> one ``[T_max, lanes]`` matrix, streams side by side,
    each padded with ``fill`` (the identity row) up to the longest stream's steps."""
    T_max = max(lay.steps for _, lay in items)
    mats = []
    for values, lay in items:
        m = _lane_matrix(values, lay, fill)
        if T_max > lay.steps:
            m = np.concatenate([m, np.full((T_max - lay.steps, m.shape[1]), fill, dtype=m.dtype)])
        mats.append(m)
    return np.concatenate(mats, axis=1) if len(mats) > 1 else mats[0]


def _from_lane_matrix(m: np.ndarray, layout: Layout, n: int) -> np.ndarray:
    L, T, S = layout.lanes, layout.steps, layout.segments
    return m.reshape(T, S, L).transpose(1, 0, 2).reshape(-1)[:n]


# --------------------------------------------------------------------------------------
# encoder
# --------------------------------------------------------------------------------------
def encode_many(items, tables: CDFTables, layouts=None, native=None) -> list[bytes]:
    """Encode several ``(symbols, table_index)`` pairs; one stream each, one lane loop for all.

    ``layouts`` (optional, one :class:`Layout` or None per item) overrides the encoder's
    layout rule; any layout valid for the item's size is accepted (tests use this to
    pin multi-segment streams in small files).  ``native``: the compiled loops (True),
    the numpy ones (False) or the compiled ones where built (None).
    """
    view = tables.coder_view()
    native = _use_native(native)
    preps = [_prepare(s, i, view, native) for s, i in items]
    fmt.override_layouts(preps, layouts)
    if not preps:
        return []
    if native:
        return [_encode_native(p, view, tables.id) for p in preps]
    T_max = max(p.layout.steps for p in preps)
    pos = _stack_lanes([(p.pos, p.layout) for p in preps], view.identity_row * view.stride)
    start = view.cdf_flat.take(pos)
    pos += 1
    freq = view.cdf_flat.take(pos)
    freq -= start
    del pos
    lanes_total = start.shape[1]
    xmax = freq << 16  # renormalise (emit a word) when x >= freq * 2**16
    comp = TOTAL - freq  # x' = x + (x // f) * (2**16 - f) + start
    x = np.full(lanes_total, STATE_LOW, dtype=np.int64)
    words = np.empty((T_max, lanes_total), dtype=np.int64)  # state before renormalising
    emit = np.empty((T_max, lanes_total), dtype=bool)
    q = np.empty(lanes_total, dtype=np.int64)
    sh = np.empty(lanes_total, dtype=np.uint8)
    sixteen = np.uint8(16)
    for t in range(T_max - 1, -1, -1):
        e = emit[t]
        np.greater_equal(x, xmax[t], out=e)
        words[t] = x  # its low 16 bits are the word, where e
        np.multiply(e.view(np.uint8), sixteen, out=sh)
        np.right_shift(x, sh, out=x)
        np.floor_divide(x, freq[t], out=q)
        q *= comp[t]
        x += q
        x += start[t]
    out = []
    a = 0
    for p in preps:
        L, T, S = p.layout.lanes, p.layout.steps, p.layout.segments
        b = a + S * L
        w = words[:T, a:b].reshape(T, S, L).transpose(1, 0, 2)
        m = emit[:T, a:b].reshape(T, S, L).transpose(1, 0, 2)
        counts = m.sum(axis=(1, 2))
        seg_words = w[m] & WORD_MASK  # segment, step, lane order
        states = x[a:b].astype("<u4").reshape(S, L)
        out.append(_pack(p, states, seg_words, counts, tables.id))
        a = b
    return out


def _encode_native(p: _Prepared, view, table_id: bytes) -> bytes:
    L, T, S = p.layout.lanes, p.layout.steps, p.layout.segments
    states = np.empty(S * L, dtype=np.uint32)
    words = np.empty(p.n, dtype=np.uint16)
    counts = np.empty(S, dtype=np.int64)
    k = _ransc.encode(np.ascontiguousarray(p.pos, dtype=np.int64), view.cdf_flat, states, words, counts, L, T, S)
    return _pack(p, states.astype("<u4", copy=False).reshape(S, L), words[:k], counts, table_id)


def _pack(p: _Prepared, states, words, counts, table_id: bytes) -> bytes:
    """The stream from the lane loop's final states ``[S, L]`` and words (segment, step, lane order)."""
    words = words.astype("<u2")
    bodies = []
    w0 = 0
    for s in range(p.layout.segments):
        bodies.append(states[s].tobytes() + words[w0: w0 + counts[s]].tobytes())
        w0 += int(counts[s])
    return fmt.pack_stream(p, bodies, counts, table_id)


# --------------------------------------------------------------------------------------
# decoder
# --------------------------------------------------------------------------------------
def decode_many(streams, indexes, tables: CDFTables, native=None) -> list[np.ndarray]:
    """Decode several streams (each with its table indexes); returns int32 arrays, flat.
    ``native`` as for :func:`encode_many`."""
    view = tables.coder_view()
    parsed, item_rows = [], []
    for data, idx in zip(streams, indexes, strict=True):
        rows = _flat_int(idx, "table_index")
        if rows.size and (rows.min() < 0 or rows.max() >= view.R):
            raise ValueError(f"table_index must lie in 0..{view.R - 1}")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("a stream must be bytes")
        parsed.append(fmt.parse_stream(data, rows.size, tables.id))
        item_rows.append(rows)
    if not parsed:
        return []
    if _use_native(native):
        return [_decode_native(p, r, view) for p, r in zip(parsed, item_rows)]
    T_max = max(p.layout.steps for p in parsed)
    rows = _stack_lanes([(r, p.layout) for p, r in zip(parsed, item_rows)], view.identity_row)
    seg_of_lane, x0, word_parts = [], [], []
    seg_base, seg_end = [], []
    word_off, seg_id = 0, 0
    for p in parsed:
        L, S = p.layout.lanes, p.layout.segments
        seg_of_lane.append(np.repeat(np.arange(seg_id, seg_id + S), L))
        x0.append(p.states)
        word_parts.append(p.words)
        starts = word_off + np.concatenate([[0], np.cumsum(p.counts)[:-1]]) if S else np.zeros(0, np.int64)
        seg_base.append(starts)
        seg_end.append(starts + p.counts)
        word_off += int(p.counts.sum())
        seg_id += S
    lanes_total = rows.shape[1]
    seg_of_lane = np.concatenate(seg_of_lane).astype(np.int64)
    x = np.concatenate(x0).astype(np.int64)
    n_words = word_off
    words = np.concatenate(word_parts).astype(np.int64) if word_off else np.zeros(1, np.int64)
    G = np.concatenate(seg_base).astype(np.int64)  # next word to read, per segment
    end = np.concatenate(seg_end).astype(np.int64)
    n_seg = G.size
    # lanes of segment k are first_lane[k] .. stop_lane[k] - 1
    first_lane = np.zeros(n_seg, dtype=np.int64)
    if n_seg:
        first_lane[1:] = np.nonzero(np.diff(seg_of_lane))[0] + 1
    stop_lane = np.append(first_lane[1:], lanes_total)
    lut = view.lut
    base_slot = rows * TOTAL
    base_row = rows * view.stride
    del rows
    out = np.empty((T_max, lanes_total), dtype=np.uint16)
    cdf = view.cdf_flat
    slot, s, c, f, tmp, pos = (np.empty(lanes_total, dtype=np.int64) for _ in range(6))
    one_segment = n_seg == 1
    g0 = int(G[0]) if one_segment else 0
    need = np.empty(lanes_total, dtype=bool)
    cs = np.zeros(lanes_total + 1, dtype=np.int64)  # cs[i] = needing lanes among 0 .. i-1
    for t in range(T_max):
        # symbol from the slot, then the state update  x = f * (x >> 16) + slot - start
        np.bitwise_and(x, WORD_MASK, out=slot)
        np.add(base_slot[t], slot, out=s)
        sym = lut.take(s)
        out[t] = sym
        np.add(base_row[t], sym, out=s)
        cdf.take(s, out=c)
        s += 1
        cdf.take(s, out=f)
        f -= c
        np.right_shift(x, 16, out=x)
        x *= f
        x += slot
        x -= c
        # lanes whose state fell below 2**16 read the next word of their segment, in lane order
        np.less(x, STATE_LOW, out=need)
        if one_segment:
            k = need.nonzero()[0]
            g1 = g0 + k.size
            if g1 > n_words:
                raise CorruptStreamError("stream words run out before its symbols (corrupt data)")
            xk = x.take(k)
            xk <<= 16
            xk |= words[g0:g1]
            x.put(k, xk)
            g0 = g1
            continue
        np.cumsum(need, out=cs[1:])
        before = cs.take(first_lane)
        (G - before).take(seg_of_lane, out=pos)
        pos += cs[1:]
        pos -= 1
        G += cs.take(stop_lane) - before
        w = words.take(pos, mode="clip")  # reads past a segment's end are caught after the loop
        np.left_shift(x, 16, out=tmp)
        tmp |= w
        np.copyto(x, tmp, where=need)
    if one_segment:
        G[0] = g0
    if np.any(G != end):
        raise CorruptStreamError("stream words do not match its symbols (corrupt data)")
    if np.any(x != STATE_LOW):
        raise CorruptStreamError("final lane states are wrong (corrupt data or wrong tables)")
    results = []
    a = 0
    for p, p_rows in zip(parsed, item_rows):
        L, T, S = p.layout.lanes, p.layout.steps, p.layout.segments
        b = a + S * L
        results.append(_values(p, p_rows, _from_lane_matrix(out[:T, a:b], p.layout, p.n), view))
        a = b
    return results


_NATIVE_ERRORS = {1: "stream words run out before its symbols (corrupt data)",
                  2: "stream words do not match its symbols (corrupt data)",
                  3: "final lane states are wrong (corrupt data or wrong tables)",
                  4: "escape count does not match the decoded symbols"}


def _decode_native(p, rows: np.ndarray, view) -> np.ndarray:
    L, T, S = p.layout.lanes, p.layout.steps, p.layout.segments
    out = np.empty(p.n, dtype=np.int32)
    esc = np.empty(p.escapes.size, dtype=np.int64)
    err = _ransc.decode(np.ascontiguousarray(rows, dtype=np.int64), view.lut, view.cdf_flat, view.stride,
                        view.offsets, view.lengths, np.ascontiguousarray(p.states, dtype=np.uint32),
                        np.ascontiguousarray(p.words, dtype=np.uint16), np.ascontiguousarray(p.counts, dtype=np.int64),
                        L, T, S, out, esc)
    if err:
        raise CorruptStreamError(_NATIVE_ERRORS[err])
    if esc.size:
        r_e = rows[esc]
        out[esc] = fmt.escape_values(p.escapes, view.offsets[r_e], view.lengths[r_e])
    return out


def _values(p, p_rows: np.ndarray, sym: np.ndarray, view) -> np.ndarray:
    """int32 values from the decoded symbol indexes ``sym`` (escapes from the escape section)."""
    sym = sym.astype(np.int64)
    length = view.lengths[p_rows]
    esc = sym == length
    n_esc = int(np.count_nonzero(esc))
    if n_esc != p.escapes.size:
        raise CorruptStreamError("escape count does not match the decoded symbols")
    val = sym + view.offsets[p_rows]
    if n_esc:
        r_e = p_rows[esc]
        val[esc] = fmt.escape_values(p.escapes, view.offsets[r_e], view.lengths[r_e])
    return val.astype(np.int32)
