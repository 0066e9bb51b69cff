"""Quantised CDF tables: the probability models the rANS coder reads.

A :class:`CDFTables` holds ``R`` rows.  Row ``r`` models integer symbol values
``offsets[r] .. offsets[r] + lengths[r] - 1`` (its *range*) plus one **escape**
symbol at index ``lengths[r]`` that stands for every value outside the range (the
value itself then goes to the stream's escape section, see ``FORMAT.md``).

Frequencies are integers with 16-bit precision: each row's frequencies sum to
``2**16`` and every symbol of a row, escape included, has frequency >= 1, so every
value is codable.  Tables are built once, on the host, and are stored with the model
that uses them (safetensors); decoding never recomputes them.

**Determinism.**  A table set's integers (and so its id and every stream coded with
it) must not depend on the platform or on library versions.  The builders here use
float64 arithmetic whose results IEEE 754 fixes - ``+ - * /``, ``floor``/``ceil``,
comparisons - in a fixed order: the special functions come from
:mod:`codec.entropy.numerics` (no libm, numpy transcendental or scipy), sums that
decide integers are correctly rounded (:func:`math.fsum`, independent of summation
order), the integer fix-up is largest remainders with ties to the lower index, and the
coder's cost table is exact integer arithmetic.  The zero-mean families evaluate only
the lower half of the density and mirror it, so a symbol and its negative get bitwise
equal probabilities (their tie is then broken by index, not by rounding noise).  Only a
caller-supplied ``cdf_fn`` (:func:`factorized_tables`) can bring platform-dependent
floats in; such tables are built once and stored with the model.

Families (one row per ...):

- :func:`factorized_tables` - channel of a factorized density, from any CDF function
  (the models build them from their learned factorized priors);
- :func:`gaussian_tables`, :func:`laplace_tables` - scale level of a zero-mean
  conditional family over a fixed scale table (``table_index`` = level);
- :func:`categorical_tables` - row of probabilities (VQ indices; offset 0).
"""
from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from . import numerics
from .errors import TableError

PRECISION = 16
TOTAL = 1 << PRECISION
#: Largest number of in-range symbols in one row (escape excluded).
MAX_ROW_SYMBOLS = 1 << 14
#: Largest number of rows in one table set (the decoder's slot->symbol lookup is rows x 2**16).
MAX_ROWS = 1 << 12
#: Units of the integer cost table: 1/COST_ONE bit.
COST_ONE = 16

_ID_DOMAIN = b"codec.entropy.CDFTables/v1"

__all__ = [
    "PRECISION", "TOTAL", "MAX_ROW_SYMBOLS", "MAX_ROWS", "COST_ONE", "CDFTables", "TableError",
    "quantize_pmf", "tables_from_pmf", "factorized_tables", "default_scale_table", "gaussian_tables",
    "laplace_tables", "categorical_tables", "cost_table",
]


def _as_int32(a, name) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise TableError(f"{name} must be an integer array, got {a.dtype}")
    if a.size and (a.min() < -(1 << 31) or a.max() >= (1 << 31)):
        raise TableError(f"{name} does not fit in int32")
    return np.ascontiguousarray(a, dtype=np.int32)


