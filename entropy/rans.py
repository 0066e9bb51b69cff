"""Lane-interleaved rANS, CPU reference coder in numpy.

The byte format is specified in ``entropy/FORMAT.md``; this module follows it
step by step and is the reference every other coder (the Triton GPU coder) must
match byte for byte.  Names below follow the spec: ``L`` lanes per segment, ``T``
steps per segment, ``S`` segments, ``N`` symbols.

The state of one lane is an integer in ``[2**16, 2**32)``; it is carried in numpy
int64 so that products never overflow.  Padding positions of the layout are coded
with the *identity row* (one symbol of frequency ``2**16``), which leaves a state
unchanged and emits or reads nothing, so every lane runs the same number of steps.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .tables import COST_ONE, PRECISION, TOTAL, CDFTables

MAGIC = b"rANS"
VERSION = 1
STATE_LOW = 1 << 16  # initial encoder state = final decoder state
WORD_MASK = 0xFFFF
LANE_QUANTUM = 32
MAX_LANES_PER_SEGMENT = 1024
#: The encoder keeps the final-state bytes near this fraction of the estimated payload.
STATE_BUDGET = 0.01
MAX_ESCAPE_BYTES = 5  # one escaped value takes at most 5 varint bytes (codes < 2**35)

HEADER = struct.Struct("<4sBBHIIQ8sIII")  # up to, not including, the header CRC
HEADER_SIZE = HEADER.size + 4  # 48
DIR_ENTRY = struct.Struct("<II")


class StreamError(ValueError):
    """A stream cannot be decoded."""


class CorruptStreamError(StreamError):
    """The bytes are not a valid stream (truncated, flipped bits, bad header, ...)."""


class TableMismatchError(StreamError):
    """The stream was coded with other tables than the ones given to the decoder."""


@dataclass(frozen=True)
class Layout:
    """Symbol ``n`` sits in segment ``n // (T*L)``, step ``(n // L) % T``, lane ``n % L``."""

    lanes: int  # L, lanes per segment
    steps: int  # T
    segments: int  # S

    @staticmethod
    def canonical_segments(n: int, lanes: int, steps: int) -> int:
        return 0 if n == 0 else -(-n // (steps * lanes))

    def check(self, n: int) -> None:
        """Raise CorruptStreamError unless this layout is valid for ``n`` symbols (FORMAT.md, 'Layout')."""
        L, T, S = self.lanes, self.steps, self.segments
        if L % LANE_QUANTUM or not LANE_QUANTUM <= L <= MAX_LANES_PER_SEGMENT:
            raise CorruptStreamError(f"invalid lane count {L}")
        if n == 0:
            if T or S:
                raise CorruptStreamError("an empty stream has no steps or segments")
            return
        if not 1 <= T <= -(-n // L):
            raise CorruptStreamError(f"invalid step count {T} for {n} symbols")
        if S != self.canonical_segments(n, L, T):
            raise CorruptStreamError(f"invalid segment count {S}")


def choose_layout(n: int, payload_bytes: int) -> Layout:
    """The encoder's layout rule (FORMAT.md, 'Choosing the layout'); integers only.

    Total lanes are the largest multiple of 32 whose final states (4 bytes each) stay
    within ``STATE_BUDGET`` of the estimated payload (at least 32); they are split into
    the fewest segments of at most 1024 lanes, as evenly as multiples of 32 allow.
    """
    if n == 0:
        return Layout(LANE_QUANTUM, 0, 0)
    # lanes_total = 32 * max(1, floor(payload * 0.01 / (4 * 32)))
    groups = max(1, payload_bytes // (100 * 4 * LANE_QUANTUM))
    groups = min(groups, -(-n // LANE_QUANTUM))  # no more lanes than symbols
    segs = -(-groups // (MAX_LANES_PER_SEGMENT // LANE_QUANTUM))
    lanes = LANE_QUANTUM * -(-groups // segs)
    steps = -(-n // (segs * lanes))
    return Layout(lanes, steps, Layout.canonical_segments(n, lanes, steps))


# --------------------------------------------------------------------------------------
# escapes: LEB128 varints of  2 * distance + (1 if above the range else 0)
# --------------------------------------------------------------------------------------
def _varint_encode(codes: np.ndarray) -> bytes:
    if codes.size == 0:
        return b""
    codes = codes.astype(np.uint64)
    nbytes = np.ones(codes.shape, dtype=np.int64)
    for k in range(1, MAX_ESCAPE_BYTES):
        nbytes += codes >= np.uint64(1 << (7 * k))
    k = np.arange(MAX_ESCAPE_BYTES, dtype=np.uint64)
    groups = (codes[:, None] >> (np.uint64(7) * k[None, :])) & np.uint64(0x7F)
    more = k[None, :].astype(np.int64) < (nbytes[:, None] - 1)
    out = (groups | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8)
    keep = k[None, :].astype(np.int64) < nbytes[:, None]
    return out[keep].tobytes()


def _varint_decode(data: bytes, count: int) -> np.ndarray:
    b = np.frombuffer(data, dtype=np.uint8)
    if count == 0:
        if b.size:
            raise CorruptStreamError("escape section has bytes but no escapes")
        return np.zeros(0, dtype=np.int64)
    ends = np.nonzero(b < 0x80)[0]
    if ends.size != count or ends[-1] != b.size - 1:
        raise CorruptStreamError("escape section does not hold the announced number of values")
    starts = np.concatenate([[0], ends[:-1] + 1])
    if np.any(ends - starts >= MAX_ESCAPE_BYTES):
        raise CorruptStreamError("escape value too long")
    grp = np.repeat(np.arange(count), ends - starts + 1)
    pos = np.arange(b.size) - starts[grp]
    vals = (b & 0x7F).astype(np.int64) << (7 * pos)
    return np.bitwise_or.reduceat(vals, starts)


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
class _Prepared:
    n: int
    pos: np.ndarray  # int64 [N]: row * stride + symbol index (escape = row length), into cdf_flat
    escapes: bytes
    n_escapes: int
    layout: Layout


def _prepare(symbols, indexes, view) -> _Prepared:
    v = _flat_int(symbols, "symbols")
    rows = _flat_int(indexes, "table_index")
    if v.shape != rows.shape:
        raise ValueError(f"symbols and table_index differ in size ({v.size} vs {rows.size})")
    n = int(v.size)
    if n == 0:
        return _Prepared(0, rows, b"", 0, choose_layout(0, 0))
    if rows.view(np.uint64).max() >= view.R:  # negative indexes wrap to huge values
        raise ValueError(f"table_index must lie in 0..{view.R - 1}")
    if not _fits_int32(symbols) and (v.min() < -(1 << 31) or v.max() >= (1 << 31)):
        raise ValueError("symbols must fit in int32")
    s = v - view.offsets.take(rows)
    length = view.lengths.take(rows)
    esc = s.view(np.uint64) >= length.view(np.uint64)  # below the range wraps to a huge value
    n_esc = int(np.count_nonzero(esc))
    escapes = b""
    if n_esc:
        escapes = _escape_section(s[esc], length[esc])
        np.copyto(s, length, where=esc)
    pos = rows * view.stride
    pos += s
    cost = int(view.cost_flat.take(pos).sum())
    return _Prepared(n, pos, escapes, n_esc, _layout_for(n, cost, len(escapes)))


def _escape_section(s_e: np.ndarray, len_e: np.ndarray) -> bytes:
    """Escape section (FORMAT.md section 2) of the escaped symbols, in symbol order.

    ``s_e = v - off[r]`` (int64, outside ``0 .. len_e - 1``), ``len_e = len[r]``.
    """
    ab = s_e >= len_e
    dist = np.where(ab, s_e - len_e, -s_e - 1)
    return _varint_encode(2 * dist + ab)


def _layout_for(n: int, cost: int, escape_bytes: int) -> Layout:
    """The layout rule from the exact integer cost sum and the escape-section length."""
    return choose_layout(n, int(cost) // (8 * COST_ONE) + int(escape_bytes))


def _apply_layouts(preps, layouts) -> None:
    """Replace the rule's layouts by the caller's (``None`` keeps the rule's); checks validity."""
    for p, lay in zip(preps, layouts or [], strict=False):
        if lay is not None:
            try:
                lay.check(p.n)
            except CorruptStreamError as exc:
                raise ValueError(f"layout {lay} is not valid for {p.n} symbols: {exc}") from None
            p.layout = lay


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
def encode_many(items, tables: CDFTables, layouts=None) -> list[bytes]:
    """Encode several ``(symbols, table_index)`` pairs; one stream each, one lane loop for all.

    ``layouts`` (optional, one :class:`Layout` or None per item) overrides the encoder's
    layout rule; any layout valid for the item's size is accepted (tests use this to
    pin multi-segment streams in small files).
    """
    view = tables.coder_view()
    preps = [_prepare(s, i, view) for s, i in items]
    _apply_layouts(preps, layouts)
    if not preps:
        return []
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


def _pack(p: _Prepared, states, words, counts, table_id: bytes) -> bytes:
    words = words.astype("<u2")
    bodies = []
    w0 = 0
    for s in range(p.layout.segments):
        bodies.append(states[s].tobytes() + words[w0: w0 + counts[s]].tobytes())
        w0 += int(counts[s])
    return _pack_bodies(p, bodies, counts, table_id)


def _pack_bodies(p: _Prepared, bodies, counts, table_id: bytes) -> bytes:
    """The stream from its segment bodies (``L`` states as u32 then ``K_s`` words as u16, little-endian)."""
    L, T, S = p.layout.lanes, p.layout.steps, p.layout.segments
    directory = [DIR_ENTRY.pack(int(counts[s]), zlib.crc32(bodies[s])) for s in range(S)]
    esc_crc = zlib.crc32(p.escapes)
    head = HEADER.pack(MAGIC, VERSION, PRECISION, L, T, S, p.n, table_id, p.n_escapes, len(p.escapes), esc_crc)
    dir_bytes = b"".join(directory)
    head_crc = zlib.crc32(head + dir_bytes)
    return b"".join([head, struct.pack("<I", head_crc), dir_bytes, *bodies, p.escapes])


# --------------------------------------------------------------------------------------
# decoder
# --------------------------------------------------------------------------------------
@dataclass
class _Parsed:
    layout: Layout
    n: int
    states: np.ndarray  # int64 [S*L]
    words: np.ndarray  # uint16, all segments back to back
    counts: np.ndarray  # int64 [S]
    escapes: np.ndarray  # int64 codes
    rows: np.ndarray  # int64 [N]


def parse_header(data: bytes) -> dict:
    """Fixed header fields of a stream (no validation beyond size and magic)."""
    if len(data) < HEADER_SIZE:
        raise CorruptStreamError(f"stream too short ({len(data)} bytes) for a header")
    magic, ver, prec, L, T, S, n, tid, n_esc, esc_len, esc_crc = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise CorruptStreamError("not an rANS stream (bad magic)")
    (head_crc,) = struct.unpack_from("<I", data, HEADER.size)
    return dict(version=ver, precision=prec, lanes=L, steps=T, segments=S, symbols=n, table_id=tid,
                escapes=n_esc, escape_bytes=esc_len, escape_crc=esc_crc, header_crc=head_crc)


def _parse(data, n_expected: int, rows: np.ndarray, tables: CDFTables) -> _Parsed:
    data = bytes(data)
    h = parse_header(data)
    if h["version"] != VERSION:
        raise CorruptStreamError(f"unsupported rANS stream version {h['version']}")
    if h["precision"] != PRECISION:
        raise CorruptStreamError(f"unsupported precision {h['precision']}")
    n = h["symbols"]
    if n != n_expected:
        raise CorruptStreamError(f"stream holds {n} symbols, the decoder expects {n_expected}")
    layout = Layout(h["lanes"], h["steps"], h["segments"])
    layout.check(n)
    L, T, S = layout.lanes, layout.steps, layout.segments
    dir_end = HEADER_SIZE + DIR_ENTRY.size * S
    if dir_end > len(data):
        raise CorruptStreamError("stream truncated inside its segment directory")
    if zlib.crc32(data[: HEADER.size] + data[HEADER_SIZE:dir_end]) != h["header_crc"]:
        raise CorruptStreamError("header checksum mismatch")
    if h["table_id"] != tables.id:
        raise TableMismatchError(
            f"stream was coded with tables {h['table_id'].hex()}, decoder has {tables.id.hex()}")
    d = np.frombuffer(data, dtype="<u4", count=2 * S, offset=HEADER_SIZE).reshape(S, 2).astype(np.int64)
    counts, crcs = d[:, 0], d[:, 1]
    if np.any(counts > T * L):
        raise CorruptStreamError("segment word count exceeds its symbols")
    n_esc, esc_len = h["escapes"], h["escape_bytes"]
    if n_esc > n or not n_esc <= esc_len <= MAX_ESCAPE_BYTES * n_esc:
        raise CorruptStreamError("invalid escape section size")
    body_len = 4 * L * S + 2 * int(counts.sum())
    if dir_end + body_len + esc_len != len(data):
        raise CorruptStreamError(
            f"stream length {len(data)} does not match its header ({dir_end + body_len + esc_len})")
    states = np.empty(S * L, dtype=np.int64)
    words = np.empty(int(counts.sum()), dtype=np.uint16)
    off, w0 = dir_end, 0
    for s in range(S):
        size = 4 * L + 2 * int(counts[s])
        body = data[off: off + size]
        if zlib.crc32(body) != crcs[s]:
            raise CorruptStreamError(f"segment {s} checksum mismatch")
        states[s * L:(s + 1) * L] = np.frombuffer(body, dtype="<u4", count=L)
        words[w0: w0 + counts[s]] = np.frombuffer(body, dtype="<u2", offset=4 * L)
        off += size
        w0 += int(counts[s])
    esc = data[off:]
    if zlib.crc32(esc) != h["escape_crc"]:
        raise CorruptStreamError("escape section checksum mismatch")
    if np.any(states < STATE_LOW):
        raise CorruptStreamError("invalid initial lane state")
    return _Parsed(layout, n, states, words, counts, _varint_decode(esc, n_esc), rows)


def decode_many(streams, indexes, tables: CDFTables) -> list[np.ndarray]:
    """Decode several streams (each with its table indexes); returns int32 arrays, flat."""
    view = tables.coder_view()
    parsed = []
    for data, idx in zip(streams, indexes, strict=True):
        rows = _flat_int(idx, "table_index")
        if rows.size and (rows.min() < 0 or rows.max() >= view.R):
            raise ValueError(f"table_index must lie in 0..{view.R - 1}")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("a stream must be bytes")
        parsed.append(_parse(data, rows.size, rows, tables))
    if not parsed:
        return []
    T_max = max(p.layout.steps for p in parsed)
    rows = _stack_lanes([(p.rows, p.layout) for p in parsed], view.identity_row)
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
    for p in parsed:
        L, T, S = p.layout.lanes, p.layout.steps, p.layout.segments
        b = a + S * L
        sym = _from_lane_matrix(out[:T, a:b], p.layout, p.n).astype(np.int64)
        a = b
        length = view.lengths[p.rows]
        esc = sym == length
        n_esc = int(np.count_nonzero(esc))
        if n_esc != p.escapes.size:
            raise CorruptStreamError("escape count does not match the decoded symbols")
        val = sym + view.offsets[p.rows]
        if n_esc:
            val[esc] = _escape_values(p.escapes, p.rows[esc], view)
        results.append(val.astype(np.int32))
    return results


def _escape_values(codes: np.ndarray, rows_e: np.ndarray, view) -> np.ndarray:
    """Values (int64) of the escaped symbols from their escape codes and rows; int32-checked."""
    ab = (codes & 1).astype(bool)
    dist = codes >> 1
    lo = view.offsets[rows_e]
    le = view.lengths[rows_e]
    ev = np.where(ab, lo + le + dist, lo - 1 - dist)
    if np.any(ev < -(1 << 31)) or np.any(ev >= (1 << 31)):
        raise CorruptStreamError("escaped value out of int32 range")
    return ev
