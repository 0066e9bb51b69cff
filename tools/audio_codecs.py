"""Audio media and classical audio codecs for the evaluator.

The medium (:class:`AudioMedia`) takes everything from the media layer: items are the
files of a folder that :func:`codec.media.medium_of` calls audio, read with
:func:`codec.media.audio.read` (float32 ``[channels, n]`` at the file's own rate); the
rate is :func:`codec.media.audio.rate` (kbit/s from the byte count and the item's
duration); the metrics are :mod:`codec.media.audio_metrics`' SI-SDR, SNR (dB, higher is
better, capped at 100 dB) and multi-resolution mel distance (lower is better), always at
the item's own sample rate and channel count, and the perceptual ones of
:mod:`codec.tools.audio_quality`: ViSQOL (audio mode, 48 kHz, mono mix) for every item,
wide-band PESQ and STOI (16 kHz, mono mix) for speech items only (a folder named
``speech`` in the item's path; ``None`` for other items, so their means over a data set
that is not all speech are ``None``: evaluate a speech folder on its own for them).

Codecs run in-process through PyAV (FFmpeg's libavcodec), no external binaries:
``opus`` (libopus encoder, FFmpeg's native Opus decoder), ``aac`` (FFmpeg's native AAC
encoder and decoder, AAC-LC), ``mp3`` (libmp3lame encoder, FFmpeg's mp3float decoder)
and ``flac`` (FFmpeg's FLAC, the lossless reference: its rate is the point; its metrics
are the caps, 100 dB and a mel distance of 0, for 16- and 24-bit PCM sources, while a
float or lossy source such as Ogg Vorbis is rounded to 16 bits first and shows that
rounding, e.g. 79 dB SI-SDR).

What the byte count covers (also written to each results JSON as ``bits_counted``): the
codec's elementary stream with the least framing a decoder needs, no container::

    zigzag-LEB128 pts of the first packet (minus the encoder delay, in samples)
    LEB128 length of the decoder configuration, the configuration (FFmpeg's extradata:
        OpusHead 19 B, AAC AudioSpecificConfig 2-5 B, FLAC STREAMINFO 34 B, none for MP3)
    the packets: each prefixed by its LEB128 length (Opus, AAC: 1-2 B a packet, FLAC: 2-3 B), or
        concatenated for MP3, whose frames delimit themselves (split by FFmpeg's parser)

That is less than any file format spends (Ogg pages, ADTS headers of 7 B a frame, an MP4
sample table of 4 B a frame, ID3/Xing/LAME tags), so the baselines are not handicapped
by framing.  The decoder is told the item's length and rate (as a container's duration
field would tell it), never its samples.

Sample rates and channels.  Each encoder codes at the item's rate when it supports it,
else at the lowest rate it supports above (the highest below when none is above): Opus
codes 8/12/16/24/48 kHz (44.1 kHz is resampled to 48 kHz first), AAC and MP3 code all
the usual rates; resampling is :func:`codec.media.audio.resample`.  The native Opus
decoder always decodes at 48 kHz.  A decoded signal at another rate than the item's is
resampled back with :func:`codec.media.audio.resample`.  Mono and stereo are coded as
such (MP3 stereo as LAME's joint stereo); the lossy codecs here take 1 or 2 channels,
FLAC up to 8.

Level.  LAME's presets scale the input (0.95 up to 160 kbit/s, 1 from 256; not settable
through FFmpeg), which would cap MP3's SNR near 26 dB and floor its mel distance at 0.022
for a level change nobody hears; :class:`MP3` feeds LAME the inverse gain (measured once
per setting on a probe tone), so its streams decode at the original level.

Alignment (the encoder delay: Opus' pre-skip, 312 samples at 48 kHz; AAC's priming, 1024
samples; LAME's 576 + the decoder's 529 samples).  FFmpeg's encoders stamp their
packets: the first packet's ``pts`` is minus the delay at the coding rate.  That pts
(the stream's first field) is given to the first packet the decoder gets, and the
decoder runs with ``pkt_timebase`` = 1/coding rate, so the pts of the first decoded
frame is the time of its first sample after whatever FFmpeg itself already dropped
(the Opus decoder drops the pre-skip and moves the pts on by it; AAC and MP3 drop
nothing).  The decoded samples, contiguous from there, are shifted by that time
(``round(pts * time_base * decoded rate)`` samples: dropped when negative, zeros in front
when positive), then cut to the item's length at the decoded rate
(:func:`codec.media.audio.resampled_length`), or zero-padded when the decoder gave less
(never seen: every encoder here flushes a padded last frame).  The codec's tail past
the end is dropped there, before any resampling back, so that the resampler sees the
signal as zero past its end on both sides.  After resampling back, the length is cut or
zero-padded to the item's exact length (the two rounded lengths can differ by one
sample).  No cross-correlation is used (a decoder may not look at the original); the
tests check with one that the decoded signals are aligned to the sample.  Decoded float
samples are clipped to [-1, 1] (what a player's 16-bit output, or
:func:`codec.media.audio.read` of a decoded file, gives).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from codec.errors import CodecError
from codec.media.audio import Audio
from codec.tools import audio_quality
from codec.tools.registry import Codec, Media, register_codec, register_media

_CHUNK = 1 << 15  # samples per frame given to an encoder (PyAV re-frames them to the codec's size)


# --------------------------------------------------------------------------- media
@dataclass(eq=False)
class AudioItem(Audio):
    """An item of a data set: its :class:`~codec.media.audio.Audio` and the path it was read
    from (which says whether it is speech: :func:`codec.tools.audio_quality.is_speech_path`)."""

    path: str | None = None

    @property
    def speech(self) -> bool:
        return audio_quality.is_speech_path(self.path)


class AudioMedia(Media):
    """Audio through the media layer (:mod:`codec.media.audio`, :mod:`codec.media.audio_metrics`):
    items are :class:`AudioItem` (an :class:`codec.media.audio.Audio` with its path), rates
    kbit/s from the byte count, metrics SI-SDR, SNR and the mel distance at the item's own
    rate and channel count, ViSQOL, and PESQ-WB and STOI for speech
    (:mod:`codec.tools.audio_quality`)."""

    name = "audio"
    rate_key = "kbps"  # = codec.media.audio.RATE_UNIT (a test checks it)
    rate_unit = "kbps"
    rate_label = "bitrate"
    rate_plot_max = 160.0  # the top of the lossy default grids; keeps FLAC's point off the plots
    #: what the encode/decode times cover (the results' meta.timing)
    timing_note = "resampling to the coding rate / decode incl. alignment and resampling back to the item's rate"
    metric_keys = ("si-sdr", "snr", "mel-distance", *audio_quality.METRICS)
    lower_is_better = ("mel-distance",)
    _metric_info = {
        "si-sdr": {"label": "SI-SDR", "unit": "dB",
                   "description": "scale-invariant SDR per channel (zero-mean), mean over channels, capped at "
                                  "100 dB; per-item dB averaged (codec.media.audio_metrics.si_sdr)"},
        "snr": {"label": "SNR", "unit": "dB",
                "description": "over all channels and samples, capped at 100 dB; per-item dB averaged "
                               "(codec.media.audio_metrics.snr)"},
        "mel-distance": {"label": "mel distance", "unit": "",
                         "description": "mean absolute log10-mel difference, FFT sizes 512/1024/2048, N/16 bands, "
                                        "hop N/4 (codec.media.audio_metrics.mel_distance)"},
        "visqol": {"label": "ViSQOL", "unit": "MOS"},
        "pesq-wb": {"label": "PESQ-WB", "unit": "MOS"},
        "stoi": {"label": "STOI", "unit": ""},
    }

    @property
    def metric_info(self) -> dict[str, dict[str, Any]]:
        """Labels and units, with the perceptual metrics' descriptions naming their package
        versions (and "not installed" where one is missing)."""
        desc = audio_quality.descriptions()
        return {k: {**v, "description": desc[k]} if k in desc else v for k, v in self._metric_info.items()}

    items_name = "audio files"

    @property
    def extensions(self):
        from codec.media import AUDIO_EXTENSIONS

        return tuple(sorted(AUDIO_EXTENSIONS))

    def accepts(self, path: Path) -> bool:
        from codec.media import medium_of

        return medium_of(path) == "audio"

    def load(self, path: Path) -> AudioItem:
        from codec.media import audio

        a = audio.read(path)
        return AudioItem(a.samples, a.sample_rate, a.bit_depth, path=str(path))

    def rate(self, nbytes: int, item) -> float:
        from codec.media import audio

        return audio.rate(nbytes, item.info)

    def score(self, ref, rec) -> dict[str, float | None]:
        from codec.media import audio_metrics as m
        from codec.media.audio import Audio

        if not isinstance(rec, Audio):
            raise CodecError(f"decoded audio is a {type(rec).__name__}, not codec.media.audio.Audio")
        if rec.sample_rate != ref.sample_rate or rec.samples.shape != ref.samples.shape:
            raise CodecError(f"decoded audio is {rec.samples.shape} at {rec.sample_rate} Hz, the original "
                             f"{ref.samples.shape} at {ref.sample_rate} Hz")
        return {"si-sdr": m.si_sdr(ref, rec), "snr": m.snr(ref, rec), "mel-distance": m.mel_distance(ref, rec),
                **audio_quality.score(ref, rec, speech=bool(getattr(ref, "speech", False)))}


AUDIO = register_media(AudioMedia())


# --------------------------------------------------------------------------- stream framing
def _uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise CodecError("truncated or corrupt stream (a length field runs past the end)")
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, pos


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(v: int) -> int:
    return v // 2 if v % 2 == 0 else -(v + 1) // 2


# --------------------------------------------------------------------------- frames
def _quiet_av() -> None:
    import av

    try:
        av.logging.set_level(av.logging.ERROR)
    except Exception:  # pragma: no cover - older PyAV
        pass


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")


def _to_frame(x: np.ndarray, fmt: str, layout: str, rate: int, pts: int):
    """float32 ``[channels, n]`` -> an ``av.AudioFrame`` of ``fmt`` (float formats as they are,
    integer ones rounded and clipped)."""
    import av

    from codec.media.audio import to_int16

    if fmt == "fltp":
        a = np.ascontiguousarray(x, dtype=np.float32)
    elif fmt == "flt":
        a = np.ascontiguousarray(x.T, dtype=np.float32).reshape(1, -1)
    elif fmt == "s16":
        a = np.ascontiguousarray(to_int16(x).T).reshape(1, -1)
    elif fmt == "s32":  # 24-bit samples in the top bits (FFmpeg's FLAC encoder codes s32 as 24 bits)
        q = np.clip(np.round(x.astype(np.float64) * 2 ** 23), -2 ** 23, 2 ** 23 - 1).astype(np.int32) << 8
        a = np.ascontiguousarray(q.T).reshape(1, -1)
    else:  # pragma: no cover - a codec class names one of the above
        raise ValueError(fmt)
    frame = av.AudioFrame.from_ndarray(a, format=fmt, layout=layout)
    frame.sample_rate, frame.pts, frame.time_base = rate, pts, Fraction(1, rate)
    return frame


_INT_SCALE = {np.dtype(np.int16): 2.0 ** -15, np.dtype(np.int32): 2.0 ** -31}


def _from_frame(frame) -> np.ndarray:
    """A decoded frame -> float32 ``[channels, n]``."""
    a = frame.to_ndarray()
    if not frame.format.is_planar:
        a = a.reshape(-1, frame.layout.nb_channels).T
    if a.dtype in _INT_SCALE:
        return a.astype(np.float32) * np.float32(_INT_SCALE[a.dtype])
    return a.astype(np.float32, copy=False)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """Cut ``y`` to ``n`` samples, or append zeros up to ``n``."""
    if y.shape[1] >= n:
        return y[:, :n]
    return np.concatenate([y, np.zeros((y.shape[0], n - y.shape[1]), y.dtype)], axis=1)


# --------------------------------------------------------------------------- PyAV codecs
#: (rate, channels, kbit/s, options) -> the gain LAME puts on its input (:meth:`MP3.lame_gain`)
_LAME_GAINS: dict[tuple, float] = {}

class _AudioCodec(Codec):
    """One FFmpeg encoder/decoder pair through PyAV (module docstring: framing, rates, alignment)."""

    media = "audio"
    encoder = ""
    decoder = ""
    sample_format = ""  # what the encoder is fed: fltp, flt, s16 or s32
    framed = True  # packets carry a length; False: self-delimiting frames split by FFmpeg's parser
    max_channels = 2
    quality_type = int
    quality_meaning = "target bitrate in kbit/s, all channels together"
    settings = ""
    decoded_rate_note = "decodes at the coding rate"

    def __init__(self) -> None:
        import av

        for name in (self.encoder, self.decoder):
            if name not in av.codecs_available:
                raise CodecError(f"{self.key}: PyAV {av.__version__} has no {name} codec")

    # ---- settings
    def bit_rate(self, quality) -> int | None:
        return int(quality) * 1000

    #: encoder options that do not depend on the quality (in :meth:`info`, so in the fingerprint)
    options: dict[str, str] = {}

    def quality_options(self, quality) -> dict[str, str]:
        """Encoder options that depend on the quality (beyond :meth:`bit_rate`)."""
        return {}

    def sample_format_for(self, item) -> str:
        return self.sample_format

    def input_samples(self, x, quality) -> np.ndarray:
        """The samples the encoder is fed, from ``x`` at the coding rate (default: as they are)."""
        return x.samples

    def coding_rate(self, rate: int) -> int:
        """The rate the encoder codes an item of ``rate`` Hz at (module docstring)."""
        import av

        rates = av.codec.Codec(self.encoder, "w").audio_rates
        if not rates or rate in rates:
            return int(rate)
        above = [r for r in rates if r > rate]
        return int(min(above) if above else max(rates))

    def _check(self, item) -> None:
        if item.channels > self.max_channels:
            raise CodecError(f"{self.key}: codes at most {self.max_channels} channels here, the item has "
                             f"{item.channels}")

    # ---- coding
    def encode(self, item, quality) -> bytes:
        import av

        from codec.media import audio

        _quiet_av()
        self._check(item)
        rate_c = self.coding_rate(item.sample_rate)
        x = item if rate_c == item.sample_rate else audio.resample(item, rate_c)
        layout = _layout(x.channels)
        fmt = self.sample_format_for(item)
        cc = av.CodecContext.create(self.encoder, "w")
        cc.sample_rate, cc.layout, cc.format = rate_c, layout, fmt
        cc.time_base = Fraction(1, rate_c)
        br = self.bit_rate(quality)
        if br:
            cc.bit_rate = br
        cc.options = {**self.options, **self.quality_options(quality)}
        cc.open()
        samples = self.input_samples(x, quality)
        packets = []
        for pos in range(0, x.length, _CHUNK):
            packets += cc.encode(_to_frame(samples[:, pos:pos + _CHUNK], fmt, layout, rate_c, pos))
        packets += cc.encode(None)
        packets = [p for p in packets if p.size]  # FLAC ends with an empty packet (a STREAMINFO update)
        if not packets or packets[0].pts is None:
            raise CodecError(f"{self.key}: the encoder gave {'no data' if not packets else 'no timestamps'}")
        p0 = packets[0]
        first = Fraction(p0.pts) * (p0.time_base or cc.time_base) * rate_c
        if first.denominator != 1:  # pragma: no cover - FFmpeg stamps audio packets in samples
            raise CodecError(f"{self.key}: first packet at {first} samples, not a whole number")
        extradata = bytes(cc.extradata or b"")
        out = bytearray(_uvarint(_zigzag(int(first))))
        out += _uvarint(len(extradata)) + extradata
        for p in packets:
            if self.framed:
                out += _uvarint(p.size)
            out += bytes(p)
        return bytes(out)

    def decode(self, data: bytes, item):
        import av

        from codec.media import audio

        _quiet_av()
        rate_c = self.coding_rate(item.sample_rate)
        v, pos = _read_uvarint(data, 0)
        first = _unzigzag(v)
        k, pos = _read_uvarint(data, pos)
        extradata, pos = data[pos:pos + k], pos + k
        dc = av.CodecContext.create(self.decoder, "r")
        if extradata:
            dc.extradata = extradata
        dc.options = {"pkt_timebase": f"1/{rate_c}"}
        if self.framed:
            packets = []
            while pos < len(data):
                k, pos = _read_uvarint(data, pos)
                if pos + k > len(data):
                    raise CodecError(f"{self.key}: truncated stream (a packet runs past the end)")
                packets.append(av.Packet(data[pos:pos + k]))
                pos += k
        else:
            packets = list(dc.parse(data[pos:])) + list(dc.parse(None))
        if not packets:
            raise CodecError(f"{self.key}: the stream holds no packets")
        packets[0].pts, packets[0].time_base = first, Fraction(1, rate_c)
        frames = []
        try:
            for p in packets:
                frames += dc.decode(p)
            frames += dc.decode(None)
        except av.error.FFmpegError as exc:
            raise CodecError(f"{self.key}: cannot decode the stream ({exc})") from None
        frames = [f for f in frames if f.samples]
        if not frames:
            raise CodecError(f"{self.key}: the decoder gave no samples")
        f0 = frames[0]
        rate_d = int(f0.sample_rate)
        if any(f.sample_rate != rate_d or f.layout.nb_channels != item.channels for f in frames):
            raise CodecError(f"{self.key}: decoded {frames[0].layout.nb_channels} channel(s) at {rate_d} Hz "
                             f"(changing midway or not the item's {item.channels})")
        if f0.pts is None:
            raise CodecError(f"{self.key}: the decoder gave no timestamp: cannot align the output")
        # the time of the first decoded sample, after what the decoder itself dropped (pre-skip)
        start = round(Fraction(f0.pts) * (f0.time_base or Fraction(1, rate_c)) * rate_d)
        y = np.concatenate([_from_frame(f) for f in frames], axis=1)
        if start < 0:
            y = y[:, -start:]
        elif start > 0:
            y = np.concatenate([np.zeros((y.shape[0], start), np.float32), y], axis=1)
        y = _fit(y, audio.resampled_length(item.length, item.sample_rate, rate_d))
        y = np.clip(y, -1, 1).astype(np.float32, copy=False)
        rec = audio.Audio(np.ascontiguousarray(y), rate_d, item.bit_depth)
        if rate_d != item.sample_rate:
            rec = audio.resample(rec, item.sample_rate)
            rec = audio.Audio(np.ascontiguousarray(_fit(rec.samples, item.length)), item.sample_rate,
                              item.bit_depth)
        return rec

    # ---- description
    def info(self) -> dict[str, Any]:
        import av

        lavc = ".".join(map(str, av.library_versions["libavcodec"]))
        return {
            "library": f"PyAV {av.__version__} (libavcodec {lavc}, libswresample "
                       f"{'.'.join(map(str, av.library_versions['libswresample']))}), encoder {self.encoder}, "
                       f"decoder {self.decoder}",
            "settings": self.settings,
            "encoder_options": dict(self.options),
            "sample_format": self.sample_format,
            "rates": f"codes at the item's rate if {self.encoder} takes it, else the next rate it takes above; "
                     f"{self.decoded_rate_note}; compared at the item's rate (codec.media.audio.resample back)",
            "channels": f"1..{self.max_channels}, coded as they are",
            "alignment": "encoder delay from the first packet's pts; decoder pkt_timebase set, first frame's pts "
                         "gives the shift; cut/zero-padded to the item's length",
            "quality": self.quality_meaning,
            "bits_counted": self.bits_counted,
        }

    bits_counted = ("elementary stream: first-packet pts (varint), decoder configuration (extradata) with its "
                    "length, packets each with a varint length; no container")


@register_codec("opus")
class Opus(_AudioCodec):
    display_name = "Opus (libopus)"
    encoder, decoder = "libopus", "opus"
    sample_format = "flt"
    settings = ("libopus VBR (vbr=on), complexity 10, application audio, 20 ms frames; 44.1/22.05/32 kHz "
                "items resampled to the next Opus rate (48/24/48 kHz) before encoding")
    decoded_rate_note = "FFmpeg's native Opus decoder decodes at 48 kHz"
    quality_range = (6, 510)
    default_qualities = (6, 8, 10, 12, 16, 20, 24, 32, 48, 64)
    options = {"vbr": "on", "compression_level": "10", "application": "audio", "frame_duration": "20"}


@register_codec("aac")
class AAC(_AudioCodec):
    display_name = "AAC (FFmpeg)"
    encoder, decoder = "aac", "aac"
    sample_format = "fltp"
    settings = "FFmpeg's native AAC encoder, AAC-LC, two-loop search (aac_coder=twoloop), its default cut-off"
    quality_range = (8, 512)
    default_qualities = (12, 16, 24, 32, 48, 64, 96, 128)
    options = {"aac_coder": "twoloop", "profile": "aac_low"}


@register_codec("mp3")
class MP3(_AudioCodec):
    display_name = "MP3 (LAME)"
    encoder, decoder = "libmp3lame", "mp3float"
    sample_format = "fltp"
    framed = False
    settings = ("LAME ABR (abr=1) at the target, algorithm quality 2 (-q 2), bit reservoir on, joint stereo; "
                "frame bitrates limited to MPEG's (32-320 kbit/s at 32-48 kHz, 8-160 below); input scaled by "
                "1 / LAME's preset gain (measured on a probe tone, rounded to 0.01) so that it decodes at unity gain")
    bits_counted = ("elementary stream: first-packet pts (varint), a zero length byte, the MPEG audio frames "
                    "concatenated (self-delimiting, split by FFmpeg's parser); no ID3/Xing/LAME tags")
    quality_range = (8, 320)
    default_qualities = (32, 40, 48, 64, 80, 96, 128, 160)  # valid MPEG-1 and MPEG-2 bitrates alike
    options = {"abr": "1", "compression_level": "2", "reservoir": "1", "joint_stereo": "1"}

    def input_samples(self, x, quality) -> np.ndarray:
        g = self.lame_gain(x.sample_rate, x.channels, quality)
        return x.samples if g == 1 else x.samples * np.float32(1 / g)

    def lame_gain(self, rate: int, channels: int, quality) -> float:
        """The gain LAME's ABR/CBR presets put on the input (``lame_set_scale``, which FFmpeg does not
        expose: 0.95 up to 160 kbit/s, 0.97 at 192, 0.98 at 224, 1 from 256 in LAME 3.100), so that
        the encoder can be fed the inverse and the stream decode at the original level; otherwise
        SNR would be capped near 26 dB and the mel distance floored at |log10 0.95| = 0.022.
        Measured once per (rate, channels, bitrate) and process on a probe (0.5 s of 440 Hz +
        1 kHz tones at 0.3), rounded to 0.01; 1 (no compensation) if it is not in 0.9..1."""
        from codec.media.audio import Audio

        key = (int(rate), int(channels), int(quality), tuple(sorted(self.options.items())))
        if key not in _LAME_GAINS:
            _LAME_GAINS[key] = 1.0  # the probe itself is encoded uncompensated
            t = np.arange(rate // 2) / rate
            tone = 0.15 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 1000 * t))
            probe = Audio(np.repeat(tone[None], channels, axis=0).astype(np.float32), int(rate))
            y = self.decode(self.encode(probe, quality), probe).samples.astype(np.float64)
            x = probe.samples.astype(np.float64)
            g = round(float((x * y).sum() / (x * x).sum()), 2)
            _LAME_GAINS[key] = g if 0.9 <= g <= 1.0 else 1.0
        return _LAME_GAINS[key]


@register_codec("flac")
class FLAC(_AudioCodec):
    display_name = "FLAC (lossless)"
    encoder, decoder = "flac", "flac"
    max_channels = 8
    quality_meaning = "FLAC compression level 0..12 (higher = smaller, slower)"
    quality_range = (0, 12)
    default_qualities = (8,)
    settings = ("FFmpeg's FLAC encoder, 16-bit samples for sources of up to 16 bits, 24-bit for deeper ones "
                "(lossless for 16- and 24-bit sources; float and 32-bit sources are rounded to 16 / 24 bits)")

    def bit_rate(self, quality) -> None:
        return None

    sample_format = "s16 (sources of up to 16 bits), s32 holding 24 bits (deeper sources)"

    def quality_options(self, quality) -> dict[str, str]:
        return {"compression_level": str(int(quality))}

    def sample_format_for(self, item) -> str:
        return "s16" if item.bit_depth <= 16 else "s32"
