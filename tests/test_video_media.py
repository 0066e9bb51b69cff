"""The video medium (codec.media.video): colour conversion, files in and out (PyAV for
containers; y4m, raw .yuv and PNG folders), user objects, limits and bad input.

Synthetic clips only, made in tmp files with PyAV or numpy (a few frames of 64x48 or
17x9), so the whole file runs in seconds."""
import hashlib
import os
import pathlib
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from codec.container import MAX_FRAMES, VideoInfo
from codec.errors import CodecError, InputError, LimitError
from codec.media import video
from codec.media.video import Video

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from pictures import smooth_image  # noqa: E402


# --------------------------------------------------------------------------- helpers
def _clip(n=6, h=48, w=64, seed=0):
    """``n`` natural-looking RGB frames (a smooth picture panning right)."""
    big = smooth_image(h, w + 2 * n, seed)
    return np.stack([big[:, 2 * i:2 * i + w] for i in range(n)])


def _psnr(a, b):
    m = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if m == 0 else 10 * np.log10(255 ** 2 / m)


def _one_line(exc_info, path=None):
    text = str(exc_info.value)
    assert text and "\n" not in text
    if path is not None:
        assert str(path) in text
    return text


def _yuv_frame(y, u, v, fmt="yuv420p"):
    """A PyAV frame holding exactly these planes."""
    f = av.VideoFrame(y.shape[1], y.shape[0], fmt)
    for plane, a in zip(f.planes, (y, u, v)):
        buf = np.frombuffer(plane, np.uint8)[:plane.height * plane.line_size].reshape(plane.height, plane.line_size)
        buf[:a.shape[0], :a.shape[1]] = a
    return f


def _encode(path, frames, codec="ffv1", pix_fmt="yuv420p", fps=25, pts=None, options=None, fmt=None, tags=None):
    """Encode ``frames`` (av.VideoFrames) with PyAV; ``pts`` in milliseconds (a 1/1000 time
    base); ``tags``: codec context attributes (colour range, matrix)."""
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=fps, options=options or {})
        s.width, s.height, s.pix_fmt = frames[0].width, frames[0].height, pix_fmt
        for k, v in (tags or {}).items():
            setattr(s.codec_context, k, v)
        if pts is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for i, f in enumerate(frames):
            f.pts = i if pts is None else pts[i]
            if pts is not None:
                f.time_base = Fraction(1, 1000)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return path


def _yuv420_clip(path, rgb, full_range=False, **kw):
    """``rgb`` frames as exact 4:2:0 planes (our conversion) in a file; the planes."""
    planes = [video.rgb_to_yuv420(f, full_range=full_range) for f in rgb]
    fmt = "yuvj420p" if full_range else "yuv420p"
    _encode(path, [_yuv_frame(*p, fmt=fmt) for p in planes], pix_fmt=kw.pop("pix_fmt", fmt), **kw)
    return planes


def _files(d):
    return sorted(p.name for p in pathlib.Path(d).iterdir())


# --------------------------------------------------------------------------- colour
def test_conversion_is_accurate_both_ways():
    x = smooth_image(96, 128, seed=3)
    y, u, v = video.rgb_to_yuv420(x)
    assert y.shape == (96, 128) and u.shape == v.shape == (48, 64) and y.dtype == np.uint8
    back = video.yuv420_to_rgb(y, u, v)
    assert back.shape == x.shape and back.dtype == np.uint8
    assert _psnr(x, back) > 40  # 4:2:0 loses the chroma detail, and nothing else
    assert _psnr(x, video.yuv444_to_rgb(*video.rgb_to_yuv444(x))) > 50
    assert np.abs(video.yuv444_to_rgb(*video.rgb_to_yuv444(x)).astype(int) - x).max() <= 2
    # yuv -> rgb -> yuv of the source: luma all but exact, chroma close (smoothed by the upsampling)
    y2, u2, v2 = video.rgb_to_yuv420(back)
    assert _psnr(y, y2) > 55 and np.abs(y2.astype(int) - y).max() <= 2
    assert _psnr(u, u2) > 45 and _psnr(v, v2) > 45


