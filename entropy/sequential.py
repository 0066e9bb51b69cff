"""Sequential rANS streams: one coder state, a small header, symbols decoded in batches whose
table rows the caller computes from the symbols decoded before them.

The lane-interleaved format (``FORMAT.md`` sections 1-7) needs every table index before
decoding starts, and spends about 30 bytes and more on a stream's header, CRCs and final
states (184 and more in its version 1).  An
autoregressive entropy model (an INR codec's latent model, whose row for a latent comes
from the latents decoded before it) needs neither: this format (``FORMAT.md`` section 8)
has one 32-bit state and a header of 16 to 28 bytes (state included), and
:class:`SequentialDecoder` decodes it a batch at a time.  Rows, symbol mapping and escapes are those of sections 1-3.

>>> data = encode_sequential(values, rows, tables)      # values, rows: [N] ints, in decode order
>>> dec = SequentialDecoder(data, tables, n=len(values))
>>> first = dec.decode(rows[:10]); rest = dec.decode(rows[10:]); dec.finish()

CPU only: the loop is inherently one symbol after another.  It runs in C where the
install built ``codec.entropy._ransc`` (the lane coder's compiled loops: a sequential
stream is the lane coder's one-lane, one-segment body), else in Python integers;
``native=False`` forces the Python loop (tests check both write and read the same bytes).
"""
from __future__ import annotations

import struct
from array import array

import numpy as np

from . import format as fmt
from . import rans as _rans
from .errors import CorruptStreamError, StreamError, TableMismatchError
from .tables import TOTAL, CDFTables

VERSION = 1
#: version (u8) and table-set identifier (8 bytes); then varints N, escapes, escape bytes; then the state
FIXED = struct.Struct("<B8s")
STATE = struct.Struct("<I")
MAX_SYMBOLS = 1 << 34


def _varints(values) -> bytes:
    return fmt.varint_encode(np.asarray(values, dtype=np.int64)) if len(values) else b""


def _read_varint(data: bytes, pos: int) -> tuple:
    return fmt.read_varint(data, pos, "sequential stream")


def _view(tables: CDFTables):
    """Python-indexable copies of the coder view (built once per table set)."""
    def build():
        v = tables.coder_view()
        return (array("H", v.lut.tobytes()), array("q", v.cdf_flat.tobytes()), array("q", v.freq_flat.tobytes()),
                v.lengths[:-1].tolist(), v.offsets[:-1].tolist(), v.stride)
    return tables.memo("sequential", build)


def _int64(a, name) -> np.ndarray:
    """``a`` flattened to int64 (an empty sequence of any type is an empty int64 array)."""
    a = np.asarray(a).reshape(-1)
    if a.size and a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got {a.dtype}")
    return a.astype(np.int64, copy=False)


def _rows(rows, tables: CDFTables, n=None) -> np.ndarray:
    r = _int64(rows, "rows")
    if n is not None and r.size != n:
        raise StreamError(f"{n} values but {r.size} rows")
    if r.size and (r.min() < 0 or r.max() >= tables.num_rows):
        raise StreamError(f"rows must lie in 0..{tables.num_rows - 1}")
    return r


