"""Bjontegaard delta rate and quality (BD-rate, BD-PSNR) and ``codec bdrate``.

Two interpolations are provided, both integrated exactly over the overlapping interval:

- ``cubic``: Bjontegaard's original method (VCEG-M33): a least-squares cubic polynomial
  of log10(rate) in quality (BD-rate), or of quality in log10(rate) (BD-quality).
- ``pchip``: piecewise cubic Hermite interpolation with the Fritsch-Carlson slopes
  (the shape-preserving interpolation of the JVET common-test-conditions BD-rate
  sheet; same as ``scipy.interpolate.PchipInterpolator``).  It passes through every
  point and needs a monotone curve; a curve that is not monotone is reduced to its
  Pareto front (points no other point beats in both rate and quality), with a warning.

BD-rate is ``(10**mean(log10 R_test - log10 R_ref) - 1) * 100`` percent at equal
quality: negative means the test codec needs fewer bits.  BD-quality is the mean
quality difference at equal rate (dB for PSNR): positive means the test is better.
For MS-SSIM both are computed on ``-10*log10(1 - MS-SSIM)`` (dB) by default.

Warnings (returned with each result, printed by the CLI): curves that do not overlap
(the value is NaN), an overlap shorter than ``min_overlap`` (default 50%) of either
curve's span, non-monotone curves, and too few points for a cubic fit.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codec.errors import CodecError

__all__ = ["BDResult", "bd_rate", "bd_quality", "pchip_slopes", "pchip_integral", "curve_from_results",
           "Curve", "compare", "register", "METHODS"]

METHODS = ("cubic", "pchip")


@dataclass
class BDResult:
    value: float
    overlap: tuple[float, float] | None
    overlap_fraction: float  # overlap length / shorter of the two spans
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- interpolation
def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson derivatives at the knots (the rule of MATLAB's and SciPy's pchip)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        d[:] = delta[0]
        return d
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1 = 2 * h[k] + h[k - 1]
            w2 = h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def end(h0, h1, m0, m1):
        s = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(s) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(s) > abs(3 * m0):
            return 3 * m0
        return s

    d[0] = end(h[0], h[1], delta[0], delta[1])
    d[-1] = end(h[-1], h[-2], delta[-1], delta[-2])
    return d


def pchip_integral(x, y, a: float, b: float) -> float:
    """Exact integral from ``a`` to ``b`` (inside ``[x[0], x[-1]]``) of the PCHIP
    interpolant through the points (x strictly increasing)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    d = pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        lo, hi = max(a, x[k]), min(b, x[k + 1])
        if hi <= lo:
            continue
        h = x[k + 1] - x[k]
        delta = (y[k + 1] - y[k]) / h
        c0, c1 = y[k], d[k]
        c2 = (3 * delta - 2 * d[k] - d[k + 1]) / h
        c3 = (d[k] + d[k + 1] - 2 * delta) / (h * h)

        def prim(t):
            return c0 * t + c1 * t**2 / 2 + c2 * t**3 / 3 + c3 * t**4 / 4

        total += prim(hi - x[k]) - prim(lo - x[k])
    return float(total)


def _cubic_integral(x, y, a: float, b: float) -> float:
    p = np.polyint(np.polyfit(np.asarray(x, float), np.asarray(y, float), 3))
    return float(np.polyval(p, b) - np.polyval(p, a))


