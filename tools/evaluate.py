"""``codec eval``: rate-distortion evaluation of codecs over a data set.

Each (codec, quality, item) is one *point*: the worker loads the item, encodes it,
decodes the bytes, and scores the result.  The rate comes from ``len()`` of the encoded
bytes.  Points run in a process pool (one process per core by default); the main process
appends every finished point as one JSON line to ``OUT/.journal/<codec>.jsonl`` and,
once all points of a codec are in, writes ``OUT/<codec>.json`` (atomically, with
:func:`codec.fileio.atomic_write`) in the format of CompressAI's result files::

    {"name": ..., "description": ...,
     "axes": {"medium": "image",
              "rate": {"key": "bpp", "unit": "bpp", "label": "bits per pixel", "plot_max": 2.0},
              "metrics": {"psnr-rgb": {"label": "PSNR-RGB", "unit": "dB", "higher_is_better": true, ...},
                          "ms-ssim-rgb": {"label": "MS-SSIM", "unit": "", "higher_is_better": true,
                                          "db_scale": true, ...}}},
     "results": {"quality": [...], "bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...],
                 "encoding_time": [...], "decoding_time": [...]},
     "per_image": {"kodim01.png": {"bytes": [...], "bpp": [...], ...}, ...},
     "meta": {...}}

``axes`` names what the file measures, as the medium (:class:`~codec.tools.registry.Media`)
declares it: ``rate.key`` is the key of the rate in ``results`` and ``per_image``
(``bpp`` for images, ``kbps`` for audio), with its unit and axis label (and optionally
``plot_max``, the upper end of a plot's rate axis); ``metrics`` maps the key of every
metric list, in order (the first is the primary one), to its ``label``, ``unit``
(``""`` for none), ``higher_is_better`` (false for distances), ``db_scale`` (true for
a similarity in [0, 1] that is shown and BD-rated on ``-10*log10(1 - value)`` dB) and a
``description``.  ``codec bdrate`` and ``codec report`` take everything they know of
the rate and the metrics from it; the full schema and the rules for files without the
block (CompressAI's, earlier versions') are in :mod:`codec.tools.axes`.

``results`` holds one value per quality, the mean over items of the per-item values
(PSNR averaged in dB, as CompressAI does), sorted by increasing rate.  ``per_image``
holds the per-item values in the same order.  Extra keys are ignored by readers of
CompressAI's files.

A medium may add per-point fields that are not metrics (``Media.extra_keys``, filled by
``Media.score`` and ``Media.extras``): video records ``psnr-y``/``-u``/``-v``, ``bpp``,
``frames`` and ``encoding_fps``/``decoding_fps`` in ``results`` and ``per_image`` after
its metrics.  ``--frames N`` (video) codes only the first N frames of every clip; it is
written to ``meta.frames`` and is part of the points' fingerprint.

Resuming: running the same command again skips every point already in the journal
whose codec settings (:meth:`Codec.fingerprint`) and item content (SHA-1) match, so an
interrupted or crashed run continues where it stopped, and changing a codec's settings
recomputes its points.  A torn last journal line (a kill during a write) is dropped.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Sequence

from codec.errors import CodecError
from codec.fileio import atomic_write
from codec.tools.registry import Codec, CodecSpec, describe_codecs, get_media, make_codec, parse_codec_spec

__all__ = ["evaluate", "register", "write_json_atomic", "load_results", "JOURNAL_DIR"]

JOURNAL_DIR = ".journal"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- helpers
def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON atomically over any earlier file (:func:`codec.fileio.atomic_write`):
    readers see the old file or the complete new one, never a partial file."""
    atomic_write(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode(), force=True)


def load_results(path: Path) -> dict:
    """Read a CompressAI-format results JSON, with a clear error when it is not one."""
    path = Path(path)
    try:
        with open(path) as f:
            obj = json.load(f)
    except json.JSONDecodeError as exc:
        raise CodecError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("results"), dict):
        raise CodecError(f"{path}: not a results file (expected {{name, results: {{bpp: [...], ...}}}})")
    return obj


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _qkey(q) -> str:
    """Quality as a journal/dict key (10 and 10.0 are the same setting)."""
    return repr(float(q))