def encode_sequential(values, rows, tables: CDFTables, native=None) -> bytes:
    """``values[n]`` coded with row ``rows[n]`` of ``tables``, to be decoded in order ``n = 0, 1, ...``.
    ``native``: the compiled loop (True), the Python one (False), the compiled one where built (None)."""
    v = _int64(values, "values")
    if v.size > MAX_SYMBOLS:
        raise StreamError(f"a sequential stream holds at most {MAX_SYMBOLS} symbols")
    if v.size and (v.min() < -(1 << 31) or v.max() >= (1 << 31)):
        raise StreamError("values must fit in int32")
    r = _rows(rows, tables, v.size)
    view = tables.coder_view()
    length, off = view.lengths[r], view.offsets[r]
    s = v - off
    esc = (s < 0) | (s >= length)
    k = np.where(esc, length, s)
    pos = r * view.stride + k
    escapes = fmt.escape_section(s[esc], length[esc])
    if v.size and _rans._use_native(native):  # one lane, one segment, v.size steps
        state, words, count = np.empty(1, np.uint32), np.empty(v.size, np.uint16), np.empty(1, np.int64)
        k = _rans._ransc.encode(np.ascontiguousarray(pos, dtype=np.int64), view.cdf_flat, state, words, count,
                                1, v.size, 1)
        x, body = int(state[0]), words[:k].astype("<u2", copy=False).tobytes()
    else:
        freq, start = view.freq_flat[pos].tolist(), view.cdf_flat[pos].tolist()
        x, words = fmt.STATE_LOW, []
        for f, c in zip(reversed(freq), reversed(start)):
            if x >= f << 16:
                words.append(x & 0xFFFF)
                x >>= 16
            x = (x // f << 16) + x % f + c
        words.reverse()
        body = np.asarray(words, dtype="<u2").tobytes()
    head = FIXED.pack(VERSION, tables.id) + _varints([v.size, int(esc.sum()), len(escapes)])
    return head + STATE.pack(x) + body + escapes


class SequentialDecoder:
    """Decodes a sequential stream of ``n`` symbols a batch at a time (see the module docstring).
    Every header field is checked against the stream's length before anything is allocated;
    :meth:`finish` checks that the stream ended exactly where its symbols did."""

    def __init__(self, data: bytes, tables: CDFTables, n: int, native=None):
        data = bytes(data)
        self._native = _rans._use_native(native)
        if len(data) < FIXED.size:
            raise CorruptStreamError(f"sequential stream too short ({len(data)} bytes)")
        version, tid = FIXED.unpack_from(data)
        if version != VERSION:
            raise CorruptStreamError(f"sequential stream version {version} (this decoder reads {VERSION})")
        if tid != tables.id:
            raise TableMismatchError("sequential stream was coded with other tables "
                                     f"({tid.hex()}, expected {tables.id.hex()})")
        pos = FIXED.size
        count, pos = _read_varint(data, pos)
        n_esc, pos = _read_varint(data, pos)
        esc_len, pos = _read_varint(data, pos)
        if count != n or count > MAX_SYMBOLS:
            raise CorruptStreamError(f"sequential stream holds {count} symbols, expected {n}")
        if n_esc > n or not n_esc <= esc_len <= fmt.MAX_ESCAPE_BYTES * n_esc:
            raise CorruptStreamError("sequential stream: impossible escape counts")
        body = len(data) - pos - STATE.size - esc_len
        if body < 0 or body % 2:
            raise CorruptStreamError("sequential stream: its length does not fit its header")
        (self._x,) = STATE.unpack_from(data, pos)
        if self._x < fmt.STATE_LOW:
            raise CorruptStreamError("sequential stream: bad initial state")
        pos += STATE.size
        if self._native:
            self._words = np.frombuffer(data, dtype="<u2", count=body // 2, offset=pos).astype(np.uint16)
        else:
            self._words = array("H", data[pos:pos + body])
            if array("H", b"\x01\x00")[0] != 1:  # big-endian host: the words are little-endian
                self._words.byteswap()
        self._codes = fmt.varint_decode(data[pos + body:], n_esc).tolist()
        self._w = self._e = self._done = 0
        self.n, self.tables = n, tables

    def decode(self, rows) -> np.ndarray:
        """The next ``len(rows)`` values (int64), symbol ``i`` coded with row ``rows[i]``."""
        r = _rows(rows, self.tables)
        if self._done + len(r) > self.n:
            raise StreamError(f"asked for more than the stream's {self.n} symbols")
        if self._native:
            return self._decode_native(r)
        r = r.tolist()
        lut, cdf, freq, lengths, offsets, stride = _view(self.tables)
        words, codes = self._words, self._codes
        x, w, e = self._x, self._w, self._e
        nw, ne = len(words), len(codes)
        out = []
        for row in r:
            slot = x & 0xFFFF
            k = lut[(row << 16) + slot]
            p = row * stride + k
            x = freq[p] * (x >> 16) + slot - cdf[p]
            if x < 0x10000:
                if w >= nw:
                    raise CorruptStreamError("sequential stream ends early (corrupt or truncated)")
                x = (x << 16) | words[w]
                w += 1
            if k == lengths[row]:
                if e >= ne:
                    raise CorruptStreamError("sequential stream: more escapes than announced")
                code = codes[e]
                e += 1
                out.append(offsets[row] + lengths[row] + (code >> 1) if code & 1 else offsets[row] - 1 - (code >> 1))
            else:
                out.append(offsets[row] + k)
        self._x, self._w, self._e = x, w, e
        self._done += len(r)
        vals = np.asarray(out, dtype=np.int64)
        if vals.size and (vals.min() < -(1 << 31) or vals.max() >= (1 << 31)):
            raise CorruptStreamError("escaped value out of int32 range")
        return vals

    def _decode_native(self, r: np.ndarray) -> np.ndarray:
        view = self.tables.coder_view()
        out, esc = np.empty(r.size, np.int64), np.empty(r.size, np.int64)
        x, w, ne, err = _rans._ransc.decode_seq(np.ascontiguousarray(r, dtype=np.int64), view.lut, view.cdf_flat,
                                                view.stride, view.offsets, view.lengths, self._words, self._x,
                                                self._w, out, esc)
        if err:
            raise CorruptStreamError("sequential stream ends early (corrupt or truncated)")
        if ne:
            if self._e + ne > len(self._codes):
                raise CorruptStreamError("sequential stream: more escapes than announced")
            code = np.asarray(self._codes[self._e:self._e + ne], dtype=np.int64)
            rows = r[esc[:ne]]
            out[esc[:ne]] = fmt.escape_values(code, view.offsets[rows], view.lengths[rows])
        self._x, self._w, self._e = x, w, self._e + ne
        self._done += r.size
        return out

    def finish(self) -> None:
        """Check that every symbol was decoded and the stream ended exactly there."""
        if self._done != self.n:
            raise StreamError(f"decoded {self._done} of the stream's {self.n} symbols")
        if self._x != fmt.STATE_LOW or self._w != len(self._words) or self._e != len(self._codes):
            raise CorruptStreamError("sequential stream does not end where its symbols do (corrupt)")


def decode_sequential(data: bytes, rows, tables: CDFTables) -> np.ndarray:
    """All values of a stream whose rows are known up front (e.g. a network's parameters)."""
    r = _rows(rows, tables)
    dec = SequentialDecoder(data, tables, r.size)
    out = dec.decode(r)
    dec.finish()
    return out


assert TOTAL == 1 << 16
