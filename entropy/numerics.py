"""Deterministic float64 elementary functions for building tables.

The integer tables decide the bytes of every stream, so everything that feeds them
must give the same float64 results on every platform and library version.  libm's and
numpy's ``exp``/``log``/``erfc`` (and scipy's ``ndtr``) do not: their last bits differ
between versions, CPUs and SIMD paths.  The functions here use only operations whose
results IEEE 754 fixes exactly - ``+ - * /``, ``floor``, comparisons, negation,
``frexp``/``ldexp`` (exact) - in a fixed order on float64 numpy arrays, so they return
the same bits everywhere.  Their constants come from :mod:`decimal` (exact, correctly
rounded arithmetic) and :class:`fractions.Fraction`, converted to float64 once.

Accuracy (checked against ``math`` and high-precision references in
``tests/test_entropy.py``): a few units in the last place, about 1e-15 relative or
better, over the ranges the tables use; the 16-bit tables need far less.

- :func:`exp`, :func:`log` - range reduction by powers of two, then a fixed Taylor
  polynomial (``exp``) or the ``atanh`` series (``log``).
- :func:`ndtr` (standard normal CDF) - a fixed-length Taylor series near
  0 and a continued fraction of fixed depth for the tails (Laplace's continued fraction
  of the Mills ratio), with the ``exp(-x**2)`` factor split so that it is accurate in
  the far tails.
- :func:`normal_upper_quantile` - ``z`` with ``ndtr(-z) = p``, by bisection on
  :func:`ndtr`.

All functions take array-likes (or floats) and return float64 numpy arrays of the same
shape (0-d for scalars).
"""
from __future__ import annotations

import functools
from decimal import Decimal, localcontext
from fractions import Fraction
from math import factorial

import numpy as np

__all__ = ["exp", "log", "ndtr", "normal_upper_quantile"]

# ------------------------------------------------------------------------------------
# constants, from exact decimal arithmetic (Decimal ln/sqrt are correctly rounded)
# ------------------------------------------------------------------------------------
_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")

with localcontext() as _ctx:
    _ctx.prec = 60
    _LN2 = Decimal(2).ln()
    #: ln 2 split: _LN2_HI has 32 significant bits (so k * _LN2_HI is exact for |k| < 2**21)
    _LN2_HI = float(Fraction(int(_LN2 * (1 << 32)), 1 << 32))
    _LN2_LO = float(_LN2 - Decimal(_LN2_HI))
    _INV_LN2 = float(1 / _LN2)
    _SQRT_HALF = float(Decimal("0.5").sqrt())
    _INV_SQRT_2PI = float(1 / (2 * _PI).sqrt())

#: exp: Taylor coefficients 1/n!, n = 0..13 (|r| <= ln2/2: truncation < 4e-18 relative)
_EXP_COEF = [float(Fraction(1, factorial(n))) for n in range(14)]
#: log: 2 atanh(s) = 2 s sum w**n / (2n + 1), w = s**2 <= 0.0295 (truncation < 1e-19)
_ATANH_COEF = [float(Fraction(1, 2 * n + 1)) for n in range(13)]
#: sum (-1)**n w**n / (n! (2n + 1)), n = 0..22: erf(z) = 2z/sqrt(pi) S(z**2) and
#: ndtr(x) = 1/2 + x/sqrt(2 pi) S(x**2 / 2); used for w < 0.57 (truncation < 1e-22)
_ODD_COEF = [float(Fraction((-1) ** n, factorial(n) * (2 * n + 1))) for n in range(23)]
#: depth of the tail continued fraction (converged to < 2e-16 relative at t = x = 1)
_CF_DEPTH = 500


def _f64(x) -> np.ndarray:
    return np.array(x, dtype=np.float64)


def _horner(coef, w):
    acc = np.full_like(w, coef[-1])
    for c in coef[-2::-1]:
        acc *= w
        acc += c
    return acc


# ------------------------------------------------------------------------------------
# exp, log
# ------------------------------------------------------------------------------------
def exp(x) -> np.ndarray:
    """``e**x`` in float64, deterministic (about 1 ulp; 0 below -745.2, inf above 709.8)."""
    x = _f64(x)
    nan = np.isnan(x)
    xc = np.clip(np.where(nan, 0.0, x), -1000.0, 1000.0)
    k = np.floor(xc * _INV_LN2 + 0.5)  # nearest multiple of ln 2 (any rounding here only moves r a bit)
    r = (xc - k * _LN2_HI) - k * _LN2_LO  # |r| <= ~0.347
    p = _horner(_EXP_COEF, r)
    # scale by 2**k in two exact steps (2**k itself may not be representable); only the
    # second can overflow or underflow (to inf, a subnormal or 0, rounded as IEEE 754 says)
    ki = k.astype(np.int64)
    k1 = ki // 2
    with np.errstate(over="ignore", under="ignore"):
        p = p * np.ldexp(1.0, k1.astype(np.int32))
        p = p * np.ldexp(1.0, (ki - k1).astype(np.int32))
    return np.where(nan, np.nan, p)


