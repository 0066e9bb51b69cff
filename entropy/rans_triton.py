"""Lane-interleaved rANS on the GPU: Triton kernels writing the same bytes as ``rans.py``.

The format is ``FORMAT.md``; the numpy coder (``rans.py``) is the reference.  The
host-side, format-defining parts (layout rule, escape section, byte packing, stream
parsing and validation) are ``codec.entropy.format``'s, shared with the numpy coder;
this module uses no private name of ``rans.py``.  What runs on the device:

``_prep_kernel``  (encode; grid: blocks of 4096 symbols, never straddling two items)
    symbol value + table row -> flat table position ``row * stride + k`` (``k = len[row]``
    for an escape), and per block the exact integer cost sum, the escape count and
    input-error flags.  The host reads these few numbers back and applies the layout
    rule (``format.layout_for``) with the same integers as the CPU coder.

``_encode_kernel`` (grid: one program per segment; lanes of the segment across threads)
    walks steps ``T-1 .. 0``.  At every step the segment's ``L`` lanes load ``L``
    consecutive symbols (coalesced), renormalise, and the lanes that emit a word get
    their slot by a prefix sum over the lanes (``tl.cumsum``), so the group of step
    ``t`` is written in lane order.  Groups are written backwards from the end of the
    segment's word area (``K_s <= symbols of the segment``), which leaves them in the
    stream's order (group 0 first) without a second pass.  State in ``uint32``; the
    renormalisation test is ``x >> 16 >= f`` (no 33-bit product).

``_body_kernel``  (grid: segments x chunks)  gathers each segment's final states
    (as little-endian u16 pairs) and its ``K_s`` words into one contiguous buffer laid
    out exactly as the segment bodies of the streams, so one device->host copy brings
    everything; the host only adds headers, directories and CRCs.

``_decode_kernel`` (grid: one program per segment)  steps ``0 .. T-1``: slot ->
    symbol by the ``[rows x 2**16]`` lookup table, state update, then the lanes whose
    state fell below ``2**16`` read the next words of the segment in lane order (prefix
    sum again).  It writes ``offset + k`` per symbol and per segment the words consumed,
    wrong final states, escapes seen and bad table indexes; the host checks them
    (``FORMAT.md`` section 6, item 8) and patches the (rare) escaped values.

Batches: every item's segments go into the same launch (one launch per lane-count
class ``next_pow2(L)``), and the bytes of each stream are those it would have alone.

Importing this module imports Triton; ``codec.entropy.coder`` imports it lazily.  On
CPU tensors the kernels run under Triton's interpreter (``TRITON_INTERPRET=1`` set
before Triton is imported), which the tests use on machines without a GPU.
"""
from __future__ import annotations

import os
import time

import numpy as np
import torch
import triton
import triton.language as tl

from . import format as fmt
from .errors import CorruptStreamError
from .tables import CDFTables

PREP_BLOCK = 4096  # symbols per program of the preparation kernel
BODY_BLOCK = 2048  # u16 units per program of the body gather
BODY_MAX_CHUNKS = 4096  # programs per segment of the body gather (they loop beyond)
META_W = 8  # int64 fields per segment in the metadata table
# Warps per program for a lane block of ``BLOCK_L`` lanes.  Not tuned (no GPU was at
# hand when this was written); one warp per 32..128 lanes keeps the per-step prefix sum
# cheap while giving the scheduler several independent warps to hide gather latency.
MAX_WARPS = 8


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


