"""The audio medium: files and user objects in, float waveforms out, kilobits per second.

One signal type through an audio codec: an :class:`Audio` (float32 samples
``[channels, n]`` in [-1, 1], the sample rate, and the bit depth of the source).
Everything that takes audio from users or files goes through :func:`from_user` /
:func:`read`; everything that gives it back through :func:`to_user` / :func:`write`.
Metrics are in :mod:`codec.media.audio_metrics`.  Decoding, encoding and resampling
are PyAV's (FFmpeg's libavcodec and libswresample); no other audio library is used.

Inputs accepted by :func:`from_user`: an :class:`Audio`, or a numpy array / torch tensor
``[n]`` (mono) or ``[channels, n]`` with its ``sample_rate``: float samples in [-1, 1]
(float16/bfloat16/float64 are converted to float32), int16 (divided by 2**15) or int32
(divided by 2**31).  Anything else is an :class:`~codec.errors.InputError` that names
what was passed.

Files read by :func:`read`: anything FFmpeg decodes (wav, flac, mp3, ogg/vorbis,
opus, m4a/aac, aiff, ...; and the audio stream of a video file), at the rate it decodes
to (Opus always decodes at 48 kHz).  Files written by :func:`write`: WAV (16-bit PCM) or
FLAC (16-bit), chosen by the extension.

Limits: at most :data:`codec.container.MAX_CHANNELS` channels, a sample rate from
:data:`MIN_SAMPLE_RATE` to :data:`codec.container.MAX_SAMPLE_RATE` Hz, and at most
:func:`max_samples` samples per channel (:data:`DEFAULT_MAX_SAMPLES`, or
``$CODEC_MAX_SAMPLES``), checked from the container's duration before decoding and
again while decoding.
"""
from __future__ import annotations

import io
import math
import numbers
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from codec.container import MAX_CHANNELS, MAX_SAMPLE_RATE, MAX_SAMPLES, AudioInfo
from codec.errors import InputError, LimitError
from codec.media import objects

NAME = "audio"
RATE_UNIT = "kbps"  # kilobits per second of audio, from the bytes of the stream
OUTPUTS = ("audio", "numpy", "torch")  # what decode gives: the first by default
#: the default limit of samples per channel: 3 hours at 48 kHz (about 2 GB of float32
#: samples for a stereo file)
DEFAULT_MAX_SAMPLES = 3 * 3600 * 48_000
MAX_SAMPLES_ENV = "CODEC_MAX_SAMPLES"
#: below this a "sample rate" is not audio (the container takes 1 Hz and up)
MIN_SAMPLE_RATE = 1000
WRITE_FORMATS = {".wav": "wav", ".flac": "flac"}
#: what is coded for an unknown bit depth (floats, lossy sources)
DEFAULT_BIT_DEPTH = 16
#: libswresample's polyphase windowed-sinc filter as :func:`resample` configures it:
#: 64 taps at the lower of the two rates, 2**10 phases with linear interpolation
#: between them, a Kaiser window (beta 9), the cut-off at 0.97 of the lower Nyquist
#: frequency and an exact rational ratio; no dither (the output is float).  These are
#: FFmpeg's defaults except ``filter_size`` (32 there: 0.4 dB of droop at 0.9 of the
#: lower Nyquist frequency and aliasing above it at -60 dB; 64 here: < 0.1 dB and -95 dB).
RESAMPLER_OPTIONS = {"resampler": "swr", "filter_size": "64", "phase_shift": "10", "linear_interp": "1",
                     "exact_rational": "1", "cutoff": "0.97", "filter_type": "kaiser", "kaiser_beta": "9",
                     "dither_method": "none"}
_CHUNK = 1 << 16  # samples per frame when PyAV encodes or resamples our arrays


@dataclass
class Audio:
    samples: np.ndarray  # float32 [channels, n] in [-1, 1]
    sample_rate: int
    bit_depth: int = DEFAULT_BIT_DEPTH  # of the source (16, 24 or 32), what a decoder gives back

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def length(self) -> int:
        """Samples per channel."""
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.length / self.sample_rate

    @property
    def info(self) -> AudioInfo:
        return AudioInfo(int(self.sample_rate), self.channels, self.length, int(self.bit_depth))

    def tensor(self, device="cpu"):
        """``[1, channels, n]`` float32 on ``device`` (a batch of one, as a model takes it)."""
        import torch

        return torch.from_numpy(np.array(self.samples, dtype=np.float32))[None].to(device)


