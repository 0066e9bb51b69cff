"""Perceptual audio quality for ``codec eval``: ViSQOL for every item, PESQ and STOI for speech.

Each metric takes ``(reference, estimate)``, two :class:`codec.media.audio.Audio` of the same
rate and shape (checked by :class:`codec.tools.audio_codecs.AudioMedia` before), at any sample
rate and channel count, and returns a float, or ``None`` where the metric is undefined.

- **ViSQOL** (``visqol``: MOS-LQO, 1..5, higher is better): Google's ViSQOL v3 in *audio mode*
  (the SVR quality model for music and general audio at 48 kHz, patches of 30 frames, 32
  gammatone bands from 50 Hz), through ``visqol-python`` (a pure-Python port that matches the
  C++ implementation's audio-mode scores; its SVR model ships inside the wheel, so nothing
  is downloaded at run time).  Audio mode is used for every item, speech included (speech
  mode needs a 16 kHz signal and a second, optional TFLite runtime), so that scores of
  speech and music files are on one scale.  Input: the mean of the channels (ViSQOL is
  mono), resampled to 48 kHz with :func:`codec.media.audio.resample`; an item at 16 kHz is
  band-limited to 8 kHz in both signals alike.  Identical signals give 4.73 (the SVR's
  top), not 5.  Undefined (``None``): an item shorter than about 1 s (ViSQOL needs a few
  patches: "spectrum size ... smaller than minimum patch size"), a silent reference, or a
  silent estimate (ViSQOL's level matching divides by its energy and gives NaN).
  ``numba`` (``visqol-python[accel]``) compiles its inner loops (same scores to 1e-14,
  about 7x faster), on one thread (``NUMBA_NUM_THREADS=1`` unless set before; with a pool
  of more, scores changed in their last digits within one process once torch had run).
- **PESQ** (``pesq-wb``: MOS-LQO, 1.04..4.64, higher is better): ITU-T P.862.2 wide-band,
  the ``pesq`` package (the ITU reference C code), mode ``"wb"`` at 16 kHz, on the mean of
  the channels resampled to 16 kHz with :func:`codec.media.audio.resample`.
- **STOI** (``stoi``: 0..1, higher is better): short-time objective intelligibility (Taal et
  al. 2011, the classic, not the extended, measure) by ``pystoi``, given the same 16 kHz
  mono signals (pystoi resamples them to its 10 kHz itself).

PESQ and STOI are speech measures: they are computed only for a speech item and are
``None`` for every other item.  An item is speech when its path has a folder named
``speech`` (any case), as given or after resolving links (:func:`is_speech_path`; the
layout of ``shared/data/audio``: ``speech/vctk/p225_003.wav``).  Both are also ``None`` for
an item shorter than 0.25 s (PESQ's minimum), in which PESQ finds no utterance, or whose
estimate is silent (PESQ's level alignment fails on it), and STOI for one with too few
non-silent 25.6 ms frames (pystoi warns and returns 1e-5 there).  Every metric is ``None``
for a silent reference.

A package that is not installed: the functions here raise :class:`MetricUnavailable` (a
one-line :class:`~codec.errors.CodecError` naming the pip package); ``codec eval`` gives the
metric ``None`` for every item instead, and its description in the results' ``axes`` (and
``meta.metrics``) says "not installed".  They are the ``eval`` extra of the project
(``pip install -e '.[eval]'``; the ``test`` extra includes them), not needed by the codec.

Results are deterministic: the same inputs give the same floats, run after run (ViSQOL's
to about 1e-14: its numba loops can change the last digits between calls in one process).

Cost (a 10 s, 16 kHz mono clip on a busy 2-core CPU): ViSQOL 1.65 s (about 13 s without
numba), PESQ 0.15 s, STOI 0.04 s, against 0.48 s for SI-SDR + SNR + mel distance and
0.14 s for an Opus encode and decode: ViSQOL is most of an audio point's time.  Its audio
mode is made for full-band audio: on 16 kHz speech it can rank a lower rate above a
higher one (vctk, Opus: 4.39 at 12 kbit/s, 4.30 at 24), where PESQ and STOI do not.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from codec.errors import CodecError

__all__ = ["VISQOL_RATE", "SPEECH_RATE", "SPEECH_FOLDER", "METRICS", "MetricUnavailable", "is_speech_path",
           "available", "visqol", "pesq_wb", "stoi", "score", "descriptions"]

VISQOL_RATE = 48_000
SPEECH_RATE = 16_000
SPEECH_FOLDER = "speech"
#: metric key -> (pip package, import name)
PACKAGES = {"visqol": ("visqol-python", "visqol"), "pesq-wb": ("pesq", "pesq"), "stoi": ("pystoi", "pystoi")}
METRICS = tuple(PACKAGES)
#: metrics computed only for speech items
SPEECH_ONLY = ("pesq-wb", "stoi")


class MetricUnavailable(CodecError):
    """The package a metric needs is not installed."""


# --------------------------------------------------------------------------- packages
def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def available(metric: str) -> bool:
    """Whether the package of ``metric`` (a key of :data:`METRICS`) can be imported."""
    module = PACKAGES[metric][1]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or sys.modules[module] set to None
        return False


def _require(metric: str):
    dist, module = PACKAGES[metric]
    if metric == "visqol" and "numba" not in sys.modules:
        # numba (which visqol imports) with one thread: with a pool of more, ViSQOL's scores change
        # in their last digits (~1e-14) once torch has run in the process (seen after an
        # ours:wavelet-audio point); the pool's size is fixed when numba is imported
        os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MetricUnavailable(f"the {metric} metric needs the {dist} package, which is not installed "
                                f"(pip install {dist})") from None


def descriptions() -> dict[str, str]:
    """What each metric is, with package versions (for the results' ``axes`` block)."""
    v = {m: version(PACKAGES[m][0]) for m in METRICS}
    missing = {m: f"; NOT INSTALLED here ({PACKAGES[m][0]}): None for every item" for m in METRICS
               if not available(m)}
    numba = version("numba")
    return {
        "visqol": f"ViSQOL v3 audio mode (MOS-LQO 1..5, 4.73 for identical signals) by visqol-python "
                  f"{v['visqol'] or '?'} (SVR model shipped in the wheel; numba "
                  f"{numba + ' JIT, 1 thread' if numba else 'not installed: pure Python'}), on the mean of the "
                  f"channels resampled to 48 kHz; every item; None under ~1 s or for a silent signal; per-item "
                  f"MOS averaged (codec.tools.audio_quality)" + missing.get("visqol", ""),
        "pesq-wb": f"PESQ wide-band (ITU-T P.862.2, MOS-LQO) by pesq {v['pesq-wb'] or '?'}, mode 'wb' at 16 kHz "
                   f"on the mean of the channels; speech items only (a folder named 'speech' in the path), "
                   f"None for others; per-item MOS averaged (codec.tools.audio_quality)" + missing.get("pesq-wb", ""),
        "stoi": f"STOI (classic, 0..1) by pystoi {v['stoi'] or '?'}, 16 kHz mono input (resampled to 10 kHz by "
                f"pystoi); speech items only (a folder named 'speech' in the path), None for others; per-item "
                f"values averaged (codec.tools.audio_quality)" + missing.get("stoi", ""),
    }


# --------------------------------------------------------------------------- speech
def is_speech_path(path) -> bool:
    """Whether an item is speech: a folder of its path (absolute, or with links resolved) is
    named ``speech`` (any case).  ``None`` (an item without a path) is not speech."""
    if path is None:
        return False
    p = Path(path)
    for q in (p.absolute(), p.resolve()):
        if any(part.lower() == SPEECH_FOLDER for part in q.parent.parts):
            return True
    return False


# --------------------------------------------------------------------------- signals
def _mono(a, rate: int) -> np.ndarray:
    """The mean of the channels of ``a`` at ``rate`` Hz, float64 ``[n]``."""
    from codec.media import audio

    mono = a.samples.mean(axis=0, dtype=np.float64).astype(np.float32)[None]
    m = audio.Audio(np.ascontiguousarray(mono), a.sample_rate, a.bit_depth)
    return audio.resample(m, rate).samples[0].astype(np.float64)


def _silent(x: np.ndarray) -> bool:
    return not np.any(x)


# --------------------------------------------------------------------------- ViSQOL
@functools.lru_cache(maxsize=1)
def _visqol_api():
    _require("visqol")
    from visqol import VisqolApi

    api = VisqolApi()
    api.create(mode="audio")
    return api


@contextlib.contextmanager
def _one_numba_thread():
    """numba's parallel loops on one thread while ViSQOL runs (where numba was imported before
    :func:`_require` could size its pool; codec eval runs a process per core anyway)."""
    try:
        import numba
    except ImportError:
        yield
        return
    n = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(n)


def _visqol_arrays(r: np.ndarray, e: np.ndarray) -> float | None:
    if _silent(r) or _silent(e):
        return None
    api = _visqol_api()
    try:
        with np.errstate(all="ignore"), _one_numba_thread():
            mos = float(api.measure_from_arrays(r, e, VISQOL_RATE).moslqo)
    except ValueError as exc:
        if "minimum patch size" in str(exc):  # too short for ViSQOL's patches
            return None
        raise
    return mos if math.isfinite(mos) else None


def visqol(ref, est) -> float | None:
    """ViSQOL audio-mode MOS-LQO of ``est`` against ``ref`` (module docstring)."""
    _require("visqol")
    return _visqol_arrays(_mono(ref, VISQOL_RATE), _mono(est, VISQOL_RATE))


# --------------------------------------------------------------------------- PESQ, STOI
def _pesq_arrays(r: np.ndarray, e: np.ndarray) -> float | None:
    pesq = _require("pesq-wb")
    if _silent(r) or _silent(e):  # pesq's level alignment divides by the energy (a ValueError there)
        return None
    try:
        return float(pesq.pesq(SPEECH_RATE, r, e, "wb"))
    except (pesq.NoUtterancesError, pesq.BufferTooShortError):
        return None


def _stoi_arrays(r: np.ndarray, e: np.ndarray) -> float | None:
    pystoi = _require("stoi")
    if _silent(r):
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v = float(pystoi.stoi(r, e, SPEECH_RATE, extended=False))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return None
    return v if math.isfinite(v) else None


def pesq_wb(ref, est) -> float | None:
    """Wide-band PESQ of ``est`` against ``ref`` at 16 kHz, mono (module docstring).  It does not
    check that the signals are speech: :func:`score` does."""
    _require("pesq-wb")
    return _pesq_arrays(_mono(ref, SPEECH_RATE), _mono(est, SPEECH_RATE))


def stoi(ref, est) -> float | None:
    """STOI of ``est`` against ``ref`` (16 kHz mono in, module docstring); no speech check."""
    _require("stoi")
    return _stoi_arrays(_mono(ref, SPEECH_RATE), _mono(est, SPEECH_RATE))


# --------------------------------------------------------------------------- all of them
def score(ref, est, speech: bool) -> dict[str, float | None]:
    """Every metric of :data:`METRICS` as ``codec eval`` reports them: ``None`` for PESQ and
    STOI unless ``speech``, and ``None`` for a metric whose package is not installed."""
    out: dict[str, float | None] = {}
    out["visqol"] = visqol(ref, est) if available("visqol") else None
    if speech and (available("pesq-wb") or available("stoi")):
        r16, e16 = _mono(ref, SPEECH_RATE), _mono(est, SPEECH_RATE)
        out["pesq-wb"] = _pesq_arrays(r16, e16) if available("pesq-wb") else None
        out["stoi"] = _stoi_arrays(r16, e16) if available("stoi") else None
    else:
        out["pesq-wb"] = out["stoi"] = None
    return out