def test_conversion_matches_bt601_limited_range():
    prim = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], np.uint8)
    y, u, v = video.rgb_to_yuv444(prim)
    assert [(int(y[0, i]), int(u[0, i]), int(v[0, i])) for i in range(5)] == \
        [(81, 90, 240), (145, 54, 34), (41, 240, 110), (235, 128, 128), (16, 128, 128)]
    g = np.arange(256, dtype=np.uint8)
    gray = np.stack([g, g, g], -1)[None]
    for full in (False, True):
        y, u, v = video.rgb_to_yuv444(gray, full_range=full)
        assert (u == 128).all() and (v == 128).all()
        assert (y.min(), y.max()) == ((0, 255) if full else (16, 235))
        err = np.abs(video.yuv444_to_rgb(y, u, v, full_range=full).astype(int) - gray).max()
        assert err == (0 if full else 1)
    # BT.709 when asked: its own luma weights
    assert int(video.rgb_to_yuv444(prim, "bt709")[0][0, 0]) == 63


def test_conversion_is_integer_arithmetic_with_fixed_results():
    """The same bytes on every machine: a checksum of a fixed conversion pins the formula."""
    x = smooth_image(9, 17, seed=5)
    y, u, v = video.rgb_to_yuv420(x)
    assert u.shape == v.shape == (5, 9)  # ceil(H/2) x ceil(W/2)
    back = video.yuv420_to_rgb(y, u, v)
    digest = hashlib.sha256(b"".join(a.tobytes() for a in (y, u, v, back))).hexdigest()[:16]
    assert digest == GOLDEN_CONVERSION
    # an edge block averages the pixels it has: a 1x1 picture keeps its own chroma
    one = np.array([[[200, 30, 90]]], np.uint8)
    assert video.rgb_to_yuv420(one)[1][0, 0] == video.rgb_to_yuv444(one)[1][0, 0]
    # a flat picture comes back flat at any size
    flat = np.full((5, 7, 3), (10, 200, 60), np.uint8)
    assert len(np.unique(video.yuv420_to_rgb(*video.rgb_to_yuv420(flat)).reshape(-1, 3), axis=0)) == 1


GOLDEN_CONVERSION = "179b4e91c51a1769"  # sha256 (first 16 hex digits) of the planes and RGB above