# ----------------------------------------------------------------------------- limits
def max_samples(limit=None) -> int:
    """The sample limit in force (per channel): ``limit``, else ``$CODEC_MAX_SAMPLES``, else
    :data:`DEFAULT_MAX_SAMPLES`."""
    what = "the sample limit"
    if limit is None:
        limit = os.environ.get(MAX_SAMPLES_ENV, "").strip()
        if not limit:
            return DEFAULT_MAX_SAMPLES
        what = f"${MAX_SAMPLES_ENV}"
        try:
            limit = float(limit)
        except ValueError:
            raise InputError(f"{what} must be a number of samples, not {limit!r}") from None
    if isinstance(limit, (bool, np.bool_)) or not isinstance(limit, numbers.Real) or not math.isfinite(limit) \
            or limit < 1:
        raise InputError(f"{what} must be a finite number of samples >= 1, not {limit!r}")
    return int(limit)


def _limit_text(lim: int) -> str:
    return (f"the limit of {lim} samples per channel ({lim / 48_000 / 60:.1f} min at 48 kHz; raise it with "
            f"${MAX_SAMPLES_ENV} or limit=N)")


def check_length(samples: int, limit=None, what: str = "the audio", rate: int | None = None) -> None:
    """:class:`LimitError` when ``samples`` (per channel) exceeds the sample limit."""
    lim = max_samples(limit)
    if samples > lim:
        dur = f" ({objects.duration_text(samples / rate)})" if rate else ""
        raise LimitError(f"{what} has {samples} samples per channel{dur}, more than {_limit_text(lim)}")


def check_rate(rate, what: str = "the sample rate") -> int:
    """``rate`` as an int; :class:`InputError` unless it is a whole number of Hz in range."""
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise InputError(f"{what} must be a whole number of Hz, not {_describe(rate)}")
    if not math.isfinite(rate) or rate != int(rate):
        raise InputError(f"{what} must be a whole number of Hz, not {rate!r}")
    rate = int(rate)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InputError(f"{what} is {rate} Hz: audio is coded at {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    return rate


def _check_channels(ch: int, what: str) -> None:
    if ch < 1:
        raise InputError(f"{what} has no channels")
    if ch > MAX_CHANNELS:
        raise InputError(f"{what} has {ch} channels, more than the {MAX_CHANNELS} a stream can hold")


def rate(nbytes: int, info: AudioInfo) -> float:
    """Kilobits per second of ``nbytes`` bytes for audio of ``info``'s duration."""
    return 8 * nbytes / (info.samples / info.sample_rate) / 1000


def _channels_text(ch: int) -> str:
    return {1: "mono", 2: "stereo"}.get(ch, f"{ch}-channel")


def describe(info: AudioInfo) -> str:
    """e.g. ``"2.50 s stereo 44.1 kHz clip"`` (used as "encode a ...")."""
    return f"{objects.duration_text(info.samples / info.sample_rate)} {_channels_text(info.channels)} " \
           f"{info.sample_rate / 1000:g} kHz clip"


# ----------------------------------------------------------------------------- user objects
def _describe(obj) -> str:
    return objects.describe(obj, NAME)


def from_user(audio, sample_rate=None, limit=None) -> Audio:
    """Any accepted audio -> :class:`Audio`; :class:`InputError` naming what was passed."""
    if isinstance(audio, Audio):
        if sample_rate is not None and check_rate(sample_rate) != audio.sample_rate:
            raise InputError(f"the audio is at {audio.sample_rate} Hz, not {sample_rate} Hz "
                             "(to change its rate: codec.media.audio.resample(audio, rate))")
        rate_ = check_rate(audio.sample_rate, "the audio's sample rate")
        a = audio.samples
        depth = _depth(audio.bit_depth)
        if not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype != np.float32:
            if not (isinstance(a, np.ndarray) or _is_tensor(a)) or a.ndim != 2:
                raise InputError(f"Audio.samples must be a float32 [channels, n] array, not {_describe(a)}")
            return Audio(from_user(a, rate_, limit).samples, rate_, depth)
        _check_array(a, audio, limit, rate_)
        return audio if depth == audio.bit_depth and rate_ == audio.sample_rate else Audio(a, rate_, depth)
    if _is_tensor(audio):
        a = _tensor_to_numpy(audio)
    elif isinstance(audio, (np.ndarray, np.generic)):
        a = np.asarray(audio)
    else:
        raise InputError(f"audio is a codec.media.audio.Audio, or a numpy array or torch tensor with its "
                         f"sample_rate, not {_describe(audio)}")
    if sample_rate is None:
        raise InputError(f"an audio array needs its sample_rate (e.g. sample_rate=44100), got {_describe(audio)} "
                         "without one")
    rate_ = check_rate(sample_rate)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise InputError(f"an audio array must be [n] or [channels, n], got {_describe(audio)}")
    if a.shape[0] > MAX_CHANNELS and a.shape[1] <= MAX_CHANNELS:
        raise InputError(f"an audio array is [channels, n], and {_describe(audio)} would have {a.shape[0]} "
                         f"channels (more than {MAX_CHANNELS}): pass it transposed ([n, channels] -> .T)")
    if a.dtype == np.int16:
        depth, scale = 16, 1 / 32768
    elif a.dtype == np.int32:
        depth, scale = 32, 1 / 2147483648
    elif a.dtype.kind == "f":
        depth, scale = DEFAULT_BIT_DEPTH, None
    else:
        raise InputError(f"audio samples must be float in [-1, 1], int16 or int32, not {a.dtype} "
                         f"({_describe(audio)})")
    _check_array(a, audio, limit, rate_, floats=scale is None)
    if scale is None:
        a = np.ascontiguousarray(a, dtype=np.float32)
    else:
        # int16: exact; int32: rounded to float32's 24 significant bits (the scale is a power of two)
        a = a.astype(np.float32) * np.float32(scale)
    return Audio(a, rate_, depth)


def _check_array(a: np.ndarray, what, limit, rate_: int, floats: bool = True) -> None:
    _check_channels(a.shape[0], f"the audio ({_describe(what)})")
    if a.shape[1] < 1:
        raise InputError(f"the audio is empty: {_describe(what)}")
    check_length(a.shape[1], limit=limit, rate=rate_)
    if floats:
        lo, hi = float(a.min()), float(a.max())  # both NaN when any sample is NaN
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError(f"audio samples must be finite (no NaN or infinity): {_describe(what)}")
        if lo < -1 or hi > 1:
            raise InputError(f"float audio samples must lie in [-1, 1], these reach {lo:.4g}..{hi:.4g} "
                             f"({_describe(what)}; np.clip them, or scale them down)")


def _depth(bits) -> int:
    """The coded bit depth for a source of ``bits`` bits: the smallest of 16, 24, 32 that
    holds it (32 for more; ``None``: :data:`DEFAULT_BIT_DEPTH`)."""
    if bits is None:
        return DEFAULT_BIT_DEPTH
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, numbers.Integral) or bits < 1:
        raise InputError(f"a bit depth is a whole number of bits >= 1, not {bits!r}")
    return next((d for d in AudioInfo.DEPTHS if bits <= d), AudioInfo.DEPTHS[-1])


