"""The rANS stream format, version 1, as code (the spec is ``FORMAT.md`` beside this file).

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
    "MAGIC", "VERSION", "STATE_LOW", "WORD_MASK", "LANE_QUANTUM", "MAX_LANES_PER_SEGMENT", "STATE_BUDGET",
    "LAYOUT_RULES", "LAYOUT_RULE", "MAX_ESCAPE_BYTES", "HEADER", "HEADER_SIZE", "HEADER_CRC", "DIR_ENTRY", "Layout", "choose_layout",
    "layout_for", "override_layouts", "varint_encode", "varint_decode", "escape_section", "escape_values",
    "StreamInfo", "ParsedStream", "pack_stream", "parse_header", "parse_stream",
]

MAGIC = b"rANS"
VERSION = 1
STATE_LOW = 1 << 16  # initial encoder state = final decoder state
WORD_MASK = 0xFFFF
LANE_QUANTUM = 32
MAX_LANES_PER_SEGMENT = 1024
#: The encoder keeps the final-state bytes near this fraction of the estimated payload.
#: payload bytes per group of 32 lanes in each revision of the encoder's layout rule
#: (FORMAT.md, 'Choosing the layout'); streams of every revision decode alike
LAYOUT_RULES = {1: 12_800, 2: 51_200}
LAYOUT_RULE = 2  # the revision encoders follow (a test pins 1 to compare with streams written under it)
STATE_BUDGET = 4 * 32 / LAYOUT_RULES[LAYOUT_RULE]  # final lane states' share of the payload (0.25%)
MAX_ESCAPE_BYTES = 5  # one escaped value takes at most 5 varint bytes (codes < 2**35)

#: bytes 0..43: magic, version, precision, L, T, S, N, table id, escapes, escape bytes, escape CRC
HEADER = struct.Struct("<4sBBHIIQ8sIII")
HEADER_CRC = struct.Struct("<I")  # bytes 44..47: CRC32 of bytes 0..43 + the directory
HEADER_SIZE = HEADER.size + HEADER_CRC.size  # 48
DIR_ENTRY = struct.Struct("<II")  # per segment: K_s words, CRC32 of the segment body


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

    def check(self, n: int) -> None:
        """Raise CorruptStreamError unless this layout is valid for ``n`` symbols (FORMAT.md, 'Layout')."""
        L, T, S = self.lanes, self.steps, self.segments
        if L % LANE_QUANTUM or not LANE_QUANTUM <= L <= MAX_LANES_PER_SEGMENT:
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
    within ``STATE_BUDGET`` of the estimated payload (at least 32); they are split into
    the fewest segments of at most 1024 lanes, as evenly as multiples of 32 allow.
    """
    if n == 0:
        return Layout(LANE_QUANTUM, 0, 0)
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
    as u32, then ``K_s = counts[s]`` words as u16, little-endian)."""
    L, T, S = info.layout.lanes, info.layout.steps, info.layout.segments
    directory = b"".join(DIR_ENTRY.pack(int(counts[s]), zlib.crc32(bodies[s])) for s in range(S))
    head = HEADER.pack(MAGIC, VERSION, PRECISION, L, T, S, info.n, table_id, info.n_escapes, len(info.escapes),
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
    """Fixed header fields of a stream (no validation beyond size and magic)."""
    if len(data) < HEADER_SIZE:
        raise CorruptStreamError(f"stream too short ({len(data)} bytes) for a header")
    magic, ver, prec, L, T, S, n, tid, n_esc, esc_len, esc_crc = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise CorruptStreamError("not an rANS stream (bad magic)")
    (head_crc,) = HEADER_CRC.unpack_from(data, HEADER.size)
    return dict(version=ver, precision=prec, lanes=L, steps=T, segments=S, symbols=n, table_id=tid,
                escapes=n_esc, escape_bytes=esc_len, escape_crc=esc_crc, header_crc=head_crc)


def parse_stream(data, n_expected: int, table_id: bytes) -> ParsedStream:
    """Parse and validate a stream for ``n_expected`` symbols coded with tables ``table_id``
    (section 6, items 1-7, in that order); CorruptStreamError or TableMismatchError."""
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
    if h["table_id"] != table_id:
        raise TableMismatchError(
            f"stream was coded with tables {h['table_id'].hex()}, decoder has {table_id.hex()}")
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
    return ParsedStream(layout, n, states, words, counts, varint_decode(esc, n_esc))
