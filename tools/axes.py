"""What a results file measures: its rate axis and its metrics (the ``axes`` block).

``codec eval`` writes, at the top level of every results JSON, the block its medium
gives (:meth:`codec.tools.registry.Media.axes`); ``codec bdrate`` and ``codec report``
take every rate key, unit, label, metric name and direction from it, so a new medium
needs no change in them.  The image block::

    "axes": {
      "medium": "image",
      "rate": {"key": "bpp", "unit": "bpp", "label": "bits per pixel", "plot_max": 2.0},
      "metrics": {
        "psnr-rgb": {"label": "PSNR-RGB", "unit": "dB", "higher_is_better": true,
                     "description": "8-bit RGB, peak 255, per-image dB averaged"},
        "ms-ssim-rgb": {"label": "MS-SSIM", "unit": "", "higher_is_better": true, "db_scale": true,
                        "description": "pytorch_msssim on 8-bit RGB, data_range 255, float32"}
      }
    }

- ``medium`` (string, optional): what was coded; informational.
- ``rate`` (required): ``key``, the name of the rate list in ``results`` (and in
  ``per_image``); ``unit``, as printed after a rate (``bpp``, ``kbit/s``); ``label``,
  the words for the rate axis of a plot; ``plot_max`` (number, optional), the upper end
  of that axis (``codec report --xmax`` overrides it; without either, the largest rate
  of the measured curves).
- ``metrics`` (required, at least one, in order: the first is the primary metric):
  key = the name of the metric's list in ``results``; ``label`` (required), ``unit``
  (required, ``""`` when it has none), ``higher_is_better`` (required: ``false`` for
  distances such as LPIPS or a mel distance), ``db_scale`` (optional, default false: a
  similarity in [0, 1], shown and BD-rated as ``-10*log10(1 - value)`` dB unless linear
  values are asked for; needs ``higher_is_better``), ``description`` (optional, free
  text for reports).

Two files can be compared when their rate ``key`` and ``unit`` are the same (a clear
error otherwise).  A metric both files name must have the same unit, direction and
``db_scale`` (a clear error otherwise); a metric only one of them has is skipped, with
a note.  Files without an ``axes`` block (CompressAI's published results, results of
earlier versions) get the block of the medium their ``meta.media`` names, else that of
images (CompressAI's format is for images), with CompressAI's older metric names
(``psnr``, ``ms-ssim``, ``ms-ssim-db-rgb``) read where the current ones are missing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from codec.errors import CodecError

__all__ = ["Rate", "Metric", "Axes", "parse", "axes_of", "common_rate", "merge_metrics", "shared_metrics",
           "LEGACY_MEDIUM"]

#: the medium of results files that have neither an ``axes`` block nor ``meta.media``
#: (CompressAI's published results are image results)
LEGACY_MEDIUM = "image"
#: CompressAI's older names of a metric: current key -> [(old key, conversion to the current values)]
_LEGACY_NAMES = {
    "psnr-rgb": [("psnr", None)],
    "ms-ssim-rgb": [("ms-ssim", None), ("ms-ssim-db-rgb", "from_db")],
}


@dataclass(frozen=True)
class Rate:
    key: str
    unit: str
    label: str
    plot_max: float | None = None

    def same_as(self, other: "Rate") -> bool:
        return self.key == other.key and self.unit == other.unit

    def describe(self) -> str:
        return f"'{self.key}'" + (f" ({self.unit})" if self.unit and self.unit != self.key else "")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool = True
    db_scale: bool = False
    description: str = ""

    def same_as(self, other: "Metric") -> bool:
        return (self.unit, self.higher_is_better, self.db_scale) == (other.unit, other.higher_is_better,
                                                                     other.db_scale)

    def definition(self) -> str:
        return (f"unit {self.unit or 'none'!r}, {'higher' if self.higher_is_better else 'lower'} is better"
                + (", dB scale" if self.db_scale else ""))

    def shown_unit(self, db: bool = True) -> str:
        """The unit of the values as shown and BD-rated (``dB`` for a ``db_scale`` metric)."""
        return "dB" if self.db_scale and db else self.unit

    def name(self, db: bool = True) -> str:
        """The metric's name in a table: its label, how its values are taken, its direction."""
        out = self.label
        if self.db_scale:
            out += " (dB)" if db else " (linear)"
        if not self.higher_is_better:
            out += " (lower is better)"
        return out

    def axis_label(self, db: bool = True) -> str:
        """The label of a plot axis of this metric."""
        if self.db_scale and db:
            out = f"{self.label} [dB]  (-10 log10(1 - {self.label}))"
        else:
            out = self.label + (f" [{self.unit}]" if self.unit else "")
        return out + ("  (lower is better)" if not self.higher_is_better else "")

    def fmt(self, v: float, db: bool = True) -> str:
        """A difference of this metric (BD-quality): 2 decimals in dB, 4 otherwise."""
        if not math.isfinite(v):
            return "n/a"
        unit = self.shown_unit(db)
        return f"{v:+.2f} dB" if unit == "dB" else f"{v:+.4f}" + (f" {unit}" if unit else "")


