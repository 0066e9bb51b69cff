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
quality: negative means the test codec needs fewer bits, whatever the metric.
BD-quality is the mean difference of the metric, test minus reference, at equal rate,
in the metric's unit (dB for PSNR): positive means the test is better for a metric
where higher is better, negative for one where lower is better (a distance; such a
metric is negated for the fits, so monotone means "improves with rate").

What the rate and the metrics of a results file are (keys, units, labels, directions,
the dB scale of MS-SSIM-like similarities, computed on ``-10*log10(1 - value)`` by
default) comes from its ``axes`` block (:mod:`codec.tools.axes`), so results of any
medium work: ``bpp`` and PSNR-RGB, ``kbps`` and SI-SDR, ``bpp`` and PSNR-YUV.

A rate window (``rate_range=(lo, hi)``, ``--rate-range LO:HI``) restricts both to the
part of the curves with rates from ``lo`` to ``hi``: BD-quality integrates over that
part of the log-rate axis; BD-rate over the qualities both curves reach inside it, each
curve's quality at the window's ends read from the PCHIP interpolation of its points
(quality over log10 rate, on its Pareto front), whatever the method of the integral.

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
from codec.tools.axes import Axes, Metric, axes_of, shared_metrics

__all__ = ["BDResult", "bd_rate", "bd_quality", "pchip_slopes", "pchip_integral", "curve_from_results",
           "load_curve", "Curve", "compare", "find_metric", "register", "METHODS", "pchip_eval", "parse_rate_range"]

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


def pchip_eval(x, y, t: float) -> float:
    """The PCHIP interpolant through the points (x strictly increasing) at ``t`` (inside
    ``[x[0], x[-1]]``)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    d = pchip_slopes(x, y)
    k = int(np.clip(np.searchsorted(x, t, side="right") - 1, 0, len(x) - 2))
    h = x[k + 1] - x[k]
    u = (t - x[k]) / h
    h00, h10, h01, h11 = 2 * u**3 - 3 * u**2 + 1, u**3 - 2 * u**2 + u, -2 * u**3 + 3 * u**2, u**3 - u**2
    return float(h00 * y[k] + h10 * h * d[k] + h01 * y[k + 1] + h11 * h * d[k + 1])


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
        msg = f"{label}: curve is not monotone (quality does not improve with every rate step)"
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


def _delta(x_ref, y_ref, x_test, y_test, method, min_overlap, axis, warns,
           window=None) -> tuple[float, tuple | None, float]:
    """Mean of ``y_test - y_ref`` over the overlap of the curves' ``x`` (inside ``window``,
    per curve ``(lo, hi)`` pairs of its part there, when given)."""
    (a0, b0), (a1, b1) = window or ((x_ref.min(), x_ref.max()), (x_test.min(), x_test.max()))
    lo, hi = max(a0, a1), min(b0, b1)
    span = min(b0 - a0, b1 - a1)
    if hi <= lo:
        where = " inside the rate window" if window else ""
        warns.append(f"the curves do not overlap in {axis}{where}; BD value undefined")
        return float("nan"), None, 0.0
    frac = (hi - lo) / span if span > 0 else 0.0
    if frac < min_overlap:
        warns.append(f"small overlap in {axis}: {100 * frac:.0f}% of the shorter curve's span "
                     f"(under {100 * min_overlap:.0f}%); the BD value extrapolates little but covers only part "
                     "of the curves")
    diff = (_integral(method, x_test, y_test, lo, hi) - _integral(method, x_ref, y_ref, lo, hi)) / (hi - lo)
    return float(diff), (float(lo), float(hi)), float(frac)


def _signed(q, higher_is_better: bool) -> np.ndarray:
    q = np.asarray(q, float)
    return q if higher_is_better else -q


def _check_window(rate_range) -> tuple[float, float] | None:
    if rate_range is None:
        return None
    lo, hi = (float(v) for v in rate_range)
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ValueError(f"rate range {lo:g}:{hi:g}: needs 0 < low < high")
    return lo, hi


def _log_window(r, lo: float, hi: float) -> tuple[float, float]:
    """The part of a curve's log10-rate span inside ``[log10 lo, log10 hi]`` (empty: a > b)."""
    lr = np.log10(r)
    return max(float(lr.min()), math.log10(lo)), min(float(lr.max()), math.log10(hi))


