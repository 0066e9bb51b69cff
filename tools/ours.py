"""``ours:MODEL``: this project's codec in ``codec eval``, for a model of any medium.

The codec goes through the public API only (``codec.encode`` / ``codec.decode``), so the
rate counts every byte of the container stream (headers included).  The medium of the
run is the model's (``codec.models.registry.get_spec(MODEL).modality``): an image model
codes the images of a folder (decoded to 8-bit RGB, ``output="numpy"``), an audio model its
audio files (:class:`codec.media.audio.Audio` in, an ``Audio`` at the item's rate and
length out), a video model its clips (the item's RGB frames in, a :class:`codec.media.video.Video`
out; ``--gop N`` sets its key-frame interval, default 32, and a run at another interval
is the codec ``ours-MODEL-gopN``).  A model whose encoder takes an effort (an INR's fit, an
image model's latent refinement) is run at its default effort, or at ``--effort E`` (the
codec ``ours-MODEL-effort-E``); the effort is recorded in the results, and every item's
encoding time with it.  A model the registry does not know (a stand-in behind a patched API) is taken
as an image model, as before audio existed.

Default qualities (when ``--codec ours:MODEL`` gives none): the whole numbers of the model's
quality range (``1,2,...,8`` for the variable-rate ``mean-scale-vr`` and ``wavelet-audio``
and for models with levels 1..8).
"""
from __future__ import annotations

import hashlib
import math
import os
from typing import Any

import numpy as np

from codec.errors import CodecError
from codec.tools.registry import Codec, register_codec

__all__ = ["Ours", "model_medium", "default_grid"]


def _int_or_float(text: str):
    """``"4"`` -> 4, ``"2.5"`` -> 2.5 (qualities of fixed- and variable-rate models; rounded
    to 0.01 as the codec takes them, so that results name the quality that was coded)."""
    v = round(float(text), 2)
    return int(v) if v.is_integer() else v


def _spec(model: str):
    """The registry's spec of ``model``, or None when the registry does not know it."""
    try:
        from codec.models import registry
    except ImportError:  # pragma: no cover - a partial install
        return None
    try:
        return registry.get_spec(model)
    except KeyError:  # UnknownModelError
        return None


def model_medium(model: str) -> str:
    """The medium ``model`` codes (its registry spec's ``modality``; ``"image"`` if unknown)."""
    spec = _spec(model)
    return getattr(spec, "modality", None) or "image"


def default_grid(model: str) -> tuple:
    """The whole qualities of the model's range (``()`` when the registry does not know it)."""
    q = getattr(_spec(model), "quality", None)
    if q is None:
        return ()
    return tuple(range(math.ceil(q.lo), math.floor(q.hi) + 1))