# ======================================================================================
# kernels
# ======================================================================================
@triton.jit
def _prep_kernel(sym_ptr, row_ptr, blk_ptr, off_ptr, len_ptr, cost_ptr, pos_ptr, stats_ptr,
                 R, STRIDE, BLOCK: tl.constexpr):
    b = tl.program_id(0)
    start = tl.load(blk_ptr + 2 * b)  # int64: first symbol of the block (flat, all items)
    count = tl.load(blk_ptr + 2 * b + 1)
    i = tl.arange(0, BLOCK)
    m = i < count
    v = tl.load(sym_ptr + start + i, mask=m, other=0).to(tl.int64)
    r = tl.load(row_ptr + start + i, mask=m, other=0).to(tl.int64)
    bad_row = m & ((r < 0) | (r >= R))
    bad_val = m & (v.to(tl.int32).to(tl.int64) != v)  # outside int32
    r = tl.where(m & ~bad_row, r, 0).to(tl.int32)
    off = tl.load(off_ptr + r).to(tl.int64)
    ln = tl.load(len_ptr + r)
    s = v - off
    esc = (s < 0) | (s >= ln)
    k = tl.where(esc, ln, s.to(tl.int32))  # the escape is symbol index len[row]
    pos = r * STRIDE + k
    tl.store(pos_ptr + start + i, pos, mask=m)
    cost = tl.load(cost_ptr + pos, mask=m, other=0)
    tl.store(stats_ptr + 4 * b, tl.sum(cost, 0).to(tl.int64))
    tl.store(stats_ptr + 4 * b + 1, tl.sum((m & esc).to(tl.int32), 0).to(tl.int64))
    tl.store(stats_ptr + 4 * b + 2, tl.sum(bad_row.to(tl.int32), 0).to(tl.int64))
    tl.store(stats_ptr + 4 * b + 3, tl.sum(bad_val.to(tl.int32), 0).to(tl.int64))


@triton.jit
def _encode_kernel(pos_ptr, sf_ptr, seg_ids_ptr, meta_ptr, states_ptr, words_ptr, counts_ptr, IDENT,
                   META_W: tl.constexpr, BLOCK_L: tl.constexpr):
    seg = tl.load(seg_ids_ptr + tl.program_id(0)).to(tl.int64)
    base = tl.load(meta_ptr + seg * META_W)  # first symbol of the segment (flat index)
    n_seg = tl.load(meta_ptr + seg * META_W + 1)  # symbols in the segment (rest is padding)
    L = tl.load(meta_ptr + seg * META_W + 2)
    T = tl.load(meta_ptr + seg * META_W + 3)
    lane0 = tl.load(meta_ptr + seg * META_W + 4)  # first lane of the segment in the state array
    lanes = tl.arange(0, BLOCK_L)
    lane_ok = lanes < L
    x = tl.full([BLOCK_L], 65536, tl.uint32)
    # words of step t are written at the end of the area still free: [base, base + cursor)
    cursor = n_seg
    # one step of prefetch: the table entries of step t are loaded while step t+1 codes
    j = (T - 1) * L + lanes
    p = tl.load(pos_ptr + base + j, mask=lane_ok & (j < n_seg), other=IDENT)
    sf_next = tl.load(sf_ptr + p)
    for i in range(0, T):
        t = T - 1 - i
        sf = sf_next.to(tl.uint32, bitcast=True)
        jn = (t - 1) * L + lanes
        pn = tl.load(pos_ptr + base + jn, mask=lane_ok & (jn >= 0) & (jn < n_seg), other=IDENT)
        sf_next = tl.load(sf_ptr + pn)
        start = sf & 0xFFFF
        freq = (sf >> 16) + 1
        # renormalise: x >= f * 2**16  <=>  x >> 16 >= f   (x < 2**32, f <= 2**16)
        emit = (x >> 16) >= freq
        e = emit.to(tl.int32)
        incl = tl.cumsum(e, 0)
        cursor -= tl.sum(e, 0)
        word = (x & 0xFFFF).to(tl.uint16).to(tl.int16, bitcast=True)
        tl.store(words_ptr + base + cursor + (incl - e), word, mask=emit)
        x = tl.where(emit, x >> 16, x)
        # x = floor(x / f) * 2**16 + (x mod f) + c   (fits in 32 bits: x < f * 2**16 here)
        q = x // freq
        x = (q << 16) + (x - q * freq) + start
    tl.store(states_ptr + lane0 + lanes, x.to(tl.int32, bitcast=True), mask=lane_ok)
    tl.store(counts_ptr + seg, n_seg - cursor)