# --------------------------------------------------------------------------- worker
def _init_worker() -> None:
    # one process per core: keep every library single-threaded inside a worker
    os.environ.setdefault("SVT_LOG", "1")
    # Ctrl-C is handled by the main process, which stops the pool; workers must not
    # print a traceback each
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:  # pragma: no cover
        pass


def _single_threaded_torch() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:  # pragma: no cover - torch is a dependency
        pass


def run_point(codec: Codec, quality, path: str, sha1: str, frames: int | None = None) -> dict:
    """Encode, decode and score one item at one quality (only its first ``frames`` frames
    when given: video).  Runs in a worker process."""
    media = get_media(codec.media)
    item = media.load(Path(path)) if frames is None else media.load(Path(path), frames=frames)
    t0 = time.perf_counter()
    data = codec.encode(item, quality)
    t1 = time.perf_counter()
    rec = codec.decode(data, item)
    t2 = time.perf_counter()
    if not isinstance(data, (bytes, bytearray)):
        raise CodecError(f"{codec.key}: encode returned {type(data).__name__}, not bytes")
    scores = media.score(item, rec)
    out = {
        "item": Path(path).name,
        "sha1": sha1,
        "quality": quality,
        "bytes": len(data),
        media.rate_key: media.rate(len(data), item),
        **scores,
        "encoding_time": t1 - t0,
        "decoding_time": t2 - t1,
    }
    extras = getattr(media, "extras", None)  # a medium's further per-point fields (video: bpp, frames/s)
    if extras is not None:
        out.update(extras(len(data), item, rec, t1 - t0, t2 - t1))
    return out


def point_fingerprint(codec: Codec, frames: int | None = None) -> str:
    """What a journal point was computed with: the codec's fingerprint, and the frame limit
    (``--frames``) when there is one."""
    fp = codec.fingerprint()
    return fp if frames is None else f"{fp}/frames={frames}"


