"""Perceptual audio metrics of ``codec eval`` (codec.tools.audio_quality): ViSQOL for every
item, PESQ-WB and STOI for speech, through the audio medium's ``score``."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from codec.errors import CodecError
from codec.media import audio
from codec.tools import audio_quality as aq
from codec.tools.registry import get_media, make_codec

AUDIO = get_media("audio")  # through the registry: media register in their usual order (image first)

from codec.tools.audio_codecs import AudioItem  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio" / "speech" / "vctk" / "p225_003.wav"


def voiced(rate: int, channels: int = 1, seconds: float = 1.5, seed: int = 0) -> audio.Audio:
    """Speech-like: a harmonic chirp (f0 120 -> 220 Hz, another pitch per channel) under a
    3 Hz syllable envelope, with a little breath noise."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    out = []
    for c in range(channels):
        phase = 2 * np.pi * np.cumsum(120 + 100 * t / seconds + 35 * c) / rate
        env = 0.5 * (1 - np.cos(2 * np.pi * 3 * t))
        harmonics = sum(np.sin(k * phase + c) / k for k in range(1, 16) if k * 260 < 0.45 * rate)
        out.append(env * (harmonics + 0.02 * rng.standard_normal(n)))
    x = np.array(out)
    return audio.Audio((0.5 * x / np.abs(x).max()).astype(np.float32), rate)


def noisy(a: audio.Audio, level: float = 0.02, seed: int = 1) -> audio.Audio:
    e = level * np.random.default_rng(seed).standard_normal(a.samples.shape).astype(np.float32)
    return audio.Audio(np.clip(a.samples + e, -1, 1), a.sample_rate)


@pytest.mark.parametrize("rate,channels", [(16000, 1), (22050, 2), (44100, 2), (48000, 1)])
def test_identical_is_high_and_noise_is_lower(rate, channels):
    ref = voiced(rate, channels)
    same = aq.score(ref, ref, speech=True)
    assert same["visqol"] == pytest.approx(4.73, abs=0.01)  # the top of ViSQOL's audio-mode SVR
    assert same["pesq-wb"] == pytest.approx(4.64, abs=0.01)  # the top of P.862.2's mapping
    assert same["stoi"] == pytest.approx(1.0, abs=1e-6)
    worse = aq.score(ref, noisy(ref), speech=True)
    assert 1 <= worse["visqol"] < same["visqol"] - 0.5
    assert 1 <= worse["pesq-wb"] < same["pesq-wb"] - 1
    assert 0 < worse["stoi"] < same["stoi"] - 0.02
    again = aq.score(ref, noisy(ref), speech=True)  # deterministic (ViSQOL to its last few digits)
    assert again["pesq-wb"] == worse["pesq-wb"] and again["stoi"] == worse["stoi"]
    assert again["visqol"] == pytest.approx(worse["visqol"], rel=1e-12)


def test_coded_is_lower_and_rises_with_the_rate():
    ref = voiced(48000, 2, seed=4)
    opus, _ = make_codec("opus")
    low, high = (aq.score(ref, opus.decode(opus.encode(ref, kbps), ref), speech=True) for kbps in (8, 64))
    for k in aq.METRICS:
        assert low[k] < high[k], (k, low, high)
    assert high["visqol"] < 4.73 and low["pesq-wb"] < 3.5


def test_stereo_is_scored_on_the_mean_of_the_channels():
    mono = voiced(44100, 1, seed=2)
    deg = noisy(mono, 0.01)
    two = audio.Audio(np.repeat(mono.samples, 2, axis=0), mono.sample_rate)
    two_deg = audio.Audio(np.repeat(deg.samples, 2, axis=0), mono.sample_rate)
    a, b = aq.score(two, two_deg, speech=True), aq.score(mono, deg, speech=True)
    assert a["pesq-wb"] == b["pesq-wb"] and a["stoi"] == b["stoi"]
    assert a["visqol"] == pytest.approx(b["visqol"], rel=1e-12)  # ViSQOL: to its last few digits


