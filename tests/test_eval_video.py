"""``codec eval`` on video: the video metrics (PSNR-YUV 6:1:1, PSNR-RGB, MS-SSIM), the video
medium, the x264/x265/SVT-AV1/VP9/FFV1 baselines through PyAV, ``--frames`` / ``--gop``, and
``codec bdrate`` on the results.  Tiny synthetic clips (64x48, 10 frames): a few seconds."""
from __future__ import annotations

import contextlib
import io
import json
import math
import re
import types
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from codec.cli import main
from codec.errors import CodecError, InputError
from codec.media import image_metrics
from codec.media import video_metrics as vm
from codec.tools.evaluate import evaluate
from codec.tools.registry import make_codec
from codec.tools.video_codecs import VIDEO, VideoItem, read_yuv420

W, H, N, FPS = 64, 48, 10, 25
#: two CRFs a codec (the better one first); FFV1: its two context models
GRID = {"x264": "22,36", "x264-veryslow": "22,36", "x265": "22,36", "svt-av1": "25,50", "vp9": "20,50",
        "ffv1": "0,1"}
LOSSY = [k for k in GRID if k != "ffv1"]


# --------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def video_module():
    from codec.media import video

    return video


def synthetic_planes(n=N, w=W, h=H, seed=0):
    """A moving diagonal gradient with a drifting sine texture and a little fixed noise; chroma
    moving the other way.  uint8 planes within the limited range."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    grain = rng.normal(0, 2, (h, w))
    ch, cw = (h + 1) // 2, (w + 1) // 2
    cy, cx = np.mgrid[0:ch, 0:cw].astype(np.float64)
    ys, us, vs = [], [], []
    for t in range(n):
        y = 60 + 1.5 * (xx + yy + 2 * t) + 25 * np.sin((xx - 2 * t) / 3.0) * np.cos((yy + t) / 5.0) + grain
        ys.append(np.clip(np.rint(y), 16, 235).astype(np.uint8))
        us.append(np.clip(np.rint(128 + 30 * np.sin((cx + t) / 4.0)), 16, 240).astype(np.uint8))
        vs.append(np.clip(np.rint(128 + 30 * np.cos((cy - t) / 3.0)), 16, 240).astype(np.uint8))
    return np.stack(ys), np.stack(us), np.stack(vs)


def write_clip(path: Path, planes, fps=FPS, codec="ffv1") -> None:
    """Write yuv420p planes losslessly (FFV1 in Matroska) with PyAV."""
    import av

    y, u, v = planes
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = y.shape[2], y.shape[1], "yuv420p"
        for i in range(y.shape[0]):
            f = av.VideoFrame(y.shape[2], y.shape[1], "yuv420p")
            for p, a in zip(f.planes, (y[i], u[i], v[i])):
                np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :a.shape[1]] = a
            f.pts = i
            for pkt in s.encode(f):
                out.mux(pkt)
        for pkt in s.encode(None):
            out.mux(pkt)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("video")
    write_clip(d / "gradient.mkv", synthetic_planes())
    (d / "notes.txt").write_text("not video")
    return d


def _run(*argv) -> tuple[int, str, str]:
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        code = main(list(argv))
    return code, so.getvalue(), se.getvalue()


@pytest.fixture(scope="module")
def results(dataset, tmp_path_factory):
    """One ``codec eval`` run of the six baselines at two qualities each; ``(output, stdout)``."""
    out = tmp_path_factory.mktemp("res") / "res"
    code, stdout, stderr = _run("eval", str(dataset), *[a for k, q in GRID.items() for a in ("--codec", f"{k}:{q}")],
                                "-o", str(out), "-j", "1", "--no-progress")
    assert code == 0, stderr
    return out, stdout


def _load(out: Path, key: str) -> dict:
    return json.loads((out / f"{key}.json").read_text())


# --------------------------------------------------------------------------- metrics
def _frames(planes):
    y, u, v = planes
    return [(y[i], u[i], v[i]) for i in range(len(y))]


def test_identical_frames_give_the_cap_like_the_image_metric():
    ref = _frames(synthetic_planes(3))
    assert vm.psnr_yuv(ref, ref) == vm.PSNR_MAX == image_metrics.PSNR_MAX == 100.0
    rgb = [np.dstack([f[0]] * 3) for f in ref]
    assert vm.psnr_rgb(rgb, rgb) == image_metrics.psnr_rgb(rgb[0], rgb[0]) == 100.0
    assert vm.ms_ssim_rgb(rgb, rgb) is None and image_metrics.ms_ssim_rgb(rgb[0], rgb[0]) is None  # 64x48
    big = [np.full((image_metrics.MS_SSIM_MIN_SIDE,) * 2 + (3,), 100, np.uint8)]
    big[0][::3] = 180
    assert vm.ms_ssim_rgb(big, big) == pytest.approx(1.0, abs=1e-6)
    r = vm.SequenceScore().result()  # no frames: nothing defined
    assert set(r.values()) == {None}


def test_known_noise_gives_the_expected_psnr_and_the_6_1_1_weighting():
    y, u, v = (p[0].astype(np.int32) for p in synthetic_planes(1))
    sign = lambda a, s: np.where((np.indices(a.shape).sum(0) % 2) == 0, s, -s)  # noqa: E731 - +-s checkerboard
    rec = tuple((p + sign(p, s)).astype(np.uint8) for p, s in ((y, 2), (u, 4), (v, 1)))  # MSE 4, 16, 1
    f = vm.psnr_yuv_frame((y, u, v), rec)
    expect = {k: 10 * math.log10(255 ** 2 / m) for k, m in (("y", 4), ("u", 16), ("v", 1))}
    for k in "yuv":
        assert f[k] == pytest.approx(expect[k], abs=0.01)
    assert f["yuv"] == pytest.approx((6 * expect["y"] + expect["u"] + expect["v"]) / 8, abs=1e-9)
    # the sequence PSNR-YUV is the mean over frames of the per-frame values
    ref2, rec2 = [(y, u, v), (y, u, v)], [rec, (y, u, v)]
    assert vm.psnr_yuv(ref2, rec2) == pytest.approx((f["yuv"] + 100.0) / 2, abs=1e-9)
    # PSNR-RGB of a sequence comes from the mean MSE over all frames, not the mean of per-frame dB
    a = np.dstack([y.astype(np.uint8)] * 3)
    b1, b3 = (np.clip(a.astype(np.int32) + sign(a, s), 0, 255).astype(np.uint8) for s in (1, 3))
    assert image_metrics.mse(a, b1) == 1 and image_metrics.mse(a, b3) == 9
    assert vm.psnr_rgb([a, a], [b1, b3]) == pytest.approx(10 * math.log10(255 ** 2 / 5), abs=0.01)
    # 10-bit planes: the peak is a parameter
    assert vm.psnr_yuv_frame((y * 4, u * 4, v * 4), (y * 4 + 2, u * 4, v * 4), peak=1023)["y"] == pytest.approx(
        10 * math.log10(1023 ** 2 / 4), abs=0.01)


def test_metrics_reject_mismatched_frames():
    ref = _frames(synthetic_planes(2))
    with pytest.raises(InputError, match="2 frames .* 1"):
        vm.psnr_yuv(ref, ref[:1])
    with pytest.raises(InputError, match="4:2:0"):
        vm.psnr_yuv_frame(ref[0], (ref[0][0], ref[0][0], ref[0][0]))
    with pytest.raises(InputError, match="shapes differ"):
        vm.psnr_rgb([np.zeros((4, 4, 3), np.uint8)], [np.zeros((4, 6, 3), np.uint8)])


# --------------------------------------------------------------------------- medium and codecs
def test_reading_gives_the_native_planes(dataset):
    y, u, v = synthetic_planes()
    item = read_yuv420(dataset / "gradient.mkv")
    assert (item.count, item.width, item.height, item.fps) == (N, W, H, Fraction(FPS))
    assert item.source_format == "yuv420p" and item.source_frames == N
    assert np.array_equal(item.y, y) and np.array_equal(item.u, u) and np.array_equal(item.v, v)
    first = VIDEO.load(dataset / "gradient.mkv", frames=4)
    assert first.count == 4 and np.array_equal(first.y, y[:4]) and first.source_frames in (None, N)  # MKV: no count
    assert VIDEO.rate(1000, item) == pytest.approx(8 * 1000 / (N / FPS) / 1000)
    assert VIDEO.list_items(dataset) == [dataset / "gradient.mkv"]


def test_video_medium_axes():
    ax = VIDEO.axes()
    assert ax["medium"] == "video" and ax["rate"] == {"key": "kbps", "unit": "kbps", "label": "bitrate"}
    assert list(ax["metrics"]) == ["psnr-yuv", "psnr-rgb", "ms-ssim-rgb"]
    assert all(m["higher_is_better"] for m in ax["metrics"].values()) and ax["metrics"]["ms-ssim-rgb"]["db_scale"]


def test_the_rgb_reference_is_what_the_video_module_reads(dataset, video_module):
    """The RGB frames a clip is scored against (and ours is fed) are codec.media.video.read's."""
    item = VIDEO.load(dataset / "gradient.mkv")
    assert (item.matrix, item.full_range) == ("bt601", False)
    read = video_module.read(dataset / "gradient.mkv")
    assert np.array_equal(item.rgb(), np.stack(list(read.frames)))
    v = item.to_video()
    assert (v.width, v.height, v.count, v.fps) == (W, H, N, Fraction(FPS))
    assert np.array_equal(np.stack(list(v.frames)), item.rgb())


