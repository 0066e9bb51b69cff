"""Public coding API: torch tensors in, bytes out, and back.

``encode(symbols, table_index, tables) -> bytes`` codes every element of
``symbols`` (any shape, any integer dtype, values in int32) with row
``table_index[...]`` (same number of elements) of ``tables``.
``decode(data, table_index, tables) -> torch.int32 tensor`` shaped like
``table_index``.  The batched forms take lists and run one lane loop for all of
them.  The format is in ``FORMAT.md``.

Three coders write the same bytes (a stream never says which one wrote it): the CPU
coder (``codec.entropy.rans``: its lane loops compiled in C, ``native``, where the
install built them, else in numpy, ``numpy``, the reference) and the GPU coder
(Triton, ``codec.entropy.rans_triton``).  ``backend=None`` (the default) picks the GPU
coder when every tensor of the call is on CUDA and Triton works, the CPU coder
otherwise; ``backend="native"``, ``"numpy"`` or ``"triton"`` forces one, and so does
the environment variable ``CODEC_RANS_BACKEND`` (``native``, ``numpy``, ``triton`` or
``auto``) when ``backend`` is None.
The automatic choice trusts the GPU coder on a device only after a self-check there
(:func:`gpu_coder_ok`, once per device and process): it must write the CPU coder's
bytes for a small case drawn from the tables of the first call on that device and
decode them; otherwise a warning says so and the CPU coder serves for the rest of the
process (a failure is not retried: a kernel that failed once is not trusted).
Forcing ``"triton"`` on CPU tensors runs the kernels in Triton's interpreter, which
needs ``TRITON_INTERPRET=1`` set before Triton is imported (tests only: it is slow).
"""
from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np
import torch

from . import rans
from .tables import TOTAL, CDFTables

BACKEND_ENV = rans.BACKEND_ENV
_triton_coder = None  # the module once imported; False when Triton is unusable
_triton_error: Exception | None = None
_gpu_checked: dict = {}  # device -> whether the GPU coder passed its self-check there


def _shape(t) -> tuple:
    return tuple(t.shape) if hasattr(t, "shape") else np.shape(t)


def _load_triton(required: bool):
    """The Triton coder module (imported on first use), or None where Triton is unusable."""
    global _triton_coder, _triton_error
    if _triton_coder is None:
        try:
            from . import rans_triton
        except Exception as exc:  # triton missing or broken: the CPU coder serves
            _triton_coder, _triton_error = False, exc
        else:
            _triton_coder = rans_triton
    if required and _triton_coder is False:
        raise RuntimeError(f"the Triton rANS coder is not available: {_triton_error!r}")
    return _triton_coder or None


def gpu_coder_ok(device, tables: CDFTables) -> bool:
    """Whether the Triton coder may serve the automatic choice on ``device``: on the first
    call per device it encodes 4096 symbols drawn from ``tables`` (1% of them escapes)
    with both coders and must get the same bytes, then decode them exactly.  A failure
    warns once (``RuntimeWarning``) and the CPU coder serves from then on."""
    key = str(torch.device(device))
    if key not in _gpu_checked:
        why = ""
        try:
            mod = _load_triton(required=False)
            if mod is None:
                raise RuntimeError(f"Triton is not usable: {_triton_error!r}")
            g = torch.Generator().manual_seed(20261123)
            idx = torch.randint(0, tables.num_rows, (4096,), generator=g, dtype=torch.int32)
            sym = sample_symbols(tables, idx, seed=20261123)
            sym[::101] += 70000  # escapes
            want = rans.encode_many([(sym, idx)], tables)[0]
            got = mod.encode_many_gpu([(sym.to(key), idx.to(key))], tables)[0]
            if got != want:
                why = "its stream differs from the CPU coder's"
            elif not torch.equal(mod.decode_many_gpu([want], [idx.to(key)], tables)[0].cpu().reshape(-1), sym):
                why = "it decodes the CPU coder's stream wrongly"
        except Exception as exc:  # noqa: BLE001 - any failure means: do not use it
            why = f"{exc.__class__.__name__}: {exc}"
        _gpu_checked[key] = not why
        if why:
            warnings.warn(f"the GPU rANS coder failed its self-check on {key} ({why}); the CPU coder is used "
                          "instead (same streams, slower)", RuntimeWarning, stacklevel=4)
    return _gpu_checked[key]


def _backend(tensors, backend, tables: CDFTables | None = None) -> str:
    """``"cpu"`` (the compiled loops where built), ``"native"``, ``"numpy"`` or ``"triton"``
    for a call on ``tensors`` (see the module docstring)."""
    choice = backend if backend is not None else os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "native", "numpy", "triton"):
        raise ValueError(f"unknown rANS backend {choice!r} (native, numpy, triton or auto)")
    if choice in ("numpy", "native"):
        return choice
    if choice == "triton":
        _load_triton(required=True)
        return "triton"
    on_cuda = bool(tensors) and all(isinstance(t, torch.Tensor) and t.is_cuda for t in tensors)
    if on_cuda and len({t.device for t in tensors}) == 1 and _load_triton(required=False) is not None:
        if tables is None or gpu_coder_ok(tensors[0].device, tables):
            return "triton"
    return "cpu"


#: ``rans``'s ``native`` argument per CPU backend
_NATIVE = {"cpu": None, "native": True, "numpy": False}


def encode(symbols, table_index, tables: CDFTables, backend: str | None = None) -> bytes:
    """Encode ``symbols`` with rows ``table_index`` of ``tables``; returns one rANS stream."""
    return encode_batch([(symbols, table_index)], tables, backend=backend)[0]


def decode(data: bytes, table_index, tables: CDFTables, device=None, backend: str | None = None) -> torch.Tensor:
    """Decode a stream made by :func:`encode` with the same ``table_index`` and ``tables``.

    Returns an int32 tensor shaped like ``table_index``, on ``device`` (default: the
    device of ``table_index`` when it is a tensor, else the CPU).
    Raises :class:`~codec.entropy.rans.CorruptStreamError` or
    :class:`~codec.entropy.rans.TableMismatchError` for bad streams.
    """
    return decode_batch([data], [table_index], tables, device=device, backend=backend)[0]


def encode_batch(items: Sequence[tuple], tables: CDFTables, backend: str | None = None) -> list[bytes]:
    """Encode many ``(symbols, table_index)`` pairs at once; one stream each."""
    items = list(items)
    choice = _backend([t for pair in items for t in pair], backend, tables)
    if choice == "triton":
        return _triton_coder.encode_many_gpu(items, tables)
    return rans.encode_many(items, tables, native=_NATIVE[choice])


def decode_batch(streams: Sequence[bytes], table_indexes: Sequence, tables: CDFTables,
                 device=None, backend: str | None = None) -> list[torch.Tensor]:
    """Decode many streams at once; ``table_indexes[i]`` belongs to ``streams[i]``."""
    if len(streams) != len(table_indexes):
        raise ValueError("one table_index per stream is needed")
    table_indexes = list(table_indexes)
    choice = _backend(table_indexes, backend, tables)
    if choice == "triton":
        flat = _triton_coder.decode_many_gpu(list(streams), table_indexes, tables)
    else:
        flat = [torch.from_numpy(v) for v in rans.decode_many(list(streams), table_indexes, tables,
                                                             native=_NATIVE[choice])]
    out = []
    for v, i in zip(flat, table_indexes):
        dev = device if device is not None else (i.device if isinstance(i, torch.Tensor) else "cpu")
        out.append(v.reshape(_shape(i)).to(dev))
    return out


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