@dataclass(frozen=True, eq=False)
class CDFTables:
    """A set of quantised CDF rows.

    Attributes:
        cdf: int32 ``[R, W + 1]``; ``cdf[r, 0] == 0``, strictly increasing up to
            ``cdf[r, lengths[r] + 1] == 2**16`` and constant ``2**16`` after that.
            ``W = max(lengths) + 1``.
        lengths: int32 ``[R]``, in-range symbols per row; index ``lengths[r]`` is the escape.
        offsets: int32 ``[R]``, value of in-range symbol 0 of each row.
        family: free text naming how the rows were made (``"gaussian"``, ...).
    """

    cdf: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray
    family: str = "custom"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        cdf = _as_int32(self.cdf, "cdf")
        lengths = _as_int32(self.lengths, "lengths")
        offsets = _as_int32(self.offsets, "offsets")
        object.__setattr__(self, "cdf", cdf)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "offsets", offsets)
        self._validate()

    # -- validation ---------------------------------------------------------------
    def _validate(self) -> None:
        cdf, lengths, offsets = self.cdf, self.lengths, self.offsets
        if cdf.ndim != 2 or lengths.ndim != 1 or offsets.ndim != 1:
            raise TableError("cdf must be 2-D, lengths and offsets 1-D")
        R = cdf.shape[0]
        if not 1 <= R <= MAX_ROWS:
            raise TableError(f"a table set has 1..{MAX_ROWS} rows, got {R}")
        if lengths.shape != (R,) or offsets.shape != (R,):
            raise TableError("lengths and offsets need one entry per cdf row")
        if lengths.min() < 1 or lengths.max() > MAX_ROW_SYMBOLS:
            raise TableError(f"row lengths must lie in 1..{MAX_ROW_SYMBOLS}")
        W = int(lengths.max()) + 1
        if cdf.shape[1] != W + 1:
            raise TableError(f"cdf must have max(lengths) + 2 = {W + 1} columns, got {cdf.shape[1]}")
        if (offsets.astype(np.int64) + lengths).max() > (1 << 31) - 1:
            raise TableError("row ranges must stay inside int32")
        if np.any(cdf[:, 0] != 0):
            raise TableError("every cdf row must start at 0")
        freq = np.diff(cdf.astype(np.int64), axis=1)
        cols = np.arange(W)[None, :]
        live = cols <= lengths[:, None]
        if np.any(freq[live] < 1):
            raise TableError("every symbol of a row (escape included) needs frequency >= 1")
        if np.any(freq[~live] != 0):
            raise TableError("cdf entries past a row's escape must stay at 2**16")
        if np.any(cdf[:, -1] != TOTAL):
            raise TableError("every cdf row must end at 2**16")

    # -- properties -----------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        return int(self.cdf.shape[0])

    @property
    def width(self) -> int:
        """Symbols per row including the escape, for the widest row."""
        return int(self.cdf.shape[1] - 1)

    @property
    def id(self) -> bytes:
        """8-byte identifier of the table set (first bytes of SHA-256 of its canonical form)."""
        if "id" not in self._cache:
            h = hashlib.sha256(_ID_DOMAIN)
            h.update(np.array([PRECISION, self.num_rows, self.width], dtype="<i8").tobytes())
            h.update(self.lengths.astype("<i4").tobytes())
            h.update(self.offsets.astype("<i4").tobytes())
            h.update(self.cdf.astype("<i4").tobytes())
            self._cache["id"] = h.digest()[:8]
        return self._cache["id"]

    def freq(self) -> np.ndarray:
        """int64 ``[R, W]`` symbol frequencies (0 past each row's escape)."""
        return np.diff(self.cdf.astype(np.int64), axis=1)

    def probabilities(self) -> np.ndarray:
        """float64 ``[R, W]`` probabilities the coder uses (freq / 2**16)."""
        return self.freq() / TOTAL

    # -- coder views (cached; built from the stored integers, never from floats) -----
    def coder_view(self) -> "_CoderView":
        """The flat integer arrays the coders index (built once per table set)."""
        return self.memo("view", lambda: _CoderView(self))

    def memo(self, key, build):
        """``build()``, computed once per table set and ``key`` and kept with the tables
        (coders keep derived state here, e.g. a device copy of the coder view)."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    # -- (de)serialisation ----------------------------------------------------------------
    def state_dict(self, prefix: str = "") -> dict:
        """Tensors to store beside model weights (``prefix`` + cdf / lengths / offsets)."""
        import torch

        return {
            prefix + "cdf": torch.from_numpy(self.cdf.copy()),
            prefix + "lengths": torch.from_numpy(self.lengths.copy()),
            prefix + "offsets": torch.from_numpy(self.offsets.copy()),
        }

    @classmethod
    def from_state_dict(cls, state: dict, prefix: str = "", family: str = "custom") -> "CDFTables":
        """Rebuild (and validate) tables from :meth:`state_dict` output."""
        try:
            arrs = [np.asarray(state[prefix + k].cpu().numpy() if hasattr(state[prefix + k], "cpu")
                               else state[prefix + k]) for k in ("cdf", "lengths", "offsets")]
        except KeyError as exc:
            raise TableError(f"missing table tensor {exc}") from None
        return cls(*arrs, family=family)

    def file_metadata(self) -> dict:
        """The safetensors metadata :meth:`load` reads (tables are written by whoever stores
        them, through the project's one atomic writer, ``codec.fileio``)."""
        return {"family": self.family, "precision": str(PRECISION)}

    @classmethod
    def load(cls, path) -> "CDFTables":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("precision", str(PRECISION)) != str(PRECISION):
                raise TableError(f"{path}: tables of precision {meta.get('precision')} are not supported")
            state = {k: f.get_tensor(k) for k in f.keys()}
        return cls.from_state_dict(state, family=meta.get("family", "custom"))

    def __eq__(self, other):  # tables are equal when they code identically
        return isinstance(other, CDFTables) and self.id == other.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return (f"CDFTables(family={self.family!r}, rows={self.num_rows}, width={self.width}, "
                f"id={self.id.hex()})")


@functools.lru_cache(maxsize=1)
def cost_table() -> np.ndarray:
    """int64 ``[2**16 + 1]``: ``cost[f] = round(COST_ONE * -log2(f / 2**16))`` for ``f >= 1``
    (1/COST_ONE bit units), ``cost[0] = 0``; exact integer arithmetic (FORMAT.md, 'Choosing
    the layout').

    ``COST_ONE * log2 f = log2(f**COST_ONE)``, and for ``y >= 0``, ``round(y) = floor((floor(2y)
    + 1) / 2)`` with ``floor(2y) = bit_length(f**(2*COST_ONE)) - 1``.  No ``f`` gives a tie
    (``2 * COST_ONE * log2 f`` is never an odd integer), so the rounding rule does not matter.
    """
    total_cost = COST_ONE * PRECISION
    return np.array([0] + [total_cost - (f ** (2 * COST_ONE)).bit_length() // 2 for f in range(1, TOTAL + 1)],
                    dtype=np.int64)


class _CoderView:
    """Flat integer arrays the coders index, with an identity row appended.

    Row ``R`` (one past the last real row) is the *identity row*: one symbol of
    frequency ``2**16``.  Coding it leaves an rANS state unchanged and emits/reads no
    word; padding positions of the lane layout use it.

    Attributes (int64, flat index ``row * stride + symbol``, ``stride = W + 1``):
    ``cdf_flat`` (cdf entries), ``freq_flat`` (frequencies, 0 past each row's escape),
    ``cost_flat`` (:func:`cost_table` of the frequency); per row (``R + 1``): ``lengths``,
    ``offsets``; and ``lut`` (slot -> symbol, built on first use).
    """

    def __init__(self, t: CDFTables):
        R, W = t.num_rows, t.width
        cdf = np.full((R + 1, W + 1), TOTAL, dtype=np.int64)
        cdf[:R] = t.cdf
        cdf[R, 0] = 0
        self.R, self.W, self.stride = R, W, W + 1
        self.identity_row = R
        self.cdf_flat = cdf.ravel()
        self.lengths = np.append(t.lengths.astype(np.int64), 1)
        self.offsets = np.append(t.offsets.astype(np.int64), 0)
        freq = np.zeros_like(cdf)
        freq[:, :W] = np.diff(cdf, axis=1)  # same stride as cdf_flat: index row * (W + 1) + symbol
        self.freq_flat = freq.ravel()
        # integer cost table, 1/COST_ONE bit units: used only to choose the lane layout,
        # so every device and install computes the same layout from the same integers
        self.cost_flat = cost_table()[self.freq_flat]
        self._lut = None

    @property
    def lut(self) -> np.ndarray:
        """uint16 ``[(R + 1) * 2**16]``: slot -> symbol index of each row."""
        if self._lut is None:
            W = self.W
            sym = np.tile(np.arange(W + 1, dtype=np.uint16), self.R + 1)
            self._lut = np.repeat(sym, self.freq_flat)
            assert self._lut.size == (self.R + 1) * TOTAL
        return self._lut


# --------------------------------------------------------------------------------------
# building tables from probabilities
# --------------------------------------------------------------------------------------
def _row_sums(a: np.ndarray, n: np.ndarray) -> np.ndarray:
    """float64 ``[R, 1]`` sums of ``a[r, :n[r]]``, correctly rounded (:func:`math.fsum`): the
    same bits whatever the order, SIMD path or numpy version (``np.sum`` promises none of that)."""
    return np.array([math.fsum(a[r, :k].tolist()) for r, k in enumerate(n.tolist())],
                    dtype=np.float64).reshape(-1, 1)


def quantize_pmf(pmf, lengths) -> np.ndarray:
    """Integer frequencies (sum 2**16, each >= 1) from float probabilities.

    Args:
        pmf: float ``[R, W]``; row ``r`` uses columns ``0 .. lengths[r]`` (the last of
            them is the escape).  Negative or NaN entries count as 0; rows are
            normalised.  Columns past ``lengths[r]`` are ignored.
        lengths: int ``[R]`` in-range symbols per row.

    Returns:
        int64 ``[R, W]`` frequencies, 0 past each row's escape.

    Deterministic: float64 arithmetic with correctly rounded row sums; symbols whose
    share is below one count get 1, the others share the remaining counts in proportion,
    rounded by largest remainders with ties to the lower index.  (Integer sums below are
    exact in any order.)
    """
    pmf = np.array(pmf, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if pmf.ndim != 2 or lengths.shape != (pmf.shape[0],):
        raise TableError("pmf must be [R, W] with one length per row")
    R, W = pmf.shape
    if lengths.min() < 1 or lengths.max() + 1 > W:
        raise TableError("each row needs 1 <= length and length + 1 <= pmf columns (escape)")
    n = lengths + 1
    live = np.arange(W)[None, :] < n[:, None]
    p = np.where(live & np.isfinite(pmf) & (pmf > 0), pmf, 0.0)
    tot = _row_sums(p, n)  # p is 0 past column n[r]
    # a row with no mass at all becomes uniform
    p = np.where(tot > 0, p / np.where(tot > 0, tot, 1), live / n[:, None])
    # symbols whose share would round below one count get exactly 1; the others share
    # the rest in proportion (repeat: rescaling can push more of them below one)
    tiny = live & (p * TOTAL < 1)
    for _ in range(W):
        budget = TOTAL - tiny.sum(axis=1, keepdims=True)
        rest = np.where(live & ~tiny, p, 0.0)
        mass = _row_sums(rest, n)
        raw = rest * (budget / np.where(mass > 0, mass, 1))
        grown = tiny | (live & ~tiny & (raw < 1))
        if np.array_equal(grown, tiny):
            break
        tiny = grown
    base = np.floor(raw)
    freq = np.where(tiny, 1, base.astype(np.int64)) * live
    rem = TOTAL - freq.sum(axis=1)
    frac = np.where(live & ~tiny, raw - base, -1.0)
    # largest remainders get the leftover counts, ties to the lower index
    order = np.argsort(-frac, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(W)[None, :].repeat(R, 0), axis=1)
    freq += (ranks < np.maximum(rem, 0)[:, None]) & live & ~tiny
    # a row where every symbol is tiny (more symbols than counts) cannot happen: n <= 2**14 + 1
    # float round-off can leave a row over budget by a few counts: take them from the largest
    over = freq.sum(axis=1) - TOTAL
    for r in np.nonzero(over > 0)[0]:
        for _ in range(int(over[r])):
            freq[r, int(np.argmax(freq[r]))] -= 1
    assert np.all(freq.sum(axis=1) == TOTAL) and np.all(freq[live] >= 1)
    return freq


def tables_from_pmf(pmf, lengths, offsets, family: str = "custom") -> CDFTables:
    """Tables from float probabilities: ``pmf[r, :lengths[r]]`` in-range, ``pmf[r, lengths[r]]`` escape."""
    lengths = np.asarray(lengths, dtype=np.int64)
    freq = quantize_pmf(pmf, lengths)
    W = int(lengths.max()) + 1
    freq = freq[:, :W]
    cdf = np.zeros((freq.shape[0], W + 1), dtype=np.int64)
    np.cumsum(freq, axis=1, out=cdf[:, 1:])
    return CDFTables(cdf.astype(np.int32), lengths.astype(np.int32), np.asarray(offsets), family=family)


def _row_grid(lower: np.ndarray, upper: np.ndarray):
    """Symbol values per row, padded: ``values[r, k] = lower[r] + k``."""
    lengths = upper - lower + 1
    if lengths.min() < 1:
        raise TableError("upper must be >= lower in every row")
    if lengths.max() > MAX_ROW_SYMBOLS:
        raise TableError(f"a row may span at most {MAX_ROW_SYMBOLS} values, got {int(lengths.max())}")
    W = int(lengths.max())
    values = lower[:, None] + np.arange(W)[None, :]
    return values, lengths


def factorized_tables(cdf_fn, lower, upper, family: str = "factorized") -> CDFTables:
    """Tables for a factorized density, one row per channel.

    Args:
        cdf_fn: callable taking float64 ``[R, K]`` points and returning the
            cumulative distribution ``P(Y <= x)`` of row ``r`` at each point (float64,
            same shape).  Row ``r``'s symbol ``v`` has mass ``cdf(v + .5) - cdf(v - .5)``.
        lower, upper: int ``[R]`` inclusive symbol range of each row; the mass below and
            above goes to the escape.

    Everything after ``cdf_fn`` is deterministic; the tables are as platform-independent
    as the values ``cdf_fn`` returns.
    """
    lower = np.asarray(lower, dtype=np.int64)
    upper = np.asarray(upper, dtype=np.int64)
    values, lengths = _row_grid(lower, upper)
    edges = np.concatenate([values - 0.5, values[:, -1:] + 0.5], axis=1).astype(np.float64)
    c = np.asarray(cdf_fn(edges), dtype=np.float64)
    if c.shape != edges.shape:
        raise TableError("cdf_fn must return an array shaped like its input")
    mass = np.diff(c, axis=1)
    W = mass.shape[1]
    pmf = np.zeros((len(lower), W + 1))
    pmf[:, :W] = np.where(np.arange(W)[None, :] < lengths[:, None], mass, 0.0)
    rows = np.arange(len(lower))
    c_lo = c[:, 0]
    c_hi = c[rows, lengths]  # cdf at upper + 0.5
    pmf[rows, lengths] = np.clip(c_lo, 0, 1) + np.clip(1.0 - c_hi, 0, 1)
    return tables_from_pmf(pmf, lengths, lower, family=family)


def default_scale_table(min_scale: float = 0.11, max_scale: float = 256.0, levels: int = 64) -> np.ndarray:
    """``levels`` log-spaced scales from ``min_scale`` to ``max_scale`` (float64).

    ``exp(log(min) + i * (log(max) - log(min)) / (levels - 1))``, the last one
    ``exp(log(max))``, with the deterministic :func:`~codec.entropy.numerics.exp` and
    :func:`~codec.entropy.numerics.log`: the same bits on every install.  (The shipped
    models derive integer thresholds ``floor(scale * 256)`` from these scales; they equal
    those of the earlier ``np.exp(np.linspace(...))`` form, see ``tests/test_entropy.py``.)
    """
    levels = int(levels)
    if levels < 1 or not (0 < min_scale < math.inf and 0 < max_scale < math.inf):
        raise TableError(f"need levels >= 1 and finite scales > 0, got {min_scale}, {max_scale}, {levels}")
    lo = float(numerics.log(min_scale))
    hi = float(numerics.log(max_scale))
    if levels == 1:
        return numerics.exp(np.array([lo]))
    step = (hi - lo) / (levels - 1)
    y = np.arange(levels, dtype=np.float64) * step + lo
    y[-1] = hi
    return numerics.exp(y)


def _symmetric_tables(scales, half_width, lower_cdf, family) -> CDFTables:
    """Rows of zero-mean symmetric densities ``F(x / scale)``, one per scale.

    Row ``l`` covers ``-m .. m`` with ``m = max(1, ceil(half_width * scale_l))``; the mass of
    both tails goes to the escape.  ``lower_cdf(x)`` is the unit CDF for ``x <= 0`` (the
    only side evaluated): the mass of ``v < 0`` is ``F((v + .5)/s) - F((v - .5)/s)``, that of
    ``-v`` the same float (symmetry), that of 0 is ``1 - 2 F(-.5/s)`` and the escape's is
    ``2 F((-m - .5)/s)``.
    """
    scales = np.asarray(scales, dtype=np.float64)
    if scales.ndim != 1 or scales.size < 1 or np.any(~np.isfinite(scales)) or np.any(scales <= 0):
        raise TableError("scales must be a 1-D array of positive numbers")
    if scales.size > MAX_ROWS:
        raise TableError(f"a table set has 1..{MAX_ROWS} rows, got {scales.size}")
    span = np.ceil(scales * half_width)
    if span.max() > (MAX_ROW_SYMBOLS - 1) // 2:
        raise TableError(f"a row may span at most {MAX_ROW_SYMBOLS} values, got {2 * int(span.max()) + 1}")
    half = np.maximum(span, 1).astype(np.int64)
    R, H = scales.size, int(half.max())
    rows = np.arange(R)
    j = np.arange(H + 1)
    live = j[None, :] <= half[:, None]
    # lower edges -m - 1/2, ..., -1/2 of each row (exact in float64), padded with -1/2
    edges = np.where(live, (j[None, :] - half[:, None]) - 0.5, -0.5)
    F = np.asarray(lower_cdf(edges / scales[:, None]), dtype=np.float64)
    left = np.diff(F, axis=1)  # left[r, k]: mass of v = k - m, for k < m
    lengths = 2 * half + 1
    pmf = np.zeros((R, 2 * H + 2))
    r_i, k_i = np.nonzero(j[None, :H] < half[:, None])
    pmf[r_i, k_i] = left[r_i, k_i]  # v = k - m (column k)
    pmf[r_i, 2 * half[r_i] - k_i] = left[r_i, k_i]  # v = m - k (column 2m - k)
    pmf[rows, half] = 1.0 - 2.0 * F[rows, half]  # v = 0
    pmf[rows, lengths] = 2.0 * F[:, 0]  # escape: both tails
    return tables_from_pmf(pmf, lengths, -half, family=family)


def _check_tail_mass(tail_mass) -> float:
    tail_mass = float(tail_mass)
    if not 0 < tail_mass < 1:
        raise TableError(f"tail_mass must lie strictly between 0 and 1, got {tail_mass}")
    return tail_mass


def _laplace_lower_cdf(x):
    return 0.5 * numerics.exp(x)


def gaussian_tables(scales=None, tail_mass: float = 1e-9) -> CDFTables:
    """Zero-mean Gaussian rows, one per scale (default: :func:`default_scale_table`).

    Row ``l`` covers ``[-m, m]`` with ``m = ceil(scale_l * z)``, ``z`` the two-sided
    ``tail_mass`` quantile; the tails go to the escape.  Deterministic on every platform
    (:mod:`codec.entropy.numerics`).
    """
    z = numerics.normal_upper_quantile(_check_tail_mass(tail_mass) / 2)
    scales = default_scale_table() if scales is None else scales
    return _symmetric_tables(scales, z, numerics.ndtr, "gaussian")


def laplace_tables(scales=None, tail_mass: float = 1e-9, means=None) -> CDFTables:
    """Laplace rows (scale = diversity ``b``), one per scale; the tails beyond
    ``ceil(b * log(1 / tail_mass))`` go to the escape.  Deterministic on every platform.

    ``means`` (one per scale, each in ``[0, 1)``): row ``r`` is the Laplace of mean ``means[r]``
    integrated over ``v +- 1/2`` (a coder then codes ``value - floor(mean)`` with the row of the
    mean's fraction); without, the rows are zero-mean."""
    z = float(numerics.log(1.0 / _check_tail_mass(tail_mass)))
    scales = default_scale_table() if scales is None else scales
    if means is None:
        return _symmetric_tables(scales, z, _laplace_lower_cdf, "laplace")
    scales, means = np.asarray(scales, dtype=np.float64), np.asarray(means, dtype=np.float64)
    if scales.ndim != 1 or means.shape != scales.shape or np.any(~np.isfinite(scales)) or np.any(scales <= 0) \
            or np.any(~(means >= 0)) or np.any(means >= 1):
        raise TableError("scales must be positive and means in [0, 1), one per row")
    if scales.size > MAX_ROWS:
        raise TableError(f"a table set has 1..{MAX_ROWS} rows, got {scales.size}")
    half = np.maximum(np.ceil(scales * z), 1).astype(np.int64)
    if 2 * half.max() + 2 > MAX_ROW_SYMBOLS:
        raise TableError(f"a row may span at most {MAX_ROW_SYMBOLS} values")
    lengths = 2 * half + 2  # values -m .. m + 1 (the mean lies in [0, 1))
    K = int(lengths.max())
    v = np.arange(K)[None, :] - half[:, None]  # value of column k
    b, mu = scales[:, None], means[:, None]
    lo, hi = (v - 0.5 - mu) / b, (v + 0.5 - mu) / b  # the cell, in diversities from the mean
    below = 0.5 * (numerics.exp(np.minimum(hi, 0)) - numerics.exp(np.minimum(lo, 0)))
    above = 0.5 * (numerics.exp(-np.maximum(lo, 0)) - numerics.exp(-np.maximum(hi, 0)))
    mass = np.where(hi <= 0, below, np.where(lo >= 0, above,
                    1 - 0.5 * numerics.exp(np.minimum(lo, 0)) - 0.5 * numerics.exp(-np.maximum(hi, 0))))
    live = np.arange(K)[None, :] < lengths[:, None]
    pmf = np.zeros((scales.size, K + 1))
    pmf[:, :K] = np.where(live, np.clip(mass, 0, 1), 0)
    rows = np.arange(scales.size)
    pmf[rows, lengths] = np.clip(1 - np.array([math.fsum(r) for r in pmf]), 0, 1)  # fsum: one sum on every build
    return tables_from_pmf(pmf, lengths, -half, family="laplace")


def concat_tables(*tables: CDFTables, family: str = "custom") -> CDFTables:
    """One table set holding the rows of ``tables`` in order (row ``r`` of the ``k``-th set is
    row ``r + sum of the earlier sets' rows``): one stream can then code symbols of several
    kinds.  Exact: the stored integers, rows padded with ``2**16`` past their escape."""
    if not tables:
        raise TableError("concat_tables needs at least one table set")
    W = max(t.cdf.shape[1] for t in tables)
    cdf = np.concatenate([np.pad(t.cdf, ((0, 0), (0, W - t.cdf.shape[1])), constant_values=TOTAL)
                          for t in tables])
    return CDFTables(cdf, np.concatenate([t.lengths for t in tables]), np.concatenate([t.offsets for t in tables]),
                     family=family)


def categorical_tables(probs) -> CDFTables:
    """One row per probability vector (``probs[r, k]`` for symbol ``k``; offset 0).

    The escape gets the minimum frequency (1/2**16): categorical symbols are never
    outside ``0 .. K-1`` in normal use, but the coder stays total.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:
        probs = probs[None]
    if probs.ndim != 2 or probs.shape[1] < 1:
        raise TableError("probs must be [R, K]")
    R, K = probs.shape
    if K > MAX_ROW_SYMBOLS:
        raise TableError(f"at most {MAX_ROW_SYMBOLS} categories per row")
    if np.any(~np.isfinite(probs)) or np.any(probs < 0):
        raise TableError("probabilities must be finite and >= 0")
    pmf = np.zeros((R, K + 1))
    pmf[:, :K] = probs
    return tables_from_pmf(pmf, np.full(R, K), np.zeros(R, dtype=np.int64), family="categorical")