def _probe(medium: str):
    """A small fixed item of ``medium`` whose streams identify a model's weights."""
    if medium == "video":
        from fractions import Fraction

        from codec.media.video import Video

        yy, xx = np.mgrid[0:48, 0:64]
        frames = [np.stack([(xx + 3 * i) * 4 % 256, yy * 5, (xx + yy + i) * 2], axis=-1).astype(np.uint8)
                  for i in range(3)]  # 3 frames of a moving gradient
        return Video(frames, Fraction(25), 64, 48, 3)
    if medium == "audio":
        from codec.media.audio import Audio

        rate = 16000
        t = np.arange(rate // 2) / rate  # 0.5 s, mono: a harmonic tone under a 4 Hz envelope
        x = 0.3 * (0.5 - 0.5 * np.cos(2 * np.pi * 4 * t)) * sum(np.sin(2 * np.pi * 150 * k * t) / k
                                                                for k in range(1, 9))
        return Audio(x[None].astype(np.float32), rate)
    yy, xx = np.mgrid[0:64, 0:64]
    return np.stack([xx * 4, yy * 4, (xx + yy) * 2], axis=-1).astype(np.uint8)


@register_codec("ours")
class Ours(Codec):
    """This project's codec through its public API (``codec.encode`` / ``codec.decode``), for
    an image, audio or video model (module docstring)."""

    display_name = "ours"
    takes_arg = True
    arg_name = "MODEL"
    #: the class's medium, for listings; an instance has its model's
    media = "image"
    media_label = "the model's medium: image, audio or video"
    #: (unchanged since image-only days: it is in info(), so in the fingerprint of resumed runs)
    quality_meaning = ("quality of the model: whole numbers for fixed-rate models, any value in the range "
                       "(steps of 0.01) for variable-rate ones (see 'codec models')")
    default_label = "the whole numbers of the model's range (1,2,...,8 for a model of quality 1..8)"
    quality_type = staticmethod(_int_or_float)
    quality_range = (0, 1000)
    default_qualities = ()
    bits_counted = "bytes returned by codec.encode (the project's container, headers included)"

    def __init__(self, model: str) -> None:
        import codec as api

        missing = [f for f in ("encode", "decode", "list_models") if not callable(getattr(api, f, None))]
        if missing:
            raise CodecError(f"ours:{model}: the codec API is not available in this install "
                             f"(codec.{', codec.'.join(missing)} missing)")
        models = list(api.list_models())
        if model not in models:
            raise CodecError(f"ours: unknown model {model!r}; available: {', '.join(models) or '(none)'}")
        self.model = model
        self.media = model_medium(model)
        self.default_qualities = default_grid(model)
        self.key = f"ours-{model}"
        self.display_name = f"ours ({model})"
        if self.media == "video":
            from codec.video_coding import DEFAULT_GOP

            self.gop = DEFAULT_GOP
        spec = _spec(model)
        if spec is not None and spec.effort:
            self.effort = None  # the model's default effort
        self.device = os.environ.get("CODEC_EVAL_DEVICE") or None
        self.probe = ""

    @property
    def gop(self) -> int:
        """Video: the key-frame interval (an image or audio model has none: AttributeError)."""
        if self.media != "video":
            raise AttributeError("gop")
        return self._gop

    @gop.setter
    def gop(self, value: int) -> None:
        from codec.video_coding import DEFAULT_GOP, check_gop

        self._gop = check_gop(value)
        self._rename()

    def _rename(self) -> None:
        """The key and display name of the settings that differ from the defaults."""
        from codec.video_coding import DEFAULT_GOP

        tails, words = [], []
        if self.__dict__.get("_gop", DEFAULT_GOP) != DEFAULT_GOP:
            tails.append(f"-gop{self._gop}")
            words.append(f"key frame every {self._gop}")
        if self.__dict__.get("_effort") is not None:
            tails.append(f"-effort-{self._effort}")
            words.append(f"effort {self._effort}")
        self.key = f"ours-{self.model}{''.join(tails)}"
        self.display_name = f"ours ({', '.join([self.model, *words])})"

    @property
    def effort(self):
        """A model whose encoder takes an effort (an INR, an image model): its effort, None for
        its default (a model that takes none: AttributeError)."""
        if "_effort" not in self.__dict__:
            raise AttributeError("effort")
        return self._effort

    @effort.setter
    def effort(self, value) -> None:
        arch = _spec(self.model).arch_class()
        if value is not None:
            try:
                arch.iterations(value)
            except ValueError as exc:
                raise CodecError(f"ours:{self.model}: {exc}") from None
        self._effort = value
        self.iterations = arch.iterations(value)
        self._rename()

    def _extra(self) -> dict:
        out = {"gop": self.gop} if self.media == "video" else {}
        if "_effort" in self.__dict__:
            out["effort"] = self.effort
        return out

    def prepare(self, qualities) -> None:
        """Identify the exact model: hash the streams of a fixed probe (a 64x64 image, 0.5 s
        of a 16 kHz tone, or 3 frames of 64x48) at every quality, so that resuming never
        mixes points from different weights."""
        import codec as api

        probe = _probe(self.media)
        extra = self._extra()
        if "effort" in extra:  # a 5-iteration fit (or refinement) identifies the code and the weights
            extra["effort"] = 5
        h = hashlib.sha1()
        for q in qualities:
            h.update(api.encode(probe, model=self.model, quality=q, device=self.device, **extra))
        self.probe = h.hexdigest()[:16]

    def encode(self, item, quality) -> bytes:
        import codec as api

        if self.media == "video":
            item = item.to_video()  # a VideoItem of codec eval: its RGB frames, lazily
        data = api.encode(item, model=self.model, quality=quality, device=self.device, **self._extra())
        if not isinstance(data, (bytes, bytearray)):
            raise CodecError(f"{self.key}: codec.encode returned {type(data).__name__}, expected bytes")
        return bytes(data)

    def decode(self, data: bytes, item: Any):
        import codec as api

        if self.media in ("image", "video"):
            return api.decode(data, device=self.device, output="numpy")  # video: [N, H, W, 3] RGB
        return api.decode(data, device=self.device)  # audio: an Audio at the stream's rate and length

    def info(self) -> dict[str, Any]:
        import codec as api

        out = {
            "library": f"codec {api.__version__}",
            "model": self.model,
            "device": self.device or "default",
            "probe_streams_sha1": self.probe,
        }
        # images: the same keys as before audio existed (the fingerprint of earlier runs stays valid)
        if self.media == "image":
            out["chroma"] = "RGB (model input)"
            if "_effort" in self.__dict__:
                what = "fitting" if _spec(self.model).fitted else "latent refinement"
                out["effort"] = f"{self.effort or 'default'}: {self.iterations} {what} iterations per item"
        elif self.media == "video":
            out["medium"] = self.media
            out["chroma"] = "RGB model input: the source's YUV 4:2:0 planes converted by codec.media.video"
            out["gop"] = f"key frame every {self.gop} frames"
            if "_effort" in self.__dict__:
                out["effort"] = f"{self.effort or 'default'}: {self.iterations} fitting iterations per group of frames"
        else:
            out["medium"] = self.media
            out["channels"] = "as the item's (codec.encode takes the Audio as read; the model resamples as it needs)"
        out["quality"] = self.quality_meaning
        out["bits_counted"] = self.bits_counted
        return out