def _is_tensor(obj) -> bool:
    return objects.is_tensor(obj)


def _tensor_to_numpy(t) -> np.ndarray:
    import torch

    x = objects.dense(t, NAME)
    if not x.dtype.is_floating_point and x.dtype not in (torch.int16, torch.int32):
        raise InputError(f"audio samples must be float in [-1, 1], int16 or int32, not {x.dtype} ({_describe(t)})")
    return x.cpu().numpy()


def to_user(audio: Audio, output: str = "audio"):
    """``"audio"`` (the :class:`Audio` itself), ``"numpy"`` (float32 ``[channels, n]``, mono
    included) or ``"torch"`` (the same as a float32 tensor ``[channels, n]``)."""
    if output not in OUTPUTS:
        raise InputError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    if output == "audio":
        return audio
    if output == "numpy":
        return audio.samples
    import torch

    a = audio.samples
    return torch.from_numpy(a if a.flags.writeable and a.flags.c_contiguous else np.array(a))


# ----------------------------------------------------------------------------- reading files
def _open(path):
    """(container, audio stream) of an existing file; :class:`InputError` otherwise."""
    import av

    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"no such file: {path}")
    if os.path.isdir(path):
        raise InputError(f"{path} is a directory, not an audio file")
    try:
        container = av.open(path, metadata_errors="ignore")
    except PermissionError:
        raise InputError(f"cannot read {path} (permission denied)") from None
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        why = _wav_problem(path) or objects.av_text(exc)
        raise InputError(f"{path} is not an audio file FFmpeg can decode ({why})") from None
    streams = container.streams.audio
    if not streams:
        kinds = sorted({s.type for s in container.streams})
        container.close()
        raise InputError(f"{path} has no audio stream" + (f" (only {', '.join(kinds)})" if kinds else ""))
    return container, streams[0]