def _quality_window(r, q, lo: float, hi: float) -> tuple[float, float]:
    """The qualities a curve reaches with rates inside ``[lo, hi]`` (its PCHIP interpolant
    over log10 rate, on its Pareto front); ``(nan, nan)`` when none are inside."""
    f = _pareto(np.asarray(r, float), np.asarray(q, float))
    lr, qq = np.log10(np.asarray(r, float)[f]), np.asarray(q, float)[f]
    a, b = max(float(lr[0]), math.log10(lo)), min(float(lr[-1]), math.log10(hi))
    if a > b:
        return float("nan"), float("nan")
    if lr.size == 1:
        return float(qq[0]), float(qq[0])
    return pchip_eval(lr, qq, a), pchip_eval(lr, qq, b)


def bd_rate(rate_ref, q_ref, rate_test, q_test, method: str = "cubic", *, min_overlap: float = 0.5,
            higher_is_better: bool = True, rate_range=None) -> BDResult:
    """BD-rate in percent of ``test`` against ``ref`` (negative: test saves bits); a
    metric where lower is better (``higher_is_better=False``) is negated for the fit.
    ``rate_range=(lo, hi)``: over the qualities both reach at rates inside it."""
    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; use one of {', '.join(METHODS)}")
    window = _check_window(rate_range)
    warns: list[str] = []
    r0, q0 = _prepare(rate_ref, _signed(q_ref, higher_is_better), "reference", method, warns)
    r1, q1 = _prepare(rate_test, _signed(q_test, higher_is_better), "test", method, warns)
    if window is not None:
        window = (_quality_window(r0, q0, *window), _quality_window(r1, q1, *window))
        if not all(math.isfinite(v) for w in window for v in w):
            warns.append("a curve has no point inside the rate window; BD value undefined")
            return BDResult(float("nan"), None, 0.0, warns)
    d, ov, frac = _delta(q0, np.log10(r0), q1, np.log10(r1), method, min_overlap, "quality", warns, window)
    val = (10.0 ** d - 1.0) * 100.0 if math.isfinite(d) else float("nan")
    return BDResult(val, ov, frac, warns)


def bd_quality(rate_ref, q_ref, rate_test, q_test, method: str = "cubic", *, min_overlap: float = 0.5,
               higher_is_better: bool = True, rate_range=None) -> BDResult:
    """BD-quality (BD-PSNR in dB for PSNR): the mean of test minus reference at equal
    rate, in the metric's own terms (positive: test better when higher is better;
    negative: test better when ``higher_is_better=False``).  ``rate_range=(lo, hi)``: over
    the rates inside it only."""
    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; use one of {', '.join(METHODS)}")
    window = _check_window(rate_range)
    warns: list[str] = []
    r0, q0 = _prepare(rate_ref, _signed(q_ref, higher_is_better), "reference", method, warns)
    r1, q1 = _prepare(rate_test, _signed(q_test, higher_is_better), "test", method, warns)
    if window is not None:
        window = (_log_window(r0, *window), _log_window(r1, *window))
    d, ov, frac = _delta(np.log10(r0), q0, np.log10(r1), q1, method, min_overlap, "rate", warns, window)
    if not higher_is_better and math.isfinite(d):
        d = -d
    return BDResult(d, ov, frac, warns)


# --------------------------------------------------------------------------- results files
@dataclass
class Curve:
    name: str
    path: str
    rate: np.ndarray
    #: metric key -> values as BD-rated and plotted (``db_scale`` metrics in dB when ``db``)
    metrics: dict[str, np.ndarray]
    obj: dict
    axes: Axes
    db: bool = True

    def metric(self, key: str) -> Metric:
        return self.axes.metrics[key]


def _to_db(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, float)
    with np.errstate(divide="ignore"):
        return -10.0 * np.log10(np.clip(1.0 - v, 1e-10, None))


def curve_from_results(obj: dict, path: str = "", db: bool = True) -> Curve:
    """Rate and metrics of a results dict, as its ``axes`` block names them (or as they
    are inferred for files without one, :mod:`codec.tools.axes`); ``db_scale`` metrics
    are converted to ``-10*log10(1 - value)`` dB unless ``db`` is false."""
    where = path or str(obj.get("name") or "results")
    res = obj.get("results")
    if not isinstance(res, dict):
        raise CodecError(f"{where}: no 'results' in the file")
    ax = axes_of(obj, where)

    def arr(k):
        v = res[k]
        if not isinstance(v, list):
            raise CodecError(f"{where}: results {k!r} is not a list")
        try:
            return np.array([np.nan if x is None else x for x in v], dtype=float)
        except (TypeError, ValueError):
            raise CodecError(f"{where}: results {k!r} holds values that are not numbers") from None

    mets = {}
    for k, m in ax.metrics.items():
        src, conv = ax.sources.get(k, (k, None))
        v = arr(src)
        if conv == "from_db":  # an older file's -10 log10(1 - v): back to v
            v = 1.0 - 10.0 ** (-v / 10.0)
        mets[k] = _to_db(v) if (m.db_scale and db) else v
    name = str(obj.get("name") or Path(path).stem)
    return Curve(name, str(path), arr(ax.rate.key), mets, obj, ax, db)