def test_scoring_rgb_output_like_ours(video_module):
    """A codec that decodes to RGB frames is scored against the source planes through rgb_to_yuv420."""
    y, u, v = synthetic_planes(3)
    item = VideoItem(y, u, v, Fraction(FPS))
    rgb = item.rgb()
    assert rgb.shape == (3, H, W, 3) and rgb.dtype == np.uint8
    s = VIDEO.score(item, rgb)
    back = [video_module.rgb_to_yuv420(f) for f in rgb]
    assert s["psnr-yuv"] == pytest.approx(vm.psnr_yuv(_frames((y, u, v)), back))
    assert s["psnr-rgb"] == 100.0 and s["psnr-yuv"] > 35 and s["ms-ssim-rgb"] is None
    assert VIDEO.score(item, list(rgb)) == s and VIDEO.score(item, types.SimpleNamespace(frames=iter(rgb))) == s
    assert VIDEO.score(item, item.to_video()) == s  # a codec.media.video.Video, as codec.decode gives
    with pytest.raises(CodecError, match="2 frames, the original 3"):
        VIDEO.score(item, rgb[:2])


@pytest.mark.parametrize("name", ["x264", "svt-av1", "vp9", "ffv1"])
def test_odd_sizes_round_trip(name):
    y, u, v = synthetic_planes(3, w=51, h=37)
    item = VideoItem(y, u, v, Fraction(30000, 1001))
    codec, quals = make_codec(f"{name}:{GRID[name].split(',')[0]}")
    rec = codec.decode(codec.encode(item, quals[0]), item)
    assert rec.y.shape == y.shape and rec.u.shape == u.shape == (3, 19, 26)
    assert VIDEO.score(item, rec)["psnr-yuv"] > (99 if name == "ffv1" else 30)