@triton.jit
def _body_kernel(words_ptr, states_ptr, counts_ptr, body_off_ptr, meta_ptr, body_ptr,
                 META_W: tl.constexpr, BLOCK: tl.constexpr):
    seg = tl.program_id(0).to(tl.int64)
    base = tl.load(meta_ptr + seg * META_W)
    n_seg = tl.load(meta_ptr + seg * META_W + 1)
    L = tl.load(meta_ptr + seg * META_W + 2)
    lane0 = tl.load(meta_ptr + seg * META_W + 4)
    K = tl.load(counts_ptr + seg)
    dst = tl.load(body_off_ptr + seg)
    size = 2 * L + K  # u16 units: L states (2 each, low half first), then K words
    w_src = base + n_seg - K - 2 * L  # words sit at the end of the segment's area
    for c in range(tl.program_id(1).to(tl.int64), tl.cdiv(size, BLOCK), tl.num_programs(1).to(tl.int64)):
        j = c * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
        m = j < size
        is_state = j < 2 * L
        st = tl.load(states_ptr + lane0 + j // 2, mask=m & is_state, other=0).to(tl.uint32, bitcast=True)
        half = tl.where((j & 1) == 1, st >> 16, st & 0xFFFF).to(tl.uint16).to(tl.int16, bitcast=True)
        w = tl.load(words_ptr + w_src + j, mask=m & ~is_state, other=0)
        tl.store(body_ptr + dst + j, tl.where(is_state, half, w), mask=m)


@triton.jit
def _decode_kernel(row_ptr, words_ptr, states_ptr, lut_ptr, sf_ptr, off_ptr, len_ptr, seg_ids_ptr, meta_ptr,
                   out_ptr, res_ptr, R, STRIDE, META_W: tl.constexpr, BLOCK_L: tl.constexpr):
    seg = tl.load(seg_ids_ptr + tl.program_id(0)).to(tl.int64)
    base = tl.load(meta_ptr + seg * META_W)
    n_seg = tl.load(meta_ptr + seg * META_W + 1)
    L = tl.load(meta_ptr + seg * META_W + 2)
    T = tl.load(meta_ptr + seg * META_W + 3)
    lane0 = tl.load(meta_ptr + seg * META_W + 4)
    wbase = tl.load(meta_ptr + seg * META_W + 5)  # first word of the segment
    K = tl.load(meta_ptr + seg * META_W + 6)  # its word count
    lanes = tl.arange(0, BLOCK_L)
    lane_ok = lanes < L
    x = tl.load(states_ptr + lane0 + lanes, mask=lane_ok, other=65536).to(tl.uint32)
    g = K - K  # words read so far (int64)
    n_esc = g
    n_bad = g
    # one step of prefetch of the table indexes (they do not depend on the state)
    j = lanes.to(tl.int64)
    r_next = tl.load(row_ptr + base + j, mask=lane_ok & (j < n_seg), other=0).to(tl.int64)
    for t in range(0, T):
        j = t * L + lanes
        ok = lane_ok & (j < n_seg)
        r = r_next
        jn = j + L
        r_next = tl.load(row_ptr + base + jn, mask=lane_ok & (jn < n_seg), other=0).to(tl.int64)
        bad = ok & ((r < 0) | (r >= R))
        r = tl.where(ok & ~bad, r, R).to(tl.int32)  # padding: the identity row R
        slot = (x & 0xFFFF).to(tl.int32)
        k = tl.load(lut_ptr + r * 65536 + slot).to(tl.int32) & 0xFFFF
        sf = tl.load(sf_ptr + r * STRIDE + k).to(tl.uint32, bitcast=True)
        start = sf & 0xFFFF
        freq = (sf >> 16) + 1
        x = freq * (x >> 16) + (slot.to(tl.uint32) - start)
        off = tl.load(off_ptr + r)
        ln = tl.load(len_ptr + r)
        tl.store(out_ptr + base + j, off + k, mask=ok)  # an escape gives off + len (patched on the host)
        n_esc += tl.sum((ok & (k == ln)).to(tl.int32), 0)
        n_bad += tl.sum(bad.to(tl.int32), 0)
        # lanes below 2**16 read the next words of the segment, in lane order
        need = x < 65536
        e = need.to(tl.int32)
        wp = g + (tl.cumsum(e, 0) - e)
        w = tl.load(words_ptr + wbase + wp, mask=need & (wp < K), other=0).to(tl.int32) & 0xFFFF
        x = tl.where(need, (x << 16) | w.to(tl.uint32), x)
        g += tl.sum(e, 0)
    tl.store(res_ptr + 4 * seg, g)
    tl.store(res_ptr + 4 * seg + 1, tl.sum((lane_ok & (x != 65536)).to(tl.int32), 0).to(tl.int64))
    tl.store(res_ptr + 4 * seg + 2, n_esc)
    tl.store(res_ptr + 4 * seg + 3, n_bad)


# ======================================================================================
# host side
# ======================================================================================
class _DeviceTables:
    """The coder view's integer tables on one device (cached on the CDFTables)."""

    def __init__(self, tables: CDFTables, device):
        view = tables.coder_view()
        self.view = view
        self.device = device
        self.R, self.stride, self.ident = view.R, view.stride, view.identity_row * view.stride
        start = view.cdf_flat
        freq = view.freq_flat  # same flat index as cdf_flat: row * stride + symbol
        # one 32-bit gather per symbol: start (16 bits) | (freq - 1) << 16  (freq <= 2**16)
        sf = np.where(freq > 0, start | ((freq - 1) << 16), 0).astype(np.uint32).view(np.int32)
        self.sf = torch.from_numpy(sf).to(device)
        self.cost = torch.from_numpy(view.cost_flat.astype(np.int32)).to(device)
        self.offsets = torch.from_numpy(view.offsets.astype(np.int32)).to(device)
        self.lengths = torch.from_numpy(view.lengths.astype(np.int32)).to(device)
        self._lut = None

    @property
    def lut(self) -> torch.Tensor:
        if self._lut is None:
            self._lut = torch.from_numpy(self.view.lut.view(np.int16)).to(self.device)
        return self._lut

    @staticmethod
    def get(tables: CDFTables, device) -> "_DeviceTables":
        return tables.memo(("rans_triton", str(device)), lambda: _DeviceTables(tables, device))


_KERNEL_DTYPES = (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)


def _flat(a, name: str) -> torch.Tensor:
    """A flat integer tensor (a view where possible); the errors of the numpy coder."""
    if not isinstance(a, torch.Tensor):
        a = np.asarray(a)
        if a.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integers, got {a.dtype}")
        a = torch.from_numpy(np.array(a, dtype=np.int64))
    if a.is_floating_point() or a.is_complex() or a.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {a.dtype}")
    a = a.detach().reshape(-1)
    if a.dtype not in _KERNEL_DTYPES:  # uint16/32/64: widen (values are range-checked anyway)
        a = a.to(torch.int64)
    return a


def _concat(parts: list[torch.Tensor], device) -> torch.Tensor:
    """Flat concatenation; no copy when the parts are consecutive pieces of one tensor."""
    parts = [p for p in parts if p.numel()]
    if not parts:
        return torch.zeros(1, dtype=torch.int32, device=device)
    if len(parts) == 1:
        return parts[0].contiguous()
    p0 = parts[0]
    same = all(p.dtype == p0.dtype and p.is_contiguous() for p in parts) and all(
        p.untyped_storage().data_ptr() == p0.untyped_storage().data_ptr() for p in parts)
    if same and all(b.storage_offset() == a.storage_offset() + a.numel() for a, b in zip(parts, parts[1:])):
        return p0.as_strided((sum(p.numel() for p in parts),), (1,), p0.storage_offset())
    dt = p0.dtype
    for p in parts[1:]:
        dt = torch.promote_types(dt, p.dtype)
    return torch.cat([p.to(dt) for p in parts])


def _check_device(tensors) -> torch.device:
    devs = {t.device for t in tensors}
    if len(devs) > 1:
        raise ValueError(f"all tensors of one call must be on one device, got {sorted(map(str, devs))}")
    dev = devs.pop() if devs else torch.device("cpu")
    if dev.type != "cuda" and not interpreting():
        raise RuntimeError("the Triton rANS coder needs CUDA tensors (or TRITON_INTERPRET=1 for the "
                           "CPU interpreter)")
    return dev


def _block_lanes(L: int) -> int:
    return triton.next_power_of_2(L)


def _warps(block_l: int) -> int:
    return max(1, min(MAX_WARPS, block_l // 32))


class _Clock:
    """Per-stage wall times into ``out`` (synchronising the device at each mark); benchmarks only."""

    def __init__(self, out, dev):
        self.out, self.dev = out, dev
        if out is not None:
            self._sync()
            self.t = time.perf_counter()

    def _sync(self):
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)

    def lap(self, name: str) -> None:
        if self.out is None:
            return
        self._sync()
        t = time.perf_counter()
        self.out[name] = self.out.get(name, 0.0) + t - self.t
        self.t = t


class _Device:
    """Kernel launches on the right CUDA device (no-op under the interpreter)."""

    def __init__(self, dev: torch.device):
        self.ctx = torch.cuda.device(dev) if dev.type == "cuda" else None

    def __enter__(self):
        if self.ctx is not None:
            self.ctx.__enter__()

    def __exit__(self, *exc):
        if self.ctx is not None:
            return self.ctx.__exit__(*exc)
        return False


def _segments(ns, layouts, starts):
    """Per-segment metadata rows ``[base, n_seg, L, T, lane0, 0, 0, 0]`` and item spans."""
    rows, spans = [], []
    lane0 = 0
    for n, lay, a in zip(ns, layouts, starts):
        L, T, S = lay.lanes, lay.steps, lay.segments
        s0 = len(rows)
        for s in range(S):
            first = s * T * L
            rows.append([a + first, min(T * L, n - first), L, T, lane0, 0, 0, 0])
            lane0 += L
        spans.append((s0, len(rows)))
    meta = np.array(rows, dtype=np.int64).reshape(-1, META_W)
    return meta, spans, lane0


def _launch_per_class(meta: np.ndarray, dev, launch) -> None:
    """One launch per lane-block class: ``launch(seg_ids, block_l, grid)``."""
    if not meta.shape[0]:
        return
    blocks = np.array([_block_lanes(int(L)) for L in meta[:, 2]])
    for bl in np.unique(blocks):
        ids = np.nonzero(blocks == bl)[0].astype(np.int32)
        launch(torch.from_numpy(ids).to(dev), int(bl), (ids.size,))


def encode_many_gpu(items, tables: CDFTables, layouts=None, stages: dict | None = None) -> list[bytes]:
    """Encode ``(symbols, table_index)`` pairs with the Triton kernels; bytes equal ``rans.encode_many``'s.

    ``layouts``: as in :func:`rans.encode_many` (None or one ``Layout``/None per item).
    All tensors must be on one CUDA device (or on the CPU under ``TRITON_INTERPRET=1``).
    ``stages`` (benchmarks): a dict that receives the seconds spent in ``prepare``
    (symbol mapping, cost, escapes, layout), ``code`` (lane loop and body gather, on the
    device), ``to_host`` (one device->host copy) and ``pack`` (headers, CRCs).
    """
    items = list(items)
    if not items:
        return []
    syms, rows = [], []
    for s, i in items:
        sv, rv = _flat(s, "symbols"), _flat(i, "table_index")
        if sv.numel() != rv.numel():
            raise ValueError(f"symbols and table_index differ in size ({sv.numel()} vs {rv.numel()})")
        syms.append(sv)
        rows.append(rv)
    dev = _check_device(syms + rows)
    clock = _Clock(stages, dev)
    dt = _DeviceTables.get(tables, dev)
    ns = [int(s.numel()) for s in syms]
    starts = np.concatenate([[0], np.cumsum(ns)]).astype(np.int64)
    n_total = int(starts[-1])
    sym_all, row_all = _concat(syms, dev), _concat(rows, dev)
    pos = torch.empty(max(n_total, 1), dtype=torch.int32, device=dev)

    # -- 1. symbol -> table position, cost, escapes, input errors (one pass) ------------------
    # blocks of PREP_BLOCK symbols, never across two items: (first symbol, count), item
    nblk = -(-np.asarray(ns, dtype=np.int64) // PREP_BLOCK)
    blk_item = np.repeat(np.arange(len(ns)), nblk)
    blk_first = np.arange(int(nblk.sum()), dtype=np.int64) - np.repeat(np.cumsum(nblk) - nblk, nblk)
    blk_first = blk_first * PREP_BLOCK
    blk = np.stack([starts[blk_item] + blk_first, np.minimum(PREP_BLOCK, np.asarray(ns)[blk_item] - blk_first)], 1)
    per_item = np.zeros((len(items), 4), dtype=np.int64)
    if blk.shape[0]:
        with _Device(dev):
            blk_t = torch.from_numpy(np.ascontiguousarray(blk, dtype=np.int64)).to(dev)
            stats = torch.empty((blk.shape[0], 4), dtype=torch.int64, device=dev)
            _prep_kernel[(blk.shape[0],)](sym_all, row_all, blk_t, dt.offsets, dt.lengths, dt.cost, pos, stats,
                                          dt.R, dt.stride, BLOCK=PREP_BLOCK, num_warps=8)
            stats_h = stats.cpu().numpy()
        np.add.at(per_item, blk_item, stats_h)
    preps = []
    for it, n in enumerate(ns):
        cost, n_esc, bad_row, bad_val = (int(v) for v in per_item[it])
        if bad_row:
            raise ValueError(f"table_index must lie in 0..{dt.R - 1}")
        if bad_val:
            raise ValueError("symbols must fit in int32")
        escapes = _escape_section(sym_all, row_all, pos, int(starts[it]), n, dt) if n_esc else b""
        preps.append(fmt.StreamInfo(n, escapes, n_esc, fmt.layout_for(n, cost, len(escapes))))
    fmt.override_layouts(preps, layouts)
    clock.lap("prepare")

    # -- 2. the lane loop: one program per segment, every item in the same launch ---------------
    meta_h, spans, lanes_total = _segments(ns, [p.layout for p in preps], starts)
    n_seg = meta_h.shape[0]
    if n_seg:
        with _Device(dev):
            meta = torch.from_numpy(meta_h).to(dev)
            states = torch.empty(lanes_total, dtype=torch.int32, device=dev)
            words = torch.empty(n_total, dtype=torch.int16, device=dev)
            counts = torch.empty(n_seg, dtype=torch.int64, device=dev)

            def launch(ids, bl, grid):
                _encode_kernel[grid](pos, dt.sf, ids, meta, states, words, counts, dt.ident,
                                     META_W=META_W, BLOCK_L=bl, num_warps=_warps(bl))

            _launch_per_class(meta_h, dev, launch)
            # -- 3. bodies back to back (states, then words), one copy to the host ----------
            sizes = 2 * meta[:, 2] + counts
            body_off = torch.cumsum(sizes, 0) - sizes
            body = torch.empty(2 * lanes_total + n_total, dtype=torch.int16, device=dev)
            longest = int((2 * meta_h[:, 2] + meta_h[:, 1]).max())
            chunks = min(BODY_MAX_CHUNKS, triton.cdiv(longest, BODY_BLOCK))
            _body_kernel[(n_seg, chunks)](words, states, counts, body_off, meta, body,
                                          META_W=META_W, BLOCK=BODY_BLOCK, num_warps=8)
            counts_h = counts.cpu().numpy()
            total = int((2 * meta_h[:, 2] + counts_h).sum())
            clock.lap("code")
            host = torch.empty(total, dtype=torch.int16, pin_memory=dev.type == "cuda")
            host.copy_(body[:total])
            body_h = host.numpy().view(np.uint16).astype("<u2", copy=False)
        raw = memoryview(body_h).cast("B")
        clock.lap("to_host")
    out = []
    off = 0
    for p, (s0, s1) in zip(preps, spans):
        bodies = []
        for s in range(s0, s1):
            size = 2 * (2 * int(meta_h[s, 2]) + int(counts_h[s]))
            bodies.append(raw[off: off + size])
            off += size
        out.append(fmt.pack_stream(p, bodies, counts_h[s0:s1] if s1 > s0 else [], tables.id))
    clock.lap("pack")
    return out


def _escape_section(sym_all, row_all, pos, a: int, n: int, dt: _DeviceTables) -> bytes:
    """The escape section of one item, from its escaped values (few; gathered to the host)."""
    rows = row_all[a: a + n].long()
    k = pos[a: a + n].long() - rows * dt.stride
    ln = dt.lengths.long()[rows]
    idx = torch.nonzero(k == ln).squeeze(1)
    r_e = rows[idx]
    s_e = sym_all[a: a + n][idx].long() - dt.offsets.long()[r_e]
    return fmt.escape_section(s_e.cpu().numpy(), ln[idx].cpu().numpy())


def decode_many_gpu(streams, indexes, tables: CDFTables, stages: dict | None = None) -> list[torch.Tensor]:
    """Decode streams with the Triton kernel; int32 tensors (flat) on the indexes' device.

    Parses and validates each stream on the host exactly as ``rans.decode_many`` does
    (same errors); the lane loop runs on the device.  ``stages`` (benchmarks): a dict
    that receives the seconds of ``parse`` (host: checks, CRCs), ``upload``, ``code``
    (the lane loop on the device) and ``finish`` (result checks, escaped values).
    """
    streams, indexes = list(streams), list(indexes)
    if len(streams) != len(indexes):
        raise ValueError("one table_index per stream is needed")
    if not streams:
        return []
    rows = [_flat(i, "table_index") for i in indexes]
    dev = _check_device(rows)
    clock = _Clock(stages, dev)
    dt = _DeviceTables.get(tables, dev)
    parsed = []
    for data, r in zip(streams, rows):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("a stream must be bytes")
        parsed.append(fmt.parse_stream(data, int(r.numel()), tables.id))
    clock.lap("parse")
    ns = [p.n for p in parsed]
    starts = np.concatenate([[0], np.cumsum(ns)]).astype(np.int64)
    n_total = int(starts[-1])
    meta_h, spans, lanes_total = _segments(ns, [p.layout for p in parsed], starts)
    out = torch.empty(max(n_total, 1), dtype=torch.int32, device=dev)
    n_seg = meta_h.shape[0]
    if n_seg:
        counts = np.concatenate([p.counts for p in parsed]).astype(np.int64)
        meta_h[:, 6] = counts
        meta_h[:, 5] = np.cumsum(counts) - counts
        words_h = np.concatenate([p.words for p in parsed] + [np.zeros(1, np.uint16)])
        states_h = np.concatenate([p.states for p in parsed])
        with _Device(dev):
            meta = torch.from_numpy(meta_h).to(dev)
            words = torch.from_numpy(words_h.view(np.int16)).to(dev)
            states = torch.from_numpy(states_h).to(dev)
            row_all = _concat(rows, dev)
            res = torch.empty((n_seg, 4), dtype=torch.int64, device=dev)
            lut = dt.lut
            clock.lap("upload")

            def launch(ids, bl, grid):
                _decode_kernel[grid](row_all, words, states, lut, dt.sf, dt.offsets, dt.lengths, ids, meta,
                                     out, res, dt.R, dt.stride, META_W=META_W, BLOCK_L=bl,
                                     num_warps=_warps(bl))

            _launch_per_class(meta_h, dev, launch)
            res_h = res.cpu().numpy()
            clock.lap("code")
        if res_h[:, 3].any():
            raise ValueError(f"table_index must lie in 0..{dt.R - 1}")
        if np.any(res_h[:, 0] != counts):
            raise CorruptStreamError("stream words do not match its symbols (corrupt data)")
        if res_h[:, 1].any():
            raise CorruptStreamError("final lane states are wrong (corrupt data or wrong tables)")
    results = []
    for it, (p, (s0, s1)) in enumerate(zip(parsed, spans)):
        a, n = int(starts[it]), p.n
        val = out[a: a + n]
        n_esc = int(res_h[s0:s1, 2].sum()) if s1 > s0 else 0
        if n_esc != p.escapes.size:
            raise CorruptStreamError("escape count does not match the decoded symbols")
        if n_esc:
            r = rows[it].long()
            esc_val = (dt.offsets.long() + dt.lengths.long())[r]  # what the kernel wrote for an escape
            idx = torch.nonzero(val.long() == esc_val).squeeze(1)
            r_e = r[idx].cpu().numpy()
            ev = fmt.escape_values(p.escapes, dt.view.offsets[r_e], dt.view.lengths[r_e])
            val[idx] = torch.from_numpy(ev.astype(np.int32)).to(dev)
        results.append(val)
    clock.lap("finish")
    return results
