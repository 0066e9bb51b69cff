"""The audio medium (codec.media.audio, codec.media.audio_metrics): files in and out through
PyAV, user objects, resampling, limits, bad input, metrics against hand-computed values.

Synthetic signals only (written to tmp files with PyAV), except one test that reads a few
files of ../shared/data/audio when it is there."""
import math
import pathlib
import re
import struct
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from codec import media
from codec.cli import main as cli
from codec.container import MAX_CHANNELS, AudioInfo
from codec.errors import InputError, LimitError
from codec.media import audio
from codec.media import audio_metrics as am
from codec.media.audio import Audio

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "audio"
RATES = (16000, 22050, 44100, 48000)


# --------------------------------------------------------------------------- helpers
def _layout(ch):
    return {1: "mono", 2: "stereo"}.get(ch, f"{ch} channels")


def _pyav_write(path, x, rate, codec, fmt=None, sample_fmt="s16"):
    """Encode int16 ``x`` ``[channels, n]`` with PyAV (``sample_fmt`` of the frames we give)."""
    ch = x.shape[0]
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=rate, layout=_layout(ch))
        formats = [f.name for f in s.codec_context.codec.audio_formats or ()]
        for want in (sample_fmt, av.AudioFormat(sample_fmt).planar.name):
            if want in formats:  # else the encoder's first format, which may have fewer bits
                s.format = want
                break
        for pos in range(0, x.shape[1], 4096):
            block = np.ascontiguousarray(x[:, pos:pos + 4096].T).reshape(1, -1)
            f = av.AudioFrame.from_ndarray(block, format=sample_fmt, layout=_layout(ch))
            f.sample_rate, f.pts, f.time_base = rate, pos, Fraction(1, rate)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return path


def _wav_header(rate, ch, bits, nbytes):
    ba = ch * bits // 8
    fmt = struct.pack("<HHIIHH", 1, ch, rate, rate * ba, ba, bits)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + nbytes) + b"WAVE" + b"fmt " +
            struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", nbytes))


def _sine(rate, n, ch=1, freq=440.0, amp=0.5):
    t = np.arange(n) / rate
    return np.stack([amp * np.sin(2 * np.pi * freq * (c + 1) * t + c) for c in range(ch)]).astype(np.float32)


def _int16(ch, n, seed=0):
    return np.random.default_rng(seed).integers(-32768, 32768, (ch, n)).astype(np.int16)


def _has_encoder(name):
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:
        return False


def _one_line_error(exc_info, path=None):
    text = str(exc_info.value)
    assert "\n" not in text and text
    if path is not None:
        assert str(path) in text
    return text


# --------------------------------------------------------------------------- files: round trips
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("ch", [1, 2])
@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_round_trip_is_exact_for_16_bit_content(tmp_path, rate, ch, ext):
    n = 12_345
    a = audio.from_user(_int16(ch, n, seed=rate + ch), sample_rate=rate)
    path = tmp_path / f"x.{ext}"
    audio.write(path, a)
    b = audio.read(path)
    assert (b.sample_rate, b.channels, b.length, b.bit_depth) == (rate, ch, n, 16)
    assert b.samples.dtype == np.float32 and b.samples.shape == (ch, n)
    assert np.array_equal(b.samples, a.samples)
    assert audio.probe(path) == b.info == AudioInfo(rate, ch, n, 16)
    assert path.read_bytes() == audio.encode_file(a, ext)


def test_float_content_round_trips_within_half_a_step(tmp_path):
    a = Audio(_sine(44100, 5000, ch=2, amp=0.9), 44100)
    for ext in ("wav", "flac"):
        b = audio.read(audio.write(tmp_path / f"f.{ext}", a) or tmp_path / f"f.{ext}")
        assert b.samples.shape == a.samples.shape
        assert np.abs(b.samples - a.samples).max() <= 0.5 / 32768 + 1e-9
    one = Audio(np.array([[1.0, -1.0, 0.0]], np.float32), 8000)  # +1.0 clips to 32767
    assert np.array_equal(audio.to_int16(one.samples), [[32767, -32768, 0]])


