"""Video through the API and the CLI: round trips through files, random access, bad input, hostile
streams, and GPU-encoded streams decoding on the CPU (skips without CUDA)."""
from __future__ import annotations

import os
import pathlib
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

import codec
from codec import container as ct
from codec.api import decode_file
from codec.cli import main
from codec.errors import CodecError
from codec.media import video
from codec.models.payload import Payload, Section

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from pictures import smooth_image  # noqa: E402


def _clip(n=6, h=48, w=64, seed=0):
    big = smooth_image(h + n, w + 2 * n, seed)
    return np.stack([big[i:i + h, 2 * i:2 * i + w] for i in range(n)])


def _write(path, frames, codec_name="libx264", pix_fmt="yuv420p", fps=25, audio=False):
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec_name, rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if codec_name == "libx264":
            s.options = {"crf": "12"}
        a = out.add_stream("aac", rate=16000) if audio else None
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format=pix_fmt)):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
        if a is not None:
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
            fr.sample_rate = 16000
            for p in a.encode(fr):
                out.mux(p)
            for p in a.encode():
                out.mux(p)
    return path


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return _write(d / "clip.mp4", _clip(7))


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err, msg):
    assert code == 2 and err.startswith("codec: error:") and err.count("\n") == 1 and msg in err, err


# ---------------------------------------------------------------------- files, CLI
def test_cli_round_trip_keeps_frames_size_and_rate(capsys, tmp_path, clip_file):
    stream = tmp_path / "clip.nmc"
    code, out, err = _cli(capsys, "encode", clip_file, "-o", stream, "--gop", "3", "-q")
    assert code == 0, err
    code, out, _ = _cli(capsys, "info", stream)
    assert "64x48, 7 frames at 25 fps" in out and "3 key frames" in out and "hyper-latent [1]" in out
    full = codec.decode(stream.read_bytes(), output="numpy")
    assert full.shape == (7, 48, 64, 3)
    for name in ("out.y4m", "out.mkv", "frames"):
        code, _, err = _cli(capsys, "decode", stream, "-o", tmp_path / name, "-q")
        assert code == 0, err
    with video.Reader(tmp_path / "out.mkv") as r:  # FFV1: the decoded RGB exactly
        assert (r.width, r.height, r.fps) == (64, 48, Fraction(25))
        assert np.array_equal(np.stack(list(r.frames())), full)
    pngs = sorted(os.listdir(tmp_path / "frames"))
    assert len(pngs) == 7 and pngs[0] == "frame_000001.png"
    # a folder of frames is the output again: refused without --force, replaced with it
    code, _, err = _cli(capsys, "decode", stream, "-o", tmp_path / "frames", "--frames", "0-1")
    _one_line_error(code, err, "not empty")
    code, _, err = _cli(capsys, "decode", stream, "-o", tmp_path / "frames", "--frames", "0-1", "--force", "-q")
    assert code == 0 and sorted(os.listdir(tmp_path / "frames")) == ["frame_000001.png", "frame_000002.png"]
    code, _, err = _cli(capsys, "decode", stream, "-o", tmp_path / "clip.mp4")
    _one_line_error(code, err, ".y4m, .mkv")
    with video.Reader(tmp_path / "out.y4m") as r:  # 4:2:0: the conversion's round trip
        y4m = np.stack(list(r.frames()))
        assert r.count == 7 and r.fps == Fraction(25)
    assert all(np.array_equal(y4m[i], video.yuv420_to_rgb(*video.rgb_to_yuv420(full[i]))) for i in range(7))
    # and the decoded frames are what the encoder's model reconstructed
    src = np.stack(list(video.read(clip_file).frames))
    err_db = 10 * np.log10(255 ** 2 / np.mean((src.astype(float) - full) ** 2))
    assert err_db > 25


@pytest.mark.parametrize("span,want", [("0-6", range(0, 7)), ("2-4", range(2, 5)), ("4-", range(4, 7)),
                                       ("5", range(5, 6)), ("3-99", range(3, 7))])
