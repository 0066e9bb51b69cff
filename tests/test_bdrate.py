"""BD-rate maths: analytic cases, cross-check with the ``bjontegaard`` package, and the
published CompressAI hyperprior-vs-VTM figure on Kodak."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from codec.cli import main
from codec.tools.bdrate import bd_quality, bd_rate, pchip_integral

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


def test_pchip_integral_matches_scipy():
    scipy_interp = pytest.importorskip("scipy.interpolate")
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = rng.integers(2, 9)
        x = np.cumsum(rng.uniform(0.1, 2, n))
        y = rng.normal(0, 3, n)  # not monotone on purpose: exercises the zero-slope rules
        a, b = sorted(rng.uniform(x[0], x[-1], 2))
        ref = scipy_interp.PchipInterpolator(x, y).integrate(a, b)
        assert pchip_integral(x, y, a, b) == pytest.approx(ref, rel=1e-10, abs=1e-10)


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
