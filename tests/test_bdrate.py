"""BD-rate maths: analytic cases, cross-check with the ``bjontegaard`` package, the
published CompressAI hyperprior-vs-VTM figure on Kodak; axes read from the results
(audio-like kbps / SI-SDR files, a lower-is-better metric, mismatched axes)."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from codec.cli import main
from codec.errors import CodecError
from codec.tools.bdrate import bd_quality, bd_rate, parse_rate_range, pchip_eval, pchip_integral

REPO = Path(__file__).resolve().parents[1]
ANCHORS = REPO.parent / "shared" / "anchors" / "compressai-results" / "kodak"
CHECKED_IN_ANCHORS = REPO / "tools" / "reports" / "kodak" / "anchors"

RATE = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
PSNR = np.array([26.0, 29.0, 32.0, 35.5, 39.0])


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_identical_curves_give_zero(method):
    assert bd_rate(RATE, PSNR, RATE, PSNR, method).value == pytest.approx(0, abs=1e-9)
    assert bd_quality(RATE, PSNR, RATE, PSNR, method).value == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
@pytest.mark.parametrize("factor", [0.8, 1.25, 0.5])
def test_scaled_rate_gives_exact_bd_rate(method, factor):
    # same quality at factor x the rate everywhere: BD-rate = (factor - 1) * 100
    r = bd_rate(RATE, PSNR, RATE * factor, PSNR, method)
    assert r.value == pytest.approx((factor - 1) * 100, abs=1e-9)
    assert not r.warnings


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_shifted_quality_gives_exact_bd_psnr(method):
    q = bd_quality(RATE, PSNR, RATE, PSNR + 0.7, method)
    assert q.value == pytest.approx(0.7, abs=1e-9)
    # and the better curve needs fewer bits
    assert bd_rate(RATE, PSNR, RATE, PSNR + 0.7, method).value < 0


def test_pchip_integral_and_values_match_scipy():
    scipy_interp = pytest.importorskip("scipy.interpolate")
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = rng.integers(2, 9)
        x = np.cumsum(rng.uniform(0.1, 2, n))
        y = rng.normal(0, 3, n)  # not monotone on purpose: exercises the zero-slope rules
        f = scipy_interp.PchipInterpolator(x, y)
        a, b = sorted(rng.uniform(x[0], x[-1], 2))
        assert pchip_integral(x, y, a, b) == pytest.approx(f.integrate(a, b), rel=1e-10, abs=1e-10)
        for t in [x[0], x[-1], *rng.uniform(x[0], x[-1], 5)]:
            assert pchip_eval(x, y, t) == pytest.approx(float(f(t)), rel=1e-10, abs=1e-10)


# --------------------------------------------------------------------------- a rate window
@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_rate_window_around_every_point_changes_nothing(method):
    rng = np.random.default_rng(2)
    r1, q1 = RATE * 0.8, PSNR + rng.uniform(-0.3, 0.3, 5)
    for f in (bd_rate, bd_quality):
        assert f(RATE, PSNR, r1, q1, method, rate_range=(0.01, 10)).value == pytest.approx(
            f(RATE, PSNR, r1, q1, method).value, abs=1e-9)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_rate_window_keeps_exact_cases_exact(method):
    # the same curve at 0.8x the rate, a window inside both: -20% wherever it lies
    for win in [(0.15, 0.5), (0.3, 1.1), (0.12, 0.2)]:
        r = bd_rate(RATE, PSNR, RATE * 0.8, PSNR, "pchip", rate_range=win)
        assert r.value == pytest.approx(-20.0, abs=1e-9)
    # 0.7 dB better everywhere: +0.7 dB over any window
    q = bd_quality(RATE, PSNR, RATE, PSNR + 0.7, method, rate_range=(0.3, 0.9))
    assert q.value == pytest.approx(0.7, abs=1e-9) and q.overlap == pytest.approx((math.log10(0.3), math.log10(0.9)))


def test_rate_window_picks_the_part_of_crossing_curves():
    # the test is 1 dB better below 0.4 bpp and 1 dB worse above (linear in log-rate either side)
    test = PSNR + np.array([1.0, 1.0, 0.0, -1.0, -1.0])
    lo = bd_quality(RATE, PSNR, RATE, test, "pchip", rate_range=(0.1, 0.2)).value
    hi = bd_quality(RATE, PSNR, RATE, test, "pchip", rate_range=(0.8, 1.6)).value
    whole = bd_quality(RATE, PSNR, RATE, test, "pchip").value
    x = np.log10(RATE)

    def mean_gap(a, b):  # the mean difference of the two interpolants over [a, b] in log-rate, numerically
        t = np.linspace(math.log10(a), math.log10(b), 20001)
        return float(np.mean([pchip_eval(x, test, v) - pchip_eval(x, PSNR, v) for v in t]))

    assert lo == pytest.approx(mean_gap(0.1, 0.2), abs=1e-4) and lo > 0.9
    assert hi == pytest.approx(mean_gap(0.8, 1.6), abs=1e-4) and hi < -0.9
    assert abs(whole) < 0.2
    assert bd_rate(RATE, PSNR, RATE, test, "pchip", rate_range=(0.1, 0.2)).value < 0
    assert bd_rate(RATE, PSNR, RATE, test, "pchip", rate_range=(0.8, 1.6)).value > 0


def test_rate_window_without_points_or_overlap_is_nan_with_a_warning():
    r = bd_rate(RATE, PSNR, RATE, PSNR, "pchip", rate_range=(5, 9))
    assert math.isnan(r.value) and any("no point inside the rate window" in w for w in r.warnings)
    # far apart in quality inside the window: BD-rate undefined, BD-quality still measured
    r = bd_rate(RATE, PSNR, RATE, PSNR + 20, "pchip", rate_range=(0.2, 0.4))
    assert math.isnan(r.value) and any("inside the rate window" in w for w in r.warnings)
    assert bd_quality(RATE, PSNR, RATE, PSNR + 20, "pchip", rate_range=(0.2, 0.4)).value == pytest.approx(20)
    for bad in [(0.4, 0.2), (0, 1), (-1, 1)]:
        with pytest.raises(ValueError, match="0 < low < high"):
            bd_rate(RATE, PSNR, RATE, PSNR, "pchip", rate_range=bad)


def test_parse_rate_range():
    assert parse_rate_range("12:32") == (12.0, 32.0)
    assert parse_rate_range("0.1:0.5") == (0.1, 0.5)
    for bad in ["12", "12:32:64", "a:b", "32:12", "0:4", ":4", "nan:4"]:
        with pytest.raises(ValueError, match="--rate-range"):
            parse_rate_range(bad)


def test_random_curves_match_bjontegaard_package():
    bj = pytest.importorskip("bjontegaard")
    rng = np.random.default_rng(5)
    finite = 0
    for _ in range(25):
        n0, n1 = rng.integers(4, 9, 2)
        r0 = np.sort(rng.uniform(0.05, 2.5, n0))
        r1 = np.sort(rng.uniform(0.05, 2.5, n1))
        q0 = 30 + 5 * np.log2(r0) + np.cumsum(rng.uniform(0, 0.3, n0))
        q1 = 30.5 + 5.2 * np.log2(r1) + np.cumsum(rng.uniform(0, 0.3, n1))
        for m in ("cubic", "pchip"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref_r = bj.bd_rate(r0, q0, r1, q1, method=m, require_matching_points=False)
                ref_q = bj.bd_psnr(r0, q0, r1, q1, method=m, require_matching_points=False)
            assert bd_rate(r0, q0, r1, q1, m).value == pytest.approx(ref_r, rel=1e-8, abs=1e-8, nan_ok=True)
            assert bd_quality(r0, q0, r1, q1, m).value == pytest.approx(ref_q, rel=1e-8, abs=1e-8, nan_ok=True)
            finite += math.isfinite(ref_r)
    assert finite >= 30


def _curves(folder: Path):
    out = {}
    for f in sorted(folder.glob("*.json")):
        res = json.loads(f.read_text())["results"]
        out[f.stem] = res
    return out


@pytest.mark.skipif(not ANCHORS.is_dir(), reason="published anchors (../shared) not available")
def test_published_curves_match_bjontegaard_package():
    bj = pytest.importorskip("bjontegaard")
    curves = _curves(ANCHORS)
    ref = curves["vtm"]
    checked = 0
    for name, res in curves.items():
        if name == "vtm" or len(res.get("bpp", [])) < 4 or "psnr-rgb" not in res:
            continue
        for m in ("cubic", "pchip"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    expect = bj.bd_rate(ref["bpp"], ref["psnr-rgb"], res["bpp"], res["psnr-rgb"], method=m,
                                        require_matching_points=False)
                except (AssertionError, ValueError):
                    continue  # the package rejects this curve (not monotone); ours warns instead
            got = bd_rate(ref["bpp"], ref["psnr-rgb"], res["bpp"], res["psnr-rgb"], m)
            if any("not monotone" in w for w in got.warnings) or not math.isfinite(expect):
                continue
            assert got.value == pytest.approx(expect, rel=1e-8), (name, m)
            checked += 1
    assert checked >= 20


def _hyperprior_vs_vtm(folder: Path):
    vtm = json.loads((folder / "vtm.json").read_text())["results"]
    hp_file = sorted(folder.glob("compressai-bmshj2018-hyperprior_mse_*.json"))[0]  # _cpu or _cuda
    hp = json.loads(hp_file.read_text())["results"]
    return [bd_rate(vtm["bpp"], vtm["psnr-rgb"], hp["bpp"], hp["psnr-rgb"], m) for m in ("cubic", "pchip")]


@pytest.mark.skipif(not ANCHORS.is_dir(), reason="published anchors (../shared) not available")
def test_hyperprior_vs_vtm_on_kodak_is_about_plus_30_percent():
    for r in _hyperprior_vs_vtm(ANCHORS):
        assert 29.0 <= r.value <= 31.0, r.value
        assert not r.warnings


@pytest.mark.skipif(not (CHECKED_IN_ANCHORS / "vtm.json").exists(), reason="checked-in anchors missing")
def test_checked_in_anchor_copies_give_the_same_figure():
    for r in _hyperprior_vs_vtm(CHECKED_IN_ANCHORS):
        assert 29.0 <= r.value <= 31.0


def test_warnings_non_monotone_no_overlap_small_overlap():
    bad = PSNR.copy()
    bad[2] = bad[3] + 0.5  # dip
    r = bd_rate(RATE, PSNR, RATE, bad, "pchip")
    assert any("not monotone" in w and "dropped" in w for w in r.warnings)
    assert math.isfinite(r.value)
    assert any("not monotone" in w for w in bd_rate(RATE, PSNR, RATE, bad, "cubic").warnings)

    far = bd_rate(RATE, PSNR, RATE, PSNR + 50, "cubic")
    assert math.isnan(far.value) and any("do not overlap" in w for w in far.warnings)

    little = bd_rate(RATE, PSNR, RATE * 3, PSNR + 10, "pchip")
    assert any("small overlap" in w for w in little.warnings)
    assert math.isfinite(little.value)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="at least 4"):
        bd_rate(RATE[:3], PSNR[:3], RATE, PSNR, "cubic")
    with pytest.raises(ValueError, match="differ in length"):
        bd_rate(RATE, PSNR[:4], RATE, PSNR, "pchip")
    with pytest.raises(ValueError, match="positive"):
        bd_rate(RATE - 0.1, PSNR, RATE, PSNR, "pchip")
    with pytest.raises(ValueError, match="unknown BD method"):
        bd_rate(RATE, PSNR, RATE, PSNR, "linear")


def _write(path: Path, name: str, rate, psnr, msssim=None):
    res = {"bpp": list(map(float, rate)), "psnr-rgb": list(map(float, psnr))}
    if msssim is not None:
        res["ms-ssim-rgb"] = list(map(float, msssim))
    path.write_text(json.dumps({"name": name, "description": "", "results": res}))
    return path


def test_cli_prints_both_methods_and_warns(tmp_path, capsys):
    ms = 1 - 10 ** (-(PSNR - 14) / 10)
    ref = _write(tmp_path / "ref.json", "REF", RATE, PSNR, ms)
    test = _write(tmp_path / "test.json", "TEST", RATE * 0.8, PSNR, ms)
    far = _write(tmp_path / "far.json", "FAR", RATE, PSNR + 8, ms)
    assert main(["bdrate", str(ref), str(test), str(far)]) == 0
    out, err = capsys.readouterr()
    line = next(l for l in out.splitlines() if l.startswith("TEST") and "PSNR" in l)
    assert line.count("-20.0%") == 2  # cubic and pchip
    assert any(l.startswith("TEST") and "MS-SSIM" in l for l in out.splitlines())
    assert "warning" in err and "FAR" in err


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    assert main(["bdrate", str(tmp_path / "missing.json"), str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("codec: error:") and "\n" not in err
    (tmp_path / "notjson.json").write_text("{nope")
    ok = _write(tmp_path / "ok.json", "OK", RATE, PSNR)
    assert main(["bdrate", str(ok), str(tmp_path / "notjson.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not valid JSON" in err and "\n" not in err


# --------------------------------------------------------------------------- axes from the results
RESULTS = REPO / "tools" / "reports" / "kodak" / "results"

KBPS = np.array([16.0, 32.0, 64.0, 128.0, 256.0])
SI_SDR = 5.0 + 4.0 * np.log2(KBPS / 16)  # dB, straight in log-rate: both fits are exact
MEL = 3.0 - 0.5 * np.log2(KBPS / 16)  # a distance: falls as the rate rises
AUDIO_AXES = {
    "medium": "audio",
    "rate": {"key": "kbps", "unit": "kbit/s", "label": "bitrate"},
    "metrics": {
        "si-sdr": {"label": "SI-SDR", "unit": "dB", "higher_is_better": True},
        "mel-distance": {"label": "mel distance", "unit": "", "higher_is_better": False},
    },
}


def _write_axes(path: Path, name: str, axes: dict, rate_key: str, rate, **metrics):
    res = {rate_key: list(map(float, rate)), **{k.replace("_", "-"): list(map(float, v)) for k, v in metrics.items()}}
    path.write_text(json.dumps({"name": name, "description": "", "axes": axes, "results": res}))
    return path


def _audio_pair(tmp_path, factor=0.75):
    """The same curves at ``factor`` x the rate: BD-rate (factor - 1) * 100 on both metrics."""
    ref = _write_axes(tmp_path / "opus.json", "Opus", AUDIO_AXES, "kbps", KBPS, si_sdr=SI_SDR, mel_distance=MEL)
    test = _write_axes(tmp_path / "ours-audio.json", "ours (audio)", AUDIO_AXES, "kbps", KBPS * factor,
                       si_sdr=SI_SDR, mel_distance=MEL)
    return ref, test


def test_lower_is_better_metric_sign():
    dist = -PSNR  # a distance: lower is better
    for m in ("cubic", "pchip"):
        # the same rate saving whichever way the metric points
        r = bd_rate(RATE, dist, RATE * 0.8, dist, m, higher_is_better=False)
        assert r.value == pytest.approx(-20.0, abs=1e-9) and not r.warnings
        # a test with 0.7 less distance at every rate: BD-quality -0.7 (better), fewer bits
        q = bd_quality(RATE, dist, RATE, dist - 0.7, m, higher_is_better=False)
        assert q.value == pytest.approx(-0.7, abs=1e-9) and not q.warnings
        assert bd_rate(RATE, dist, RATE, dist - 0.7, m, higher_is_better=False).value < 0
    # taken as higher-is-better, the falling curve is not monotone: the direction matters
    assert any("not monotone" in w for w in bd_rate(RATE, dist, RATE * 0.8, dist, "cubic").warnings)
    with pytest.raises(ValueError, match="fewer than 2 points left on the Pareto front"):
        bd_rate(RATE, dist, RATE * 0.8, dist, "pchip")


def test_audio_results_through_bdrate_cli(tmp_path, capsys):
    ref, test = _audio_pair(tmp_path)
    assert main(["bdrate", str(ref), str(test)]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err and "note" not in err
    sdr = next(l for l in out.splitlines() if l.startswith("ours (audio)") and "SI-SDR" in l)
    mel = next(l for l in out.splitlines() if l.startswith("ours (audio)") and "mel distance" in l)
    assert sdr.count("-25.0%") == 2 and mel.count("-25.0%") == 2  # cubic and pchip
    # at equal rate the test is 4 * log2(4/3) dB better in SI-SDR and 0.5 * log2(4/3) lower in mel distance
    assert sdr.count(f"+{4 * math.log2(4 / 3):.2f} dB") == 2
    assert "(lower is better)" in mel and mel.count(f"-{0.5 * math.log2(4 / 3):.4f}") == 2
    assert "PSNR" not in out and "bpp" not in out

    assert main(["bdrate", "--metric", "si-sdr", "--method", "pchip", str(ref), str(test)]) == 0
    out = capsys.readouterr().out
    assert "SI-SDR" in out and "mel" not in out
    assert main(["bdrate", "--metric", "psnr", str(ref), str(test)]) == 2
    assert "no metric 'psnr'" in capsys.readouterr().err


def test_rate_window_through_the_cli_and_report(tmp_path, capsys):
    from codec.tools.report import make_report

    ref, test = _audio_pair(tmp_path)
    assert main(["bdrate", str(ref), str(test), "--rate-range", "24:100", "--metric", "si-sdr"]) == 0
    out = capsys.readouterr().out
    assert "rates 24 to 100 kbit/s only" in out
    sdr = next(l for l in out.splitlines() if l.startswith("ours (audio)"))
    assert sdr.count("-25.0%") == 2 and sdr.count(f"+{4 * math.log2(4 / 3):.2f} dB") == 2
    assert main(["bdrate", str(ref), str(test), "--rate-range", "32:12"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("codec: error: --rate-range '32:12'") and "\n" not in err

    folder = tmp_path / "res"
    folder.mkdir()
    _audio_pair(folder)
    make_report([folder], tmp_path / "rep", references=["opus"], rate_range=(24.0, 100.0))
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## BD-rate against Opus, 24-100 kbit/s only" in md and "| BD-mel distance pchip |" in md
    rows = [l for l in md.splitlines() if l.startswith("| ours (audio)")]
    assert len(rows) == 3 and rows[1].count("-25.0%") == 2  # the whole curves, the window, the codecs table
    assert f"| +{4 * math.log2(4 / 3):.2f} dB |" in rows[1] and f"| -{0.5 * math.log2(4 / 3):.4f} |" in rows[1]
    assert main(["report", str(folder), "-o", str(tmp_path / "rep2"), "--rate-range", "x"]) == 2
    assert "--rate-range 'x'" in capsys.readouterr().err


def test_audio_results_through_report(tmp_path):
    from codec.tools.report import make_report

    folder = tmp_path / "res"
    folder.mkdir()
    _audio_pair(folder)
    out = tmp_path / "report"
    written = make_report([folder], out, references=["opus"])
    assert sorted(p.name for p in written) == ["rd-mel-distance.png", "rd-si-sdr.png", "report.html", "report.md"]
    md = (out / "report.md").read_text()
    assert "BD-rate SI-SDR cubic" in md and "BD-rate mel distance pchip" in md and "kbit/s range" in md
    row = next(l for l in md.splitlines() if l.startswith("| ours (audio)"))
    assert row.count("-25.0%") == 4 and f"(+{4 * math.log2(4 / 3):.2f} dB)" in row
    assert "bits per pixel" not in md and "PSNR" not in md and "bpp" not in md
    assert "mel distance (lower is better)" in md


def test_different_rate_axes_are_refused(tmp_path, capsys):
    audio, _ = _audio_pair(tmp_path)
    image = _write(tmp_path / "image.json", "IMG", RATE, PSNR)
    assert main(["bdrate", str(image), str(audio)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("codec: error:") and "\n" not in err
    assert "'kbps' (kbit/s)" in err and "'bpp'" in err and "different rate axes" in err

    # same key, other unit
    bps = json.loads(json.dumps(AUDIO_AXES))
    bps["rate"]["unit"] = "bit/s"
    other = _write_axes(tmp_path / "bps.json", "BPS", bps, "kbps", KBPS * 1000, si_sdr=SI_SDR, mel_distance=MEL)
    assert main(["bdrate", str(audio), str(other)]) == 2
    assert "(bit/s)" in capsys.readouterr().err

    from codec.tools.report import make_report

    with pytest.raises(CodecError, match="different rate axes"):
        make_report([image, audio], tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_metric_sets_and_definitions(tmp_path, capsys):
    ref, _ = _audio_pair(tmp_path)
    only_sdr = {**AUDIO_AXES, "metrics": {"si-sdr": AUDIO_AXES["metrics"]["si-sdr"]}}
    part = _write_axes(tmp_path / "part.json", "PART", only_sdr, "kbps", KBPS * 0.5, si_sdr=SI_SDR)
    assert main(["bdrate", str(ref), str(part)]) == 0
    out, err = capsys.readouterr()
    assert "SI-SDR" in out and "mel" not in out
    assert "codec: note:" in err and "no mel distance values: mel distance skipped" in err
    assert main(["bdrate", "--metric", "mel-distance", str(ref), str(part)]) == 2
    assert "PART: no mel distance values" in capsys.readouterr().err

    flipped = json.loads(json.dumps(AUDIO_AXES))
    flipped["metrics"]["mel-distance"]["higher_is_better"] = True
    bad = _write_axes(tmp_path / "flip.json", "FLIP", flipped, "kbps", KBPS, si_sdr=SI_SDR, mel_distance=MEL)
    assert main(["bdrate", str(ref), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "'mel-distance' is defined differently" in err and "lower is better" in err

    nothing = {**AUDIO_AXES, "metrics": {"pesq": {"label": "PESQ", "unit": "", "higher_is_better": True}}}
    none = _write_axes(tmp_path / "none.json", "NONE", nothing, "kbps", KBPS, pesq=SI_SDR / 10)
    assert main(["bdrate", str(ref), str(none)]) == 2
    assert "share no metric" in capsys.readouterr().err


@pytest.mark.parametrize("change,msg", [
    (lambda a: a.pop("rate"), "need a 'rate' object"),
    (lambda a: a["metrics"]["si-sdr"].pop("higher_is_better"), "'higher_is_better' must be true or false"),
    (lambda a: a["metrics"].clear(), "at least one metric"),
    (lambda a: a["metrics"].update({"pesq": {"label": "PESQ", "unit": "", "higher_is_better": True}}),
     "the axes name 'pesq', which its results lack"),
    (lambda a: a["metrics"]["mel-distance"].update({"db_scale": True}), "'db_scale' is for similarities"),
])
def test_malformed_axes_are_clear_errors(tmp_path, capsys, change, msg):
    ref, _ = _audio_pair(tmp_path)
    axes = json.loads(json.dumps(AUDIO_AXES))
    change(axes)
    bad = _write_axes(tmp_path / "bad.json", "BAD", axes, "kbps", KBPS, si_sdr=SI_SDR, mel_distance=MEL)
    assert main(["bdrate", str(ref), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("codec: error:") and "\n" not in err and msg in err, err


def test_files_without_axes_are_read_as_image_results(tmp_path):
    from codec.tools.bdrate import load_curve

    legacy = _write(tmp_path / "legacy.json", "OLD", RATE, PSNR, 1 - 10 ** (-(PSNR - 14) / 10))
    c = load_curve(legacy)
    assert c.axes.inferred and list(c.metrics) == ["psnr-rgb", "ms-ssim-rgb"]
    assert c.metrics["ms-ssim-rgb"] == pytest.approx(PSNR - 14)  # on the dB scale
    # CompressAI's older names
    older = tmp_path / "older.json"
    older.write_text(json.dumps({"name": "OLDER", "results": {"bpp": list(RATE), "psnr": list(PSNR),
                                                               "ms-ssim-db-rgb": list(PSNR - 14)}}))
    c = load_curve(older)
    assert c.metrics["psnr-rgb"] == pytest.approx(PSNR) and c.metrics["ms-ssim-rgb"] == pytest.approx(PSNR - 14)
    nobpp = tmp_path / "nobpp.json"
    nobpp.write_text(json.dumps({"name": "X", "results": {"kbps": list(KBPS), "si-sdr": list(SI_SDR)}}))
    with pytest.raises(CodecError, match="no 'axes' block and no 'bpp' list"):
        load_curve(nobpp)


@pytest.mark.skipif(not (RESULTS / "jpeg.json").exists(), reason="checked-in results missing")
def test_checked_in_results_name_their_axes_and_keep_their_figures(capsys):
    from codec.tools.image_codecs import IMAGE

    for f in sorted(RESULTS.glob("*.json")):
        assert json.loads(f.read_text())["axes"] == IMAGE.axes(), f.name
    assert main(["bdrate", str(RESULTS / "jpeg.json"), str(RESULTS / "ours-mean-scale-vr-effort-fast.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    # the figures of the README and of the report
    assert out[2].split()[-7:] == ["PSNR-RGB", "-20.1%", "+0.81", "dB", "-21.3%", "+0.81", "dB"]
    assert out[3].split()[-8:] == ["MS-SSIM", "(dB)", "-20.9%", "+1.24", "dB", "-21.0%", "+1.26", "dB"]
