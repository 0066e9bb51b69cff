"""The rANS stream format, versions 1 and 2, as code (the spec is ``FORMAT.md`` beside this file).

Everything that decides or checks bytes and that does not depend on how the lane loop
is run lives here, and both coders use it: the numpy reference coder (``rans.py``)
and the Triton GPU coder (``rans_triton.py``).  Section numbers below are FORMAT.md's.

- constants and the header / directory structs (section 5);
- :class:`Layout` and its validity rule (section 4), the encoder's layout rule
  :func:`choose_layout` / :func:`layout_for` (section 4, 'Choosing the layout');
- the escape section: LEB128 varints of ``2 * distance + above`` (section 2);
- :func:`pack_stream` (headers, directory, CRC32s around the segment bodies) and
  :func:`parse_stream` (every check of section 6, items 1-7, before any allocation
  that the stream's length does not bound); :func:`parse_header`.

A coder prepares a :class:`StreamInfo` per stream (symbol count, escape section, layout),
runs its lane loop, and hands the segment bodies to :func:`pack_stream`; a decoder gets
a :class:`ParsedStream` from :func:`parse_stream`, runs its lane loop and then checks
section 6, item 8, itself.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import CorruptStreamError, TableMismatchError
from .tables import COST_ONE, PRECISION

__all__ = [
    "MAGIC", "VERSION", "VERSIONS", "WRITE_VERSION", "SMALL_LANE_BYTES", "SMALL_MAX_STEPS", "STATE_LOW", "WORD_MASK", "LANE_QUANTUM", "MAX_LANES_PER_SEGMENT", "STATE_BUDGET",
    "LAYOUT_RULES", "LAYOUT_RULE", "MAX_ESCAPE_BYTES", "HEADER", "HEADER_SIZE", "HEADER_CRC", "DIR_ENTRY", "Layout", "choose_layout",
    "layout_for", "override_layouts", "varint_encode", "varint_decode", "read_varint", "escape_section", "escape_values",
    "StreamInfo", "ParsedStream", "pack_stream", "parse_header", "parse_stream", "regions", "resign",
]

MAGIC = b"rANS"
#: the version encoders write: version 2 (a compact header of varints, one CRC over the
#: header and one over the rest, any lane count from 1 to 1024); decoders read both.
#: Version 1 (a fixed 48-byte header, a directory of 8 bytes a segment, lanes a multiple of
#: 32) is still written where a test pins it (``WRITE_VERSION = 1`` with ``LAYOUT_RULE`` 1 or 2).
VERSION = 2
VERSIONS = (1, 2)
WRITE_VERSION = VERSION
STATE_LOW = 1 << 16  # initial encoder state = final decoder state
WORD_MASK = 0xFFFF
LANE_QUANTUM = 32
MAX_LANES_PER_SEGMENT = 1024
#: The encoder keeps the final-state bytes near this fraction of the estimated payload.
#: payload bytes per group of 32 lanes in each revision of the encoder's layout rule
#: (FORMAT.md, 'Choosing the layout'); streams of every revision decode alike
LAYOUT_RULES = {1: 12_800, 2: 51_200, 3: 51_200}
LAYOUT_RULE = 3  # the revision encoders follow (a test pins 1 to compare with streams written under it)
STATE_BUDGET = 4 * 32 / LAYOUT_RULES[LAYOUT_RULE]  # final lane states' share of the payload (0.25%)
#: revision 3: a stream of less than one group's payload gets one lane per this many
#: estimated payload bytes (1 to 31 lanes, version 2), not 32 lanes
SMALL_LANE_BYTES = 8_192
#: ... and at least enough lanes that none runs more than this many steps (a lane is a
#: sequential loop on every coder; more lanes than 31 take the groups' rule)
SMALL_MAX_STEPS = 65_536
MAX_ESCAPE_BYTES = 5  # one escaped value takes at most 5 varint bytes (codes < 2**35)

#: bytes 0..43: magic, version, precision, L, T, S, N, table id, escapes, escape bytes, escape CRC
HEADER = struct.Struct("<4sBBHIIQ8sIII")
HEADER_CRC = struct.Struct("<I")  # bytes 44..47: CRC32 of bytes 0..43 + the directory
HEADER_SIZE = HEADER.size + HEADER_CRC.size  # 48
DIR_ENTRY = struct.Struct("<II")  # per segment: K_s words, CRC32 of the segment body
#: version 2, bytes 0..13: magic, version, precision, table id; then varints N, L, T,
#: escapes, escape bytes and K_s of each segment; then the CRC32 of all that (u32)
HEADER2 = struct.Struct("<4sBB8s")
#: a header number (varint) takes at most this many bytes (values below 2**63)
MAX_VARINT_BYTES = 9


# --------------------------------------------------------------------------------------
# layout (section 4)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Symbol ``n`` sits in segment ``n // (T*L)``, step ``(n // L) % T``, lane ``n % L``."""

    lanes: int  # L, lanes per segment
    steps: int  # T
    segments: int  # S

    @staticmethod
    def canonical_segments(n: int, lanes: int, steps: int) -> int:
        return 0 if n == 0 else -(-n // (steps * lanes))

    def check(self, n: int, version: int = VERSION) -> None:
        """Raise CorruptStreamError unless this layout is valid for ``n`` symbols in a stream
        of format ``version`` (FORMAT.md, 'Layout')."""
        L, T, S = self.lanes, self.steps, self.segments
        if version == 1 and (L % LANE_QUANTUM or not LANE_QUANTUM <= L <= MAX_LANES_PER_SEGMENT):
            raise CorruptStreamError(f"invalid lane count {L} for a version 1 stream")
        if not 1 <= L <= MAX_LANES_PER_SEGMENT:
            raise CorruptStreamError(f"invalid lane count {L}")
        if n == 0:
            if T or S or L != LANE_QUANTUM:
                raise CorruptStreamError(f"an empty stream has {LANE_QUANTUM} lanes, no steps and no segments")
            return
        if not 1 <= T <= -(-n // L):
            raise CorruptStreamError(f"invalid step count {T} for {n} symbols")
        if S != self.canonical_segments(n, L, T):
            raise CorruptStreamError(f"invalid segment count {S}")


def choose_layout(n: int, payload_bytes: int) -> Layout:
    """The encoder's layout rule (FORMAT.md, 'Choosing the layout'); integers only.

    Total lanes are the largest multiple of 32 whose final states (4 bytes each) stay
    within ``STATE_BUDGET`` of the estimated payload; they are split into the fewest
    segments of at most 1024 lanes, as evenly as multiples of 32 allow.  Revision 3: a
    stream whose payload is below one group's gets one segment of ``payload //
    SMALL_LANE_BYTES`` lanes, or ``ceil(n / SMALL_MAX_STEPS)`` if more (at least 1, at most
    the symbols), where that is below 32: small streams pay for a few final states, not
    for 32.
    """
    if n == 0:
        return Layout(LANE_QUANTUM, 0, 0)
    if LAYOUT_RULE >= 3 and payload_bytes < LAYOUT_RULES[LAYOUT_RULE]:
        lanes = min(max(1, payload_bytes // SMALL_LANE_BYTES, -(-n // SMALL_MAX_STEPS)), n)
        if lanes < LANE_QUANTUM:
            return Layout(lanes, -(-n // lanes), 1)
    groups = max(1, payload_bytes // LAYOUT_RULES[LAYOUT_RULE])
    groups = min(groups, -(-n // LANE_QUANTUM))  # no more lanes than symbols
    segs = -(-groups // (MAX_LANES_PER_SEGMENT // LANE_QUANTUM))
    lanes = LANE_QUANTUM * -(-groups // segs)
    steps = -(-n // (segs * lanes))
    return Layout(lanes, steps, Layout.canonical_segments(n, lanes, steps))


def layout_for(n: int, cost: int, escape_bytes: int) -> Layout:
    """The layout rule from the exact integer cost sum (``sum cost[r][k]``, 1/COST_ONE bit
    units, see ``tables.cost_table``) and the escape-section length in bytes."""
    return choose_layout(n, int(cost) // (8 * COST_ONE) + int(escape_bytes))


# --------------------------------------------------------------------------------------
# escapes (section 2): LEB128 varints of  2 * distance + (1 if above the range else 0)
# --------------------------------------------------------------------------------------
def varint_encode(codes: np.ndarray) -> bytes:
    """Unsigned LEB128 of each code (< 2**35), concatenated."""
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


def varint_decode(data: bytes, count: int) -> np.ndarray:
    """``count`` codes (int64) from an escape section; CorruptStreamError unless it holds exactly that."""
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


def read_varint(data: bytes, pos: int, what: str = "stream") -> tuple:
    """One header number (unsigned LEB128, minimally encoded, at most MAX_VARINT_BYTES) at
    ``pos``: ``(value, next position)``; CorruptStreamError where it is truncated, too long
    or not minimal."""
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise CorruptStreamError(f"{what}: header ends inside a number")
        b = data[pos + i]
        value |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            if b == 0 and i:  # one number, one encoding
                raise CorruptStreamError(f"{what}: a header number has a redundant zero byte")
            return value, pos + i + 1
    raise CorruptStreamError(f"{what}: header number too long")


def escape_section(s_e: np.ndarray, len_e: np.ndarray) -> bytes:
    """The escape section of the escaped symbols, in symbol order.

    ``s_e = v - off[r]`` (int64, outside ``0 .. len_e - 1``), ``len_e = len[r]``.
    """
    ab = s_e >= len_e
    dist = np.where(ab, s_e - len_e, -s_e - 1)
    return varint_encode(2 * dist + ab)


def escape_values(codes: np.ndarray, off_e: np.ndarray, len_e: np.ndarray) -> np.ndarray:
    """Values (int64) of escaped symbols from their codes and their rows' ``off``/``len``;
    CorruptStreamError for a value outside int32."""
    ab = (codes & 1).astype(bool)
    dist = codes >> 1
    ev = np.where(ab, off_e + len_e + dist, off_e - 1 - dist)
    if np.any(ev < -(1 << 31)) or np.any(ev >= (1 << 31)):
        raise CorruptStreamError("escaped value out of int32 range")
    return ev


# --------------------------------------------------------------------------------------
# packing (section 5)
# --------------------------------------------------------------------------------------
@dataclass
class StreamInfo:
    """What an encoder knows of one stream before its lane loop."""

    n: int  # symbols
    escapes: bytes  # the escape section
    n_escapes: int
    layout: Layout


def override_layouts(infos, layouts) -> None:
    """Replace the rule's layouts by a caller's (``None`` keeps the rule's); ValueError for
    a layout that is not valid for its stream's size."""
    for info, lay in zip(infos, layouts or [], strict=False):
        if lay is not None:
            try:
                lay.check(info.n)
            except CorruptStreamError as exc:
                raise ValueError(f"layout {lay} is not valid for {info.n} symbols: {exc}") from None
            info.layout = lay


def pack_stream(info: StreamInfo, bodies, counts, table_id: bytes) -> bytes:
    """The stream from its segment bodies (bytes-like, in segment order: ``L`` final states
    as u32, then ``K_s = counts[s]`` words as u16, little-endian), in version ``WRITE_VERSION``."""
    L, T, S = info.layout.lanes, info.layout.steps, info.layout.segments
    if WRITE_VERSION == 2:
        head = HEADER2.pack(MAGIC, 2, PRECISION, table_id) + varint_encode(
            np.array([info.n, L, T, info.n_escapes, len(info.escapes)] + [int(c) for c in counts[:S]], dtype=np.int64))
        crc = 0
        for part in (*bodies, info.escapes):
            crc = zlib.crc32(part, crc)
        return b"".join([head, HEADER_CRC.pack(zlib.crc32(head)), *bodies, info.escapes, HEADER_CRC.pack(crc)])
    if L % LANE_QUANTUM:
        raise ValueError(f"a version 1 stream cannot have {L} lanes")
    directory = b"".join(DIR_ENTRY.pack(int(counts[s]), zlib.crc32(bodies[s])) for s in range(S))
    head = HEADER.pack(MAGIC, 1, PRECISION, L, T, S, info.n, table_id, info.n_escapes, len(info.escapes),
                       zlib.crc32(info.escapes))
    return b"".join([head, HEADER_CRC.pack(zlib.crc32(head + directory)), directory, *bodies, info.escapes])


# --------------------------------------------------------------------------------------
# parsing and validation (section 6)
# --------------------------------------------------------------------------------------
@dataclass
class ParsedStream:
    """A validated stream, ready for a lane loop (section 6, items 1-7 checked)."""

    layout: Layout
    n: int
    states: np.ndarray  # int64 [S*L], segment-major
    words: np.ndarray  # uint16, all segments back to back
    counts: np.ndarray  # int64 [S], words per segment
    escapes: np.ndarray  # int64 escape codes, in symbol order


def parse_header(data: bytes) -> dict:
    """Header fields of a stream of either version (no validation beyond its bytes: size,
    magic, well-formed numbers).  Version 1 adds its CRC fields and ``header_size`` (with
    the directory); version 2 adds ``directory_offset``, where its segment word counts begin."""
    data = bytes(data)
    if len(data) < 6 or data[:4] != MAGIC:
        if len(data) < 6:
            raise CorruptStreamError(f"stream too short ({len(data)} bytes) for a header")
        raise CorruptStreamError("not an rANS stream (bad magic)")
    if data[4] == 2:
        if len(data) < HEADER2.size:
            raise CorruptStreamError(f"stream too short ({len(data)} bytes) for a header")
        _, ver, prec, tid = HEADER2.unpack_from(data, 0)
        pos, nums = HEADER2.size, []
        for _ in range(5):
            v, pos = read_varint(data, pos, "rANS stream")
            nums.append(v)
        n, L, T, n_esc, esc_len = nums
        return dict(version=ver, precision=prec, lanes=L, steps=T,
                    segments=Layout.canonical_segments(n, L, T) if L and T else 0, symbols=n, table_id=tid,
                    escapes=n_esc, escape_bytes=esc_len, directory_offset=pos)
    if len(data) < HEADER_SIZE:
        raise CorruptStreamError(f"stream too short ({len(data)} bytes) for a header")
    magic, ver, prec, L, T, S, n, tid, n_esc, esc_len, esc_crc = HEADER.unpack_from(data, 0)
    (head_crc,) = HEADER_CRC.unpack_from(data, HEADER.size)
    return dict(version=ver, precision=prec, lanes=L, steps=T, segments=S, symbols=n, table_id=tid,
                escapes=n_esc, escape_bytes=esc_len, escape_crc=esc_crc, header_crc=head_crc,
                header_size=HEADER_SIZE + DIR_ENTRY.size * S)


def _check_fields(h: dict, n_expected: int, table_id: bytes, header_ok) -> Layout:
    """Section 6, items 1-5, common to both versions; ``header_ok()`` checks the header CRC
    (after the layout, before the tables)."""
    if h["version"] not in VERSIONS:
        raise CorruptStreamError(f"unsupported rANS stream version {h['version']} (this decoder reads "
                                 f"{', '.join(map(str, VERSIONS))})")
    if h["precision"] != PRECISION:
        raise CorruptStreamError(f"unsupported precision {h['precision']}")
    n = h["symbols"]
    if n != n_expected:
        raise CorruptStreamError(f"stream holds {n} symbols, the decoder expects {n_expected}")
    layout = Layout(h["lanes"], h["steps"], h["segments"])
    layout.check(n, h["version"])
    header_ok()
    if h["table_id"] != table_id:
        raise TableMismatchError(
            f"stream was coded with tables {h['table_id'].hex()}, decoder has {table_id.hex()}")
    n_esc, esc_len = h["escapes"], h["escape_bytes"]
    if n_esc > n or not n_esc <= esc_len <= MAX_ESCAPE_BYTES * n_esc:
        raise CorruptStreamError("invalid escape section size")
    return layout


def parse_stream(data, n_expected: int, table_id: bytes) -> ParsedStream:
    """Parse and validate a stream for ``n_expected`` symbols coded with tables ``table_id``
    (section 6, items 1-7, in that order); CorruptStreamError or TableMismatchError."""
    data = bytes(data)
    h = parse_header(data)
    if h["version"] == 2:
        return _parse_v2(data, h, n_expected, table_id)
    S = h["segments"]
    dir_end = HEADER_SIZE + DIR_ENTRY.size * S

    def header_ok():
        if dir_end > len(data):
            raise CorruptStreamError("stream truncated inside its segment directory")
        if zlib.crc32(data[: HEADER.size] + data[HEADER_SIZE:dir_end]) != h["header_crc"]:
            raise CorruptStreamError("header checksum mismatch")

    layout = _check_fields(h, n_expected, table_id, header_ok)
    L, T, n, n_esc = layout.lanes, layout.steps, h["symbols"], h["escapes"]
    d = np.frombuffer(data, dtype="<u4", count=2 * S, offset=HEADER_SIZE).reshape(S, 2).astype(np.int64)
    counts, crcs = d[:, 0], d[:, 1]
    if np.any(counts > T * L):
        raise CorruptStreamError("segment word count exceeds its symbols")
    esc_len = h["escape_bytes"]
    body_len = 4 * L * S + 2 * int(counts.sum())
    if dir_end + body_len + esc_len != len(data):
        raise CorruptStreamError(
            f"stream length {len(data)} does not match its header ({dir_end + body_len + esc_len})")
    off = dir_end
    for s in range(S):
        size = 4 * L + 2 * int(counts[s])
        if zlib.crc32(data[off: off + size]) != crcs[s]:
            raise CorruptStreamError(f"segment {s} checksum mismatch")
        off += size
    esc = data[dir_end + body_len:]
    if zlib.crc32(esc) != h["escape_crc"]:
        raise CorruptStreamError("escape section checksum mismatch")
    return _bodies(data, dir_end, layout, n, counts, esc, n_esc)


def _parse_v2(data: bytes, h: dict, n_expected: int, table_id: bytes) -> ParsedStream:
    S, pos = h["segments"], h["directory_offset"]
    counts = np.zeros(0, dtype=np.int64)
    dir_end = pos

    def header_ok():
        nonlocal counts, dir_end
        if S > len(data) - pos:  # every count takes a byte at least
            raise CorruptStreamError("stream truncated inside its segment word counts")
        b = np.frombuffer(data, dtype=np.uint8, offset=pos)
        ends = np.flatnonzero(b < 0x80)[:S]
        if ends.size < S:
            raise CorruptStreamError("stream truncated inside its segment word counts")
        dir_end = pos + (int(ends[-1]) + 1 if S else 0)
        try:
            counts = varint_decode(data[pos:dir_end], S)
        except CorruptStreamError:
            raise CorruptStreamError("malformed segment word counts") from None
        if varint_encode(counts) != data[pos:dir_end]:
            raise CorruptStreamError("a segment word count is not minimally encoded")
        if dir_end + HEADER_CRC.size > len(data) or \
                zlib.crc32(data[:dir_end]) != HEADER_CRC.unpack_from(data, dir_end)[0]:
            raise CorruptStreamError("header checksum mismatch")

    layout = _check_fields(h, n_expected, table_id, header_ok)
    L, T, n, n_esc, esc_len = layout.lanes, layout.steps, h["symbols"], h["escapes"], h["escape_bytes"]
    if np.any(counts > T * L):
        raise CorruptStreamError("segment word count exceeds its symbols")
    start = dir_end + HEADER_CRC.size
    body_len = 4 * L * S + 2 * int(counts.sum())
    want = start + body_len + esc_len + HEADER_CRC.size
    if want != len(data):
        raise CorruptStreamError(f"stream length {len(data)} does not match its header ({want})")
    if zlib.crc32(data[start:-HEADER_CRC.size]) != HEADER_CRC.unpack_from(data, len(data) - HEADER_CRC.size)[0]:
        raise CorruptStreamError("body checksum mismatch")
    return _bodies(data, start, layout, n, counts, data[start + body_len:-HEADER_CRC.size], n_esc)


def _bodies(data: bytes, start: int, layout: Layout, n: int, counts, esc: bytes, n_esc: int) -> ParsedStream:
    """Section 6, item 7's state check and the lane loop's inputs from checked segment bodies."""
    L, S = layout.lanes, layout.segments
    states = np.empty(S * L, dtype=np.int64)
    words = np.empty(int(counts.sum()), dtype=np.uint16)
    off, w0 = start, 0
    for s in range(S):
        states[s * L:(s + 1) * L] = np.frombuffer(data, dtype="<u4", count=L, offset=off)
        words[w0: w0 + counts[s]] = np.frombuffer(data, dtype="<u2", count=int(counts[s]), offset=off + 4 * L)
        off += 4 * L + 2 * int(counts[s])
        w0 += int(counts[s])
    if np.any(states < STATE_LOW):
        raise CorruptStreamError("invalid initial lane state")
    return ParsedStream(layout, n, states, words, counts, varint_decode(esc, n_esc))


# --------------------------------------------------------------------------------------
# test and fuzzing helpers: where the parts of a stream lie, and its CRCs recomputed
# --------------------------------------------------------------------------------------
def regions(data: bytes) -> dict:
    """Where the parts of a stream of either version lie, read leniently (no CRC or layout
    check): ``version``, ``counts`` (``(offset, size)`` of the segment word counts or the
    directory), ``header_crc`` (its offset), ``segments`` (``(offset, size)`` of each body:
    ``L`` states, then ``K_s`` words), ``escapes`` (``(offset, size)``) and, for version 2,
    ``body_crc``; CorruptStreamError where the numbers cannot be read or do not fit."""
    data = bytes(data)
    h = parse_header(data)
    L, S = h["lanes"], h["segments"]
    if S > len(data):
        raise CorruptStreamError("more segments than bytes")
    if h["version"] == 2:
        pos = end = h["directory_offset"]
        counts = []
        for _ in range(S):
            k, end = read_varint(data, end)
            counts.append(k)
        out = dict(version=2, counts=(pos, end - pos), header_crc=end)
        off = end + HEADER_CRC.size
    else:
        end = HEADER_SIZE + DIR_ENTRY.size * S
        if end > len(data):
            raise CorruptStreamError("stream truncated inside its segment directory")
        counts = [DIR_ENTRY.unpack_from(data, HEADER_SIZE + DIR_ENTRY.size * s)[0] for s in range(S)]
        out = dict(version=1, counts=(HEADER_SIZE, end - HEADER_SIZE), header_crc=HEADER.size)
        off = end
    segs = []
    for k in counts:
        segs.append((off, 4 * L + 2 * k))
        off += segs[-1][1]
    tail = HEADER_CRC.size if out["version"] == 2 else 0
    if off + h["escape_bytes"] + tail > len(data):
        raise CorruptStreamError("stream shorter than its header says")
    out.update(segments=segs, escapes=(off, h["escape_bytes"]))
    if tail:
        out["body_crc"] = off + h["escape_bytes"]
    return out


def resign(data: bytes) -> bytes:
    """``data`` with every CRC recomputed (segment bodies, escapes, header), so that a
    changed stream reaches the checks behind them; for tests and fuzzing."""
    r = regions(data)
    b = bytearray(data)
    put = HEADER_CRC.pack_into
    if r["version"] == 2:
        start, end = r["segments"][0][0] if r["segments"] else r["escapes"][0], r["body_crc"]
        put(b, r["header_crc"], zlib.crc32(bytes(b[: r["header_crc"]])))
        put(b, end, zlib.crc32(bytes(b[start:end])))
        return bytes(b)
    for s, (off, size) in enumerate(r["segments"]):
        put(b, HEADER_SIZE + DIR_ENTRY.size * s + 4, zlib.crc32(bytes(b[off: off + size])))
    e0, esize = r["escapes"]
    put(b, 40, zlib.crc32(bytes(b[e0: e0 + esize])))
    put(b, HEADER.size, zlib.crc32(bytes(b[: HEADER.size]) + bytes(b[HEADER_SIZE: HEADER_SIZE + r["counts"][1]])))
    return bytes(b)
