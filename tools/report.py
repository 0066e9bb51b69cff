"""``codec report``: rate-distortion plots, BD-rate tables and timings from result files.

Reads CompressAI-format results JSONs (from ``codec eval``) and, optionally, published
anchor curves (same format, drawn dashed), and writes into OUT:

- ``rd-<metric>.png`` for every metric (``rd-psnr-rgb.png`` and ``rd-ms-ssim-rgb.png``
  for images): the metric against the rate for every curve that has it;
- ``report.md``: the plots, one BD-rate table per reference (cubic and PCHIP, every
  metric), with ``--rate-range LO:HI`` a second one per reference over those rates only
  (PCHIP BD-rate and BD-quality of every metric), mean encode/decode times, each codec's
  chroma format and settings;
- ``report.html``: the same, self-contained (plots embedded).

The rate axis and the metrics (keys, units, labels, directions, dB scales) come from
the files' ``axes`` blocks (:mod:`codec.tools.axes`; inferred for files without one);
all curves of a report must share the rate axis, and a metric a curve lacks is left
out of its rows and plots.  Existing report files in OUT are not overwritten without
``--force``.
"""
from __future__ import annotations

import argparse
import base64
import datetime as _dt
import html
import io
import math
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.errors import CodecError
from codec.fileio import atomic_write
from codec.tools.axes import Metric, Rate, common_rate, merge_metrics
from codec.tools.bdrate import METHODS, Curve, compare, curve_from_results, fmt_pct, parse_rate_range
from codec.tools.evaluate import JOURNAL_DIR, load_results

__all__ = ["Entry", "collect", "make_report", "register", "OUTPUT_FILES", "plot_file"]

#: the report files besides the plots (``plot_file`` of each metric)
OUTPUT_FILES = ("report.md", "report.html")


def plot_file(metric: Metric) -> str:
    """The file name of a metric's RD plot: ``rd-<key>.png``."""
    return "rd-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", metric.key).strip("._") or "metric") + ".png"


@dataclass
class Entry:
    curve: Curve
    label: str
    key: str  # codec key / file stem, for --reference
    published: bool


def _json_files(path: Path) -> list[Path]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"not found: {path}")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
    if not files:
        raise CodecError(f"no results JSON files in {path}")
    return files


def collect(results: list, anchors: list) -> list[Entry]:
    entries: list[Entry] = []
    for group, published in ((results, False), (anchors, True)):
        for src in group:
            for f in _json_files(Path(src)):
                obj = load_results(f)
                c = curve_from_results(obj, str(f))
                key = str((obj.get("meta") or {}).get("codec") or f.stem)
                label = c.name + (" (published)" if published else "")
                entries.append(Entry(c, label, key, published))
    # disambiguate equal labels with the file stem
    labels = [e.label for e in entries]
    for e in entries:
        if labels.count(e.label) > 1:
            e.label = f"{e.label} [{Path(e.curve.path).stem}]"
    return entries


def find_reference(entries: list[Entry], name: str) -> Entry:
    n = name.lower()
    for test in (lambda e: e.key.lower() == n, lambda e: Path(e.curve.path).stem.lower() == n,
                 lambda e: e.curve.name.lower() == n, lambda e: e.label.lower() == n):
        hits = [e for e in entries if test(e)]
        if hits:
            return hits[0]
    raise CodecError(f"reference {name!r} not among the curves: "
                     + ", ".join(sorted({e.key for e in entries})))


# --------------------------------------------------------------------------- plots
MEASURED_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf", "#bcbd22",
                    "#e7298a", "#1b9e77", "#666666", "#e6ab02"]  # (12: a report of 9 codecs wrapped onto WebP)
ANCHOR_COLOURS = ["#000000", "#7f7f7f", "#e377c2", "#393b79", "#8c6d31", "#637939", "#ad494a", "#7b4173",
                  "#3182bd", "#e6550d"]
ANCHOR_MARKERS = ["s", "^", "v", "D", "x", "+", "*", "P", "<", ">"]


