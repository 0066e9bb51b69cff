"""Plug-in interface of the evaluator: media kinds and codecs.

The evaluator (:mod:`codec.tools.evaluate`) knows nothing about images, video or audio.
It asks a :class:`Media` how to list and load the items of a data set and how to score a
decoded item against the original, and it asks a :class:`Codec` to turn an item into
bytes and back.  Every rate comes from ``len(bytes)`` returned by :meth:`Codec.encode`.

Adding a medium (video: frames, PSNR-YUV 6:1:1 and PSNR-RGB; audio: SNR, SI-SDR, mel
distance) means writing one :class:`Media` subclass and registering it with
:func:`register_media`; adding a codec (x264/x265/SVT-AV1 for video, Opus/AAC/MP3 for
audio, all through PyAV) means one :class:`Codec` subclass registered with
:func:`register_codec`.  Nothing in the evaluator, the JSON writer, ``codec bdrate`` or
``codec report`` changes: they work on whatever metric keys the medium produces and on
the medium's rate key (``bpp`` for images and video, ``kbps`` for audio).

Codec instances are sent to worker processes by pickling, so keep their state small and
picklable (create encoder contexts inside :meth:`Codec.encode`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from codec.errors import CodecError

__all__ = [
    "Codec",
    "Media",
    "CodecSpec",
    "register_codec",
    "register_media",
    "get_media",
    "make_codec",
    "available_codecs",
    "parse_codec_spec",
    "parse_qualities",
]


class Media:
    """A kind of media: how to find, load and score items, and what the scores mean.

    Subclasses set ``name`` (``"image"``, ``"video"``, ``"audio"``), the rate axis
    (``rate_key``: the name of the rate in the results, ``"bpp"`` for images, ``"kbps"``
    for audio; ``rate_unit`` and ``rate_label`` as printed; ``rate_plot_max``: the upper
    end of the rate axis in plots, or None for the largest measured rate),
    ``metric_keys`` (the quality metrics, the first is the primary one),
    ``lower_is_better`` (metrics such as distances where lower is better) and
    ``metric_info`` (per metric: ``label``, ``unit``, ``db_scale``, ``description``),
    and implement the methods.  :meth:`axes` turns these into the ``axes`` block of the
    results files (:mod:`codec.tools.axes`), which is all ``codec bdrate`` and ``codec
    report`` know of a medium.
    """

    name: str = ""
    rate_key: str = "bpp"
    rate_unit: str = ""  # default: rate_key
    rate_label: str = ""  # default: rate_key
    rate_plot_max: float | None = None
    metric_keys: tuple[str, ...] = ()
    #: metrics where lower is better (plotted/BD-rated the other way round)
    lower_is_better: tuple[str, ...] = ()
    #: metric key -> {"label": ..., "unit": ..., "db_scale": bool, "description": ...}
    metric_info: dict[str, dict[str, Any]] = {}

    def axes(self) -> dict[str, Any]:
        """The ``axes`` block of this medium's results files (schema: :mod:`codec.tools.axes`)."""
        rate: dict[str, Any] = {"key": self.rate_key, "unit": self.rate_unit or self.rate_key,
                                "label": self.rate_label or self.rate_key}
        if self.rate_plot_max is not None:
            rate["plot_max"] = float(self.rate_plot_max)
        metrics = {}
        for k in self.metric_keys:
            info = self.metric_info.get(k, {})
            m: dict[str, Any] = {"label": info.get("label", k), "unit": info.get("unit", ""),
                                 "higher_is_better": k not in self.lower_is_better}
            if info.get("db_scale"):
                m["db_scale"] = True
            if info.get("description"):
                m["description"] = info["description"]
            metrics[k] = m
        return {"medium": self.name, "rate": rate, "metrics": metrics}

    #: what the files of this medium are called in messages ("images", "audio files")
    items_name: str = "items"
    #: file name extensions of this medium's items (as listed in messages)
    extensions: tuple[str, ...] = ()

    def accepts(self, path: Path) -> bool:
        """Whether a file of a data-set folder is an item of this medium."""
        return path.suffix.lower() in self.extensions

    def list_items(self, dataset: Path) -> list[Path]:
        """The items of a data set: the file itself, or the folder's files this medium accepts (sorted)."""
        dataset = Path(dataset)
        if not dataset.exists():
            raise FileNotFoundError(f"data set not found: {dataset}")
        if dataset.is_file():
            return [dataset]
        items = sorted(p for p in dataset.iterdir() if p.is_file() and self.accepts(p))
        if not items:
            raise CodecError(f"no {self.items_name} ({', '.join(self.extensions)}) in {dataset}")
        return items

    def load(self, path: Path) -> Any:
        raise NotImplementedError

    def rate(self, nbytes: int, item: Any) -> float:
        """Rate of ``nbytes`` bytes for this item (bits per pixel, kbit/s, ...)."""
        raise NotImplementedError

    def score(self, ref: Any, rec: Any) -> dict[str, float | None]:
        """Quality metrics of ``rec`` against ``ref``; ``None`` where undefined."""
        raise NotImplementedError