@dataclass
class Axes:
    medium: str | None
    rate: Rate
    metrics: dict[str, Metric]
    inferred: bool = False  # from a file without an axes block
    #: metric key -> (key of its values in results, conversion) where it is not the key itself
    sources: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def primary(self) -> Metric:
        return next(iter(self.metrics.values()))


# --------------------------------------------------------------------------- reading
def _str(d: dict, k: str, where: str, required: bool = True) -> str:
    v = d.get(k)
    if v is None and not required:
        return ""
    if not isinstance(v, str) or (required and not v and k != "unit"):
        raise CodecError(f"{where}: {k!r} must be a{' non-empty' if k != 'unit' else ''} string, not {v!r}")
    return v


def parse(block: Any, where: str = "axes") -> Axes:
    """Check an ``axes`` block (see the module docstring) and return it as :class:`Axes`."""
    if not isinstance(block, dict):
        raise CodecError(f"{where}: 'axes' must be an object, not {type(block).__name__}")
    medium = block.get("medium")
    if medium is not None and not isinstance(medium, str):
        raise CodecError(f"{where}: axes 'medium' must be a string, not {medium!r}")
    r = block.get("rate")
    if not isinstance(r, dict):
        raise CodecError(f"{where}: axes need a 'rate' object with key, unit and label")
    pm = r.get("plot_max")
    if pm is not None and (isinstance(pm, bool) or not isinstance(pm, (int, float)) or not pm > 0):
        raise CodecError(f"{where}: axes rate 'plot_max' must be a positive number, not {pm!r}")
    rate = Rate(_str(r, "key", f"{where}: axes rate"), _str(r, "unit", f"{where}: axes rate"),
                _str(r, "label", f"{where}: axes rate"), None if pm is None else float(pm))
    ms = block.get("metrics")
    if not isinstance(ms, dict) or not ms:
        raise CodecError(f"{where}: axes need a 'metrics' object naming at least one metric")
    metrics = {}
    for k, m in ms.items():
        w = f"{where}: axes metric {k!r}"
        if not isinstance(m, dict):
            raise CodecError(f"{w} must be an object with label, unit and higher_is_better")
        hib, db = m.get("higher_is_better"), m.get("db_scale", False)
        if not isinstance(hib, bool):
            raise CodecError(f"{w}: 'higher_is_better' must be true or false, not {hib!r}")
        if not isinstance(db, bool):
            raise CodecError(f"{w}: 'db_scale' must be true or false, not {db!r}")
        if db and not hib:
            raise CodecError(f"{w}: 'db_scale' is for similarities in [0, 1] where higher is better")
        if k == rate.key:
            raise CodecError(f"{w}: a metric cannot be the rate")
        metrics[k] = Metric(k, _str(m, "label", w), _str(m, "unit", w), hib, db,
                            _str(m, "description", w, required=False))
    return Axes(medium, rate, metrics)