# --------------------------------------------------------------------------- journal
class Journal:
    """Append-only JSON-lines record of finished points for one codec."""

    def __init__(self, path: Path, fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.records: dict[tuple[str, str, str], dict] = {}
        self.stale = 0
        self._read()

    def _read(self) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            # torn last line from a kill during a write: drop it before appending
            cut = raw.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(cut)
            raw = raw[:cut]
        for line in raw.decode("utf-8", "replace").splitlines():
            try:
                r = json.loads(line)
                key = (r["item"], r["sha1"], _qkey(r["quality"]))
            except (ValueError, KeyError, TypeError):
                continue
            if r.get("fingerprint") != self.fingerprint:
                self.stale += 1
                continue
            self.records[key] = r

    def has(self, item: str, sha1: str, quality) -> bool:
        return (item, sha1, _qkey(quality)) in self.records

    def add(self, rec: dict) -> None:
        rec = {"fingerprint": self.fingerprint, **rec}
        line = json.dumps(rec, allow_nan=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.records[(rec["item"], rec["sha1"], _qkey(rec["quality"]))] = rec


# --------------------------------------------------------------------------- aggregation
def _mean(values: list) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return float(sum(values) / len(values))


def aggregate(codec: Codec, qualities: list, items: list[tuple[str, str]], journal: Journal,
              dataset_name: str, frames: int | None = None) -> dict:
    media = get_media(codec.media)
    keys = [media.rate_key, *media.metric_keys, *getattr(media, "extra_keys", ()), "encoding_time",
            "decoding_time"]
    per_q = []
    for q in qualities:
        recs = [journal.records[(name, sha, _qkey(q))] for name, sha in items]
        per_q.append((q, recs))
    per_q.sort(key=lambda t: (_mean([r[media.rate_key] for r in t[1]]), float(t[0])))
    results: dict[str, list] = {"quality": [q for q, _ in per_q]}
    partial = {}
    for k in keys:
        results[k] = [_mean([r.get(k) for r in recs]) for _, recs in per_q]
        # a metric some items never have (ViSQOL under ~1 s): the mean of the others, said in meta
        none = [all(recs[i].get(k) is None for _, recs in per_q) for i in range(len(items))]
        if (k in media.metric_keys and any(none) and not all(none)
                and all(recs[i].get(k) is not None for _, recs in per_q for i in range(len(items)) if not none[i])):
            kept = [i for i in range(len(items)) if not none[i]]
            results[k] = [_mean([recs[i].get(k) for i in kept]) for _, recs in per_q]
            partial[k] = {"items": len(kept), "left_out": sorted(items[i][0] for i in range(len(items)) if none[i])}
    per_image = {}
    for i, (name, _) in enumerate(items):
        per_image[name] = {k: [recs[i].get(k) for _, recs in per_q] for k in ["bytes", *keys]}
    info = codec.info()
    workers = sorted({str(r.get("workers", "?")) for _, recs in per_q for r in recs})
    import numpy
    import torch

    axes = media.axes()
    return {
        "name": codec.display_name,
        "description": codec.description(),
        "axes": axes,
        "results": results,
        "per_image": per_image,
        "meta": {
            "format": f"codec-eval/{FORMAT_VERSION} (CompressAI results format plus per_image and meta)",
            "codec": codec.key,
            "media": codec.media,
            "dataset": dataset_name,
            "num_items": len(items),
            **({"partial_metrics": partial} if partial else {}),
            "items": [{"name": n, "sha1": s} for n, s in items],
            "rate": f"{media.rate_key} from the length of the encoded bytes",
            "bits_counted": info.get("bits_counted"),
            "chroma": info.get("chroma"),
            "settings": info,
            "metrics": "; ".join(f"{m['label']}: {m['description']}" if m.get("description") else m["label"]
                                 for m in axes["metrics"].values()),
            "timing": f"wall-clock seconds per item inside one worker process (in-memory encode incl. "
            f"{getattr(media, 'timing_note', 'colour conversion / decode to 8-bit RGB')}), "
            f"{'/'.join(workers)} worker process(es) in parallel, "
            f"{_cpu_name()}, {os.cpu_count()} logical CPUs",
            "fingerprint": journal.fingerprint,
            **({"frames": f"the first {frames} frames of every clip (codec eval --frames {frames})"}
               if frames is not None else {}),
            "versions": {"python": platform.python_version(), "numpy": numpy.__version__,
                         "torch": torch.__version__},
        },
    }


# --------------------------------------------------------------------------- runner
def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="pt", dynamic_ncols=True,
                file=sys.stderr, smoothing=0.05)


def evaluate(dataset, codecs: Sequence[str | CodecSpec | tuple[Codec, list]], out_dir, *,
             jobs: int | None = None, limit: int | None = None, progress: bool = True,
             log=print, frames: int | None = None, gop: int | None = None, effort=None) -> dict[str, Path]:
    """Run the evaluation; returns ``{codec key: results JSON path}`` for complete codecs.

    ``frames`` (video): code only the first N frames of every clip (part of the points'
    fingerprint and written to ``meta.frames``); ``gop`` (video): the key-frame interval of
    every codec (each must have a ``gop`` setting); ``effort``: the fitting effort of codecs that
    fit themselves to each item (``ours:inr-image``; each must have an ``effort`` setting).

    ``codecs`` are ``--codec`` strings, parsed specs or ``(Codec instance, qualities)``
    pairs (for plug-ins and tests).  Raises :class:`CodecError` on user mistakes and
    after the run if some points failed (their errors are logged; finished points are
    kept, so a second run redoes only the failed ones).
    """
    if not codecs:
        raise CodecError("no codec given (use --codec NAME, e.g. --codec jpeg)")
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    if frames is not None and frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")
    if gop is not None and gop < 1:
        raise ValueError(f"--gop must be >= 1, got {gop}")

    pairs: list[tuple[Codec, list]] = []
    for c in codecs:
        pairs.append(c if isinstance(c, tuple) else make_codec(c))
    keys = [c.key for c, _ in pairs]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise CodecError(f"codec given twice: {', '.join(sorted(dup))} (merge the quality lists)")
    media_names = {c.media for c, _ in pairs}
    if len(media_names) > 1:
        raise CodecError(f"codecs for different media in one run: {', '.join(sorted(media_names))}")
    media = get_media(media_names.pop())
    if frames is not None and not getattr(media, "supports_frames", False):
        raise CodecError(f"--frames applies to video; these codecs code {media.name}")
    if gop is not None:
        for codec, _ in pairs:
            if not hasattr(codec, "gop"):
                raise CodecError(f"--gop: {codec.key} has no GOP setting (--gop applies to video codecs)")
            codec.gop = gop
    if effort is not None:
        for codec, _ in pairs:
            if not hasattr(codec, "effort"):
                raise CodecError(f"--effort: {codec.key} has no effort setting (--effort applies to our models "
                                 "whose encoder optimises: the image models and the INR models)")
            codec.effort = effort

    paths = media.list_items(Path(dataset))
    if limit:
        paths = paths[:limit]
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise CodecError(f"{dataset}: item file names are not unique")
    items = [(p.name, _sha1(p)) for p in paths]
    dataset_name = Path(dataset).resolve().name

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CodecError(f"output {out} exists and is not a folder")
    (out / JOURNAL_DIR).mkdir(parents=True, exist_ok=True)

    journals = {}
    tasks = []
    if jobs > 1:  # the workers are forked: a fork of a process whose torch (OpenMP) thread pool
        # has run, as it has after a model's probe in prepare(), deadlocks in the child; one
        # thread here starts no pool
        _single_threaded_torch()
    for codec, quals in pairs:
        codec.prepare(quals)
        j = Journal(out / JOURNAL_DIR / f"{codec.key}.jsonl", point_fingerprint(codec, frames))
        if j.stale:
            log(f"{codec.key}: {j.stale} journal point(s) computed with other settings are ignored")
        journals[codec.key] = j
        for q in quals:
            for p, (name, sha) in zip(paths, items):
                if not j.has(name, sha, q):
                    tasks.append((codec, q, str(p), sha, frames))
    total = sum(len(q) for _, q in pairs) * len(items)
    log(f"{len(items)} item(s), {len(pairs)} codec(s), {total} point(s): "
        f"{total - len(tasks)} already done, {len(tasks)} to run on {min(jobs, max(len(tasks), 1))} process(es)")

    workers = 1 if jobs == 1 or len(tasks) <= 1 else min(jobs, len(tasks))
    remaining = {c.key: sum(1 for t in tasks if t[0].key == c.key) for c, _ in pairs}
    written: dict[str, Path] = {}
    errors: list[str] = []

    def finish(codec: Codec, quals: list) -> None:
        res = aggregate(codec, quals, items, journals[codec.key], dataset_name, frames)
        path = out / f"{codec.key}.json"
        write_json_atomic(path, res)
        written[codec.key] = path

    def done(task, rec=None, exc=None) -> None:
        codec, q, p = task[:3]
        if exc is not None:
            errors.append(f"{codec.key} quality {q} {Path(p).name}: {exc.__class__.__name__}: {exc}")
            return
        journals[codec.key].add({**rec, "workers": workers})
        remaining[codec.key] -= 1
        if remaining[codec.key] == 0:
            finish(codec, quals_by_key[codec.key])

    quals_by_key = {c.key: q for c, q in pairs}
    # codecs already complete: (re)write their JSON (cheap; keeps it in sync with the journal)
    for codec, quals in pairs:
        if remaining[codec.key] == 0:
            finish(codec, quals)

    bar = _progress(len(tasks), progress and bool(tasks), "eval")
    try:
        if jobs == 1 or len(tasks) <= 1:
            for t in tasks:
                bar.set_postfix_str(f"{t[0].key} q={t[1]}", refresh=False)
                try:
                    rec = run_point(*t)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - reported per point
                    done(t, exc=exc)
                else:
                    done(t, rec)
                bar.update(1)
        else:
            # workers are spawned, not forked: a forked child inherits objects whose library
            # threads it lacks (PyAV's filter graphs: freeing one in the child waits forever on
            # the parent's slice threads, a deadlock seen in the test suite)
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, mp_context=ctx) as pool:
                futures = {}
                it = iter(tasks)
                try:
                    # keep a bounded number in flight so an interrupt leaves little queued work
                    for t in it:
                        futures[pool.submit(run_point, *t)] = t
                        if len(futures) >= 4 * jobs:
                            break
                    while futures:
                        fin, _ = wait(futures, return_when=FIRST_COMPLETED)
                        for f in fin:
                            t = futures.pop(f)
                            exc = f.exception()
                            done(t, f.result() if exc is None else None, exc)
                            bar.set_postfix_str(f"{t[0].key} q={t[1]}", refresh=False)
                            bar.update(1)
                            nxt = next(it, None)
                            if nxt is not None:
                                futures[pool.submit(run_point, *nxt)] = nxt
                except BaseException:
                    for f in futures:
                        f.cancel()
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        bar.close()

    if errors:
        for e in errors[:10]:
            log(f"failed: {e}")
        if len(errors) > 10:
            log(f"... and {len(errors) - 10} more")
        raise CodecError(f"{len(errors)} point(s) failed; finished points are saved, run the same "
                         f"command again to retry the failed ones")
    return written