def test_conversion_refuses_wrong_planes():
    y = np.zeros((9, 17), np.uint8)
    with pytest.raises(InputError, match="4:2:0 chroma"):
        video.yuv420_to_rgb(y, np.zeros((4, 8), np.uint8), np.zeros((4, 8), np.uint8))
    with pytest.raises(InputError, match="do not fit"):
        video.yuv_to_rgb(y, np.zeros((3, 3), np.uint8), np.zeros((3, 3), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        video.yuv_to_rgb(y.astype(np.float32), y, y)
    with pytest.raises(InputError, match="RGB frame"):
        video.rgb_to_yuv420(np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="matrix"):
        video.rgb_to_yuv420(np.zeros((4, 4, 3), np.uint8), matrix="bt999")


# --------------------------------------------------------------------------- writers: round trips
@pytest.mark.parametrize("size", [(64, 48), (17, 9)])
@pytest.mark.parametrize("kind", ["mkv", "png"])
def test_lossless_writers_round_trip_exactly(tmp_path, kind, size):
    w, h = size
    x = _clip(5, h, w, seed=w)
    fps = Fraction(30000, 1001)
    path = tmp_path / ("out.mkv" if kind == "mkv" else "frames")
    video.write(path, video.from_user(x, fps=fps))
    if kind == "png":
        assert _files(path) == [f"frame_{i:06d}.png" for i in range(1, 6)]
        with pytest.raises(InputError, match="fps"):
            video.read(path)  # a folder of PNGs states no rate
    v = video.read(path, fps=fps if kind == "png" else None)
    assert (v.width, v.height, v.fps) == (w, h, fps)
    got = np.stack(list(v.frames))
    assert np.array_equal(got, x)
    assert video.probe(path, fps=fps if kind == "png" else None) == VideoInfo(w, h, 5, (30000, 1001), "rgb", 8)
    if kind == "mkv":  # FFmpeg reads it as 8-bit RGB, the same pixels
        with av.open(str(path)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
            assert c.streams.video[0].codec_context.name == "ffv1"
        assert np.array_equal(np.stack(frames), x)


@pytest.mark.parametrize("size", [(64, 48), (17, 9)])
def test_y4m_round_trips_through_the_conversion(tmp_path, size):
    w, h = size
    x = _clip(4, h, w, seed=1)
    path = tmp_path / "out.y4m"
    with video.Writer(path, w, h, 25) as wr:
        for f in x:
            wr.write(f)
    data = path.read_bytes()
    assert data.startswith(f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg".encode())
    cw, ch = -(-w // 2), -(-h // 2)
    assert len(data) == data.index(b"\n") + 1 + 4 * (6 + w * h + 2 * cw * ch)
    v = video.read(path)
    assert (v.width, v.height, v.fps, v.count) == (w, h, Fraction(25), 4)
    got = np.stack(list(v.frames))
    want = np.stack([video.yuv420_to_rgb(*video.rgb_to_yuv420(f)) for f in x])
    assert np.array_equal(got, want)  # exactly the conversion's round trip
    assert _psnr(got, x) > 35
    with av.open(str(path)) as c:  # FFmpeg reads our header: 4:2:0, limited range, our planes
        f = next(c.decode(video=0))
        assert (f.format.name, f.color_range) == ("yuv420p", 1)
        assert np.array_equal(np.frombuffer(f.planes[0], np.uint8).reshape(h, -1)[:, :w], video.rgb_to_yuv420(x[0])[0])


# --------------------------------------------------------------------------- readers
def test_reads_exact_planes_from_mkv_and_raw_yuv(tmp_path):
    x = _clip(6, 48, 64, seed=2)
    planes = _yuv420_clip(tmp_path / "a.mkv", x)
    want = np.stack([video.yuv420_to_rgb(*p) for p in planes])
    v = video.read(tmp_path / "a.mkv")
    assert (v.width, v.height, v.fps, v.count) == (64, 48, 25, None)  # mkv states no count
    assert np.array_equal(np.stack(list(v.frames)), want)
    assert np.array_equal(np.stack(list(v.frames)), want)  # a file's Video can be iterated again
    assert video.probe(tmp_path / "a.mkv").frames == 6  # from the duration
    raw = tmp_path / "a.yuv"
    raw.write_bytes(b"".join(p.tobytes() for f in planes for p in f))
    r = video.read(raw, size="64x48", fps="25")
    assert (r.width, r.height, r.fps, r.count) == (64, 48, 25, 6)
    assert np.array_equal(np.stack(list(r.frames)), want)
    with video.Reader(raw, size=(64, 48), fps=25, pix_fmt="yuv420p") as rd:
        assert np.array_equal(np.stack(list(rd.frames(2, 4))), want[2:4])
    with video.Reader(tmp_path / "a.mkv") as rd:
        assert np.array_equal(np.stack(list(rd.frames(start=3))), want[3:])
        assert np.array_equal(np.stack(list(rd.frames(1, 2))), want[1:2])
        assert rd.count == 6  # known after a full pass
        assert list(rd.frames(4, 4)) == []


@pytest.mark.parametrize("fmt", ["yuv444p", "yuv422p", "gray", "rgb24", "nv12"])
def test_raw_formats(tmp_path, fmt):
    x = _clip(3, 9, 17, seed=4)
    if fmt == "rgb24":
        data, want = x.tobytes(), x
    elif fmt == "gray":
        data, want = x[..., 1].tobytes(), np.repeat(x[..., 1:2], 3, axis=3)
    elif fmt == "nv12":
        planes = [video.rgb_to_yuv420(f) for f in x]
        data = b"".join(y.tobytes() + np.stack([u, v], -1).tobytes() for y, u, v in planes)
        want = np.stack([video.yuv420_to_rgb(*p) for p in planes])
    else:
        planes = [video.rgb_to_yuv(f, fmt[3:6]) for f in x]
        data = b"".join(p.tobytes() for f in planes for p in f)
        want = np.stack([video.yuv_to_rgb(*p) for p in planes])
    (tmp_path / "x.yuv").write_bytes(data)
    v = video.read(tmp_path / "x.yuv", size=(17, 9), fps=Fraction(24000, 1001), pix_fmt=fmt)
    assert v.count == 3 and np.array_equal(np.stack(list(v.frames)), want)


def test_reads_lossy_containers(tmp_path):
    x = _clip(8, 48, 64, seed=6)
    cases = [("a.mp4", "libx264", {"preset": "ultrafast", "qp": "10"}),
             ("a.mov", "libx264", {"preset": "ultrafast", "qp": "10"}),
             ("a.webm", "libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "crf": "10", "b": "0"}),
             ("a.avi", "mjpeg", {"q": "2"}),  # yuvj420p: full range
             ("b.mkv", "ffv1", {})]  # yuv411p: a format converted by libswscale
    for name, codec, opts in cases:
        if codec == "ffv1":
            frames = [_yuv_frame(*video.rgb_to_yuv420(f)).reformat(format="yuv411p") for f in x]
            _encode(tmp_path / name, frames, pix_fmt="yuv411p")
        else:
            _yuv420_clip(tmp_path / name, x, full_range=codec == "mjpeg", codec=codec, options=opts)
        info = video.probe(tmp_path / name)
        assert info == VideoInfo(64, 48, 8, (25, 1), "rgb", 8), name
        v = video.read(tmp_path / name)
        got = np.stack(list(v.frames))
        assert got.shape == x.shape and _psnr(got, x) > 30, name
        assert v.count == (8 if name[-3:] in ("mp4", "mov", "avi") else None), name


def test_full_range_and_bt709_tags_are_honoured(tmp_path):
    x = _clip(2, 16, 16, seed=7)
    planes = [video.rgb_to_yuv420(f, "bt709", full_range=True) for f in x]
    frames = []
    for p in planes:
        f = _yuv_frame(*p)
        f.color_range, f.colorspace = 2, 1  # JPEG (full) range, BT.709
        frames.append(f)
    _encode(tmp_path / "j.mkv", frames, tags={"color_range": 2, "colorspace": 1})
    with av.open(str(tmp_path / "j.mkv")) as c:
        tagged = next(c.decode(video=0))
    assert (tagged.color_range, tagged.colorspace) == (2, 1)
    got = np.stack(list(video.read(tmp_path / "j.mkv").frames))
    assert np.array_equal(got, np.stack([video.yuv420_to_rgb(*p, "bt709", True) for p in planes]))


# --------------------------------------------------------------------------- bad files
def test_every_bad_file_is_one_input_error_and_names_it(tmp_path):
    x = _clip(8, 48, 64, seed=8)
    good = tmp_path / "good.mp4"
    _yuv420_clip(good, x, codec="libx264", options={"preset": "ultrafast"})
    data = good.read_bytes()
    cases = {}
    (tmp_path / "trunc.mp4").write_bytes(data[:len(data) // 2])  # moov at the end: cut off
    cases["trunc.mp4"] = "not a video file"
    fast = tmp_path / "fast.mp4"
    with av.open(str(fast), "w", options={"movflags": "faststart"}) as out:
        s = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i, f in enumerate(x):
            fr = _yuv_frame(*video.rgb_to_yuv420(f))
            fr.pts = i
            for p in s.encode(fr):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    fd = fast.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(fd[:len(fd) * 2 // 3])  # the header is whole, the frames are not
    cases["cut.mp4"] = "corrupt or truncated"
    garbled = bytearray(fd)  # noise in the middle of the frames (H.264 has no checksum: found by the decoder)
    rng = np.random.default_rng(0)
    mid = (fd.index(b"mdat") + len(fd)) // 2
    garbled[mid:mid + 200] = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    (tmp_path / "garbled.mp4").write_bytes(bytes(garbled))
    cases["garbled.mp4"] = "corrupt or truncated"
    (tmp_path / "noise.mkv").write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    cases["noise.mkv"] = "not a video file"
    (tmp_path / "empty.mp4").write_bytes(b"")
    cases["empty.mp4"] = "not a video file"
    (tmp_path / "zero.y4m").write_bytes(b"YUV4MPEG2 W16 H16 F25:1 Ip A1:1 C420jpeg\n")
    cases["zero.y4m"] = "has no frames"
    y4m = tmp_path / "ok.y4m"
    video.write(y4m, video.from_user(x[:3], fps=25))
    (tmp_path / "short.y4m").write_bytes(y4m.read_bytes()[:-100])
    cases["short.y4m"] = "not a whole number of 64x48 yuv420p frames"
    ten = [_yuv_frame(*video.rgb_to_yuv420(f)).reformat(format="yuv420p10le") for f in x[:2]]
    _encode(tmp_path / "ten.mkv", ten, pix_fmt="yuv420p10le")
    cases["ten.mkv"] = "10-bit video is not supported: this codec codes 8-bit frames"
    with av.open(str(tmp_path / "sound.m4a"), "w") as out:
        s = out.add_stream("aac", rate=16000, layout="mono")
        for i in range(3):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 16000, i * 1024
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    cases["sound.m4a"] = "has no video stream (only audio)"
    frames = [_yuv_frame(*video.rgb_to_yuv420(f)) for f in x[:8]]
    _encode(tmp_path / "vfr.mp4", frames, codec="libx264", pts=[0, 40, 80, 200, 240, 250, 300, 340],
            options={"preset": "ultrafast"})
    cases["vfr.mp4"] = "variable frame rate"
    (tmp_path / "text.mp4").write_text("hello")
    cases["text.mp4"] = "not a video file"
    os.mkdir(tmp_path / "nopngs")
    cases["nopngs"] = "no PNG frames"
    cases["missing.mkv"] = "no such file"
    for name, match in cases.items():
        path = tmp_path / name
        with pytest.raises(InputError) as e:
            list(video.read(path).frames)
        assert match in _one_line(e, path), name
        if name not in ("cut.mp4", "garbled.mp4"):  # those two are found while decoding
            with pytest.raises(InputError, match=match.replace("(", r"\(").replace(")", r"\)")):
                video.probe(path)


def test_variable_frame_rate_is_found_while_reading(tmp_path):
    x = _clip(8, 16, 16, seed=9)
    frames = [_yuv_frame(*video.rgb_to_yuv420(f)) for f in x]
    path = _encode(tmp_path / "vfr.mkv", frames, pts=[0, 40, 80, 200, 240, 250, 300, 340])
    assert video.probe(path).fps == (25, 1)  # the stream's rates say nothing
    with pytest.raises(InputError) as e:
        list(video.read(path).frames)
    assert "variable frame rate (frame 3 is at 0.200 s, not 0.120 s at 25 fps)" in _one_line(e, path)
    # timestamps rounded to the millisecond (29.97 fps in Matroska) are a constant rate
    frames = [_yuv_frame(*video.rgb_to_yuv420(f)) for f in _clip(30, 16, 16)]
    path = _encode(tmp_path / "ntsc.mkv", frames, fps=Fraction(30000, 1001))
    v = video.read(path)
    assert v.fps == Fraction(30000, 1001) and len(list(v.frames)) == 30


def test_raw_yuv_needs_its_size_and_a_whole_number_of_frames(tmp_path):
    raw = tmp_path / "x.yuv"
    raw.write_bytes(bytes(64 * 48 * 3 // 2 * 2))
    for kw in ({}, {"size": "64x48"}, {"fps": 25}):
        with pytest.raises(InputError) as e:
            video.probe(raw, **kw)
        assert "pass its frame size, rate and pixel format (--size WxH --fps F --pix-fmt yuv420p" in _one_line(e, raw)
    assert video.probe(raw, size="64x48", fps=25).frames == 2
    with pytest.raises(InputError) as e:
        video.probe(raw, size="64x40", fps=25)
    assert "not a whole number of 64x40 yuv420p frames" in _one_line(e, raw)
    with pytest.raises(InputError, match="10-bit video is not supported"):
        video.probe(raw, size="64x48", fps=25, pix_fmt="yuv420p10le")
    with pytest.raises(InputError, match="raw video is read in"):
        video.probe(raw, size="64x48", fps=25, pix_fmt="bogus")
    for size in ("64*48", "0x48", (64,), "64x70000"):
        with pytest.raises(InputError):
            video.probe(raw, size=size, fps=25)
    for fps in (0, -1, "abc", float("nan"), True):
        with pytest.raises(InputError):
            video.probe(raw, size="64x48", fps=fps)
    (tmp_path / "e.yuv").write_bytes(b"")
    with pytest.raises(InputError, match="has no frames"):
        video.probe(tmp_path / "e.yuv", size="64x48", fps=25)
    y4m = tmp_path / "a.y4m"
    video.write(y4m, video.from_user(_clip(1), fps=25))
    with pytest.raises(InputError, match="for raw .yuv"):
        video.probe(y4m, size="64x48")
    with pytest.raises(InputError, match="not 30"):
        video.probe(y4m, fps=30)


def test_pixel_and_frame_limits(tmp_path):
    path = tmp_path / "a.y4m"
    video.write(path, video.from_user(_clip(2), fps=25))
    assert video.probe(path, limit=64 * 48).frames == 2
    with pytest.raises(LimitError) as e:
        video.probe(path, limit=64 * 48 - 1)
    _one_line(e, path)
    with pytest.raises(LimitError):
        video.from_user(_clip(2), fps=25, limit=100)
    with pytest.raises(LimitError, match="frames"):
        video.check_frames(MAX_FRAMES + 1)
    video.check_frames(MAX_FRAMES)
    with pytest.raises(LimitError):
        video.check_work(VideoInfo(64, 48, 2, (25, 1), "rgb", 8), limit=10)


# --------------------------------------------------------------------------- writers: refusals
def test_writers_refuse_existing_outputs_without_force(tmp_path):
    v = video.from_user(_clip(2), fps=25)
    for name in ("a.y4m", "a.mkv"):
        p = tmp_path / name
        video.write(p, v)
        with pytest.raises(InputError) as e:
            video.write(p, v)
        assert "exists (use --force" in _one_line(e, p)
        video.write(p, video.from_user(_clip(3), fps=25), force=True)
        assert video.probe(p).frames == 3
    folder = tmp_path / "frames"
    video.write(folder, v)
    with pytest.raises(InputError, match="not empty"):
        video.write(folder, v)
    video.write(str(folder) + "/", video.from_user(_clip(3), fps=25), force=True)
    assert _files(folder) == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="other than frame_NNNNNN.png"):
        video.write(folder, v, force=True)  # a folder of anything else is never replaced
    assert (folder / "notes.txt").read_text() == "mine"
    os.mkdir(tmp_path / "empty")
    video.write(tmp_path / "empty", v)  # an empty folder takes the frames
    assert len(_files(tmp_path / "empty")) == 2
    with pytest.raises(InputError, match="is not a folder"):
        video.write(tmp_path / "a.y4m", v, format="png", force=True)
    with pytest.raises(InputError, match=r"\.y4m, \.mkv"):
        video.write(tmp_path / "a.mp4", v)
    with pytest.raises(InputError, match="not 'avi'"):
        video.write(tmp_path / "b.y4m", v, format="avi")
    video.write(tmp_path / "c.bin", v, format="mkv")
    assert video.probe(tmp_path / "c.bin").frames == 2
    with pytest.raises(InputError, match="does not exist"):
        video.write(tmp_path / "no" / "a.y4m", v)
    with pytest.raises(InputError, match="takes a codec.media.video.Video"):
        video.write(tmp_path / "d.y4m", _clip(2))
    assert not [n for n in _files(tmp_path) if n.startswith(".")]  # no temporary left behind


@pytest.mark.parametrize("name", ["a.y4m", "a.mkv", "frames"])
def test_an_interrupted_or_failed_writer_leaves_nothing(tmp_path, name):
    path = tmp_path / name
    x = _clip(3)
    with pytest.raises(KeyboardInterrupt):
        with video.Writer(path, 64, 48, 25) as w:
            w.write(x[0])
            raise KeyboardInterrupt
    assert _files(tmp_path) == []
    with pytest.raises(InputError, match="frame 1 of the output is 17x9, not 64x48"):
        with video.Writer(path, 64, 48, 25) as w:
            w.write(x[0])
            w.write(_clip(1, 9, 17)[0])
    assert _files(tmp_path) == []
    with pytest.raises(InputError, match="no frames were written"):
        with video.Writer(path, 64, 48, 25):
            pass
    assert _files(tmp_path) == []

    def frames():  # a lazy video that fails midway
        yield x[0]
        yield x[1]
        yield np.zeros((48, 64), np.uint8)

    with pytest.raises(InputError, match="frame 2 of the video"):
        video.write(path, video.from_user(frames(), fps=25))
    assert _files(tmp_path) == []
    video.write(path, video.from_user(x, fps=25))  # an interrupted overwrite keeps the old output
    before = sorted((p.name, p.read_bytes()) for p in (path.iterdir() if path.is_dir() else [path]))
    with pytest.raises(KeyboardInterrupt):
        with video.Writer(path, 64, 48, 25, force=True) as w:
            w.write(x[2])
            raise KeyboardInterrupt
    assert before == sorted((p.name, p.read_bytes()) for p in (path.iterdir() if path.is_dir() else [path]))
    assert _files(tmp_path) == [name]


def test_writer_outside_a_with_block_says_how(tmp_path):
    w = video.Writer(tmp_path / "a.y4m", 64, 48, 25)
    with pytest.raises(InputError, match="context manager"):
        w.write(_clip(1)[0])
    assert _files(tmp_path) == []


# --------------------------------------------------------------------------- user objects
def test_from_user_accepts_arrays_tensors_lists_and_iterators():
    x = _clip(4, 9, 17)
    v = video.from_user(x, fps=25)
    assert (v.width, v.height, v.fps, v.count) == (17, 9, Fraction(25), 4)
    assert v.info == VideoInfo(17, 9, 4, (25, 1), "rgb", 8) and v.duration == 4 / 25
    assert video.to_user(v, "numpy") is v.frames or np.array_equal(video.to_user(v, "numpy"), x)
    f = x.astype(np.float32) / 255
    assert np.array_equal(video.to_user(video.from_user(f, fps=25), "numpy"), x)
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    for obj in (t, t.float() / 255, t.double() / 255):
        assert np.array_equal(video.to_user(video.from_user(obj, fps="30000/1001"), "numpy"), x)
    tt = video.to_user(v, "torch")
    assert tt.shape == (4, 3, 9, 17) and tt.dtype == torch.float32 and torch.equal(tt, t.float() / 255)
    assert video.to_user(v) is v and video.OUTPUTS == ("video", "numpy", "torch")
    lst = video.from_user(list(x), fps=Fraction(50, 2))
    assert lst.count == 4 and lst.fps == 25
    assert np.array_equal(video.to_user(lst, "numpy"), x) and np.array_equal(video.to_user(lst, "numpy"), x)
    tensors = video.from_user([torch.from_numpy(a).permute(2, 0, 1) for a in x], fps=25)
    assert np.array_equal(video.to_user(tensors, "numpy"), x)
    it = video.from_user(iter(x), fps=12.5)
    assert (it.count, it.fps, it.width) == (None, Fraction(25, 2), 17)
    assert np.array_equal(np.stack(list(it.frames)), x)
    with pytest.raises(InputError, match="read already"):
        list(it.frames)  # a one-shot source
    again = video.from_user(v)
    assert again.fps == 25 and np.array_equal(video.to_user(again, "numpy"), x)
    assert video.from_user(Video(list(x), 25, 17, 9, 4)).count == 4
    with pytest.raises(InputError, match="output must be"):
        video.to_user(v, "pil")


@pytest.mark.parametrize("obj, fps, match", [
    (np.zeros((4, 9, 17, 3), np.uint8), None, "need their frame rate"),
    (np.zeros((9, 17, 3), np.uint8), 25, r"one frame\? add an axis"),
    (np.zeros((4, 3, 9, 17), np.uint8), 25, "channels first"),
    (np.zeros((4, 9, 17, 4), np.uint8), 25, r"\[T, H, W, 3\]"),
    (np.zeros((0, 9, 17, 3), np.uint8), 25, "empty"),
    (np.full((2, 9, 17, 3), np.nan, np.float32), 25, "finite values in"),
    (np.full((2, 9, 17, 3), 1.5, np.float32), 25, r"\[0, 1\]"),
    (np.zeros((2, 9, 17, 3), np.int16), 25, "uint8, or float"),
    (np.zeros((2, 9, 17, 3), np.uint8), 0, "positive"),
    (np.zeros((2, 9, 17, 3), np.uint8), -25, "positive"),
    (np.zeros((2, 9, 17, 3), np.uint8), float("inf"), "finite"),
    (np.zeros((2, 9, 17, 3), np.uint8), "fast", "frames per second"),
    (np.zeros((2, 9, 17, 3), np.uint8), True, "frames per second"),
    (torch.zeros(2, 9, 17, 3), 25, r"channels last\? torch videos are \[T, 3, H, W\]"),
    (torch.zeros(2, 3, 9, 17, dtype=torch.int32), 25, "uint8, or float"),
    ([], 25, "no frames"),
    (iter([]), 25, "no frames"),
    ([np.zeros((9, 17), np.uint8)], 25, r"numpy frame is \[H, W, 3\]"),
    ([np.zeros((3, 9, 17), np.uint8)], 25, "channels first"),
    (["a"], 25, "a frame is a numpy array"),
    ("clip.mp4", 25, "read it first"),
    (42, 25, "a video is a codec.media.video.Video"),
    (None, 25, "a video is"),
    (Video([], 0, 17, 9), None, "positive"),
    (Video([], 25, 0, 9), None, "positive integers"),
    (Video([], 25, 17, 9, 0), None, "count"),
    (Video(iter([]), 25, 17, 9), None, "no frames"),
    (Video(np.zeros((2, 9, 17, 3), np.uint8), 25, 17, 9), 30, "not 30 fps"),
    (Video("abc", 25, 17, 9), None, "iterable of frames"),
])
def test_from_user_refuses_with_one_line_naming_the_input(obj, fps, match):
    with pytest.raises(CodecError) as e:
        video.from_user(obj, fps=fps)
    assert isinstance(e.value, InputError)
    assert __import__("re").search(match, _one_line(e)), str(e.value)


def test_lazy_sources_are_checked_when_their_frames_come():
    x = _clip(3, 9, 17)
    v = video.from_user([x[0], x[1], _clip(1, 10, 17)[0]], fps=25)  # accepted: frame 0 is fine
    with pytest.raises(InputError) as e:
        list(v.frames)
    assert "frame 2 of the video is 17x10, not 17x9 like the first" in _one_line(e)
    v = video.from_user([x[0], np.full((9, 17, 3), np.nan, np.float32)], fps=25)
    with pytest.raises(InputError, match="finite values"):
        list(v.frames)
    v = video.from_user(Video(list(x), 25, 17, 9, count=5))
    with pytest.raises(InputError, match="has 3 frames, not the 5 its count says"):
        list(v.frames)
    with pytest.raises(InputError, match="not known"):
        video.from_user(iter(x), fps=25).info


# --------------------------------------------------------------------------- rates, text
def test_rate_bpp_and_describe():
    info = VideoInfo(352, 288, 300, (25, 1), "rgb", 8)
    assert video.rate(15_000, info) == pytest.approx(8 * 15_000 / 12 / 1000)
    assert video.bpp(15_000, info) == pytest.approx(8 * 15_000 / (352 * 288 * 300))
    assert video.describe(info) == "352x288, 300 frames at 25 fps (12.00 s)"
    assert video.describe(VideoInfo(17, 9, 1, (30000, 1001), "rgb", 8)) == "17x9, 1 frame at 29.97 fps (0.03 s)"
    assert video.check_fps("30000/1001") == Fraction(30000, 1001)
    assert video.check_fps(29.97) == Fraction(2997, 100)
    assert video.parse_size("352x288") == (352, 288) and video.parse_size((17, 9)) == (17, 9)