def _plot(entries: list[Entry], metric: Metric, rate: Rate, title: str, xmax: float) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6.6), dpi=110)
    key = metric.key
    measured = [e for e in entries if not e.published and key in e.curve.metrics]
    published = [e for e in entries if e.published and key in e.curve.metrics]
    ymin, ymax = math.inf, -math.inf
    styles = [(e, MEASURED_COLOURS[i % len(MEASURED_COLOURS)], "o", "-", 1.9)
              for i, e in enumerate(measured)]
    styles += [(e, ANCHOR_COLOURS[i % len(ANCHOR_COLOURS)], ANCHOR_MARKERS[i % len(ANCHOR_MARKERS)], "--", 1.3)
               for i, e in enumerate(published)]
    for e, colour, marker, ls, lw in styles:
        r, q = e.curve.rate, e.curve.metrics[key]
        ok = np.isfinite(r) & np.isfinite(q)
        r, q = r[ok], q[ok]
        o = np.argsort(r)
        r, q = r[o], q[o]
        ax.plot(r, q, linestyle=ls, color=colour, lw=lw, marker=marker, ms=4 if ls == "-" else 5,
                mfc=colour if ls == "-" else "none", label=e.label)
        inside = q[r <= xmax]
        if r.size and r[0] < xmax < r[-1]:  # where the line leaves the plot
            inside = np.append(inside, np.interp(xmax, r, q))
        if inside.size:
            ymin, ymax = min(ymin, inside.min()), max(ymax, inside.max())
    ax.set_xlim(0, xmax)
    if math.isfinite(ymin):
        pad = 0.03 * (ymax - ymin)
        ax.set_ylim(ymin - pad, ymax + pad)
    ax.set_xlabel(f"{rate.label}" + (f" [{rate.unit}]" if rate.unit else "") + " (from the bytes of the encoded files)")
    ax.set_ylabel(metric.axis_label())
    ax.set_title(title)
    ax.grid(True, alpha=0.35)
    # curves rise to the right when higher is better, fall when lower is better
    ax.legend(fontsize=8, loc="lower right" if metric.higher_is_better else "upper right",
              ncol=1 if len(styles) <= 9 else 2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


# --------------------------------------------------------------------------- tables
def _mean_time(e: Entry, key: str) -> str:
    v = (e.curve.obj.get("results") or {}).get(key)
    if not v:
        return "-"
    vals = [x for x in v if x is not None]
    if not vals:
        return "-"
    m = float(np.mean(vals))
    return f"{m * 1000:.0f} ms" if m < 1 else f"{m:.2f} s"


def bd_rows(entries: list[Entry], ref: Entry, metrics: list[Metric], min_overlap: float,
            rate_range=None) -> tuple[list[list[str]], list[str]]:
    """One row per curve but ``ref``: BD-rate (cubic, pchip) on every metric, and the
    BD-quality of the first metric (pchip) in brackets; ``-`` where a curve lacks a metric.
    With ``rate_range=(lo, hi)``: over those rates, pchip BD-rate and BD-quality of every
    metric (inside a window the qualities often do not overlap: BD-quality still exists)."""
    rows, notes = [], []
    methods = METHODS if rate_range is None else ("pchip",)
    for e in entries:
        if e is ref:
            continue
        row = [e.label]
        for i, m in enumerate(metrics):
            for meth in methods:
                width = 1 if rate_range is None else 2
                if m.key not in e.curve.metrics or m.key not in ref.curve.metrics:
                    row += ["-"] * width
                    continue
                try:
                    r, q = compare(ref.curve, e.curve, m.key, meth, min_overlap, rate_range)
                except (ValueError, CodecError) as exc:
                    row += ["n/a"] * width
                    notes.append(f"{e.label}, {m.label}, {meth}: {exc}")
                    continue
                if rate_range is not None:
                    row += [fmt_pct(r.value), m.fmt(q.value)]
                    warns = r.warnings + q.warnings
                else:
                    row.append(fmt_pct(r.value) + (f" ({m.fmt(q.value)})" if i == 0 and meth == "pchip" else ""))
                    warns = r.warnings
                for w in dict.fromkeys(warns):
                    notes.append(f"{e.label}, {m.label}, {meth}: {w}")
        rows.append(row)
    return rows, list(dict.fromkeys(notes))


def bd_head(metrics: list[Metric], windowed: bool = False) -> list[str]:
    head = ["codec"]
    for i, m in enumerate(metrics):
        if windowed:
            head += [f"BD-rate {m.label} pchip", f"BD-{m.label} pchip"]
        else:
            head += [f"BD-rate {m.label} cubic", f"BD-rate {m.label} pchip" + (f" (BD-{m.label})" if i == 0 else "")]
    return head


def _range(v, fmt: str) -> str:
    if v is None or not np.isfinite(v).any():
        return "-"
    return f"{np.nanmin(v):{fmt}}-{np.nanmax(v):{fmt}}"


def info_rows(entries: list[Entry], primary: Metric) -> list[list[str]]:
    rows = []
    qfmt = ".2f" if primary.shown_unit() == "dB" else ".4g"
    for e in entries:
        r = e.curve.rate
        meta = e.curve.obj.get("meta") or {}
        settings = meta.get("settings") or {}
        if e.published:
            chroma = "-"
            desc = f"published: {e.curve.obj.get('description', '')}; timings from the publishers' hardware"
        else:
            chroma = str(meta.get("chroma") or settings.get("chroma") or "-")
            desc = "; ".join(str(settings[k]) for k in ("library", "settings") if settings.get(k))
        rows.append([e.label, str(len(r)), _range(r, ".3f"), _range(e.curve.metrics.get(primary.key), qfmt),
                     _mean_time(e, "encoding_time"), _mean_time(e, "decoding_time"), chroma, desc])
    return rows


def info_head(rate: Rate, primary: Metric) -> list[str]:
    unit = primary.shown_unit()
    return ["codec", "points", f"{rate.unit or rate.key} range", f"{primary.label} range" + (f" [{unit}]" if unit else ""),
            "encode (mean)", "decode (mean)", "chroma", "library / settings"]


def explanation(rate: Rate, metrics: list[Metric]) -> str:
    """The paragraph that says what the report's numbers are, from the axes."""
    parts = []
    for m in metrics:
        extra = [m.description] if m.description else []
        if m.db_scale:
            extra.append(f"shown and BD-rated on -10 log10(1 - {m.label})")
        if not m.higher_is_better:
            extra.append("lower is better")
        parts.append(m.label + (f" ({'; '.join(extra)})" if extra else ""))
    p = metrics[0]
    unit = p.shown_unit()
    sign = "positive" if p.higher_is_better else "negative"
    return (
        f"Rates are {rate.label} ({rate.unit or rate.key}) computed from the length of the encoded data of each "
        "item (what each codec's *bits counted* says). Metrics: " + "; ".join(parts) + ". BD-rates are percent "
        "bits saved at equal quality over the range where both curves overlap (negative: fewer bits than the "
        "reference): Bjontegaard's cubic fit and the piecewise-cubic (PCHIP) interpolation of the JVET common "
        f"test conditions; BD-{p.label} (the mean difference{' in ' + unit if unit else ''} at equal rate, "
        f"pchip; {sign}: better than the reference) in brackets. Dashed lines are published curves (given "
        "with --anchor), not re-run here."
    )


def _md_table(head, rows) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(map(esc, head)) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(out)


def _html_table(head, rows) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


# --------------------------------------------------------------------------- report
def _dataset_summary(entries: list[Entry]) -> str:
    ds = {(m.get("dataset"), m.get("num_items")) for e in entries if not e.published
          for m in [e.curve.obj.get("meta") or {}] if m.get("dataset")}
    return ", ".join(f"{d} ({n} items)" for d, n in sorted(ds, key=str)) or "unknown"


def make_report(results: list, out_dir, *, anchors: list = (), references: list = (), title: str | None = None,
                force: bool = False, min_overlap: float = 0.5, xmax: float | None = None,
                command: str | None = None, rate_range=None) -> list[Path]:
    """Write the report; ``xmax``: the upper end of the plots' rate axis (default: the
    axes' ``plot_max``, else the largest measured rate); ``rate_range=(lo, hi)``: a second
    BD table per reference over those rates only."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CodecError(f"output {out} exists and is not a folder")
    if not 0 <= min_overlap <= 1:
        raise ValueError("--min-overlap must be between 0 and 1")
    if xmax is not None and not xmax > 0:
        raise ValueError("--xmax must be positive")
    entries = collect(list(results), list(anchors))
    if not any(not e.published for e in entries):
        raise CodecError("no measured results given (only anchors)")
    named = [(e.curve.path, e.curve.axes) for e in sorted(entries, key=lambda e: e.published)]
    rate = common_rate(named)
    metrics = merge_metrics(named)
    files = {m.key: plot_file(m) for m in metrics if any(m.key in e.curve.metrics for e in entries)}
    if len(set(files.values())) != len(files):  # keys that differ only in odd characters
        files = {k: f"{f[:-4]}-{i}.png" for i, (k, f) in enumerate(files.items())}
    existing = [out / f for f in (*OUTPUT_FILES, *files.values()) if (out / f).exists()]
    if existing and not force:
        raise CodecError(f"{existing[0]} exists; use --force to overwrite the report in {out}")
    if xmax is None:
        measured_max = max((float(np.nanmax(e.curve.rate)) for e in entries
                            if not e.published and np.isfinite(e.curve.rate).any()), default=1.0)
        xmax = rate.plot_max or measured_max
    if not references:
        keys = [e.key.lower() for e in entries]
        references = ["jpeg"] if "jpeg" in keys else [entries[0].key]
    refs = [find_reference(entries, r) for r in references]
    dataset = _dataset_summary(entries)
    title = title or f"Rate-distortion report: {dataset}"
    out.mkdir(parents=True, exist_ok=True)

    plots = {}
    for m in metrics:
        if m.key in files:
            plots[files[m.key]] = _plot(entries, m, rate, f"{title} - {m.label}", xmax)

    unit = rate.unit or rate.key
    bd = []
    for ref in refs:
        rows, notes = bd_rows(entries, ref, metrics, min_overlap)
        bd.append((f"BD-rate against {ref.label}", bd_head(metrics), rows, notes))
        if rate_range is not None:
            rows, notes = bd_rows(entries, ref, metrics, min_overlap, rate_range)
            bd.append((f"BD-rate against {ref.label}, {rate_range[0]:g}-{rate_range[1]:g} {unit} only",
                       bd_head(metrics, windowed=True), rows, notes))
    info_header = info_head(rate, metrics[0])
    info = info_rows(entries, metrics[0])
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    measured_meta = next((e.curve.obj.get("meta") for e in entries if not e.published and e.curve.obj.get("meta")), {})
    timing_note = measured_meta.get("timing", "")

    explain = explanation(rate, metrics)
    for m in metrics:
        part = {(p["items"], tuple(p["left_out"])) for e in entries if not e.published
                for p in [((e.curve.obj.get("meta") or {}).get("partial_metrics") or {}).get(m.key)] if p}
        for n, left in sorted(part):
            explain += (f" {m.label} is the mean over {n} of {n + len(left)} items: {', '.join(left)} "
                        f"{'has' if len(left) == 1 else 'have'} no {m.label} value.")
    if rate_range is not None:
        explain += (f" The tables marked \"{rate_range[0]:g}-{rate_range[1]:g} {unit} only\" (--rate-range) take "
                    f"the part of each curve with rates from {rate_range[0]:g} to {rate_range[1]:g} {unit}: "
                    "BD-quality over those rates, BD-rate over the qualities both curves reach there (n/a where "
                    "they reach none in common).")

    md = [f"# {title}", "", f"Generated {stamp} by `codec report`" + (f": `{command}`" if command else "") + ".", "",
          explain, ""]
    for fname in plots:
        md += [f"![{fname}]({fname})", ""]
    for heading, head, rows, notes in bd:
        md += [f"## {heading}", "", _md_table(head, rows), ""]
        if notes:
            md += ["Warnings:", ""] + [f"- {n}" for n in notes] + [""]
    md += ["## Codecs, timings and settings", "", _md_table(info_header, info), ""]
    if timing_note:
        md += [f"Timings of measured codecs: {timing_note}. Published anchors' timings come from other "
               "hardware (and for learned codecs often a GPU): compare them with care.", ""]
    bits = sorted({(e.label, (e.curve.obj.get('meta') or {}).get('bits_counted') or '')
                   for e in entries if not e.published})
    md += ["Bits counted:", ""] + [f"- {lab}: {b}" for lab, b in bits] + [""]
    md_text = "\n".join(md)

    css = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
           "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;"
           "padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}img{max-width:100%}"
           "code{background:#f3f3f3;padding:1px 4px}")
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
         f"<style>{css}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
         f"<p>Generated {stamp} by <code>codec report</code>"
         + (f": <code>{html.escape(command)}</code>" if command else "") + ".</p>",
         f"<p>{html.escape(explain).replace('*bits counted*', '<em>bits counted</em>')}</p>"]
    for fname, png in plots.items():
        h.append(f"<p><img alt='{fname}' src='data:image/png;base64,{base64.b64encode(png).decode()}'></p>")
    for heading, head, rows, notes in bd:
        h += [f"<h2>{html.escape(heading)}</h2>", _html_table(head, rows)]
        if notes:
            h.append("<p>Warnings:</p><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    h += ["<h2>Codecs, timings and settings</h2>", _html_table(info_header, info)]
    if timing_note:
        h.append(f"<p>Timings of measured codecs: {html.escape(timing_note)}. Published anchors' timings come "
                 "from other hardware (and for learned codecs often a GPU): compare them with care.</p>")
    h.append("<p>Bits counted:</p><ul>" + "".join(f"<li>{html.escape(lab)}: {html.escape(b)}</li>"
                                                   for lab, b in bits) + "</ul>")
    h.append("</body></html>")

    written = []
    for fname, png in plots.items():
        atomic_write(out / fname, png, force=force)
        written.append(out / fname)
    atomic_write(out / "report.md", md_text.encode(), force=force)
    atomic_write(out / "report.html", "\n".join(h).encode(), force=force)
    written += [out / "report.md", out / "report.html"]
    return written


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write report.md / report.html with RD plots, BD-rate tables and timings",
        description="Make a rate-distortion report from codec eval results: every metric against the rate "
        "for all codecs (published anchors dashed), a BD-rate table against each reference (cubic and PCHIP), "
        "mean encode/decode times and each codec's chroma format and settings.  The rate and the metrics "
        "(units, labels, which way is better) come from the files' 'axes' blocks (files without one are "
        "image results: bpp, PSNR-RGB, MS-SSIM); all files must share the rate axis.  Writes report.md, a "
        "self-contained report.html and the PNG plots (rd-METRIC.png) into OUT.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  codec report results/ --anchor published/ --reference jpeg --reference VTM -o report/",
    )
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="results folder(s) written by codec eval, or single results JSON files")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="folder for the report (created)")
    p.add_argument("--anchor", action="append", default=[], metavar="PATH",
                   help="published curve (CompressAI-format JSON) or folder of them, drawn dashed and included "
                   "in the tables; repeatable")
    p.add_argument("--reference", action="append", default=[], metavar="NAME",
                   help="curve to compute BD-rates against: codec key, file stem or name (e.g. jpeg, vtm); "
                   "repeat for several tables (default: jpeg if present, else the first curve)")
    p.add_argument("--title", default=None, help="report title (default: from the data set name)")
    p.add_argument("--xmax", type=float, default=None,
                   help="upper end of the rate axis in the plots (default: the files' axes say, e.g. 2 for "
                   "bpp; else the largest measured rate)")
    p.add_argument("--min-overlap", type=float, default=0.5, metavar="F",
                   help="warn when two curves overlap on less than this fraction of either span (default 0.5)")
    p.add_argument("--rate-range", default=None, metavar="LO:HI",
                   help="also a BD table per reference over rates from LO to HI only, in the files' rate unit "
                   "(e.g. 12:32 for kbps): PCHIP BD-rate and BD-quality of every metric")
    p.add_argument("--force", action="store_true", help="overwrite report files that already exist in OUT")
    p.set_defaults(func=_cmd_report)


def _argv_after(word: str) -> list[str]:
    argv = sys.argv[1:]
    return argv[argv.index(word) + 1:] if word in argv else argv


def _cmd_report(args) -> int:
    for r in args.results:
        if Path(r).name == JOURNAL_DIR:
            raise CodecError(f"{r}: give the results folder, not its journal")
    window = None if args.rate_range is None else parse_rate_range(args.rate_range)
    written = make_report(args.results, args.output, anchors=args.anchor, references=args.reference,
                          title=args.title, force=args.force, min_overlap=args.min_overlap, xmax=args.xmax,
                          rate_range=window,
                          command=shlex.join(["codec", "report", *_argv_after("report")]))
    for w in written:
        print(w)
    return 0