class Codec:
    """A codec under evaluation.

    ``encode(item, quality) -> bytes`` must return the complete data a decoder needs
    (everything that is stored or sent); the evaluator counts ``len()`` of it.
    ``decode(data, item) -> item`` gets the original only to know its shape, sample
    rate, etc.  It must not look at the samples.
    """

    #: registry name (``jpeg``, ``hevc-intra``, ...); also the results file stem
    key: str = ""
    #: display name written to the JSON ``name`` field
    display_name: str = ""
    media: str = "image"
    #: default settings, chosen so that the rate spans the useful range on the
    #: reference data set (Kodak for images: about 0.05 to 2 bpp)
    default_qualities: tuple = ()
    #: what a quality value means, for ``--help`` and the JSON
    quality_meaning: str = ""
    #: valid range of quality values (inclusive)
    quality_range: tuple[float, float] = (float("-inf"), float("inf"))
    quality_type: Callable = int

    def encode(self, item: Any, quality) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes, item: Any) -> Any:
        raise NotImplementedError

    def prepare(self, qualities: Sequence) -> None:
        """Called once in the main process before a run with the qualities to evaluate
        (before :meth:`fingerprint`); a codec whose output depends on files that are not
        in :meth:`info` (model weights) records their identity here."""

    def info(self) -> dict[str, Any]:
        """Settings and library versions: written to the JSON and part of the resume key.

        Must include ``chroma`` (for images/video), ``bits_counted`` (what the byte count
        covers) and every encoder setting that changes the output.
        """
        return {}

    def description(self) -> str:
        inf = self.info()
        return "; ".join(f"{k}: {v}" for k, v in inf.items())

    def fingerprint(self) -> str:
        """Stable hash of everything that changes results: resuming skips a point only
        when the fingerprint it was computed with matches."""
        blob = json.dumps({"key": self.key, "info": self.info()}, sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


_MEDIA: dict[str, Media] = {}
_CODECS: dict[str, Callable[..., Codec]] = {}


def register_media(media: Media) -> Media:
    _MEDIA[media.name] = media
    return media


def get_media(name: str) -> Media:
    _load_builtin()
    try:
        return _MEDIA[name]
    except KeyError:
        raise CodecError(f"unknown media kind {name!r}") from None


def register_codec(key: str) -> Callable:
    """Class decorator: ``@register_codec("jpeg")``.  The class is called with the
    argument of the spec (``ours:MODEL`` gives ``arg="MODEL"``) when it takes one."""

    def deco(cls):
        cls.key = cls.key or key
        _CODECS[key] = cls
        return cls

    return deco


def _load_builtin() -> None:
    # importing the modules registers their media and codecs
    from codec.tools import image_codecs  # noqa: F401
    from codec.tools import audio_codecs  # noqa: F401
    from codec.tools import video_codecs  # noqa: F401


def available_codecs() -> dict[str, Callable[..., Codec]]:
    _load_builtin()
    return dict(sorted(_CODECS.items()))


@dataclass
class CodecSpec:
    """A parsed ``--codec`` argument."""

    name: str
    arg: str | None = None
    qualities: list = field(default_factory=list)
    text: str = ""


def parse_qualities(text: str, cls=None) -> list:
    """``"10,20,30"`` -> ``[10, 20, 30]``, validated against the codec's range."""
    conv = getattr(cls, "quality_type", float) if cls is not None else float
    out = []
    for tok in text.split(","):
        tok = tok.strip()
        if not tok:
            raise ValueError(f"bad quality list {text!r}: empty entry")
        try:
            v = conv(tok) if conv is not int else int(tok, 10)
        except ValueError:
            kind = "integers" if conv is int else "numbers"
            raise ValueError(f"bad quality list {text!r}: {tok!r} is not a number "
                             f"(expected comma-separated {kind})") from None
        if cls is not None:
            lo, hi = cls.quality_range
            if not lo <= v <= hi:
                raise ValueError(f"bad quality list {text!r}: {tok} is outside {lo}..{hi} for "
                                 f"{cls.key} ({cls.quality_meaning})")
        if v in out:
            raise ValueError(f"bad quality list {text!r}: {tok} appears twice")
        out.append(v)
    return out


def parse_codec_spec(text: str) -> CodecSpec:
    """Parse ``NAME[:QUALITIES]`` or, for codecs that take an argument (``ours``),
    ``NAME:ARG[:QUALITIES]``."""
    codecs = available_codecs()
    parts = text.split(":")
    name = parts[0].strip().lower()
    if name not in codecs:
        by_medium: dict[str, list[str]] = {}  # image, audio, video, then any other medium
        order = ["image", "audio", "video"]
        for key in sorted(codecs, key=lambda k: order.index(codecs[k].media)
                          if codecs[k].media in order else len(order)):
            by_medium.setdefault(codecs[key].media, []).append(key)
        raise CodecError(f"unknown codec {parts[0]!r} in --codec {text!r}; available: "
                         + "; ".join(f"{', '.join(keys)} ({medium})" for medium, keys in by_medium.items()))
    cls = codecs[name]
    takes_arg = getattr(cls, "takes_arg", False)
    rest = parts[1:]
    arg = None
    if takes_arg:
        if not rest or not rest[0]:
            raise CodecError(f"--codec {text!r}: {name} needs an argument: "
                             f"{name}:{cls.arg_name}[:QUALITIES]")
        arg, rest = rest[0], rest[1:]
    if len(rest) > 1:
        raise ValueError(f"--codec {text!r}: expected {name}{':' + cls.arg_name if takes_arg else ''}"
                         "[:QUALITIES] with QUALITIES like 10,20,30")
    quals = parse_qualities(rest[0], cls) if rest else []
    return CodecSpec(name=name, arg=arg, qualities=quals, text=text)


def make_codec(spec: CodecSpec | str) -> tuple[Codec, list]:
    """Instantiate the codec of a spec; returns ``(codec, qualities)``."""
    if isinstance(spec, str):
        spec = parse_codec_spec(spec)
    cls = available_codecs()[spec.name]
    codec = cls(spec.arg) if getattr(cls, "takes_arg", False) else cls()
    quals = list(spec.qualities) or list(codec.default_qualities)
    if not quals:
        raise ValueError(f"--codec {spec.text or spec.name}: no qualities given and the codec has no "
                         "default list")
    return codec, quals


def describe_codecs(names: Sequence[str] | None = None) -> str:
    lines = []
    for key, cls in available_codecs().items():
        if names and key not in names:
            continue
        sig = f"{key}:{cls.arg_name}[:QUALITIES]" if getattr(cls, "takes_arg", False) else f"{key}[:QUALITIES]"
        dq = ",".join(str(q) for q in cls.default_qualities) or getattr(cls, "default_label", "(none)")
        medium = getattr(cls, "media_label", cls.media)  # a codec whose medium is its argument's says so
        lines.append(f"{sig}\n    {cls.display_name} ({medium}); QUALITIES = {cls.quality_meaning}; "
                     f"default {dq}")
    return "\n".join(lines)