def test_gop_is_a_setting_in_the_fingerprint():
    a, _ = make_codec("x264:30")
    b, _ = make_codec("x264:30")
    b.gop = 8
    assert a.gop == 32 and "every 32 frames" in a.info()["gop"] and a.fingerprint() != b.fingerprint()
    with pytest.raises(CodecError, match="whole number >= 1"):
        b.gop = 0
    import pickle

    assert pickle.loads(pickle.dumps(b)).gop == 8  # codecs go to worker processes by pickling


# --------------------------------------------------------------------------- codec eval
def test_eval_writes_video_results(results):
    out, stdout = results
    for key, grid in GRID.items():
        obj = _load(out, key)
        assert obj["axes"] == VIDEO.axes()
        meta = obj["meta"]
        assert meta["media"] == "video" and meta["num_items"] == 1 and "frames" not in meta
        assert "kbps" in meta["rate"] and "packets" in meta["bits_counted"] and "gop" in meta["settings"]
        res = obj["results"]
        assert set(res) == {"quality", "kbps", *VIDEO.metric_keys, *VIDEO.extra_keys, "encoding_time",
                            "decoding_time"}
        assert len(res["kbps"]) == 2 and res["kbps"] == sorted(res["kbps"])
        per = obj["per_image"]["gradient.mkv"]
        for nbytes, kbps, bpp in zip(per["bytes"], per["kbps"], per["bpp"]):
            assert kbps == pytest.approx(8 * nbytes / (N / FPS) / 1000, rel=1e-12)
            assert bpp == pytest.approx(8 * nbytes / (W * H * N), rel=1e-12)
        assert per["frames"] == [N, N] and all(v > 0 for v in per["encoding_fps"] + per["decoding_fps"])
        assert res["ms-ssim-rgb"] == [None, None]  # 64x48 is too small for MS-SSIM
        line = next(l for l in stdout.splitlines() if l.startswith(key))
        assert " kbps " in line and " dB  -> " in line, line


def test_eval_metrics_are_sensible(results):
    out, _ = results
    for key in LOSSY:
        res = _load(out, key)["results"]
        good, bad = (res["quality"].index(int(q)) for q in GRID[key].split(","))
        assert res["kbps"][good] > res["kbps"][bad], (key, res)  # rate rises with quality (lower CRF)
        assert res["psnr-yuv"][good] > res["psnr-yuv"][bad], (key, res)
        assert res["psnr-yuv"][good] > 35 and res["psnr-rgb"][good] > 25, (key, res)
        wy = [(6 * y + u + v) / 8 for y, u, v in zip(res["psnr-y"], res["psnr-u"], res["psnr-v"])]
        assert res["psnr-yuv"] == pytest.approx(wy)  # averaging commutes with the weighting
    ffv1 = _load(out, "ffv1")["results"]
    assert ffv1["psnr-yuv"] == [100.0, 100.0] and ffv1["psnr-rgb"] == [100.0, 100.0]
    assert min(ffv1["kbps"]) < 8 * W * H * 1.5 * FPS / 1000  # below raw 4:2:0
    assert ffv1["kbps"][0] > 4 * max(_load(out, k)["results"]["kbps"][-1] for k in LOSSY)