def log(x) -> np.ndarray:
    """Natural logarithm in float64, deterministic (about 1 ulp); nan below 0, -inf at 0."""
    x = _f64(x)
    good = np.isfinite(x) & (x > 0)
    xs = np.where(good, x, 1.0)
    m, e = np.frexp(xs)  # exact: xs = m * 2**e, 0.5 <= m < 1 (subnormals included)
    low = m < _SQRT_HALF
    m = np.where(low, m * 2.0, m)  # sqrt(1/2) <= m < sqrt(2)
    e = (e - low).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)  # m - 1 is exact
    q = _horner(_ATANH_COEF, s * s)
    lm = (s + s) * q
    out = e * _LN2_HI + (e * _LN2_LO + lm)
    out = np.where(good, out, np.nan)
    out = np.where(x == 0, -np.inf, out)
    return np.where(x == np.inf, np.inf, out)


# ------------------------------------------------------------------------------------
# normal distribution
# ------------------------------------------------------------------------------------
def _exp_neg_sq(a, c):
    """``exp(-c * a**2)`` for ``0 <= a <= 40`` and ``c`` in {0.5, 1}, accurate where ``a**2`` is
    not: ``a = ah + al`` with ``ah`` on a 2**-20 grid, so ``ah**2`` is exact, and
    ``a**2 = ah**2 + al * (a + ah)``."""
    ah = np.floor(a * 1048576.0 + 0.5) * (1.0 / 1048576.0)
    al = a - ah  # exact
    return exp(-(c * (ah * ah))) * exp(-(c * (al * (a + ah))))


def _tail_fraction(a, c):
    """``1 / (a + c / (a + 2c / (a + 3c / ...)))`` to a fixed depth, evaluated backwards.

    With ``c = 1`` it is the Mills ratio of the standard normal, ``Q(a) / phi(a)``; with
    ``c = 1/2`` it is ``erfc(a) * sqrt(pi) * exp(a**2)``."""
    acc = np.zeros_like(a)
    for k in range(_CF_DEPTH, 0, -1):
        acc = (k * c) / (a + acc)
    return 1.0 / (a + acc)


def ndtr(x) -> np.ndarray:
    """Standard normal CDF ``P(X <= x)`` in float64, deterministic.

    ``|x| < 1``: ``1/2 + x/sqrt(2 pi) * S(x**2/2)`` (a fixed Taylor series); otherwise the
    lower tail ``Q(|x|) = phi(|x|) * M(|x|)`` with the Mills ratio ``M`` as a continued
    fraction, and ``1 - Q`` above.  Relative error about 1e-15 or better in the lower tail
    (down to about 1e-300), absolute error below 2e-16 above."""
    x = _f64(x)
    out = np.empty_like(x)
    nan = np.isnan(x)
    a = np.minimum(np.abs(np.where(nan, 0.0, x)), 40.0)  # Q(40) underflows to 0
    mid = a < 1.0
    if mid.any():
        xm = x[mid]
        out[mid] = 0.5 + (xm * _INV_SQRT_2PI) * _horner(_ODD_COEF, (xm * xm) * 0.5)
    tail = ~mid
    if tail.any():
        at = a[tail]
        q = (_INV_SQRT_2PI * _exp_neg_sq(at, 0.5)) * _tail_fraction(at, 1.0)
        out[tail] = np.where(x[tail] < 0, q, 1.0 - q)
    out[nan] = np.nan
    return out


@functools.lru_cache(maxsize=64)
def normal_upper_quantile(p: float) -> float:
    """``z >= 0`` with ``ndtr(-z) = p`` for ``0 < p <= 1/2`` (bisection on :func:`ndtr`;
    deterministic: the same float on every platform).  ``p >= 1/2`` gives 0."""
    p = float(p)
    if not p > 0:
        raise ValueError(f"the tail probability must be > 0, got {p}")
    lo, hi = 0.0, 40.0  # ndtr(-lo) = 1/2 >= p > ndtr(-hi) = 0 (underflow)
    if p >= 0.5:
        return 0.0
    while True:
        mid = (lo + hi) * 0.5
        if not lo < mid < hi:
            break
        if float(ndtr(-mid)) > p:
            lo = mid
        else:
            hi = mid
    # the float whose tail is nearest p (ties: the smaller z)
    return lo if abs(float(ndtr(-lo)) - p) <= abs(float(ndtr(-hi)) - p) else hi
