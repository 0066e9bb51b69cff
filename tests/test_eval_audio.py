"""``codec eval`` on audio: the audio medium, the Opus/AAC/MP3/FLAC baselines through PyAV,
their alignment, and ``codec bdrate`` / ``codec report`` / resuming on the results."""
from __future__ import annotations

import contextlib
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from codec.cli import main
from codec.errors import CodecError
from codec.media import audio
from codec.media import audio_metrics as metrics
from codec.tools.audio_codecs import AUDIO, Opus
from codec.tools.evaluate import JOURNAL_DIR, evaluate
from codec.tools.registry import make_codec

LOSSY = ["opus", "aac", "mp3"]
#: two or three bitrates a codec for the eval run (kbit/s; FLAC: compression level)
GRID = {"opus": "12,32,96", "aac": "24,64,160", "mp3": "32,96,160", "flac": "5"}
#: name -> (rate, channels, seconds)
ITEMS = {"speech16k-mono.wav": (16000, 1, 1.5), "mix44k-stereo.wav": (44100, 2, 1.2)}


def speech_like(rate: int, channels: int, seconds: float, seed: int = 0, noise: float = 0.04) -> audio.Audio:
    """A voiced-speech-like test signal: a harmonic chirp (f0 rising 120 -> 220 Hz, a
    different pitch and phase per channel) under a syllable envelope (3 Hz), plus a little
    amplitude-modulated noise; 16-bit values (k / 32768)."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    out = []
    for c in range(channels):
        f0 = 120 + 100 * t / seconds + 35 * c
        phase = 2 * np.pi * np.cumsum(f0) / rate
        harmonics = sum(np.sin(k * phase + c) / k for k in range(1, 16) if k * 260 < 0.45 * rate)
        env = 0.5 * (1 - np.cos(2 * np.pi * 3 * t))
        out.append(env * harmonics + noise * (1 + np.sin(2 * np.pi * 5 * t + c)) * rng.standard_normal(n))
    x = np.array(out)
    x *= 0.75 / np.abs(x).max()
    return audio.Audio((np.round(x * 32767) / 32768).astype(np.float32), rate, 16)


def _run_cli(capsys, *argv):
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    for i, (name, (rate, ch, sec)) in enumerate(ITEMS.items()):
        audio.write(d / name, speech_like(rate, ch, sec, seed=i))
    (d / "notes.txt").write_text("not audio")
    return d


@pytest.fixture(scope="module")
def results(dataset, tmp_path_factory):
    """One ``codec eval`` run of the four codecs; ``(output folder, stdout, stderr)``."""
    out = tmp_path_factory.mktemp("res") / "res"
    argv = ["eval", str(dataset), *[a for k, q in GRID.items() for a in ("--codec", f"{k}:{q}")], "-o", str(out),
            "-j", "1", "--no-progress"]
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        code = main(argv)
    assert code == 0, se.getvalue()
    return out, so.getvalue(), se.getvalue()


def _load(out: Path, key: str) -> dict:
    return json.loads((out / f"{key}.json").read_text())


# --------------------------------------------------------------------------- codecs
def test_list_codecs_names_the_audio_codecs(capsys):
    code, out, _ = _run_cli(capsys, "eval", "--list-codecs")
    assert code == 0
    for key in ("opus", "aac", "mp3", "flac"):
        assert re.search(rf"^{key}\[:QUALITIES\]\n    .*\(audio\); QUALITIES = ", out, re.M), out
    assert "jpeg[:QUALITIES]" in out  # the image codecs are still there


def test_audio_medium_axes():
    assert AUDIO.rate_key == audio.RATE_UNIT == "kbps"
    ax = AUDIO.axes()
    assert ax["medium"] == "audio" and ax["rate"]["key"] == "kbps"
    assert list(ax["metrics"]) == ["si-sdr", "snr", "mel-distance", "visqol", "pesq-wb", "stoi"]
    assert [m["higher_is_better"] for m in ax["metrics"].values()] == [True, True, False, True, True, True]
    assert ax["metrics"]["si-sdr"]["unit"] == "dB"


@pytest.mark.parametrize("rate,channels", [(16000, 1), (44100, 2), (22050, 2), (48000, 1)])
@pytest.mark.parametrize("name,kbps", [("opus", 256), ("aac", 256), ("mp3", 320)])
def test_high_rate_encode_is_aligned_to_the_sample(name, kbps, rate, channels):
    """Encoder delay (Opus pre-skip, AAC priming, LAME + decoder delay) and Opus' 48 kHz
    decoding compensated: a clean harmonic signal at a high rate comes back with high SI-SDR,
    at its own rate, length and channel count, and shifting it by one sample either way
    makes it clearly worse; the cross-correlation peaks at lag 0."""
    codec, _ = make_codec(name)
    ref = speech_like(rate, channels, 0.8, seed=3, noise=0.0)
    rec = codec.decode(codec.encode(ref, kbps), ref)
    assert rec.sample_rate == rate and rec.samples.shape == ref.samples.shape and rec.samples.dtype == np.float32
    here = metrics.si_sdr(ref, rec)
    assert here > 25, here
    for k in (-1, 1):
        shifted = audio.Audio(np.roll(rec.samples, k, axis=1), rate)
        assert here > metrics.si_sdr(ref, shifted) + 5
    n = ref.length
    size = 1 << int(math.ceil(math.log2(2 * n)))
    for c in range(channels):
        xc = np.fft.irfft(np.fft.rfft(rec.samples[c], size) * np.conj(np.fft.rfft(ref.samples[c], size)), size)
        lags = np.r_[0:2000, size - 2000:size]
        best = lags[np.argmax(xc[lags])]
        assert (best if best < size // 2 else best - size) == 0


@pytest.mark.parametrize("kbps", [64, 192])
def test_mp3_decodes_at_the_original_level(kbps):
    """LAME's preset input scaling (0.95 / 0.97 / ...) is compensated: the decoded signal has
    unity gain, so SNR is not capped by a level change (SNR close to the gain-blind SI-SDR)."""
    codec, _ = make_codec("mp3")
    ref = speech_like(44100, 2, 0.8, seed=5, noise=0.0)
    rec = codec.decode(codec.encode(ref, kbps), ref)
    x, y = ref.samples.astype(np.float64), rec.samples.astype(np.float64)
    assert abs((x * y).sum() / (x * x).sum() - 1) < 0.01
    assert metrics.snr(ref, rec) > metrics.si_sdr(ref, rec) - 3  # uncompensated: 26 dB (64), 30 dB (192)


def test_flac_is_exact_and_24_bit_sources_stay_exact():
    codec, _ = make_codec("flac")
    a = speech_like(16000, 2, 0.5)
    data = codec.encode(a, 5)
    assert np.array_equal(codec.decode(data, a).samples, a.samples)
    assert 8 * len(data) < 16 * a.samples.size  # below 16-bit PCM
    x = np.random.default_rng(1).integers(-2 ** 23, 2 ** 23, (1, 4000)) / 2 ** 23
    deep = audio.Audio(x.astype(np.float32), 48000, 24)
    assert np.array_equal(codec.decode(codec.encode(deep, 5), deep).samples, deep.samples)


def test_bad_inputs_fail_clearly():
    mp3, _ = make_codec("mp3")
    three = audio.Audio(np.zeros((3, 1000), np.float32), 16000)
    with pytest.raises(CodecError, match="at most 2 channels"):
        mp3.encode(three, 64)
    good = speech_like(16000, 1, 0.3)
    with pytest.raises(CodecError, match="truncated|cannot decode|no samples|no packets"):
        make_codec("aac")[0].decode(make_codec("aac")[0].encode(good, 64)[:12] + b"\xff", good)


def test_settings_are_in_the_fingerprint(monkeypatch):
    a, b = Opus(), Opus()
    assert a.fingerprint() == b.fingerprint()
    assert a.info()["encoder_options"]["vbr"] == "on" and "libopus" in a.info()["library"]
    monkeypatch.setattr(b, "options", {**Opus.options, "vbr": "off"})
    assert a.fingerprint() != b.fingerprint()
    keys = {make_codec(k)[0].fingerprint() for k in ("opus", "aac", "mp3", "flac")}
    assert len(keys) == 4


# --------------------------------------------------------------------------- eval
def test_eval_writes_audio_results(results, dataset):
    out, stdout, _ = results
    durations = {name: sec for name, (_, _, sec) in ITEMS.items()}
    for key, grid in GRID.items():
        obj = _load(out, key)
        assert obj["axes"] == AUDIO.axes()
        assert obj["meta"]["media"] == "audio" and obj["meta"]["num_items"] == len(ITEMS)
        assert "kbps" in obj["meta"]["rate"] and obj["meta"]["settings"]["bits_counted"]
        res = obj["results"]
        assert set(res) == {"quality", "kbps", "si-sdr", "snr", "mel-distance", "visqol", "pesq-wb", "stoi",
                            "encoding_time", "decoding_time"}
        assert len(res["kbps"]) == len(grid.split(","))
        assert res["kbps"] == sorted(res["kbps"])
        assert set(obj["per_image"]) == set(ITEMS)  # notes.txt is not an item
        for name, per in obj["per_image"].items():
            for nbytes, kbps in zip(per["bytes"], per["kbps"]):
                assert kbps == pytest.approx(8 * nbytes / durations[name] / 1000, rel=1e-12)
        line = next(l for l in stdout.splitlines() if l.startswith(key))
        assert " kbps " in line and " dB  -> " in line, line


def test_eval_metrics_are_sensible(results):
    out, _, _ = results
    for key in LOSSY:
        obj = _load(out, key)
        res = obj["results"]
        assert res["quality"] == [int(q) for q in GRID[key].split(",")]  # rate rises with the target
        for name, per in obj["per_image"].items():
            assert np.all(np.diff(per["kbps"]) > 0), (key, name, per["kbps"])
            assert np.all(np.diff(per["si-sdr"]) > 0), (key, name, per["si-sdr"])
            assert np.all(np.diff(per["mel-distance"]) < 0), (key, name, per["mel-distance"])
            assert per["si-sdr"][-1] > 10 and per["mel-distance"][-1] < 0.3, (key, name, per)
        # the target is roughly met (VBR/ABR codecs, short clips)
        for q, kbps in zip(res["quality"], res["kbps"]):
            assert 0.5 * q < kbps < 1.6 * q, (key, q, kbps)
    flac = _load(out, "flac")
    for name, per in flac["per_image"].items():
        rate, ch, _ = ITEMS[name]
        assert per["si-sdr"] == [metrics.DB_MAX] and per["snr"] == [metrics.DB_MAX] and per["mel-distance"] == [0.0]
        assert per["kbps"][0] < rate * ch * 16 / 1000  # below 16-bit PCM


def test_bdrate_and_report_on_audio_results(results, tmp_path, capsys):
    out, _, _ = results
    code, stdout, err = _run_cli(capsys, "bdrate", str(out / "mp3.json"), str(out / "aac.json"), str(out / "opus.json"),
                                 "--method", "pchip")
    assert code == 0, err
    rows = {(c[0], c[1]): c[2:] for c in (re.split(r"\s{2,}", l.strip()) for l in stdout.splitlines()[2:])}
    for test in ("AAC (FFmpeg)", "Opus (libopus)"):
        for metric in ("SI-SDR", "mel distance (lower is better)"):
            cells = rows[(test, metric)]
            assert cells[0].endswith("%") and math.isfinite(float(cells[0][:-1])), (test, metric, cells)

    rep = tmp_path / "report"
    code, _, err = _run_cli(capsys, "report", str(out), "--reference", "mp3", "-o", str(rep))
    assert code == 0, err
    for f in ("report.md", "report.html", "rd-si-sdr.png", "rd-snr.png", "rd-mel-distance.png"):
        assert (rep / f).stat().st_size > 0, f
    md = (rep / "report.md").read_text()
    assert "BD-rate against MP3 (LAME)" in md and "kbps" in md and "bpp" not in md


def test_second_run_does_no_work(results, dataset):
    out, _, _ = results
    journals = {p.name: p.read_bytes() for p in (out / JOURNAL_DIR).iterdir()}
    before = {k: _load(out, k) for k in GRID}
    logs = []
    specs = [f"{k}:{q}" for k, q in GRID.items()]
    written = evaluate(dataset, specs, out, jobs=1, progress=False, log=logs.append)
    assert set(written) == set(GRID)
    total = sum(len(q.split(",")) for q in GRID.values()) * len(ITEMS)
    assert any(f"{total} point(s): {total} already done, 0 to run" in m for m in logs), logs
    assert {p.name: p.read_bytes() for p in (out / JOURNAL_DIR).iterdir()} == journals
    assert {k: _load(out, k) for k in GRID} == before


def test_the_codecs_pick_the_medium(dataset, tmp_path):
    """The medium comes from the codecs: audio codecs list the audio files of a folder, an
    image codec does not take them, and one run does not mix media."""
    with pytest.raises(CodecError, match="no images"):
        evaluate(dataset, ["jpeg:50"], tmp_path / "a", jobs=1, progress=False, log=lambda m: None)
    (tmp_path / "pics").mkdir()
    with pytest.raises(CodecError, match="no audio files"):
        evaluate(tmp_path / "pics", ["opus:12"], tmp_path / "b", jobs=1, progress=False, log=lambda m: None)
    with pytest.raises(CodecError, match="different media"):
        evaluate(dataset, ["opus:12", "jpeg:50"], tmp_path / "c", jobs=1, progress=False, log=lambda m: None)
    one = dataset / "speech16k-mono.wav"
    written = evaluate(one, ["opus:16"], tmp_path / "d", jobs=1, progress=False, log=lambda m: None)
    assert list(json.loads(written["opus"].read_text())["per_image"]) == [one.name]


# --------------------------------------------------------------------------- ours
def _has_audio_model() -> bool:
    try:
        from codec.models import registry
    except ImportError:  # pragma: no cover
        return False
    spec = registry.MODELS.get("wavelet-audio")
    return spec is not None and spec.modality == "audio"


def test_ours_takes_the_medium_of_its_model():
    img, quals = make_codec("ours:mean-scale-vr:1,2")
    assert img.media == "image" and quals == [1, 2] and img.default_qualities == tuple(range(1, 9))
    assert "chroma" in img.info() and "medium" not in img.info()  # the image info (fingerprint) as before
    if _has_audio_model():
        aud, quals = make_codec("ours:wavelet-audio")
        assert aud.media == "audio" and quals == list(range(1, 9))
        assert aud.info()["medium"] == "audio" and "chroma" not in aud.info()


@pytest.mark.skipif(not _has_audio_model(), reason="no audio model 'wavelet-audio' in codec.models.registry")
@pytest.mark.filterwarnings("ignore:.*no trained weights")
def test_ours_on_an_audio_model(tmp_path):
    """``ours:wavelet-audio`` through codec eval: a results row with kbps and every audio metric
    (the item is in a folder named 'speech', so PESQ and STOI too)."""
    d = tmp_path / "speech"
    d.mkdir()
    item = speech_like(16000, 1, 2.0, seed=7)
    audio.write(d / "voice.wav", item)
    written = evaluate(d, ["ours:wavelet-audio:4"], tmp_path / "out", jobs=1, progress=False, log=lambda m: None)
    obj = json.loads(written["ours-wavelet-audio"].read_text())
    assert obj["axes"] == AUDIO.axes() and obj["meta"]["media"] == "audio"
    assert obj["meta"]["settings"]["model"] == "wavelet-audio" and obj["meta"]["settings"]["probe_streams_sha1"]
    res, per = obj["results"], obj["per_image"]["voice.wav"]
    assert res["quality"] == [4]
    assert res["kbps"][0] == pytest.approx(8 * per["bytes"][0] / 2.0 / 1000, rel=1e-12) and res["kbps"][0] > 0
    for k in AUDIO.metric_keys:
        assert isinstance(res[k][0], float), (k, res[k])


def test_a_metric_some_items_never_have_is_the_mean_of_the_others(tmp_path, capsys):
    """ViSQOL is None for items under ~1 s: the mean is over the other items (said in meta
    and in the report), not None at every point; curves that leave out different items are
    not compared."""
    from types import SimpleNamespace

    from codec.tools.evaluate import _qkey, aggregate

    codec = make_codec("opus")[0]
    items = [("long.wav", "a" * 40), ("short.wav", "b" * 40), ("other.wav", "c" * 40)]
    visqol = {"long.wav": [3.0, 4.0], "short.wav": [None, None], "other.wav": [2.0, 3.0]}

    def rec(name, qi, kbps):
        return {"kbps": kbps, "si-sdr": 10.0 + 5 * qi, "snr": 9.0 + 5 * qi, "mel-distance": 0.5 - 0.2 * qi,
                "visqol": visqol[name][qi], "pesq-wb": None, "stoi": None, "bytes": 1000 * (qi + 1),
                "encoding_time": 0.1, "decoding_time": 0.1, "workers": 1}

    def journal(scale=1.0):
        return SimpleNamespace(fingerprint="x", records={
            (n, s, _qkey(q)): rec(n, qi, scale * (12 + 20 * qi)) for n, s in items for qi, q in enumerate((12, 32))})

    obj = aggregate(codec, [12, 32], items, journal(), "t")
    assert obj["results"]["visqol"] == [2.5, 3.5]
    assert obj["results"]["pesq-wb"] == [None, None]  # no item has it: None, not partial
    assert obj["meta"]["partial_metrics"] == {"visqol": {"items": 2, "left_out": ["short.wav"]}}
    res = tmp_path / "res"
    res.mkdir()
    (res / "opus.json").write_text(json.dumps(obj))
    test = aggregate(codec, [12, 32], items, journal(0.8), "t")
    test["name"] = "cheaper"
    (res / "cheaper.json").write_text(json.dumps(test))
    code, out, err = _run_cli(capsys, "bdrate", str(res / "opus.json"), str(res / "cheaper.json"), "--metric",
                              "visqol", "--method", "pchip")
    assert code == 0 and "-20.0%" in out, err
    code, _, err = _run_cli(capsys, "report", str(res), "--reference", "opus", "-o", str(tmp_path / "rep"))
    assert code == 0, err
    assert "ViSQOL is the mean over 2 of 3 items: short.wav has no ViSQOL value." in (
        tmp_path / "rep" / "report.md").read_text()
    # another item left out on one side: refused, in one line
    test["meta"]["partial_metrics"] = {"visqol": {"items": 2, "left_out": ["other.wav"]}}
    (res / "cheaper.json").write_text(json.dumps(test))
    code, _, err = _run_cli(capsys, "bdrate", str(res / "opus.json"), str(res / "cheaper.json"), "--metric", "visqol")
    assert code == 2 and "average ViSQOL over different items" in err and err.count("\n") == 1