def test_bdrate_on_video_results(results):
    out, _ = results
    code, stdout, err = _run("bdrate", str(out / "x264.json"), str(out / "x265.json"), str(out / "vp9.json"),
                             "--method", "pchip")
    assert code == 0, err
    rows = {(c[0], c[1]): c[2:] for c in (re.split(r"\s{2,}", l.strip()) for l in stdout.splitlines()[2:])}
    cells = rows[("HEVC (x265 medium)", "PSNR-YUV")]
    assert cells[0].endswith("%") and math.isfinite(float(cells[0][:-1])), (rows, err)


def test_frames_and_gop_options(dataset, tmp_path):
    out = tmp_path / "o"
    code, stdout, err = _run("eval", str(dataset), "--codec", "x264:30", "--frames", "4", "--gop", "2", "-o", str(out),
                             "-j", "1", "--no-progress")
    assert code == 0, err
    obj = _load(out, "x264")
    assert "first 4 frames" in obj["meta"]["frames"] and obj["meta"]["fingerprint"].endswith("/frames=4")
    assert "every 2 frames" in obj["meta"]["settings"]["gop"]
    per = obj["per_image"]["gradient.mkv"]
    assert per["frames"] == [4] and per["kbps"][0] == pytest.approx(8 * per["bytes"][0] / (4 / FPS) / 1000)
    logs = []  # the same points again are done; other frame limits are other points
    evaluate(dataset, ["x264:30"], out, jobs=1, progress=False, log=logs.append, frames=4, gop=2)
    assert any("1 already done, 0 to run" in m for m in logs), logs
    logs.clear()
    evaluate(dataset, ["x264:30"], out, jobs=1, progress=False, log=logs.append, gop=2)
    assert any("0 already done, 1 to run" in m for m in logs), logs


@pytest.mark.parametrize("argv,msg", [
    (["--codec", "x264:18,abc"], r"bad quality list '18,abc': 'abc' is not a number"),
    (["--codec", "x265:60"], r"60 is outside 0\.\.51 for x265"),
    (["--codec", "h266"], r"unknown codec 'h266'.*x264.*\(video\)"),
    (["--codec", "jpeg:50", "--frames", "3"], r"--frames applies to video"),
    (["--codec", "x264:30", "--frames", "0"], r"--frames must be >= 1"),
])
def test_user_errors_are_one_line(dataset, tmp_path, argv, msg):
    code, _, err = _run("eval", str(dataset), *argv, "-o", str(tmp_path / "o"), "-j", "1", "--no-progress")
    assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(msg, err), err


def test_a_broken_clip_fails_its_points_clearly(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    logs = []
    with pytest.raises(CodecError, match="1 point"):
        evaluate(d, ["x264:30"], tmp_path / "o", jobs=1, progress=False, log=logs.append)
    assert any("broken.mp4" in m and "CodecError" in m for m in logs), logs


def test_ours_codes_clips_with_its_video_model(dataset, tmp_path):
    """``ours:video-ip`` in codec eval: the stream's bytes as the rate, its decoded RGB scored
    against the source planes; ``--gop 1`` is the all-key-frame codec ``ours-video-ip-gop1``."""
    out = tmp_path / "o"
    code, stdout, err = _run("eval", str(dataset), "--codec", "ours:video-ip:2,6", "--frames", "4", "-o", str(out),
                             "-j", "1", "--no-progress")
    assert code == 0, err
    obj = _load(out, "ours-video-ip")
    r = obj["results"]
    assert r["quality"] == [2, 6] and r["kbps"][0] < r["kbps"][1] and 20 < r["psnr-yuv"][0] < r["psnr-yuv"][1]
    assert "every 32 frames" in json.dumps(obj["meta"])
    code, _, err = _run("eval", str(dataset), "--codec", "ours:video-ip:2", "--frames", "4", "--gop", "1",
                        "-o", str(out), "-j", "1", "--no-progress")
    assert code == 0, err
    intra = _load(out, "ours-video-ip-gop1")
    assert intra["results"]["quality"] == [2] and "every 1 frames" in json.dumps(intra["meta"])
    code, _, err = _run("eval", str(dataset), "--codec", "ours:mean-scale-vr:2", "--gop", "2", "-o", str(out))
    assert code == 2 and "no GOP setting" in err