def test_write_is_atomic_and_refuses_what_it_should(tmp_path):
    a = Audio(_sine(16000, 1000), 16000)
    p = tmp_path / "a.wav"
    audio.write(p, a)
    with pytest.raises(InputError, match="exists"):
        audio.write(p, a)
    audio.write(p, Audio(_sine(16000, 10), 16000), force=True)
    assert audio.read(p).length == 10
    with pytest.raises(InputError, match="wav or .flac"):
        audio.write(tmp_path / "a.mp3", a)
    audio.write(tmp_path / "raw.bin", a, format="flac")
    assert audio.read(tmp_path / "raw.bin").length == 1000
    with pytest.raises(InputError, match="not 'ogg'"):
        audio.write(tmp_path / "b.wav", a, format="ogg")
    bad = Audio(np.array([[0.0, np.nan]], np.float32), 16000)  # refused before anything is written
    with pytest.raises(InputError, match="finite"):
        audio.write(tmp_path / "nan.wav", bad)
    with pytest.raises(InputError, match="takes a codec.media.audio.Audio"):
        audio.write(tmp_path / "arr.wav", np.zeros(10, np.float32))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.wav", "raw.bin"]


@pytest.mark.parametrize("codec_name, fmt, ext, rate", [("libmp3lame", "mp3", "mp3", 44100),
                                                        ("libopus", "ogg", "opus", 48000),
                                                        ("aac", "ipod", "m4a", 44100)])
def test_lossy_files_decode(tmp_path, codec_name, fmt, ext, rate):
    if not _has_encoder(codec_name):
        pytest.skip(f"PyAV's FFmpeg has no {codec_name} encoder")
    n = rate  # one second
    x = _sine(rate, n, ch=2, amp=0.4)
    path = _pyav_write(tmp_path / f"s.{ext}", audio.to_int16(x), rate, codec_name, fmt)
    b = audio.read(path)
    assert (b.sample_rate, b.channels, b.bit_depth) == (rate, 2, 16)
    assert abs(b.length - n) <= 2048  # the codec's padding (AAC keeps its last frame)
    assert -1 <= b.samples.min() and b.samples.max() <= 1
    m = min(n, b.length)
    ref, est = Audio(x[:, :m], rate), Audio(b.samples[:, :m].copy(), rate)
    assert am.snr(ref, est) > 10  # aligned: the decoders drop the priming samples
    assert audio.probe(path).sample_rate == rate


def test_opus_decodes_at_48_khz_and_vorbis_if_it_can_be_made(tmp_path):
    if _has_encoder("libopus"):
        p = _pyav_write(tmp_path / "s.opus", audio.to_int16(_sine(16000, 16000)), 16000, "libopus", "ogg")
        b = audio.read(p)
        assert b.sample_rate == 48000 and abs(b.length - 48000) <= 1000
    try:
        p = tmp_path / "v.ogg"
        with av.open(str(p), "w", format="ogg") as out:
            s = out.add_stream("vorbis", rate=44100, layout="stereo")
            s.codec_context.options = {"strict": "experimental"}
            x = _sine(44100, 44100, ch=2, amp=0.3)
            f = av.AudioFrame.from_ndarray(x, format="fltp", layout="stereo")
            f.sample_rate, f.pts = 44100, 0
            for pk in list(s.encode(f)) + list(s.encode(None)):
                out.mux(pk)
    except Exception as exc:  # the native encoder is experimental
        pytest.skip(f"no Vorbis encoder usable here ({exc})")
    b = audio.read(p)
    assert (b.sample_rate, b.channels) == (44100, 2) and abs(b.length - 44100) <= 2048