def load_curve(path, db: bool = True) -> Curve:
    from codec.tools.evaluate import load_results

    return curve_from_results(load_results(Path(path)), str(path), db)


def find_metric(curve: Curve, name: str) -> str:
    """The key of ``curve``'s metric called ``name``: its key, its label, or the key's
    first words up to a ``-`` (``psnr`` for ``psnr-rgb``), any case."""
    n = name.strip().lower()
    mets = curve.axes.metrics
    for test in (lambda m: m.key.lower() == n, lambda m: m.label.lower() == n,
                 lambda m: m.key.lower().startswith(n + "-")):
        hits = [m.key for m in mets.values() if test(m)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise CodecError(f"metric {name!r} is ambiguous in {curve.name}: {', '.join(hits)}")
    raise CodecError(f"{curve.name}: no metric {name!r}; it has "
                     + ", ".join(f"{m.key} ({m.label})" for m in mets.values()))


def _left_out(c: Curve, key: str) -> tuple | None:
    """The items a measured curve's mean of ``key`` leaves out (``meta.partial_metrics`` of
    codec eval: a metric some items have no value of); None for a curve without per-item
    records (a published one)."""
    meta = c.obj.get("meta") or {}
    if "num_items" not in meta:
        return None
    return tuple(((meta.get("partial_metrics") or {}).get(key) or {}).get("left_out") or ())


def compare(ref: Curve, test: Curve, metric: str, method: str, min_overlap: float = 0.5,
            rate_range=None) -> tuple[BDResult, BDResult]:
    """(BD-rate, BD-quality) of ``test`` against ``ref`` on the metric with key ``metric``
    (inside ``rate_range=(lo, hi)`` when given).
    :class:`CodecError` when the two measure rate differently or define the metric
    differently, or one of them lacks it."""
    if ref.db != test.db:
        raise ValueError("compare curves loaded the same way (both with db=True or both with db=False)")
    shared, _ = shared_metrics(ref.path or ref.name, ref.axes, test.path or test.name, test.axes)
    m = next((x for x in shared if x.key == metric), None)
    if m is None:
        who = ref if metric not in ref.metrics else test
        other = test if who is ref else ref
        label = (other.axes.metrics.get(metric) or who.axes.metrics.get(metric))
        raise CodecError(f"{who.name}: no {label.label if label else metric} values")
    left = [_left_out(c, metric) for c in (ref, test)]
    if None not in left and left[0] != left[1]:
        raise CodecError(f"{test.name} and {ref.name} average {m.label} over different items (left out: "
                         f"{', '.join(left[1]) or 'none'}; {', '.join(left[0]) or 'none'}): evaluate both on the "
                         "same items")
    hib = m.higher_is_better
    rate = bd_rate(ref.rate, ref.metrics[metric], test.rate, test.metrics[metric], method,
                   min_overlap=min_overlap, higher_is_better=hib, rate_range=rate_range)
    qual = bd_quality(ref.rate, ref.metrics[metric], test.rate, test.metrics[metric], method,
                      min_overlap=min_overlap, higher_is_better=hib, rate_range=rate_range)
    return rate, qual


def parse_rate_range(text: str) -> tuple[float, float]:
    """``"LO:HI"`` (``--rate-range``) -> ``(lo, hi)``, 0 < lo < hi; anything else is a ValueError
    that says what is expected."""
    parts = str(text).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"--rate-range {text!r}: expected LOW:HIGH in the files' rate unit, e.g. 12:32") from None
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ValueError(f"--rate-range {text!r}: needs 0 < LOW < HIGH")
    return lo, hi


def fmt_pct(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:+.1f}%"