def test_random_access_equals_a_full_decode(capsys, tmp_path, clip_file, span, want):
    data = codec.encode(video.read(clip_file), gop=3)
    full = codec.decode(data, output="numpy")
    part = codec.decode(data, frames=span, output="numpy")
    assert np.array_equal(part, full[list(want)])
    stream = tmp_path / "s.nmc"
    stream.write_bytes(data)
    code, _, err = _cli(capsys, "decode", stream, "-o", tmp_path / "p.mkv", "--frames", span, "-q")
    assert code == 0, err
    with video.Reader(tmp_path / "p.mkv") as r:
        assert np.array_equal(np.stack(list(r.frames())), full[list(want)])


def test_api_takes_arrays_tensors_and_iterators_and_streams_its_output():
    frames = _clip(4)
    a = codec.encode(frames, fps=24)
    b = codec.encode(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255, fps=24)
    c = codec.encode(iter(list(frames)), fps=24)
    assert a == b == c
    v = codec.decode(a)
    assert isinstance(v, video.Video) and v.count == 4 and v.fps == 24 and (v.width, v.height) == (64, 48)
    assert np.array_equal(np.stack(list(v.frames)), codec.decode(a, output="numpy"))
    t = codec.decode(a, output="torch")
    assert t.shape == (4, 3, 48, 64) and t.dtype == torch.float32
    d = codec.info(a)
    assert d["modality"] == "video" and d["frames"] == 4 and d["kbps"] > 0
    for bad, msg in ((dict(bitrate=16), "bitrate= is for audio"), (dict(sample_rate=8000, model="video-ip"), "sample_rate="),
                     (dict(gop=0), "gop must lie in"), (dict(fps=0), "frame rate")):
        with pytest.raises(CodecError, match=msg):
            codec.encode(frames, **{"fps": 24, **bad})
    assert codec.encode(frames, fps=24, gop=1) != a  # every frame a key frame
    assert sum(1 for s in codec.info(codec.encode(frames, fps=24, gop=1))["sections"] if s["flags"]) == 4


def test_odd_sizes_round_trip(tmp_path):
    frames = _clip(3, h=9, w=17)
    data = codec.encode(frames, fps=10)
    out = codec.decode(data, output="numpy")
    assert out.shape == (3, 9, 17, 3)
    decode_file(data, tmp_path / "odd.y4m")
    with video.Reader(tmp_path / "odd.y4m") as r:
        assert (r.width, r.height, r.count) == (17, 9, 3)


def test_an_audio_track_is_said_to_be_dropped(capsys, tmp_path):
    src = _write(tmp_path / "av.mp4", _clip(3), audio=True)
    code, out, err = _cli(capsys, "encode", src, "-o", tmp_path / "av.nmc", "-q")
    assert code == 0 and "audio track is not coded" in err