# --------------------------------------------------------------------------- CLI
def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="rate-distortion evaluation of codecs over a data set (writes CompressAI-format JSONs)",
        description="Encode every item of DATASET with every codec at every quality, decode it, and "
        "measure the rate from the bytes of the encoded data (bpp = 8 * bytes / pixels), PSNR-RGB on 8-bit "
        "output, MS-SSIM, and encode/decode times.  Writes one JSON per codec into OUT (CompressAI's result "
        "format, plus per-image values and metadata).  Runs the points in a process pool and journals every "
        "finished point, so running the same command again resumes an interrupted run.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="codecs (--codec NAME[:QUALITIES], QUALITIES comma-separated):\n"
        + _indent(describe_codecs())
        + "\n\nexample:\n  codec eval data/kodak --codec jpeg --codec webp:10,50,90 --codec avif -o results/",
    )
    p.add_argument("dataset", nargs="?", metavar="DATASET",
                   help="folder of images (png, jpg, ppm, bmp, tif, webp; sorted by name), of audio or of video "
                   "files (the codecs' medium), or one such file")
    p.add_argument("--codec", action="append", default=[], metavar="SPEC", dest="codecs",
                   help="codec to evaluate, repeatable: NAME[:QUALITIES] (e.g. jpeg, webp:10,50,90) or "
                   "ours:MODEL[:QUALITIES]; without QUALITIES the codec's default grid (about 0.05-2 bpp on "
                   "Kodak) is used; see the list below")
    p.add_argument("-o", "--output", metavar="OUT", default=None,
                   help="results folder (created; an existing one is resumed, finished points are skipped)")
    p.add_argument("-j", "--jobs", type=int, default=None,
                   help=f"worker processes (default: number of CPUs, here {os.cpu_count()}); 1 runs in-process")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="use only the first N items of DATASET (quick checks)")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="video: code only the first N frames of every clip (recorded in the results)")
    p.add_argument("--gop", type=int, default=None, metavar="N",
                   help="video: key-frame interval of the codecs (default: theirs, 32 for the baselines)")
    p.add_argument("--effort", default=None, metavar="E",
                   help="our models whose encoder optimises (image models: latent refinement; INR models: the "
                        "fit): fast, medium, slow, placebo or a number of iterations (recorded in the results; "
                        "default: the model's)")
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    p.add_argument("--list-codecs", action="store_true", help="list the codecs, their quality meaning and "
                   "default grids, and exit")
    p.set_defaults(func=_cmd_eval)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _cmd_eval(args) -> int:
    if args.list_codecs:
        print(describe_codecs())
        return 0
    if not args.dataset:
        raise CodecError("missing DATASET (a folder of images); see codec eval --help")
    if not args.codecs:
        raise CodecError("no codec given (use --codec NAME, e.g. --codec jpeg); see codec eval --list-codecs")
    if not args.output:
        raise CodecError("missing -o/--output folder for the results")
    specs = [parse_codec_spec(s) for s in args.codecs]
    written = evaluate(args.dataset, specs, args.output, jobs=args.jobs, limit=args.limit,
                       progress=not args.no_progress, frames=args.frames, gop=args.gop, effort=args.effort,
                       log=lambda m: print(m, file=sys.stderr))
    for key, path in written.items():
        obj = load_results(path)
        res, axes = obj["results"], obj["axes"]
        rate = [v for v in res.get(axes["rate"]["key"]) or [] if v is not None]
        (mkey, metric), = list(axes["metrics"].items())[:1]
        qual = [v for v in res.get(mkey) or [] if v is not None]
        if rate:
            qtxt = f"{min(qual):.2f}-{max(qual):.2f} {metric['unit']}".rstrip() if qual else f"no {metric['label']}"
            print(f"{key:14s} {len(res[axes['rate']['key']]):2d} points  {min(rate):.3f}-{max(rate):.3f} "
                  f"{axes['rate']['unit']}  {qtxt}  -> {path}")
    return 0