def test_speech_metrics_only_for_speech_items(tmp_path):
    """Through the medium: an item in a folder named 'speech' gets all three metrics, any
    other item ViSQOL only (PESQ-WB and STOI None)."""
    a = voiced(16000, 1)
    for folder in ("speech/vctk", "music", "Speech"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        audio.write(tmp_path / folder / "x.wav", a)
    deg = noisy(audio.read(tmp_path / "music" / "x.wav"))
    for folder, speech in (("speech/vctk", True), ("music", False), ("Speech", True)):
        item = AUDIO.load(tmp_path / folder / "x.wav")
        assert isinstance(item, AudioItem) and isinstance(item, audio.Audio) and item.speech is speech
        s = AUDIO.score(item, deg)
        assert {"si-sdr", "snr", "mel-distance", "visqol", "pesq-wb", "stoi"} <= set(s)
        assert isinstance(s["visqol"], float)
        if speech:
            assert isinstance(s["pesq-wb"], float) and isinstance(s["stoi"], float)
        else:
            assert s["pesq-wb"] is None and s["stoi"] is None
    assert aq.score(a, deg, speech=False)["pesq-wb"] is None


def test_the_speech_rule(tmp_path):
    assert aq.is_speech_path("data/speech/vctk/p225_003.wav")
    assert aq.is_speech_path(tmp_path / "SPEECH" / "a.flac")
    assert not aq.is_speech_path(tmp_path / "music" / "speech.wav")  # the file's own name does not count
    assert not aq.is_speech_path(tmp_path / "speeches" / "a.wav")
    assert not aq.is_speech_path(None)
    (tmp_path / "speech").mkdir()
    (tmp_path / "mixed").mkdir()
    audio.write(tmp_path / "speech" / "a.wav", voiced(16000, 1, 0.3))
    (tmp_path / "mixed" / "a.wav").symlink_to(tmp_path / "speech" / "a.wav")
    assert aq.is_speech_path(tmp_path / "mixed" / "a.wav")  # a link to a speech file
    assert "speech" in AUDIO.axes()["metrics"]["pesq-wb"]["description"]


def test_undefined_cases_are_none():
    short = voiced(16000, 1, 0.5)
    s = aq.score(short, noisy(short), speech=True)
    assert s["visqol"] is None  # under ViSQOL's few patches (~1 s)
    assert isinstance(s["pesq-wb"], float)
    tiny = voiced(16000, 1, 0.2)
    assert aq.score(tiny, noisy(tiny), speech=True) == {"visqol": None, "pesq-wb": None, "stoi": None}
    ref = voiced(16000, 1)
    silent = audio.Audio(np.zeros_like(ref.samples), ref.sample_rate)
    assert aq.score(silent, noisy(silent), speech=True) == {"visqol": None, "pesq-wb": None, "stoi": None}
    s = aq.score(ref, silent, speech=True)  # a codec that decodes silence
    assert s["visqol"] is None and s["pesq-wb"] is None and s["stoi"] < 0.1


def test_a_missing_package_is_one_clear_error_or_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "pesq", None)  # as if not installed
    assert not aq.available("pesq-wb")
    a = voiced(16000, 1)
    with pytest.raises(aq.MetricUnavailable, match=r"needs the pesq package.*pip install pesq") as exc:
        aq.pesq_wb(a, a)
    assert "\n" not in str(exc.value) and isinstance(exc.value, CodecError)
    s = aq.score(a, noisy(a), speech=True)
    assert s["pesq-wb"] is None and isinstance(s["stoi"], float) and isinstance(s["visqol"], float)
    assert "NOT INSTALLED" in AUDIO.axes()["metrics"]["pesq-wb"]["description"]
    assert "NOT INSTALLED" not in AUDIO.axes()["metrics"]["stoi"]["description"]


def test_descriptions_name_package_mode_and_rate():
    m = AUDIO.axes()["metrics"]
    assert all(m[k]["higher_is_better"] for k in aq.METRICS)
    assert "visqol-python 3." in m["visqol"]["description"] and "audio mode" in m["visqol"]["description"]
    assert "48 kHz" in m["visqol"]["description"]
    assert "'wb'" in m["pesq-wb"]["description"] and "16 kHz" in m["pesq-wb"]["description"]
    assert "pystoi 0." in m["stoi"]["description"] and "10 kHz" in m["stoi"]["description"]


@pytest.mark.skipif(not REAL.exists(), reason=f"no {REAL}")
def test_a_real_speech_file():
    item = AUDIO.load(REAL)
    assert item.speech and item.sample_rate == 16000
    ref = AudioItem(item.samples[:, :4 * 16000], 16000, item.bit_depth, path=item.path)  # 4 s
    same = AUDIO.score(ref, audio.Audio(ref.samples.copy(), 16000))
    assert same["visqol"] > 4.7 and same["pesq-wb"] > 4.6 and same["stoi"] > 0.999
    opus, _ = make_codec("opus")
    s = AUDIO.score(ref, opus.decode(opus.encode(ref, 12), ref))
    assert 2.5 < s["visqol"] < 4.7 and 2.5 < s["pesq-wb"] < 4.5 and 0.85 < s["stoi"] < 0.999, s