def test_the_audio_stream_of_a_video_file_is_read(tmp_path):
    p = tmp_path / "clip.mp4"
    with av.open(str(p), "w") as out:
        v = out.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        s = out.add_stream("aac", rate=48000, layout="mono")
        for i in range(3):
            for pk in v.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * i, np.uint8), format="rgb24")):
                out.mux(pk)
        f = av.AudioFrame.from_ndarray(_sine(48000, 14400), format="fltp", layout="mono")
        f.sample_rate, f.pts = 48000, 0
        for pk in list(s.encode(f)) + list(s.encode(None)) + list(v.encode(None)):
            out.mux(pk)
    b = audio.read(p)
    assert (b.sample_rate, b.channels) == (48000, 1) and abs(b.length - 14400) <= 2048


def test_bit_depth_of_the_source_is_kept(tmp_path):
    x32 = (_int16(2, 3000).astype(np.int32) << 16) | (np.arange(3000, dtype=np.int32) & 0xff) << 8
    assert audio.read(_pyav_write(tmp_path / "a.wav", x32, 44100, "pcm_s24le", sample_fmt="s32")).bit_depth == 24
    f24 = _pyav_write(tmp_path / "a.flac", x32, 44100, "flac", sample_fmt="s32")
    b = audio.read(f24)
    assert b.bit_depth == 24 and audio.probe(f24).bit_depth == 24
    assert np.array_equal(b.samples, x32.astype(np.float32) / 2 ** 31)
    assert audio.read(_pyav_write(tmp_path / "b.wav", x32, 44100, "pcm_s32le", sample_fmt="s32")).bit_depth == 32
    fl = (x32 / 2 ** 31).astype(np.float32)
    assert audio.read(_pyav_write(tmp_path / "f.wav", fl, 44100, "pcm_f32le", sample_fmt="flt")).bit_depth == 32
    assert audio.read(_pyav_write(tmp_path / "c.wav", _int16(1, 100), 8000, "pcm_s16le")).bit_depth == 16
    if _has_encoder("alac"):  # the depth is in the ALAC magic cookie
        m = audio.read(_pyav_write(tmp_path / "a.m4a", x32, 44100, "alac", "ipod", sample_fmt="s32"))
        assert m.bit_depth == 24 and np.array_equal(m.samples, x32.astype(np.float32) / 2 ** 31)


def test_many_channels_decode_and_resample(tmp_path):
    """PyAV cannot read planar frames of more than 8 channels: they are interleaved first."""
    x = _int16(12, 4800)
    if _has_encoder("wavpack"):  # decodes to planar s16p
        b = audio.read(_pyav_write(tmp_path / "m.wv", x, 48000, "wavpack", "wv"))
        assert b.channels == 12 and np.array_equal(b.samples, x / np.float32(32768))
    w = _pyav_write(tmp_path / "m.wav", _int16(MAX_CHANNELS, 100), 8000, "pcm_s16le")
    assert audio.read(w).channels == MAX_CHANNELS
    for ch in (3, 12, MAX_CHANNELS):
        y = audio.resample(Audio(np.repeat(_sine(16000, 800), ch, axis=0), 16000), 48000)
        assert y.samples.shape == (ch, 2400) and np.allclose(y.samples, y.samples[:1], atol=1e-6)