# --------------------------------------------------------------------------- CLI
def register(sub) -> None:
    p = sub.add_parser(
        "bdrate",
        help="BD-rate and BD-quality (BD-PSNR, ...) of result files against a reference (cubic and PCHIP)",
        description="Print the Bjontegaard delta rate (percent bits saved at equal quality; negative = TEST "
        "is better) and delta quality (the metric's mean difference TEST - REF at equal rate, in its unit: "
        "positive = TEST is better for a metric where higher is better, negative for one where lower is "
        "better) of each TEST against REF, for every metric the two files share, with Bjontegaard's cubic "
        "fit and with the piecewise-cubic (PCHIP) interpolation of the JVET common test conditions, over the "
        "range where the curves overlap.  Files are CompressAI-format results JSONs (as written by codec "
        "eval); the rate and the metrics, their units and directions come from each file's 'axes' block "
        "(files without one are image results: bpp, PSNR-RGB, MS-SSIM on -10*log10(1-MS-SSIM)).  Files on "
        "different rate axes are refused; metrics only one file has are skipped with a note.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  codec bdrate results/jpeg.json results/webp.json results/avif.json",
    )
    p.add_argument("ref", metavar="REF.json", help="reference curve (the codec you compare against)")
    p.add_argument("tests", metavar="TEST.json", nargs="+", help="curves to compare with the reference")
    p.add_argument("--metric", default="all", metavar="NAME",
                   help="quality metric: a key of the files' axes (e.g. psnr-rgb, si-sdr), its label, or its "
                   "first word (psnr, ms-ssim); default: all the files share")
    p.add_argument("--method", choices=[*METHODS, "both"], default="both",
                   help="interpolation: cubic (Bjontegaard), pchip (JVET CTC) or both (default)")
    p.add_argument("--linear", "--ms-ssim-linear", dest="linear", action="store_true",
                   help="use linear values of dB-scale similarities (MS-SSIM) instead of -10*log10(1-value) dB")
    p.add_argument("--min-overlap", type=float, default=0.5, metavar="F",
                   help="warn when the overlap is shorter than this fraction of either curve's span "
                   "(default 0.5)")
    p.add_argument("--rate-range", default=None, metavar="LO:HI",
                   help="only the part of the curves with rates from LO to HI, in the files' rate unit (e.g. "
                   "12:32 for kbps): BD-quality over those rates, BD-rate over the qualities both curves reach "
                   "there (default: wherever the curves overlap)")
    p.set_defaults(func=_cmd_bdrate)


def _cmd_bdrate(args) -> int:
    if not 0 <= args.min_overlap <= 1:
        raise ValueError("--min-overlap must be between 0 and 1")
    window = None if args.rate_range is None else parse_rate_range(args.rate_range)
    db = not args.linear
    ref = load_curve(args.ref, db)
    tests = [load_curve(t, db) for t in args.tests]
    methods = list(METHODS) if args.method == "both" else [args.method]
    only = None if args.metric == "all" else find_metric(ref, args.metric)
    rows, warnings, notes = [], [], []
    for t in tests:
        shared, skipped = shared_metrics(ref.path, ref.axes, t.path, t.axes)
        if only is not None:
            if only not in {m.key for m in shared}:
                raise CodecError(f"{t.name}: no {ref.metric(only).label} values")
            shared = [m for m in shared if m.key == only]
        elif not shared:
            raise CodecError(f"{t.path} and {ref.path} share no metric ({'; '.join(skipped)})")
        else:
            notes += skipped
        for m in shared:
            empty = [c.name for c in (ref, t) if not np.isfinite(c.metrics[m.key]).any()]
            if empty:  # None at every point (a speech-only metric on other items, a package not installed)
                if only is not None:
                    raise CodecError(f"{empty[0]}: no {m.label} values (None at every point)")
                notes.append(f"{' and '.join(empty)} {'have' if len(empty) > 1 else 'has'} no {m.label} values "
                             f"(None at every point): {m.label} skipped")
                continue
            cells = []
            for meth in methods:
                r, q = compare(ref, t, m.key, meth, args.min_overlap, window)
                cells += [fmt_pct(r.value), m.fmt(q.value, db)]
                for w in dict.fromkeys(r.warnings + q.warnings):
                    warnings.append(f"{t.name} vs {ref.name}, {m.label}, {meth}: {w}")
            rows.append([t.name, m.name(db), *cells])
    head = ["test", "metric"]
    for meth in methods:
        head += [f"BD-rate {meth}", f"BD-quality {meth}"]
    print(f"reference: {ref.name} ({ref.path})" + ("" if window is None else
          f"; rates {window[0]:g} to {window[1]:g} {ref.axes.rate.unit or ref.axes.rate.key} only"))
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    for n in dict.fromkeys(notes):
        print(f"codec: note: {n}", file=sys.stderr)
    for w in dict.fromkeys(warnings):
        print(f"codec: warning: {w}", file=sys.stderr)
    return 0