# --------------------------------------------------------------------------- curves
def _pareto(rate: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (lower-or-equal rate and higher quality),
    sorted by rate."""
    order = np.lexsort((-q, rate))
    keep, best = [], -np.inf
    for i in order:
        if q[i] > best:
            keep.append(i)
            best = q[i]
    return np.array(keep, dtype=int)


def _prepare(rate, q, label: str, method: str, warns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rate = np.asarray(rate, float)
    q = np.asarray(q, float)
    if rate.shape != q.shape or rate.ndim != 1:
        raise ValueError(f"{label}: rate and quality lists differ in length ({rate.size} vs {q.size})")
    ok = np.isfinite(rate) & np.isfinite(q)
    if not ok.all():
        warns.append(f"{label}: {int((~ok).sum())} point(s) with missing/non-finite values ignored")
        rate, q = rate[ok], q[ok]
    if (rate <= 0).any():
        raise ValueError(f"{label}: rates must be positive")
    need = 4 if method == "cubic" else 2
    if rate.size < need:
        raise ValueError(f"{label}: {rate.size} point(s); the {method} method needs at least {need}")
    order = np.argsort(rate, kind="stable")
    rate, q = rate[order], q[order]
    if np.any(np.diff(q) <= 0) or np.any(np.diff(rate) <= 0):
        front = _pareto(rate, q)
        dropped = rate.size - front.size
        msg = f"{label}: curve is not monotone (quality does not rise with every rate step)"
        if method == "pchip":
            msg += f"; {dropped} dominated point(s) dropped for pchip"
            rate, q = rate[front], q[front]
            if rate.size < 2:
                raise ValueError(f"{label}: fewer than 2 points left on the Pareto front")
        warns.append(msg)
    return rate, q


def _integral(method: str, x, y, a, b) -> float:
    if method == "cubic":
        return _cubic_integral(x, y, a, b)
    if method == "pchip":
        order = np.argsort(x)
        return pchip_integral(np.asarray(x)[order], np.asarray(y)[order], a, b)
    raise ValueError(f"unknown BD method {method!r}; use one of {', '.join(METHODS)}")


def _delta(x_ref, y_ref, x_test, y_test, method, min_overlap, axis, warns) -> tuple[float, tuple | None, float]:
    lo = max(x_ref.min(), x_test.min())
    hi = min(x_ref.max(), x_test.max())
    span = min(x_ref.max() - x_ref.min(), x_test.max() - x_test.min())
    if hi <= lo:
        warns.append(f"the curves do not overlap in {axis}; BD value undefined")
        return float("nan"), None, 0.0
    frac = (hi - lo) / span if span > 0 else 0.0
    if frac < min_overlap:
        warns.append(f"small overlap in {axis}: {100 * frac:.0f}% of the shorter curve's span "
                     f"(under {100 * min_overlap:.0f}%); the BD value extrapolates little but covers only part "
                     "of the curves")
    diff = (_integral(method, x_test, y_test, lo, hi) - _integral(method, x_ref, y_ref, lo, hi)) / (hi - lo)
    return float(diff), (float(lo), float(hi)), float(frac)


def bd_rate(rate_ref, q_ref, rate_test, q_test, method: str = "cubic", *, min_overlap: float = 0.5) -> BDResult:
    """BD-rate in percent of ``test`` against ``ref`` (negative: test saves bits)."""
    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; use one of {', '.join(METHODS)}")
    warns: list[str] = []
    r0, q0 = _prepare(rate_ref, q_ref, "reference", method, warns)
    r1, q1 = _prepare(rate_test, q_test, "test", method, warns)
    d, ov, frac = _delta(q0, np.log10(r0), q1, np.log10(r1), method, min_overlap, "quality", warns)
    val = (10.0 ** d - 1.0) * 100.0 if math.isfinite(d) else float("nan")
    return BDResult(val, ov, frac, warns)


def bd_quality(rate_ref, q_ref, rate_test, q_test, method: str = "cubic", *, min_overlap: float = 0.5) -> BDResult:
    """BD-quality (BD-PSNR in dB for PSNR) of ``test`` against ``ref`` (positive: test better)."""
    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; use one of {', '.join(METHODS)}")
    warns: list[str] = []
    r0, q0 = _prepare(rate_ref, q_ref, "reference", method, warns)
    r1, q1 = _prepare(rate_test, q_test, "test", method, warns)
    d, ov, frac = _delta(np.log10(r0), q0, np.log10(r1), q1, method, min_overlap, "rate", warns)
    return BDResult(d, ov, frac, warns)


# --------------------------------------------------------------------------- results files
METRICS = {
    "psnr": ("psnr-rgb", "PSNR-RGB", "dB"),
    "ms-ssim": ("ms-ssim-rgb", "MS-SSIM", "dB"),
}


@dataclass
class Curve:
    name: str
    path: str
    rate: np.ndarray
    metrics: dict[str, np.ndarray]
    obj: dict


def _to_db(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, float)
    with np.errstate(divide="ignore"):
        return -10.0 * np.log10(np.clip(1.0 - v, 1e-10, None))


def curve_from_results(obj: dict, path: str = "", ms_ssim_db: bool = True) -> Curve:
    """Rate and metrics of a CompressAI-format results dict (``bpp``, or ``bitrate`` for
    video files); MS-SSIM converted to dB unless ``ms_ssim_db`` is false; ``ms-ssim-db-rgb``
    is used when only that is present."""
    res = obj.get("results")
    if not isinstance(res, dict):
        raise CodecError(f"{path or obj.get('name')}: no 'results' in the file")
    rate_key = next((k for k in ("bpp", "bitrate", "kbps") if k in res), None)
    if rate_key is None:
        raise CodecError(f"{path or obj.get('name')}: results have no 'bpp' (or 'bitrate') list")

    def arr(k):
        return np.array([np.nan if v is None else v for v in res[k]], dtype=float)

    mets = {}
    if "psnr-rgb" in res:
        mets["psnr"] = arr("psnr-rgb")
    elif "psnr" in res:
        mets["psnr"] = arr("psnr")
    if "ms-ssim-rgb" in res:
        mets["ms-ssim"] = _to_db(arr("ms-ssim-rgb")) if ms_ssim_db else arr("ms-ssim-rgb")
    elif "ms-ssim" in res:
        mets["ms-ssim"] = _to_db(arr("ms-ssim")) if ms_ssim_db else arr("ms-ssim")
    elif "ms-ssim-db-rgb" in res and ms_ssim_db:
        mets["ms-ssim"] = arr("ms-ssim-db-rgb")
    name = str(obj.get("name") or Path(path).stem)
    return Curve(name, str(path), arr(rate_key), mets, obj)


def load_curve(path, ms_ssim_db: bool = True) -> Curve:
    from codec.tools.evaluate import load_results

    return curve_from_results(load_results(Path(path)), str(path), ms_ssim_db)


def compare(ref: Curve, test: Curve, metric: str, method: str, min_overlap: float = 0.5) -> tuple[BDResult, BDResult]:
    """(BD-rate, BD-quality) of ``test`` against ``ref`` on one metric."""
    if metric not in ref.metrics or metric not in test.metrics:
        who = ref.name if metric not in ref.metrics else test.name
        raise CodecError(f"{who}: no {METRICS[metric][1]} values")
    rate = bd_rate(ref.rate, ref.metrics[metric], test.rate, test.metrics[metric], method, min_overlap=min_overlap)
    qual = bd_quality(ref.rate, ref.metrics[metric], test.rate, test.metrics[metric], method,
                      min_overlap=min_overlap)
    return rate, qual


def fmt_pct(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:+.1f}%"


def fmt_db(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:+.2f} dB"


# --------------------------------------------------------------------------- CLI
def register(sub) -> None:
    p = sub.add_parser(
        "bdrate",
        help="BD-rate and BD-PSNR of result files against a reference (cubic and PCHIP)",
        description="Print the Bjontegaard delta rate (percent bits saved at equal quality; negative = TEST "
        "is better) and delta quality (dB at equal rate; positive = TEST is better) of each TEST against REF, "
        "for PSNR-RGB and MS-SSIM (on -10*log10(1-MS-SSIM)), with Bjontegaard's cubic fit and with the "
        "piecewise-cubic (PCHIP) interpolation of the JVET common test conditions, over the range where the "
        "curves overlap.  Files are CompressAI-format results JSONs (as written by codec eval).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  codec bdrate results/jpeg.json results/webp.json results/avif.json",
    )
    p.add_argument("ref", metavar="REF.json", help="reference curve (the codec you compare against)")
    p.add_argument("tests", metavar="TEST.json", nargs="+", help="curves to compare with the reference")
    p.add_argument("--metric", choices=["psnr", "ms-ssim", "all"], default="all",
                   help="quality metric (default: all available)")
    p.add_argument("--method", choices=[*METHODS, "both"], default="both",
                   help="interpolation: cubic (Bjontegaard), pchip (JVET CTC) or both (default)")
    p.add_argument("--ms-ssim-linear", action="store_true",
                   help="use linear MS-SSIM values instead of -10*log10(1-MS-SSIM) dB")
    p.add_argument("--min-overlap", type=float, default=0.5, metavar="F",
                   help="warn when the overlap is shorter than this fraction of either curve's span "
                   "(default 0.5)")
    p.set_defaults(func=_cmd_bdrate)


def _cmd_bdrate(args) -> int:
    if not 0 <= args.min_overlap <= 1:
        raise ValueError("--min-overlap must be between 0 and 1")
    db = not args.ms_ssim_linear
    ref = load_curve(args.ref, db)
    tests = [load_curve(t, db) for t in args.tests]
    methods = list(METHODS) if args.method == "both" else [args.method]
    mets = list(METRICS) if args.metric == "all" else [args.metric]
    rows, warnings = [], []
    for t in tests:
        for m in mets:
            if m not in ref.metrics or m not in t.metrics:
                if args.metric != "all":
                    who = ref.name if m not in ref.metrics else t.name
                    raise CodecError(f"{who}: no {METRICS[m][1]} values")
                continue
            cells = []
            for meth in methods:
                r, q = compare(ref, t, m, meth, args.min_overlap)
                qtxt = fmt_db(q.value) if (db or m == "psnr") else ("n/a" if not math.isfinite(q.value)
                                                                     else f"{q.value:+.4f}")
                cells += [fmt_pct(r.value), qtxt]
                for w in dict.fromkeys(r.warnings + q.warnings):
                    warnings.append(f"{t.name} vs {ref.name}, {METRICS[m][1]}, {meth}: {w}")
            label = METRICS[m][1] + ("" if m == "psnr" else (" (dB)" if db else " (linear)"))
            rows.append([t.name, label, *cells])
    head = ["test", "metric"]
    for meth in methods:
        head += [f"BD-rate {meth}", f"BD-quality {meth}"]
    print(f"reference: {ref.name} ({ref.path})")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    for w in dict.fromkeys(warnings):
        print(f"codec: warning: {w}", file=sys.stderr)
    return 0