def _inferred(obj: dict, where: str) -> Axes:
    from codec.tools.registry import get_media

    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    medium = meta.get("media") if isinstance(meta.get("media"), str) else LEGACY_MEDIUM
    try:
        ax = parse(get_media(medium).axes(), f"the {medium} medium")
    except CodecError:
        raise CodecError(f"{where}: no 'axes' block, and its medium {medium!r} is not known here: "
                         "cannot tell what it measures") from None
    res = obj["results"]
    if ax.rate.key not in res:
        raise CodecError(f"{where}: no 'axes' block and no {ax.rate.key!r} list in its results "
                         f"(a file without axes is read as {medium} results)")
    metrics, sources = {}, {}
    for k, m in ax.metrics.items():
        if k in res:
            metrics[k] = m
            continue
        for old, conv in _LEGACY_NAMES.get(k, ()):
            if old in res:
                metrics[k] = m
                sources[k] = (old, conv)
                break
    if not metrics:
        raise CodecError(f"{where}: no 'axes' block and none of the {medium} metrics "
                         f"({', '.join(ax.metrics)}) in its results")
    return Axes(ax.medium, ax.rate, metrics, inferred=True, sources=sources)


def axes_of(obj: dict, where: str = "") -> Axes:
    """The axes of a results dict: its ``axes`` block, or inferred (module docstring).
    :class:`CodecError` when the block is malformed or names lists the results lack."""
    where = where or str(obj.get("name") or "results")
    if "axes" not in obj:
        return _inferred(obj, where)
    ax = parse(obj["axes"], where)
    res = obj["results"]
    missing = [k for k in (ax.rate.key, *ax.metrics) if k not in res]
    if missing:
        raise CodecError(f"{where}: the axes name {', '.join(map(repr, missing))}, which its results lack")
    return ax


# --------------------------------------------------------------------------- comparing
def common_rate(named: Iterable[tuple[str, Axes]]) -> Rate:
    """The rate axis all of ``(name, axes)`` share; :class:`CodecError` when they differ."""
    named = list(named)
    first_name, first = named[0]
    for name, ax in named[1:]:
        if not ax.rate.same_as(first.rate):
            raise CodecError(f"{name} measures rate as {ax.rate.describe()}, {first_name} as "
                             f"{first.rate.describe()}: curves on different rate axes cannot be compared")
    return first.rate


def _check_same(name_a: str, a: Metric, name_b: str, b: Metric) -> None:
    if not a.same_as(b):
        raise CodecError(f"metric {a.key!r} is defined differently in {name_a} ({a.definition()}) and "
                         f"{name_b} ({b.definition()}): refusing to compare it")


def merge_metrics(named: Iterable[tuple[str, Axes]]) -> list[Metric]:
    """Every metric of ``(name, axes)`` in order of first appearance; :class:`CodecError`
    when one key is defined two ways.  Labels and descriptions come from the first
    file that is not inferred, if any."""
    named = sorted(named, key=lambda t: t[1].inferred)  # stable: measured (declared) axes first
    out: dict[str, tuple[str, Metric]] = {}
    for name, ax in named:
        for k, m in ax.metrics.items():
            if k in out:
                _check_same(out[k][0], out[k][1], name, m)
            else:
                out[k] = (name, m)
    return [m for _, m in out.values()]


def shared_metrics(ref_name: str, ref: Axes, test_name: str, test: Axes) -> tuple[list[Metric], list[str]]:
    """The metrics two files share (in the reference's order) and notes on the others."""
    common_rate([(ref_name, ref), (test_name, test)])
    out, notes = [], []
    for k, m in ref.metrics.items():
        if k in test.metrics:
            _check_same(ref_name, m, test_name, test.metrics[k])
            out.append(test.metrics[k] if ref.inferred and not test.inferred else m)
        else:
            notes.append(f"{test_name} has no {m.label} values: {m.label} skipped")
    for k, m in test.metrics.items():
        if k not in ref.metrics:
            notes.append(f"{ref_name} has no {m.label} values: {m.label} skipped")
    return out, notes