def _wav_problem(path) -> str | None:
    """What is wrong with a WAV header FFmpeg refuses, when it is a rate or channel count of
    0 (FFmpeg says only "invalid data"); ``None`` otherwise."""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if cid == b"fmt " and pos + 16 <= len(head):
            channels, rate_ = struct.unpack("<HI", head[pos + 10:pos + 16])
            if rate_ == 0:
                return "its header says 0 Hz"
            if channels == 0:
                return "its header says 0 channels"
            return None
        pos += 8 + size + (size & 1)
    return None


def _estimate_samples(container, stream) -> int | None:
    """Samples per channel from the container's duration (no decoding); ``None`` when it
    gives none.  Exact for WAV and FLAC; an estimate (from the bit rate) for some others."""
    rate_ = stream.codec_context.sample_rate
    if not rate_:
        return None
    if stream.duration and stream.time_base:
        return int(round(stream.duration * stream.time_base * rate_))
    if container.duration:
        return int(round(container.duration * rate_ / 1_000_000))
    return None


def _check_header(path, container, stream, limit) -> int | None:
    """The checks a file's header allows before decoding; the estimated length."""
    cc = stream.codec_context
    if cc.sample_rate:  # some formats tell it only when decoding: the first frame is checked too
        check_rate(cc.sample_rate, f"{path}: its sample rate")
    if cc.channels:
        _check_channels(cc.channels, path)
    est = _estimate_samples(container, stream)
    lim = max_samples(limit)
    # a container's duration may be estimated from its bit rate: refuse early only when it
    # is clearly over; decoding enforces the limit exactly
    if est is not None and est > lim * 1.01 + 1:
        raise LimitError(f"{path} is {objects.duration_text(est / cc.sample_rate)} long ({est} samples per channel), "
                         f"more than {_limit_text(lim)}")
    return est


def _frames(path, container, stream):
    """Decoded frames with samples; :class:`InputError` for data FFmpeg cannot decode."""
    return (f for f in objects.decoded(container, stream, path) if f.samples)


_SCALE = {np.dtype(np.int16): 1 / 32768, np.dtype(np.int32): 1 / 2147483648, np.dtype(np.int64): 1 / 2 ** 63}


def _frame_samples(frame) -> np.ndarray:
    """One decoded frame as float32 ``[channels, n]`` (in [-1, 1] for integer formats)."""
    a = frame.to_ndarray()
    if not frame.format.is_planar:
        a = a.reshape(-1, frame.layout.nb_channels).T
    if a.dtype == np.float32:
        return a
    if a.dtype == np.uint8:
        return (a.astype(np.float32) - 128) * np.float32(1 / 128)
    if a.dtype in _SCALE:
        return a.astype(np.float32) * np.float32(_SCALE[a.dtype])
    return a.astype(np.float32)


def _flac_depth(extradata: bytes | None) -> int | None:
    """Bits per sample from a FLAC STREAMINFO block (with or without its ``fLaC`` prefix)."""
    if not extradata:
        return None
    b = bytes(extradata)
    if b[:4] == b"fLaC":
        b = b[8:]
    if len(b) < 18:
        return None
    return ((int.from_bytes(b[10:18], "big") >> 36) & 31) + 1


def _source_depth(stream, frame) -> int:
    """The source's bit depth when the file tells it (PCM, FLAC, ALAC, lossless formats),
    else :data:`DEFAULT_BIT_DEPTH`; rounded up to one the container takes."""
    cc = stream.codec_context
    name = cc.name or ""
    bits = None
    if name.startswith("pcm_"):
        digits = "".join(ch for ch in name[5:] if ch.isdigit())
        bits = int(digits) if digits else None  # pcm_s24le: 24; pcm_alaw, pcm_mulaw: unknown
    elif name == "flac":
        bits = _flac_depth(cc.extradata)
    elif name == "alac" and cc.extradata and len(cc.extradata) >= 18:
        ex = bytes(cc.extradata)
        bits = ex[17] if ex[4:8] == b"alac" else ex[5] if len(ex) >= 6 else None
    if bits is None and cc.codec.lossless:
        bits = frame.format.bytes * 8
    if bits is None or bits < 1:
        return DEFAULT_BIT_DEPTH
    return _depth(bits)


