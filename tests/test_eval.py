"""The evaluator: codecs, JSON format, resuming after a crash or an interrupt, the CLI, the report."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from codec.cli import main
from codec.errors import CodecError
from codec.media import image_metrics as metrics
from codec.tools.evaluate import JOURNAL_DIR, evaluate
from codec.tools.image_codecs import IMAGE, JPEG
from codec.tools.registry import Codec, Media, make_codec, parse_codec_spec, register_media

from pictures import smooth_image

CLASSICAL = ["jpeg", "webp", "avif", "jpeg2000", "hevc-intra", "av1-intra"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    # MS-SSIM needs both sides > 160 pixels
    Image.fromarray(smooth_image(176, 168, seed=10)).save(d / "a.png")
    Image.fromarray(smooth_image(168, 184, seed=11)).save(d / "b.png")
    (d / "notes.txt").write_text("not an image")
    return d


# --------------------------------------------------------------------------- codecs
@pytest.mark.parametrize("name", CLASSICAL)
def test_codec_round_trip_and_rate_order(name):
    codec, quals = make_codec(name)
    img = smooth_image(48, 41, seed=3)  # odd width: exercises padding for 4:2:0
    lo, hi = quals[0], quals[-1]  # default grids run from low to high rate or the reverse
    d_lo, d_hi = codec.encode(img, lo), codec.encode(img, hi)
    r_lo, r_hi = codec.decode(d_lo, img), codec.decode(d_hi, img)
    assert isinstance(d_lo, bytes) and r_lo.shape == img.shape and r_lo.dtype == np.uint8
    small, big = sorted([(len(d_lo), r_lo), (len(d_hi), r_hi)], key=lambda t: t[0])
    assert small[0] < big[0]
    assert metrics.psnr_rgb(img, big[1]) > metrics.psnr_rgb(img, small[1])
    assert metrics.psnr_rgb(img, big[1]) > 30
    info = codec.info()
    assert info["chroma"].startswith(("4:2:0", "4:4:4")) and info["bits_counted"]


@pytest.mark.parametrize("name", ["webp-down2", "avif-down4"])
def test_downscaled_baselines_code_a_small_picture_and_upscale_it(name):
    """The very-low-rate baselines: the picture's size in a 4-byte header, a classical file
    of the downscaled picture; decoding gives the full size back, fewer bytes than the
    full-size codec at the same setting and a blurrier picture."""
    codec, quals = make_codec(name)
    full, _ = make_codec(name.split("-")[0])
    img = smooth_image(90, 131, seed=4)
    data = codec.encode(img, 50)
    assert int.from_bytes(data[:2], "little") == 131 and int.from_bytes(data[2:4], "little") == 90
    out = codec.decode(data, img)
    assert out.shape == img.shape and out.dtype == np.uint8
    ref = full.encode(img, 50)
    assert len(data) < len(ref)
    assert 20 < metrics.psnr_rgb(img, out) < metrics.psnr_rgb(img, full.decode(ref, img))
    assert "downscaled" in codec.info()["settings"] and codec.key == name


def test_hevc_rejects_tiny_images_clearly():
    codec, _ = make_codec("hevc-intra")
    with pytest.raises(CodecError, match="at least 16x16"):
        codec.encode(np.zeros((8, 8, 3), np.uint8), 30)


def test_codec_spec_parsing_errors():
    assert parse_codec_spec("jpeg:10,20").qualities == [10, 20]
    assert parse_codec_spec("JPEG2000:12.5,24").qualities == [12.5, 24.0]
    with pytest.raises(CodecError, match="unknown codec 'png'.*available: av1-intra"):
        parse_codec_spec("png")
    with pytest.raises(ValueError, match="not a number"):
        parse_codec_spec("jpeg:10,x")
    with pytest.raises(ValueError, match="outside 1..100"):
        parse_codec_spec("jpeg:0,10")
    with pytest.raises(ValueError, match="appears twice"):
        parse_codec_spec("webp:5,5")
    with pytest.raises(ValueError, match="empty entry"):
        parse_codec_spec("webp:5,")
    with pytest.raises(CodecError, match="needs an argument"):
        parse_codec_spec("ours")


def test_ours_fails_clearly_without_api_or_model():
    import codec as api

    if all(callable(getattr(api, f, None)) for f in ("encode", "decode", "list_models")):
        with pytest.raises(CodecError, match="unknown model 'no-such-model'"):
            make_codec("ours:no-such-model")
    else:
        with pytest.raises(CodecError, match="codec API is not available"):
            make_codec("ours:any-model")


def test_ours_adapter_follows_the_api_contract(dataset, tmp_path, monkeypatch):
    """The adapter against a stand-in of the public API (JPEG inside), in-process."""
    import io

    import codec as api

    seen = []

    def encode(image, *, model=None, quality=None, device=None):
        seen.append((model, quality))
        buf = io.BytesIO()
        Image.fromarray(np.asarray(image)).save(buf, format="JPEG", quality=10 * quality)
        return buf.getvalue()

    def decode(data, *, device=None, output="numpy"):
        assert output == "numpy"
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    monkeypatch.setattr(api, "encode", encode, raising=False)
    monkeypatch.setattr(api, "decode", decode, raising=False)
    monkeypatch.setattr(api, "list_models", lambda: ["stand-in"], raising=False)
    with pytest.raises(CodecError, match="unknown model 'other'; available: stand-in"):
        make_codec("ours:other")
    written = evaluate(dataset, ["ours:stand-in:3,8"], tmp_path / "o", jobs=1, progress=False,
                       log=lambda m: None)
    obj = json.loads(written["ours-stand-in"].read_text())
    assert obj["name"] == "ours (stand-in)" and obj["results"]["quality"] == [3, 8]
    assert sorted(set(seen)) == [("stand-in", 3), ("stand-in", 8)]
    img = IMAGE.load(dataset / "a.png")
    assert obj["per_image"]["a.png"]["bytes"][0] == len(encode(img, quality=3))


# --------------------------------------------------------------------------- JSON format
def test_results_json_format(dataset, tmp_path):
    out = tmp_path / "res"
    written = evaluate(dataset, ["jpeg:20,80", "webp:60"], out, jobs=1, progress=False, log=lambda m: None)
    assert set(written) == {"jpeg", "webp"}
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    obj = json.loads((out / "jpeg.json").read_text())
    assert obj["name"] == "JPEG" and isinstance(obj["description"], str)
    res = obj["results"]
    for k in ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time", "quality"):
        assert len(res[k]) == 2, k
    assert res["bpp"] == sorted(res["bpp"]) and res["quality"] == [20, 80]
    assert obj["meta"]["num_items"] == 2 and obj["meta"]["chroma"].startswith("4:2:0")
    # the file names what it measures; the rest of meta is as before the axes block
    assert list(obj)[:4] == ["name", "description", "axes", "results"]
    assert obj["axes"] == {
        "medium": "image",
        "rate": {"key": "bpp", "unit": "bpp", "label": "bits per pixel", "plot_max": 2.0},
        "metrics": {
            "psnr-rgb": {"label": "PSNR-RGB", "unit": "dB", "higher_is_better": True,
                         "description": "8-bit RGB, peak 255, per-image dB averaged"},
            "ms-ssim-rgb": {"label": "MS-SSIM", "unit": "", "higher_is_better": True, "db_scale": True,
                            "description": "pytorch_msssim on 8-bit RGB, data_range 255, float32"},
        },
    }
    assert obj["meta"]["metrics"] == ("PSNR-RGB: 8-bit RGB, peak 255, per-image dB averaged; MS-SSIM: "
                                      "pytorch_msssim on 8-bit RGB, data_range 255, float32")
    assert obj["meta"]["rate"] == "bpp from the length of the encoded bytes"

    # rates come from the bytes of the encoded file, metrics from the decoded 8-bit output
    codec = JPEG()
    per = obj["per_image"]
    for name in ("a.png", "b.png"):
        img = IMAGE.load(dataset / name)
        for i, q in enumerate(res["quality"]):
            data = codec.encode(img, q)
            assert per[name]["bytes"][i] == len(data)
            assert per[name]["bpp"][i] == pytest.approx(8 * len(data) / (img.shape[0] * img.shape[1]))
            rec = codec.decode(data, img)
            assert per[name]["psnr-rgb"][i] == pytest.approx(metrics.psnr_rgb(img, rec))
            assert per[name]["ms-ssim-rgb"][i] == pytest.approx(metrics.ms_ssim_rgb(img, rec), abs=1e-6)
    for i in range(2):  # averages over images (PSNR averaged in dB, CompressAI convention)
        for k in ("bpp", "psnr-rgb", "ms-ssim-rgb"):
            assert res[k][i] == pytest.approx(np.mean([per[n][k][i] for n in per]))

    # readable by the BD-rate loader and by the bjontegaard package
    from codec.tools.bdrate import load_curve

    c = load_curve(out / "webp.json")
    assert c.rate.shape == (1,) and set(c.metrics) == {"psnr-rgb", "ms-ssim-rgb"} and not c.axes.inferred


def test_image_media_uses_the_media_layer(dataset, tmp_path):
    from codec.errors import InputError, LimitError
    from codec.media import image

    assert IMAGE.rate_key == image.RATE_UNIT
    img = IMAGE.load(dataset / "a.png")
    assert np.array_equal(img, image.read(dataset / "a.png").rgb)
    assert IMAGE.rate(1234, img) == image.rate(1234, image.Picture(img).info) == 8 * 1234 / (176 * 168)
    with pytest.raises(InputError, match="not an image"):
        IMAGE.load(dataset / "notes.txt")
    with pytest.raises(LimitError):  # the media layer's pixel limit
        os.environ[image.MAX_PIXELS_ENV] = "1000"
        try:
            IMAGE.load(dataset / "a.png")
        finally:
            del os.environ[image.MAX_PIXELS_ENV]


def test_tiny_images_have_null_ms_ssim(tmp_path):
    d = tmp_path / "tiny"
    d.mkdir()
    Image.fromarray(smooth_image(24, 20)).save(d / "t.png")
    evaluate(d, ["jpeg:50,90"], tmp_path / "o", jobs=1, progress=False, log=lambda m: None)
    res = json.loads((tmp_path / "o" / "jpeg.json").read_text())["results"]
    assert res["ms-ssim-rgb"] == [None, None] and all(v > 20 for v in res["psnr-rgb"])


# --------------------------------------------------------------------------- resuming
class FlakyJPEG(JPEG):
    """JPEG that crashes on one image while a marker file exists, and logs each encode."""

    key = "flaky"
    display_name = "flaky JPEG"

    def __init__(self, marker: Path, calls: Path):
        super().__init__()
        self.marker, self.calls = str(marker), str(calls)

    def encode(self, item, quality):
        with open(self.calls, "a") as f:
            f.write(f"{quality}\n")
        if os.path.exists(self.marker) and item.shape[:2] == (168, 184):
            raise RuntimeError("simulated crash")
        return super().encode(item, quality)


def _strip_times(obj):
    obj = json.loads(json.dumps(obj))
    obj["meta"].pop("timing")  # names the number of worker processes
    for k in ("encoding_time", "decoding_time"):
        obj["results"].pop(k)
        for v in obj["per_image"].values():
            v.pop(k)
    return obj


@pytest.mark.parametrize("jobs", [1, 2])
def test_crashed_run_resumes_only_missing_points(dataset, tmp_path, jobs):
    marker, calls = tmp_path / "crash", tmp_path / "calls"
    marker.touch()
    codec = FlakyJPEG(marker, calls)
    out = tmp_path / "res"
    with pytest.raises(CodecError, match="2 point\\(s\\) failed"):
        evaluate(dataset, [(codec, [30, 70])], out, jobs=jobs, progress=False, log=lambda m: None)
    assert not (out / "flaky.json").exists()  # no partial results file
    journal = out / JOURNAL_DIR / "flaky.jsonl"
    assert len(journal.read_text().splitlines()) == 2
    assert len(calls.read_text().split()) == 4

    marker.unlink()
    calls.write_text("")
    logs = []
    evaluate(dataset, [(codec, [30, 70])], out, jobs=jobs, progress=False, log=logs.append)
    assert len(calls.read_text().split()) == 2  # only the two failed points ran again
    assert "2 already done, 2 to run" in logs[0]
    resumed = json.loads((out / "flaky.json").read_text())

    calls.write_text("")
    clean = tmp_path / "clean"
    evaluate(dataset, [(codec, [30, 70])], clean, jobs=1, progress=False, log=lambda m: None)
    assert _strip_times(resumed) == _strip_times(json.loads((clean / "flaky.json").read_text()))

    # a third run does nothing but rewrite the same results
    calls.write_text("")
    evaluate(dataset, [(codec, [30, 70])], out, jobs=jobs, progress=False, log=lambda m: None)
    assert calls.read_text() == ""


def test_torn_journal_line_and_changed_settings(dataset, tmp_path):
    out = tmp_path / "res"
    evaluate(dataset, ["jpeg:40"], out, jobs=1, progress=False, log=lambda m: None)
    journal = out / JOURNAL_DIR / "jpeg.jsonl"
    lines = journal.read_text().splitlines()
    # a kill in the middle of writing the second line
    journal.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    logs = []
    evaluate(dataset, ["jpeg:40"], out, jobs=1, progress=False, log=logs.append)
    assert "1 already done, 1 to run" in logs[0]
    assert all(json.loads(l) for l in journal.read_text().splitlines())

    class OtherJPEG(JPEG):
        key = "jpeg"

        def save_options(self, quality):
            return {**super().save_options(quality), "subsampling": "4:4:4"}

        def info(self):
            return {**super().info(), "chroma": "4:4:4"}

    logs = []
    evaluate(dataset, [(OtherJPEG(), [40])], out, jobs=1, progress=False, log=logs.append)
    assert any("other settings are ignored" in m for m in logs)
    assert "0 already done, 2 to run" in logs[-1]


def _journal_lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


QUALS = list(range(5, 100, 5))  # 19 qualities x 2 images = 38 points


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_cli_run_resumes(dataset, tmp_path, sig):
    out = tmp_path / "res"
    cmd = [sys.executable, "-m", "codec.cli", "eval", str(dataset), "--codec", "avif:" + ",".join(map(str, QUALS)),
           "-o", str(out), "-j", "2", "--no-progress"]
    # a suite run in the background (``pytest &``, nohup) ignores SIGINT, and children inherit
    # that: give the CLI the default disposition so that Ctrl-C reaches it as for a user
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    journal = out / JOURNAL_DIR / "avif.jsonl"
    deadline = time.time() + 60
    while _journal_lines(journal) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted"
    if sig == signal.SIGINT:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    else:
        os.killpg(proc.pid, signal.SIGKILL)  # a crash of everything at once
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    if sig == signal.SIGINT:
        assert b"interrupted" in err and b"Traceback" not in err
    assert not (out / "avif.json").exists()
    done = _journal_lines(journal)
    assert 3 <= done < 38

    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"{done} already done, {38 - done} to run" in r.stderr
    res = json.loads((out / "avif.json").read_text())
    assert sorted(res["results"]["quality"]) == QUALS
    assert _journal_lines(journal) == 38


# --------------------------------------------------------------------------- CLI
def _run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv,msg", [
    (["eval", "/no/such/folder", "--codec", "jpeg", "-o", "OUT"], "data set not found"),
    (["eval", "DATA", "--codec", "bpg", "-o", "OUT"], "unknown codec 'bpg'"),
    (["eval", "DATA", "--codec", "jpeg:abc", "-o", "OUT"], "bad quality list"),
    (["eval", "DATA", "--codec", "jpeg:101", "-o", "OUT"], "outside 1..100"),
    (["eval", "DATA", "-o", "OUT"], "no codec given"),
    (["eval", "DATA", "--codec", "jpeg"], "missing -o"),
    (["eval", "DATA", "--codec", "jpeg", "--codec", "jpeg:5", "-o", "OUT"], "codec given twice"),
    (["eval", "DATA", "--codec", "ours:nope", "-o", "OUT"], "ours"),
    (["eval", "DATA", "--codec", "jpeg", "-o", "OUT", "-j", "0"], "--jobs must be >= 1"),
    (["eval", "EMPTY", "--codec", "jpeg", "-o", "OUT"], "no images"),
])
def test_eval_cli_errors_are_one_line(capsys, tmp_path, dataset, argv, msg):
    (tmp_path / "empty").mkdir()
    argv = [str(dataset) if a == "DATA" else str(tmp_path / "empty") if a == "EMPTY"
            else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    code, out, err = _run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("codec: error:") and err.count("\n") == 1 and msg in err, err


@pytest.mark.parametrize("cmd,options", [
    ("eval", ["--codec", "--output", "--jobs", "--limit", "--no-progress", "--list-codecs", "hevc-intra"]),
    ("bdrate", ["--metric", "--method", "--ms-ssim-linear", "--min-overlap"]),
    ("report", ["--output", "--anchor", "--reference", "--title", "--xmax", "--min-overlap", "--force"]),
])
def test_help_explains_every_option(capsys, cmd, options):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for o in options:
        assert o in out


def test_eval_cli_and_report(dataset, tmp_path, capsys):
    out = tmp_path / "res"
    code, stdout, err = _run_cli(capsys, "eval", str(dataset), "--codec", "jpeg:10,30,60,90", "--codec",
                                 "webp:10,40,70,95", "-o", str(out), "-j", "1", "--no-progress")
    assert code == 0, err
    assert "jpeg" in stdout and "webp" in stdout
    line = next(l for l in stdout.splitlines() if l.startswith("jpeg"))
    assert " 4 points " in line and " bpp " in line and " dB  -> " in line, line

    anchor_dir = tmp_path / "anchors"
    anchor_dir.mkdir()
    jp = json.loads((out / "jpeg.json").read_text())["results"]
    (anchor_dir / "fake-anchor.json").write_text(json.dumps({
        "name": "Anchor", "description": "test anchor",
        "results": {"bpp": [b * 0.9 for b in jp["bpp"]], "psnr-rgb": jp["psnr-rgb"],
                    "ms-ssim-rgb": jp["ms-ssim-rgb"]}}))
    rep = tmp_path / "report"
    code, stdout, err = _run_cli(capsys, "report", str(out), "--anchor", str(anchor_dir), "--reference", "jpeg",
                                 "-o", str(rep))
    assert code == 0, err
    for f in ("report.md", "report.html", "rd-psnr-rgb.png", "rd-ms-ssim-rgb.png"):
        assert (rep / f).stat().st_size > 0
    md = (rep / "report.md").read_text()
    assert "BD-rate against JPEG" in md and "Anchor (published)" in md
    anchor_row = next(l for l in md.splitlines() if l.startswith("| Anchor (published)"))
    assert anchor_row.count("-10.0%") == 4  # 0.9 x the rate: -10% for cubic and pchip, PSNR and MS-SSIM
    html = (rep / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html

    # no silent overwrite
    code, _, err = _run_cli(capsys, "report", str(out), "-o", str(rep))
    assert code == 2 and "--force" in err
    code, _, err = _run_cli(capsys, "report", str(out), "-o", str(rep), "--force", "--reference", "webp")
    assert code == 0, err
    assert "BD-rate against WebP" in (rep / "report.md").read_text()
    code, _, err = _run_cli(capsys, "report", str(out), "-o", str(tmp_path / "r2"), "--reference", "vtm")
    assert code == 2 and "reference 'vtm' not among" in err


# --------------------------------------------------------------------------- another medium
class ToneMedia(Media):
    """An audio-like medium for the test: mono float signals in .npy files at 8 kHz, rate in
    kbit/s, SNR (higher is better) and the largest sample error (lower is better)."""

    name = "test-tone"
    rate_key = "kbps"
    rate_unit = "kbit/s"
    rate_label = "bitrate"
    metric_keys = ("snr", "max-error")
    lower_is_better = ("max-error",)
    metric_info = {"snr": {"label": "SNR", "unit": "dB"}, "max-error": {"label": "max error", "unit": ""}}

    def list_items(self, dataset):
        return sorted(Path(dataset).glob("*.npy"))

    def load(self, path):
        return np.load(path)

    def rate(self, nbytes, item):
        return 8 * nbytes / 1000 / (len(item) / 8000)

    def score(self, ref, rec):
        err = ref - rec
        return {"snr": float(10 * np.log10(np.sum(ref ** 2) / np.sum(err ** 2))),
                "max-error": float(np.abs(err).max())}


register_media(ToneMedia())


class ToneQuantiser(Codec):
    """Uniform quantiser, step 2**-quality, integers zlib-compressed; ``padding`` bytes
    of overhead (the same quality for more bits)."""

    media = "test-tone"
    quality_type = int

    def __init__(self, padding: int = 0):
        self.padding = padding
        self.key = f"tone-pad{padding}"
        self.display_name = f"quantiser +{padding} B"

    def encode(self, item, quality):
        import zlib

        ints = np.round(item * 2.0 ** quality).astype(np.int32).tobytes()
        return bytes([quality]) + bytes(self.padding) + zlib.compress(ints, 9)

    def decode(self, data, item):
        import zlib

        ints = np.frombuffer(zlib.decompress(data[1 + self.padding:]), np.int32)
        return ints * 2.0 ** -data[0]

    def info(self):
        return {"bits_counted": "quality byte, padding and zlib of the integers", "padding": self.padding}


def test_another_medium_through_eval_bdrate_and_report(tmp_path, capsys):
    """A medium the tools have never heard of: eval writes its axes, bdrate and report read them."""
    data = tmp_path / "tones"
    data.mkdir()
    t = np.arange(8000) / 8000
    rng = np.random.default_rng(0)
    for i, f in enumerate((220.0, 440.0)):
        np.save(data / f"tone{i}.npy", 0.5 * np.sin(2 * np.pi * f * t) + 0.05 * rng.normal(size=t.size))
    out = tmp_path / "res"
    quals = [4, 5, 6, 7, 8]
    written = evaluate(data, [(ToneQuantiser(0), quals), (ToneQuantiser(400), quals)], out, jobs=1,
                       progress=False, log=lambda m: None)
    obj = json.loads(written["tone-pad0"].read_text())
    assert obj["axes"]["rate"] == {"key": "kbps", "unit": "kbit/s", "label": "bitrate"}
    assert obj["axes"]["metrics"]["max-error"]["higher_is_better"] is False
    assert set(obj["results"]) == {"quality", "kbps", "snr", "max-error", "encoding_time", "decoding_time"}
    assert obj["meta"]["metrics"] == "SNR; max error"

    code, stdout, err = _run_cli(capsys, "bdrate", str(out / "tone-pad400.json"), str(out / "tone-pad0.json"))
    assert code == 0, err
    assert "warning" not in err  # both curves monotone, the distance taken the right way round
    # columns: test, metric, BD-rate cubic, BD-quality cubic, BD-rate pchip, BD-quality pchip
    rows = {c[1]: c[2:] for c in (re.split(r"\s{2,}", l.strip()) for l in stdout.splitlines()[2:])}
    assert set(rows) == {"SNR", "max error (lower is better)"}
    for cells in rows.values():  # the same quality for fewer bits: negative BD-rates
        assert cells[0].startswith("-") and cells[2].startswith("-") and cells[0].endswith("%"), cells
    snr, err_ = rows["SNR"], rows["max error (lower is better)"]
    assert float(snr[1].split()[0]) > 0 and float(snr[3].split()[0]) > 0  # more SNR at equal rate
    assert float(err_[1]) < 0 and float(err_[3]) < 0  # less error at equal rate: negative

    rep = tmp_path / "report"
    code, stdout, err = _run_cli(capsys, "report", str(out), "--reference", "tone-pad400", "-o", str(rep))
    assert code == 0, err
    assert (rep / "rd-snr.png").exists() and (rep / "rd-max-error.png").exists()
    md = (rep / "report.md").read_text()
    assert "BD-rate SNR cubic" in md and "kbit/s range" in md and "bpp" not in md and "PSNR" not in md


def test_crops_show_each_codec_near_one_rate(dataset, tmp_path):
    """python -m codec.tools.crops: per codec, the point nearest the rate is coded again and
    its crop tiled beside the original's; bad boxes and existing outputs are clean errors."""
    from codec.tools import crops

    out = tmp_path / "res"
    evaluate(dataset, ["jpeg:10,80", "webp-down2:5,50"], out, jobs=1, progress=False, log=lambda m: None)
    res = json.loads((out / "jpeg.json").read_text())
    q, r = crops.nearest_quality(res, "a.png", 100.0)
    assert q == 80 and r == max(res["per_image"]["a.png"]["bpp"])
    png = tmp_path / "c.png"
    assert crops.main([str(out), "--data", str(dataset), "--image", "a.png", "--bpp", "0.5", "--box", "10,20,64,48",
                       "-o", str(png)]) == 0
    im = np.asarray(Image.open(png))
    assert im.shape[1] == 4 * 64 and im.shape[0] > 48  # original + two codecs in a row of four, labels below
    assert np.array_equal(im[:48, :64], np.asarray(Image.open(dataset / "a.png").convert("RGB"))[20:68, 10:74])
    assert crops.main([str(out), "--data", str(dataset), "--image", "a.png", "--bpp", "0.5", "--box", "10,20,64,48",
                       "-o", str(png)]) == 2  # exists: no --force
    assert crops.main([str(out), "--data", str(dataset), "--image", "a.png", "--bpp", "0.5", "--box", "150,20,64,48",
                       "-o", str(tmp_path / "d.png")]) == 2
    assert not (tmp_path / "d.png").exists()