def _bytes(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make,msg", [
    (lambda d: _bytes(d / "bad.mp4", b"\0\0\0\x18ftypmp42" + bytes(range(256)) * 16), "bad.mp4"),
    (lambda d: _bytes(d / "empty.mp4", b""), "empty.mp4"),
    (lambda d: _write(d / "ten.mkv", _clip(2), "ffv1", "yuv420p10le"), "10-bit"),
    (lambda d: _bytes(d / "raw.yuv", bytes(64 * 48 * 3 // 2)), "--size"),
])
def test_bad_video_input_is_one_line_and_leaves_nothing(capsys, tmp_path, make, msg):
    src = make(tmp_path)
    out = tmp_path / "out.nmc"
    code, _, err = _cli(capsys, "encode", src, "-o", out)
    _one_line_error(code, err, msg)
    assert not out.exists()


def test_444_and_raw_yuv_are_coded(capsys, tmp_path):
    src = _write(tmp_path / "c444.mkv", _clip(2), "ffv1", "yuv444p")
    code, _, err = _cli(capsys, "encode", src, "-o", tmp_path / "a.nmc", "-q")
    assert code == 0, err
    y, u, v = video.rgb_to_yuv420(_clip(1)[0])
    raw = tmp_path / "raw.yuv"
    raw.write_bytes((y.tobytes() + u.tobytes() + v.tobytes()) * 2)
    code, _, err = _cli(capsys, "encode", raw, "-o", tmp_path / "r.nmc", "--size", "64x48", "--fps", "25", "-q")
    assert code == 0, err
    assert codec.info((tmp_path / "r.nmc").read_bytes())["frames"] == 2


@pytest.mark.parametrize("argv,msg", [
    (["--gop", "0"], "gop must lie in"),
    (["--bitrate", "16k"], "--bitrate is for audio"),
])
def test_bad_video_options_are_one_line(capsys, tmp_path, clip_file, argv, msg):
    code, _, err = _cli(capsys, "encode", clip_file, "-o", tmp_path / "x.nmc", *argv)
    _one_line_error(code, err, msg)
    assert not (tmp_path / "x.nmc").exists()


def test_bad_decode_options_are_one_line(capsys, tmp_path, clip_file):
    stream = tmp_path / "c.nmc"
    stream.write_bytes(codec.encode(_clip(3), fps=25))
    for argv, msg in ((["--frames", "7-9"], "outside"), (["--frames", "x"], "--frames takes"),
                      (["--start", "1"], "--start and --duration are for audio")):
        code, _, err = _cli(capsys, "decode", stream, "-o", tmp_path / "o.y4m", *argv)
        _one_line_error(code, err, msg)
        assert not (tmp_path / "o.y4m").exists()
    img = tmp_path / "i.nmc"
    img.write_bytes(codec.encode(_clip(1)[0]))
    code, _, err = _cli(capsys, "decode", img, "-o", tmp_path / "i.png", "--frames", "0")
    _one_line_error(code, err, "--frames is for video")


# ------------------------------------------------------------------ hostile streams
def _restream(data, **change):
    c = ct.unpack(data)
    fields = dict(model=c.model, weights_id=c.weights_id, quality=c.quality, media=c.media, payload=c.payload)
    fields.update(change)
    return ct.pack(ct.Container(**fields))


def test_hostile_streams_are_refused_before_any_network_runs():
    data = codec.encode(_clip(3), fps=25, gop=2)
    c = ct.unpack(data)
    m = c.media
    big = ct.VideoInfo(60000, 60000, m.frames, m.fps, m.colour, m.bit_depth)
    with pytest.raises(CodecError, match="pixel|limit"):
        codec.decode(_restream(data, media=big))
    more = ct.VideoInfo(m.width, m.height, 5, m.fps, m.colour, m.bit_depth)
    with pytest.raises(CodecError, match="sections"):
        codec.decode(_restream(data, media=more))
    with pytest.raises(CodecError, match="sections"):
        codec.decode(_restream(data, payload=Payload(c.payload.sections[:-1], c.payload.header)))
    other = ct.VideoInfo(m.width + 16, m.height, m.frames, m.fps, m.colour, m.bit_depth)
    with pytest.raises(CodecError, match="model header"):
        codec.decode(_restream(data, media=other))
    secs = [Section(s.kind, s.data, s.index, 0) for s in c.payload.sections]  # no key frame
    with pytest.raises(CodecError, match="key frame"):
        codec.decode(_restream(data, payload=Payload(secs, c.payload.header)))
    bad = [Section(s.kind, (bytes([0, 0]) + b"\xff" * 40) if (s.index, s.kind) == (1, "hyper-latent") else s.data,
                   s.index, s.flags) for s in c.payload.sections]
    with pytest.raises(CodecError):
        codec.decode(_restream(data, payload=Payload(bad, c.payload.header)), output="numpy")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_encoded_video_decodes_on_the_cpu_to_identical_frames():
    frames = _clip(6, h=64, w=96)
    for enc in ("cuda", "cpu"):  # (the float analysis may code other bytes on each device)
        data = codec.encode(frames, fps=25, gop=3, device=enc)
        a = codec.decode(data, device="cpu", output="numpy")
        b = codec.decode(data, device="cuda", output="numpy")
        assert np.array_equal(a, b), enc