def probe(path, limit=None) -> AudioInfo:
    """What :func:`read` would give, without keeping the samples: the same errors for a
    missing, undecodable, silent (no audio stream, no samples) or over-the-limit file.
    It decodes the first frame only, except when the container states no duration
    (then it decodes the file to count, up to the limit); its ``samples`` is the
    container's duration in samples (exact for WAV and FLAC, an estimate for some lossy
    formats)."""
    path = os.fspath(path)
    container, stream = _open(path)
    with container:
        est = _check_header(path, container, stream, limit)
        first, count = None, 0
        lim = max_samples(limit)
        for frame in _frames(path, container, stream):
            if first is None:
                first = frame
                check_rate(frame.sample_rate, f"{path}: its sample rate")
                _check_channels(frame.layout.nb_channels, path)
            count += frame.samples
            if est is not None:
                break
            if count > lim:
                raise LimitError(f"{path} is longer than {_limit_text(lim)} (stopped decoding it there)")
        if first is None:
            raise InputError(f"{path} holds no audio samples")
        return AudioInfo(first.sample_rate, first.layout.nb_channels, est or count,
                         _source_depth(stream, first))


class Reader:
    """A file's samples block by block, as they are decoded (bounded memory for any length).

    Opening checks what :func:`read` checks before decoding and decodes the first frame:
    :attr:`sample_rate`, :attr:`channels`, :attr:`bit_depth` and :attr:`estimated`
    (samples per channel from the container, or None) are known from then on.
    :meth:`blocks` yields float32 ``[channels, m]`` arrays (float formats clipped to
    [-1, 1]) with :func:`read`'s errors: a file that changes its rate or channels, or
    passes the sample limit.  Use as a context manager (it closes the file)."""

    def __init__(self, path, limit=None):
        self.path = os.fspath(path)
        self.container, self.stream = _open(self.path)
        try:
            self.estimated = _check_header(self.path, self.container, self.stream, limit)
            self.limit = max_samples(limit)
            self._frames = _frames(self.path, self.container, self.stream)
            self.first = next(self._frames, None)
            if self.first is None:
                raise InputError(f"{self.path} holds no audio samples")
            self.sample_rate = check_rate(self.first.sample_rate, f"{self.path}: its sample rate")
            self.channels = self.first.layout.nb_channels
            _check_channels(self.channels, self.path)
            self.bit_depth = _source_depth(self.stream, self.first)
            self.floats = self.first.format.name in ("flt", "fltp", "dbl", "dblp")
        except BaseException:
            self.container.close()
            raise
        self.samples = 0  # decoded so far

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.container.close()

    def blocks(self):
        convert = _Converter()
        frames = [self.first]
        for frame in _chain(frames, self._frames):
            if frame.sample_rate != self.sample_rate or frame.layout.nb_channels != self.channels:
                raise InputError(f"{self.path} changes from {self.channels} channels at {self.sample_rate} Hz "
                                 f"to {frame.layout.nb_channels} at {frame.sample_rate} Hz midway (not supported)")
            yield from self._checked(convert(frame))
        yield from self._checked(convert(None))
        if self.samples == 0:
            raise InputError(f"{self.path} holds no audio samples")

    def _checked(self, arrays):
        for x in arrays:
            if self.samples + x.shape[1] > self.limit:
                raise LimitError(f"{self.path} is longer than {_limit_text(self.limit)} (stopped decoding after "
                                 f"{self.samples + x.shape[1]} samples)")
            self.samples += x.shape[1]
            if self.floats:
                np.clip(x, -1, 1, out=x)
            yield x


def _chain(first, rest):
    yield from first
    yield from rest


def read(path, limit=None) -> Audio:
    """Read an audio file (its first audio stream) with PyAV, decoded to float32 at its own
    rate.  :class:`InputError` for a missing, undecodable or silent file (no audio stream,
    no samples), a rate out of range, too many channels, or a stream that changes its rate
    or channels midway; :class:`LimitError` for a file longer than the sample limit: before
    decoding when the container states its duration, and as soon as the decoded samples
    pass the limit otherwise (what is kept never exceeds the limit).  Samples of float
    formats (what lossy decoders give) are clipped to [-1, 1].  (:class:`Reader` gives the
    same samples block by block.)"""
    with Reader(path, limit) as r:
        # preallocated to the stated length (lazily: np.empty touches no page), so a file
        # whose header is right is decoded into place, without a second copy
        cap = min(r.estimated, r.limit) if r.estimated else 0
        buf = np.empty((r.channels, cap), np.float32) if cap else None
        filled, extra = 0, []
        for x in r.blocks():
            n = x.shape[1]
            room = 0 if buf is None or extra else min(n, cap - filled)
            if room:
                buf[:, filled:filled + room] = x[:, :room]
            if room < n:
                extra.append(x[:, room:])
            filled += n
        if extra or filled < cap:
            parts = ([buf[:, :min(cap, filled)]] if cap and filled else []) + extra
            samples = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0].copy()
        else:
            samples = buf
        return Audio(samples, r.sample_rate, r.bit_depth)