# --------------------------------------------------------------------------- files: bad input
def test_every_bad_file_is_one_input_error(tmp_path):
    cases = {}
    cases["missing.wav"] = None
    (tmp_path / "folder.wav").mkdir()
    cases["folder.wav"] = "directory"
    (tmp_path / "empty-file.flac").write_bytes(b"")
    cases["empty-file.flac"] = "decode|no audio samples"
    (tmp_path / "junk.mp3").write_bytes(np.random.default_rng(0).bytes(5000))
    cases["junk.mp3"] = "decode"
    (tmp_path / "text.wav").write_text("not audio at all\n" * 20)
    cases["text.wav"] = "decode"
    good = audio.encode_file(Audio(_sine(44100, 20000), 44100), "flac")
    (tmp_path / "corrupt.flac").write_bytes(good[:len(good) // 3] + bytes(len(good) // 3) + good[-len(good) // 3:])
    cases["corrupt.flac"] = "decode"
    (tmp_path / "zero-length.wav").write_bytes(_wav_header(8000, 1, 16, 0))
    cases["zero-length.wav"] = "no audio samples"
    (tmp_path / "zero-hz.wav").write_bytes(_wav_header(0, 1, 16, 200) + bytes(200))
    cases["zero-hz.wav"] = "0 Hz"
    _pyav_write(tmp_path / "ten-mhz.wav", _int16(1, 100), 10_000_000, "pcm_s16le")
    cases["ten-mhz.wav"] = "10000000 Hz"
    _pyav_write(tmp_path / "c65.wav", _int16(MAX_CHANNELS + 1, 50), 8000, "pcm_s16le")
    cases["c65.wav"] = "65 channels"
    with av.open(str(tmp_path / "video-only.mp4"), "w") as out:
        v = out.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        for pk in list(v.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24"))) + \
                list(v.encode(None)):
            out.mux(pk)
    cases["video-only.mp4"] = r"no audio stream \(only video\)"
    for name, what in cases.items():
        path = tmp_path / name
        for fn in (audio.read, audio.probe):
            with pytest.raises(InputError) as e:
                fn(path)
            text = _one_line_error(e, path)
            if what:
                assert re.search(what, text), (name, text)


def test_cli_codes_audio_and_refuses_bad_audio_in_one_line(tmp_path, capsys):
    src = tmp_path / "x.flac"
    audio.write(src, Audio(_sine(44100, 4410, ch=2), 44100))
    assert media.get("audio") is audio and media.medium_of(src) == "audio"
    assert cli(["encode", str(src), "-o", str(tmp_path / "x.nmc"), "-q"]) == 0
    capsys.readouterr()
    (tmp_path / "bad.flac").write_bytes(_wav_header(8000, 65, 16, 65 * 2 * 10) + bytes(65 * 20))
    assert cli(["encode", str(tmp_path / "bad.flac"), "-o", str(tmp_path / "y.nmc")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1  # whichever error comes first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.flac", "x.flac", "x.nmc"]


# --------------------------------------------------------------------------- the sample limit
def test_limit_from_the_header_refuses_before_decoding(tmp_path, monkeypatch):
    n = 8000 * 600  # ten minutes at 8 kHz
    p = _pyav_write(tmp_path / "long.wav", np.zeros((1, n), np.int16), 8000, "pcm_s16le")
    decoded = []
    real = audio._frame_samples
    monkeypatch.setattr(audio, "_frame_samples", lambda f: decoded.append(f.samples) or real(f))
    for fn in (audio.read, audio.probe):
        with pytest.raises(LimitError, match="10 min 0.0 s long") as e:
            fn(p, limit=8000)
        _one_line_error(e, p)
    assert decoded == []
    monkeypatch.setenv(audio.MAX_SAMPLES_ENV, "8000")
    with pytest.raises(LimitError):
        audio.read(p)
    for bad in ("lots", "inf", "1e400", "nan", "0"):
        monkeypatch.setenv(audio.MAX_SAMPLES_ENV, bad)
        with pytest.raises(InputError, match="CODEC_MAX_SAMPLES"):
            audio.read(p)
    monkeypatch.delenv(audio.MAX_SAMPLES_ENV)
    for bad in (0, -5, float("inf"), float("nan"), "many", True):
        with pytest.raises(InputError, match="sample limit"):
            audio.read(p, limit=bad)
    assert audio.max_samples(np.int64(5)) == 5 and audio.max_samples(7.0) == 7
    assert audio.max_samples() == audio.DEFAULT_MAX_SAMPLES == 3 * 3600 * 48000


def test_limit_is_enforced_while_decoding(tmp_path, monkeypatch):
    """A file whose container states no duration: decoding stops as soon as the count
    passes the limit (measured: the samples decoded, against the file's)."""
    n = 8000 * 600
    p = _pyav_write(tmp_path / "long.flac", np.zeros((2, n), np.int16), 8000, "flac")
    monkeypatch.setattr(audio, "_estimate_samples", lambda container, stream: None)
    decoded = []
    real = audio._frame_samples
    monkeypatch.setattr(audio, "_frame_samples", lambda f: decoded.append(f.samples) or real(f))
    with pytest.raises(LimitError, match="stopped decoding") as e:
        audio.read(p, limit=20_000)
    _one_line_error(e, p)
    assert 20_000 < sum(decoded) <= 20_000 + max(decoded) and sum(decoded) < n / 100
    with pytest.raises(LimitError, match="stopped decoding"):
        audio.probe(p, limit=20_000)
    monkeypatch.undo()
    # at the limit: read; one over: refused while decoding (the header check allows 1 %)
    q = _pyav_write(tmp_path / "short.wav", _int16(1, 10_001), 8000, "pcm_s16le")
    assert audio.read(q, limit=10_001).length == 10_001
    with pytest.raises(LimitError, match="stopped decoding"):
        audio.read(q, limit=10_000)
    with pytest.raises(LimitError, match="10001 samples"):
        audio.from_user(np.zeros(10_001, np.float32), 8000, limit=10_000)
    with pytest.raises(LimitError):
        audio.check_work(AudioInfo(8000, 1, 10_001), limit=10_000)


# --------------------------------------------------------------------------- user objects
def test_from_user_accepts_arrays_and_tensors():
    x = _sine(22050, 1000, ch=2)
    a = audio.from_user(x, sample_rate=22050)
    assert a.samples is x and a.info == AudioInfo(22050, 2, 1000, 16) and a.duration == 1000 / 22050
    assert audio.from_user(x[0], 22050).samples.shape == (1, 1000)
    assert audio.from_user(x.astype(np.float64), 22050).samples.dtype == np.float32
    i16 = np.array([[-32768, 0, 16384, 32767]], np.int16)
    assert np.array_equal(audio.from_user(i16, 8000).samples, i16 / np.float32(32768))
    assert audio.from_user(i16, 8000).bit_depth == 16
    i32 = np.array([-2 ** 31, 2 ** 30], np.int32)
    b = audio.from_user(i32, 8000)
    assert np.array_equal(b.samples, [[-1.0, 0.5]]) and b.bit_depth == 32
    for t in (torch.from_numpy(x), torch.from_numpy(x).half(), torch.from_numpy(x).bfloat16(),
              torch.from_numpy(x).requires_grad_()):
        c = audio.from_user(t, sample_rate=np.int64(22050))
        assert c.samples.shape == (2, 1000) and c.samples.dtype == np.float32 and c.sample_rate == 22050
    assert audio.from_user(a) is a and audio.from_user(a, 22050) is a
    assert audio.from_user(x, 44100.0).sample_rate == 44100
    out = audio.to_user(a, "torch")
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (2, 1000)
    assert audio.to_user(a) is a and audio.to_user(a, "numpy") is x
    assert a.tensor().shape == (1, 2, 1000)
    with pytest.raises(InputError, match="output must be"):
        audio.to_user(a, "pil")


@pytest.mark.parametrize("obj, rate, match", [
    (np.array([0.0, np.nan], np.float32), 8000, "finite"),
    (np.array([[0.0, np.inf]]), 8000, "finite"),
    (torch.tensor([0.0, -float("inf")]), 8000, "finite"),
    (np.zeros(0, np.float32), 8000, "empty"),
    (np.zeros((2, 0), np.float32), 8000, "empty"),
    (np.zeros((0, 5), np.float32), 8000, "no channels"),
    (np.zeros((1, 2, 10), np.float32), 8000, r"\[n\] or \[channels, n\]"),
    (np.float32(0.5), 8000, r"\[n\] or \[channels, n\]"),
    (np.zeros((65, 100), np.float32), 8000, "65 channels"),
    (np.zeros((4800, 2), np.float32), 8000, "transposed"),
    (np.zeros(10, np.float32), None, "needs its sample_rate"),
    (np.zeros(10, np.float32), 0, "0 Hz"),
    (np.zeros(10, np.float32), -44100, "-44100 Hz"),
    (np.zeros(10, np.float32), 10_000_000, "10000000 Hz"),
    (np.zeros(10, np.float32), 44100.5, "whole number"),
    (np.zeros(10, np.float32), "44100", "whole number"),
    (np.zeros(10, np.float32), True, "whole number"),
    (np.zeros(10, np.float32), float("nan"), "whole number"),
    (np.zeros(10, np.uint8), 8000, "not uint8"),
    (np.zeros(10, np.int64), 8000, "not int64"),
    (np.zeros(10, bool), 8000, "not bool"),
    (np.zeros(10, np.complex64), 8000, "not complex64"),
    (torch.zeros(10, dtype=torch.int64), 8000, "not torch.int64"),
    (torch.zeros(10, dtype=torch.complex64), 8000, "dense real tensor"),
    (np.array([0.5, 1.5], np.float32), 8000, r"\[-1, 1\]"),
    ([0.1, 0.2], 8000, "not a list"),
    ("song.wav", 8000, "read it first"),
])
def test_from_user_refuses_with_one_line_naming_the_input(obj, rate, match):
    with pytest.raises(InputError, match=match) as e:
        audio.from_user(obj, sample_rate=rate)
    text = _one_line_error(e)
    if "Hz" in match or "whole number" in match:  # the rate is named
        assert repr(rate) in text or str(rate) in text
    elif hasattr(obj, "shape"):  # the array is named: its shape and dtype
        assert str(tuple(obj.shape)) in text and str(obj.dtype) in text


def test_audio_objects_are_checked_too():
    a = Audio(_sine(8000, 100), 8000)
    with pytest.raises(InputError, match="resample"):
        audio.from_user(a, sample_rate=16000)
    with pytest.raises(InputError, match="finite"):
        audio.from_user(Audio(np.full((1, 3), np.nan, np.float32), 8000))
    with pytest.raises(InputError, match="0 Hz"):
        audio.from_user(Audio(a.samples, 0))
    assert audio.from_user(Audio(a.samples.astype(np.float64), 8000)).samples.dtype == np.float32
    assert audio.from_user(Audio(a.samples, 8000, bit_depth=20)).bit_depth == 24
    assert audio.from_user(Audio(a.samples, 8000, bit_depth=8)).bit_depth == 16
    with pytest.raises(InputError, match="bit depth"):
        audio.from_user(Audio(a.samples, 8000, bit_depth="24"))


# --------------------------------------------------------------------------- resampling
@pytest.mark.parametrize("n", [1, 2, 7, 30, 441, 10_007, 44_101])
def test_resampled_lengths_are_exact(n):
    for sr, rate in [(16000, 44100), (44100, 22050), (48000, 16000), (22050, 48000), (44100, 48000),
                     (48000, 44100), (8000, 768000)]:
        y = audio.resample(Audio(_sine(sr, n, amp=0.2), sr), rate)
        want = audio.resampled_length(n, sr, rate)
        assert y.length == want and y.sample_rate == rate and y.samples.dtype == np.float32
        assert want == math.floor(n * rate / sr + 0.5)
    assert audio.resampled_length(44_101, 44100, 22050) == 22051  # a half rounds up


def test_resampling_is_accurate_and_aligned():
    for sr, rate in [(44100, 48000), (48000, 16000), (16000, 44100), (22050, 44100)]:
        x = Audio(_sine(sr, sr // 2, ch=2, freq=300.0, amp=0.5), sr)
        y = audio.resample(x, rate)
        ideal = _sine(rate, y.length, ch=2, freq=300.0, amp=0.5)
        mid = slice(y.length // 10, -y.length // 10)
        assert np.abs(y.samples[:, mid] - ideal[:, mid]).max() < 1e-4, (sr, rate)
        back = audio.resample(y, sr)
        assert back.length == x.length and am.snr(Audio(x.samples[:, mid], sr), Audio(back.samples[:, mid], sr)) > 80
    # above the new Nyquist frequency: removed (the 64-tap filter: about -95 dB an octave up)
    hi = audio.resample(Audio(_sine(44100, 44100, freq=12000.0), 44100), 16000)
    assert np.sqrt(np.mean(hi.samples[:, 1000:-1000] ** 2)) < 1e-4
    a = Audio(_sine(8000, 10), 8000)
    assert audio.resample(a, 8000) is a
    with pytest.raises(InputError, match="target rate"):
        audio.resample(a, 0)


# --------------------------------------------------------------------------- rate, describe
def test_rate_and_describe():
    info = AudioInfo(44100, 2, 44100 * 10)
    assert audio.rate(20_000, info) == 16.0  # 160 kbit in 10 s
    assert audio.RATE_UNIT == "kbps" and audio.NAME == "audio"
    assert audio.describe(info) == "10.00 s stereo 44.1 kHz clip"
    assert audio.describe(AudioInfo(16000, 1, 16000 * 125)) == "2 min 5.0 s mono 16 kHz clip"
    assert audio.describe(AudioInfo(48000, 6, 48000 * 3723)) == "1 h 2 min 3 s 6-channel 48 kHz clip"


# --------------------------------------------------------------------------- metrics
def test_snr_of_a_known_noise_level():
    sr, n = 16000, 16000
    ref = Audio(_sine(sr, n, freq=400.0, amp=0.5), sr)  # whole periods: mean power 0.125
    for c in (1e-3, 1e-2, 0.1):
        est = Audio(ref.samples + np.float32(c), sr)
        assert am.snr(ref, est) == pytest.approx(10 * math.log10(0.125 / c ** 2), abs=1e-3)
    noise = np.random.default_rng(1).standard_normal((1, n)).astype(np.float32) * 0.01
    want = 10 * math.log10(np.sum(ref.samples.astype(np.float64) ** 2) / np.sum(noise.astype(np.float64) ** 2))
    assert am.snr(ref, Audio(ref.samples + noise, sr)) == pytest.approx(want, abs=1e-3)
    assert am.snr(ref, ref) == am.DB_MAX
    silent = Audio(np.zeros((1, n), np.float32), sr)
    assert am.snr(silent, ref) == -am.DB_MAX and am.snr(silent, silent) == am.DB_MAX


def test_si_sdr_is_scale_and_offset_invariant():
    sr, n = 16000, 16000
    t = np.arange(n) / sr
    ref = Audio(_sine(sr, n, freq=400.0, amp=0.5), sr)
    # an orthogonal error (cos against sin, whole periods) of relative amplitude 0.1: 20 dB
    est = Audio((ref.samples[0] + 0.05 * np.cos(2 * np.pi * 400 * t)).astype(np.float32)[None], sr)
    assert am.si_sdr(ref, est) == pytest.approx(20.0, abs=1e-4)
    for g in (0.01, 0.3, 1.7):
        assert am.si_sdr(ref, Audio(est.samples * np.float32(g), sr)) == pytest.approx(20.0, abs=1e-4)
    assert am.si_sdr(ref, Audio(est.samples * np.float32(0.5) + np.float32(0.2), sr)) == pytest.approx(20.0, abs=1e-4)
    assert am.snr(ref, Audio(est.samples * np.float32(0.5), sr)) < 7  # SNR is not invariant
    assert am.si_sdr(ref, Audio(ref.samples * np.float32(0.25), sr)) == am.DB_MAX
    # per channel, then the mean
    two = Audio(np.concatenate([ref.samples, ref.samples]), sr)
    mixed = Audio(np.concatenate([est.samples, ref.samples + np.float32(0.01) * np.cos(
        2 * np.pi * 400 * t).astype(np.float32)[None]]), sr)
    assert am.si_sdr(two, mixed) == pytest.approx((20.0 + 10 * math.log10(0.25 / 0.0001)) / 2, abs=1e-3)
    silent = Audio(np.full((1, n), 0.1, np.float32), sr)  # a constant is silent once zero-mean
    assert am.si_sdr(silent, silent) == am.DB_MAX and am.si_sdr(silent, ref) == -am.DB_MAX


def test_mel_distance_zero_exact_gain_and_growing_with_noise():
    sr, n = 16000, 16000
    rng = np.random.default_rng(2)
    ref = Audio((rng.standard_normal((2, n)) * 0.05).astype(np.float32), sr)
    assert am.mel_distance(ref, ref) == 0.0
    # a gain g moves every log10 mel value by log10(g)
    assert am.mel_distance(ref, Audio(ref.samples * np.float32(2), sr)) == pytest.approx(math.log10(2), abs=1e-6)
    assert am.mel_distance(ref, Audio(ref.samples * np.float32(10), sr)) == pytest.approx(1.0, abs=1e-6)
    d = [am.mel_distance(ref, Audio(ref.samples + (rng.standard_normal((2, n)) * s).astype(np.float32), sr))
         for s in (1e-4, 1e-3, 1e-2, 1e-1)]
    assert 0 < d[0] < d[1] < d[2] < d[3]
    short = Audio(_sine(sr, 100), sr)  # shorter than the largest FFT: centred, zero-padded frames
    assert am.mel_distance(short, short) == 0.0 and am.mel_distance(short, Audio(short.samples * 0, sr)) > 1
    fb = am.mel_filterbank(sr, 512, 32)
    assert fb.shape == (32, 257) and float(fb.max()) == pytest.approx(1.0, abs=0.05) and float(fb.min()) == 0.0


def test_metrics_refuse_mismatched_pairs():
    a = Audio(_sine(16000, 1000), 16000)
    for fn in (am.snr, am.si_sdr, am.mel_distance):
        with pytest.raises(InputError, match="16000 Hz and the estimate at 8000 Hz"):
            fn(a, Audio(a.samples, 8000))
        with pytest.raises(InputError, match="must match"):
            fn(a, Audio(a.samples[:, :999], 16000))
        with pytest.raises(InputError, match="must match"):
            fn(a, Audio(np.concatenate([a.samples, a.samples]), 16000))
        with pytest.raises(InputError, match="ndarray"):
            fn(a, a.samples)


# --------------------------------------------------------------------------- the shared data set
@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/audio is not here")
def test_reads_the_shared_audio_files():
    picks = {"flac": sorted(DATA.glob("speech/ljspeech/*.flac"))[:1] + sorted(DATA.glob("music/**/*.flac"))[:1],
             "wav": sorted(DATA.glob("speech/**/*.wav"))[:1], "ogg": sorted(DATA.glob("environment/*.ogg"))[:1]}
    for ext, paths in picks.items():
        for p in paths:
            a = audio.read(p)
            assert a.channels in (1, 2) and a.sample_rate in (16000, 22050, 44100, 48000) and a.length > 1000
            assert a.bit_depth in (16, 24) and np.isfinite(a.samples).all()
            if ext != "ogg":
                assert audio.probe(p) == a.info


def test_what_was_read_at_a_raised_limit_can_be_written_and_resampled(tmp_path, monkeypatch):
    monkeypatch.setenv(audio.MAX_SAMPLES_ENV, "100")
    a = Audio(_sine(8000, 1000), 8000)
    audio.write(tmp_path / "a.flac", a)
    assert audio.read(tmp_path / "a.flac", limit=1000).length == 1000
    assert audio.resample(a, 16000).length == 2000
    with pytest.raises(LimitError):
        audio.from_user(a)