class _Converter:
    """Decoded frames -> float32 ``[channels, n]`` arrays (:func:`_frame_samples`).  PyAV
    reads the planes of a planar frame past the eighth wrongly (it looks for a NULL after
    the last one), so planar frames of more than 8 channels are first interleaved by an
    ``AudioResampler`` (same rate and layout: a copy, exact)."""

    def __init__(self):
        self.packer = None

    def __call__(self, frame):
        """The arrays of ``frame`` (``None``: what the packer still holds)."""
        if frame is None:
            return [_frame_samples(f) for f in self.packer.resample(None)] if self.packer else []
        if frame.format.is_planar and frame.layout.nb_channels > 8:
            import av

            if self.packer is None:
                self.packer = av.AudioResampler(format=frame.format.packed, layout=frame.layout,
                                                rate=frame.sample_rate)
            return [_frame_samples(f) for f in self.packer.resample(frame)]
        return [_frame_samples(frame)]


# ----------------------------------------------------------------------------- writing files
def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float ``[channels, n]`` -> int16: ``round(x * 32768)`` (half to even), clipped to
    -32768..32767, so 16-bit content (``k / 32768``) comes back exactly."""
    return np.clip(np.round(np.asarray(samples, np.float32) * np.float32(32768)), -32768, 32767).astype(np.int16)


class _Muxer:
    """16-bit WAV (RF64 when over 4 GiB) or FLAC, block by block, into a file or a buffer."""

    def __init__(self, target, format: str, rate: int, channels: int):
        import av

        if format not in WRITE_FORMATS.values():
            raise InputError(f"audio is written as {' or '.join(WRITE_FORMATS.values())}, not {format!r}")
        self.layout, self.rate, self.pos = _layout(channels), int(rate), 0
        options = {"rf64": "auto"} if format == "wav" else {}
        self.out = av.open(target, "w", format=format, options=options)
        self.stream = self.out.add_stream("pcm_s16le" if format == "wav" else "flac", rate=self.rate,
                                          layout=self.layout)
        self.stream.format = "s16"
        self.tb = Fraction(1, self.rate)

    def write(self, samples) -> None:
        import av

        for pos in range(0, samples.shape[1], _CHUNK):
            block = np.ascontiguousarray(to_int16(samples[:, pos:pos + _CHUNK]).T).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout=self.layout)
            frame.sample_rate = self.rate
            frame.pts, frame.time_base = self.pos, self.tb
            self.pos += frame.samples
            for packet in self.stream.encode(frame):
                self.out.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.out.mux(packet)
        self.out.close()


def encode_file(audio: Audio, format: str = "wav") -> bytes:
    """The bytes of a 16-bit WAV (``"wav"``, RF64 when over 4 GiB) or FLAC (``"flac"``) file
    of ``audio``, made by PyAV in memory."""
    if not isinstance(audio, Audio):
        raise InputError(f"write takes a codec.media.audio.Audio, not {_describe(audio)} "
                         "(make one with codec.media.audio.from_user(x, sample_rate))")
    audio = from_user(audio, limit=MAX_SAMPLES)  # finite, in [-1, 1] (what was read, at any limit)
    buf = io.BytesIO()
    m = _Muxer(buf, format, audio.sample_rate, audio.channels)
    m.write(audio.samples)
    m.close()
    return buf.getvalue()


def _format_of(path, format):
    if format is None:
        ext = os.path.splitext(os.fspath(path))[1].lower()
        if ext not in WRITE_FORMATS:
            raise InputError(f"cannot write {os.fspath(path)}: audio is written as {' or '.join(WRITE_FORMATS)} "
                             f"(or pass format='wav' / 'flac')")
        return WRITE_FORMATS[ext]
    if format not in WRITE_FORMATS.values():
        raise InputError(f"audio is written as {' or '.join(WRITE_FORMATS.values())}, not {format!r}")
    return format


def write(path, audio: Audio, force: bool = False, format: str | None = None) -> None:
    """Write ``audio`` as 16-bit WAV or FLAC (``format``, else by the extension of
    ``path``), atomically (:func:`codec.fileio.atomic_write`): the whole file or none."""
    from codec.fileio import atomic_write, check_output

    format = _format_of(path, format)
    check_output(os.fspath(path), force)  # before the work
    atomic_write(os.fspath(path), encode_file(audio, format), force)


class Writer:
    """:func:`write` block by block (bounded memory): ``with Writer(path, rate, channels) as w:
    w.write(samples)``; the file appears, whole, when the block ends without an error
    (:func:`codec.fileio.atomic_path`), and not at all otherwise."""

    def __init__(self, path, sample_rate: int, channels: int, force: bool = False, format: str | None = None):
        from codec.fileio import check_output

        self.path, self.force = os.fspath(path), force
        self.format = _format_of(path, format)
        self.rate, self.channels = check_rate(sample_rate), int(channels)
        _check_channels(self.channels, "the output")
        check_output(self.path, force)
        self.samples = 0

    def __enter__(self):
        from codec.fileio import atomic_path

        self._ctx = atomic_path(self.path, self.force)
        tmp = self._ctx.__enter__()
        try:
            self._mux = _Muxer(tmp, self.format, self.rate, self.channels)
        except BaseException:
            self._ctx.__exit__(*__import__("sys").exc_info())
            raise
        return self

    def write(self, samples) -> None:
        samples = np.asarray(samples, np.float32)
        if samples.ndim != 2 or samples.shape[0] != self.channels:
            raise InputError(f"write takes [{self.channels}, n] samples, not {samples.shape}")
        self._mux.write(np.clip(samples, -1, 1))
        self.samples += samples.shape[1]

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self._mux.close()
            else:
                try:
                    self._mux.out.close()
                except Exception:  # noqa: BLE001 - the first error is the one to report
                    pass
        except BaseException:
            self._ctx.__exit__(*__import__("sys").exc_info())
            raise
        return self._ctx.__exit__(*exc)


# ----------------------------------------------------------------------------- resampling
def resampled_length(n: int, from_rate: int, to_rate: int) -> int:
    """The length :func:`resample` gives: ``n * to_rate / from_rate`` rounded to the nearest
    integer, halves up (exact integer arithmetic; Python's ``round`` would take halves to even)."""
    return (2 * n * to_rate + from_rate) // (2 * from_rate)


class Resampler:
    """Streaming :func:`resample`: :meth:`push` blocks ``[channels, m]`` at ``from_rate``,
    get what is ready at ``to_rate``; :meth:`finish` gives the rest.  The output equals
    :func:`resample` of the whole signal however it is cut into blocks: exactly
    :func:`resampled_length` samples in all (of the pushed total), clipped to [-1, 1]."""

    def __init__(self, from_rate: int, to_rate: int, channels: int):
        import av

        self.sr, self.rate, self.ch = int(from_rate), int(to_rate), int(channels)
        self.n_in, self.n_out = 0, 0  # pushed / given
        self.same = self.sr == self.rate
        if not self.same:
            self.layout = _layout(self.ch)
            # packed float32 in and out: PyAV mishandles planar frames of more than 8 channels
            self.res = av.AudioResampler(format="flt", layout=self.layout, rate=self.rate, options=RESAMPLER_OPTIONS)
            self.tb = Fraction(1, self.sr)
        taps = int(RESAMPLER_OPTIONS["filter_size"])
        self.pad = taps * max(1, -(-self.sr // self.rate)) + 64  # zeros after the end, in input samples
        # output held back until the total is known (never more than the filter's reach past the input)
        self.hold = taps * max(1, -(-self.rate // self.sr)) + 64
        self.pending = []

    def _feed(self, block) -> list:
        import av

        out = []
        for pos in range(0, block.shape[1], _CHUNK):
            part = block[:, pos:pos + _CHUNK]
            packed = np.ascontiguousarray(np.asarray(part, np.float32).T).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=self.layout)
            frame.sample_rate, frame.pts, frame.time_base = self.sr, self.n_in, self.tb
            self.n_in += part.shape[1]
            out += [f.to_ndarray().reshape(-1, self.ch).T for f in self.res.resample(frame)]
        return out

    def _take(self, arrays, final: int | None):
        self.pending += [a for a in arrays if a.shape[1]]
        have = sum(a.shape[1] for a in self.pending)
        give = have - self.hold if final is None else final - self.n_out
        if give <= 0 and final is None:
            return np.zeros((self.ch, 0), np.float32)
        y = np.concatenate(self.pending, 1) if self.pending else np.zeros((self.ch, 0), np.float32)
        if final is not None and y.shape[1] < give:  # the flush came up short: the signal is zero there
            y = np.concatenate([y, np.zeros((self.ch, give - y.shape[1]), np.float32)], 1)
        out, rest = y[:, :give], y[:, give:]
        self.pending = [rest] if final is None and rest.shape[1] else []
        self.n_out += out.shape[1]
        return np.clip(out, -1, 1)

    def push(self, block) -> np.ndarray:
        block = np.asarray(block, np.float32)
        if self.same:
            self.n_in += block.shape[1]
            self.n_out += block.shape[1]
            return block
        return self._take(self._feed(block), None)

    def finish(self) -> np.ndarray:
        if self.same:
            return np.zeros((self.ch, 0), np.float32)
        n = self.n_in
        arrays = self._feed(np.zeros((self.ch, self.pad), np.float32))
        arrays += [f.to_ndarray().reshape(-1, self.ch).T for f in self.res.resample(None)]
        self.n_in = n
        return self._take(arrays, resampled_length(n, self.sr, self.rate))


def resample(audio: Audio, rate: int) -> Audio:
    """``audio`` at ``rate`` Hz, by libswresample through PyAV's ``AudioResampler``
    (:data:`RESAMPLER_OPTIONS`: a 64-tap Kaiser-windowed sinc, float32 throughout).

    The output has exactly :func:`resampled_length` samples, its first sample at the time
    of the input's first (the filter's delay is compensated by libswresample).  The signal
    is taken as zero beyond its end: zeros are fed after it (enough to cover the filter),
    the resampler is flushed and what it gives beyond the exact length is trimmed (on its
    own the flush can come up short: a few samples for a long input, all of them for one
    shorter than the filter).  The output is clipped to [-1, 1] (a sinc overshoots on
    full-scale steps).  The same ``rate`` returns ``audio`` itself.  (:class:`Resampler`
    does the same block by block.)"""
    audio = from_user(audio, limit=MAX_SAMPLES)  # what was read, at any limit
    rate = check_rate(rate, "the target rate")
    if rate == audio.sample_rate:
        return audio
    r = Resampler(audio.sample_rate, rate, audio.channels)
    out = np.concatenate([r.push(audio.samples), r.finish()], 1)
    return Audio(out, rate, audio.bit_depth)


# ----------------------------------------------------------------------------- the codec's side
def checked_payload(model, c, limit=None):
    """The payload of container ``c`` for audio ``model``, checked before any network runs: its
    header must be the model's and fit the stream's descriptor (length at the model's rate,
    channels), the length at the model's rate must be within the sample limit too, and the
    section table must hold each chunk's sections in order with the random-access flag on
    its first (counted arithmetically: no list is sized by a header field)."""
    from codec.container import ContainerError
    from codec.models.payload import FLAG_KEY, PayloadError

    p = c.payload
    try:
        n, ch, _, hop, _ = model.parse_header(p.header)
    except PayloadError as exc:
        raise ContainerError(f"corrupt stream: {exc}") from None
    want = resampled_length(c.media.samples, c.media.sample_rate, model.sample_rate)
    if n != want or ch != c.media.channels:
        raise ContainerError(f"the stream's model header ({n} samples, {ch} channels at {model.sample_rate} Hz) "
                             f"does not fit its {describe(c.media)} (corrupt file)")
    check_length(n, limit=limit, what=f"the stream's audio at the model's {model.sample_rate} Hz",
                 rate=model.sample_rate)
    kinds = tuple(model.section_kinds)
    chunks = -(-n // hop)
    if len(p.sections) != len(kinds) * chunks:
        raise ContainerError(f"the stream has {len(p.sections)} sections; its {describe(c.media)} in chunks of "
                             f"{hop} samples needs {chunks} chunks of {len(kinds)} (corrupt file)")
    for i, s in enumerate(p.sections):
        k, j = divmod(i, len(kinds))
        if s.index != k or s.kind != kinds[j] or s.flags != (FLAG_KEY if j == 0 else 0):
            raise ContainerError(f"section {i} is {s.kind} of chunk {s.index} (flags {s.flags}); chunk {k} "
                                 f"needs {', '.join(kinds)} in order, the first one flagged (corrupt file)")
    return p


def check_work(info: AudioInfo, limit=None) -> None:
    """Refuse a stream whose audio is over the sample limit, or at a rate no encoder writes
    (below :data:`MIN_SAMPLE_RATE`), before any network runs."""
    check_rate(info.sample_rate, "the stream's sample rate")
    check_length(info.samples, limit=limit, what="the stream's audio", rate=info.sample_rate)
