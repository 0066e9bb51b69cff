"""Video media and classical video codecs for the evaluator.

The medium (:class:`VideoMedia`).  An item is one clip file (any extension
:func:`codec.media.medium_of` calls video: mp4, mkv, webm, y4m, ...), read with PyAV into
its **native YUV 4:2:0 planes** (:class:`VideoItem`: uint8 ``y [N, H, W]``, ``u``/``v``
``[N, ceil(H/2), ceil(W/2)]``, the stream's frame rate); ``yuv420p`` and ``yuvj420p``
sources are taken as they are, any other pixel format (4:2:2, 4:4:4, 10 bit, RGB) is
converted to 8-bit ``yuv420p`` by swscale first.  ``codec eval --frames N`` keeps only the
first N frames of every clip (recorded in the results' ``meta.frames``).  The rate is
kbit/s, ``8 * bytes / duration / 1000`` with ``duration = frames / fps`` of the frames
coded; ``bpp`` (``8 * bytes / (W * H * frames)``) is recorded next to it.  Metrics
(:mod:`codec.media.video_metrics`): PSNR-YUV 6:1:1 (the primary one; per frame, then
the mean over frames), PSNR-RGB (from the mean MSE over all frames) and MS-SSIM on RGB
(mean over frames; ``None`` below 161 pixels a side, as for images), with PSNR-Y, -U, -V,
frames and encode/decode frames per second as extra per-point fields.  RGB for the RGB
metrics is :func:`codec.media.video.yuv420_to_rgb` of both the source planes and the
decoded planes, with the matrix and range the clip is tagged with as
:func:`codec.media.video.read` takes them (BT.709 / BT.2020 when tagged, full range for
``yuvj*`` or a full-range tag, else BT.601 limited range), so that the RGB reference is
the frames ``codec.media.video.read`` gives for a yuv420p file.  A codec that decodes to
RGB (``ours``, fed :meth:`VideoItem.rgb` / :meth:`VideoItem.to_video`) is scored with its
RGB frames against that reference, and with ``rgb_to_yuv420`` of its frames (same matrix
and range) against the source planes for PSNR-YUV.

The codecs run in-process through PyAV (FFmpeg's libavcodec), no external binaries:
``x264`` (libx264, preset medium), ``x264-veryslow``, ``x265`` (libx265, preset medium),
``svt-av1`` (libsvtav1 preset 6, decoded by libdav1d), ``vp9`` (libvpx-vp9, constant
quality: crf with ``b:v 0``, deadline good, cpu-used 2) and ``ffv1`` (FFV1 level 3, the
lossless reference).  Every lossy codec is run at a CRF grid and is fed the source's own
yuv420p planes (no colour conversion; odd sizes are edge-padded to even and cropped after
decoding), tuned for PSNR, one thread, and coded with the same GOP as our codec: a
key frame exactly every ``gop`` frames (default 32, ``codec eval --gop N``), closed GOPs,
no scene-cut key frames.  B-frames / hidden alt-ref frames are **not** disabled: each
encoder uses its preset's structure (x264 medium: 3 B-frames, adaptive; x265 medium: 4;
SVT-AV1: its hierarchical mini-GOPs; VP9: alt-ref frames), i.e. random-access
configurations, not low-delay ones.

What the byte count covers (also in each results JSON as ``bits_counted``): the
elementary stream with the least framing a decoder needs, no container, as for audio::

    LEB128 length of the decoder configuration, the configuration (FFmpeg's extradata:
        empty for x264/x265/SVT-AV1/VP9, whose parameter sets / sequence headers are in
        band in the first packet; FFV1's configuration record, ~40 B)
    the packets in decoding order, each prefixed by its LEB128 length (1-3 B a frame)

No timestamps are stored: every decoder here outputs the frames in display order
by itself.  The decoder is told the clip's frame size and frame count (as a container
would tell it), never its samples; it must give back exactly that many frames.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from codec.errors import CodecError
from codec.tools.audio_codecs import _read_uvarint, _uvarint
from codec.tools.registry import Codec, Media, register_codec, register_media

__all__ = ["VideoItem", "VideoMedia", "VIDEO", "DEFAULT_GOP"]

#: key-frame interval of the baselines unless ``codec eval --gop`` says otherwise (= ours)
DEFAULT_GOP = 32
#: source pixel formats taken as they are (yuvj420p: the same planes, full-range flag)
_NATIVE = ("yuv420p", "yuvj420p")


def _video_module():
    """:mod:`codec.media.video` (imported when first needed: RGB <-> YUV 4:2:0, colour tags)."""
    from codec.media import video

    return video


# --------------------------------------------------------------------------- items
@dataclass(eq=False)
class VideoItem:
    """A clip as 8-bit YUV 4:2:0 planes: ``y [N, H, W]``, ``u``, ``v`` ``[N, ceil(H/2), ceil(W/2)]``
    uint8, at ``fps`` frames per second, with the ``matrix`` and ``full_range`` of its RGB.
    Items of a data set carry their ``path`` and what the file held (``source_format``;
    ``source_frames``, the frames in the file, None when a frame limit cut the reading
    short and the container does not say); decoded clips of the PyAV codecs are VideoItems
    too (``path=None``)."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    fps: Fraction
    path: str | None = None
    source_format: str = "yuv420p"
    source_frames: int | None = None
    #: the colour matrix and range of RGB <-> YUV for this clip (codec.media.video's names)
    matrix: str = "bt601"
    full_range: bool = False

    @property
    def count(self) -> int:
        return int(self.y.shape[0])

    @property
    def height(self) -> int:
        return int(self.y.shape[1])

    @property
    def width(self) -> int:
        return int(self.y.shape[2])

    @property
    def duration(self) -> float:
        """Seconds: ``count / fps``."""
        return float(self.count / Fraction(self.fps))

    @property
    def info(self):
        """The :class:`codec.container.VideoInfo` of the clip (for :func:`codec.media.video.rate`)."""
        from codec.container import VideoInfo

        fps = Fraction(self.fps)
        return VideoInfo(self.width, self.height, self.count, (fps.numerator, fps.denominator), "yuv420", 8)

    def planes(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.y[i], self.u[i], self.v[i]

    def to_rgb(self, y, u, v) -> np.ndarray:
        """4:2:0 planes -> uint8 RGB with this clip's matrix and range."""
        return _video_module().yuv420_to_rgb(y, u, v, matrix=self.matrix, full_range=self.full_range)

    def to_yuv(self, rgb) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """uint8 RGB -> 4:2:0 planes with this clip's matrix and range."""
        return _video_module().rgb_to_yuv420(rgb, matrix=self.matrix, full_range=self.full_range)

    def rgb_frames(self) -> Iterator[np.ndarray]:
        """The frames as uint8 ``H x W x 3`` RGB (:meth:`to_rgb`)."""
        for i in range(self.count):
            yield self.to_rgb(*self.planes(i))

    def rgb(self) -> np.ndarray:
        """All frames as one uint8 ``[N, H, W, 3]`` array."""
        return np.stack(list(self.rgb_frames()))

    def to_video(self):
        """The clip as a :class:`codec.media.video.Video` of RGB frames (lazy), e.g. for
        ``codec.encode``."""
        return _video_module().Video(_Frames(self), Fraction(self.fps), self.width, self.height, self.count)


class _Frames:
    """The RGB frames of a :class:`VideoItem`, converted each time they are iterated."""

    def __init__(self, item: VideoItem) -> None:
        self.item = item

    def __iter__(self):
        return self.item.rgb_frames()

    def __len__(self) -> int:
        return self.item.count


def _plane(p) -> np.ndarray:
    return np.frombuffer(p, dtype=np.uint8).reshape(p.height, p.line_size)[:, :p.width]


def read_yuv420(path, frames: int | None = None) -> VideoItem:
    """The first ``frames`` (all if None) frames of the first video stream of ``path`` as
    8-bit YUV 4:2:0 planes (module docstring: native yuv420p/yuvj420p, else swscale)."""
    import av

    _quiet_av()
    path = Path(path)
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise CodecError(f"{path.name}: cannot open as video ({exc})") from None
    with container:
        if not container.streams.video:
            raise CodecError(f"{path.name}: no video stream")
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not fps or fps <= 0:
            raise CodecError(f"{path.name}: the video stream has no frame rate")
        ys, us, vs = [], [], []
        fmt, matrix, full = None, "bt601", False
        try:
            for f in container.decode(stream):
                if fmt is None:
                    fmt = f.format.name
                    matrix, full = _video_module().colour_tags(f)
                if f.format.name not in _NATIVE:  # swscale, keeping the range (yuvj420p: full)
                    f = f.reformat(format="yuvj420p" if full else "yuv420p")
                y, u, v = (_plane(p) for p in f.planes)
                ys.append(y.copy()), us.append(u.copy()), vs.append(v.copy())
                if frames is not None and len(ys) >= frames:
                    break
        except av.error.FFmpegError as exc:
            raise CodecError(f"{path.name}: cannot decode the video ({exc})") from None
        total = stream.frames or None
    if not ys:
        raise CodecError(f"{path.name}: the video stream holds no frames")
    if len({y.shape for y in ys}) > 1:
        raise CodecError(f"{path.name}: the frame size changes within the clip")
    return VideoItem(np.stack(ys), np.stack(us), np.stack(vs), Fraction(fps), path=str(path),
                     source_format=fmt, source_frames=total if frames is not None else len(ys), matrix=matrix,
                     full_range=full)


# --------------------------------------------------------------------------- media
class VideoMedia(Media):
    """Video clips as YUV 4:2:0 planes (module docstring): rates kbit/s from the byte count
    and the duration of the frames coded, metrics :mod:`codec.media.video_metrics`'."""

    name = "video"
    rate_key = "kbps"
    rate_unit = "kbps"
    rate_label = "bitrate"
    rate_plot_max = None  # clips differ too much for one axis
    metric_keys = ("psnr-yuv", "psnr-rgb", "ms-ssim-rgb")
    #: further per-point fields, in results and per_image next to the metrics (not BD-rated)
    extra_keys = ("psnr-y", "psnr-u", "psnr-v", "bpp", "frames", "encoding_fps", "decoding_fps")
    metric_info = {
        "psnr-yuv": {"label": "PSNR-YUV", "unit": "dB",
                     "description": "YUV 4:2:0 8 bit, (6*PSNR-Y + PSNR-U + PSNR-V)/8 per frame, mean over frames, "
                                    "capped at 100 dB; per-clip dB averaged (codec.media.video_metrics)"},
        "psnr-rgb": {"label": "PSNR-RGB", "unit": "dB",
                     "description": "8-bit RGB (codec.media.video.yuv420_to_rgb of both sides, the clip's "
                                    "matrix and range), from the mean MSE over all frames; per-clip dB averaged"},
        "ms-ssim-rgb": {"label": "MS-SSIM", "unit": "", "db_scale": True,
                        "description": "pytorch_msssim on 8-bit RGB, data_range 255, mean over frames; none for "
                                       "frames under 161 pixels a side"},
    }
    timing_note = ("building the frames from the source's yuv420p planes / decode incl. copying the planes out; "
                   "frames/s in encoding_fps / decoding_fps")
    items_name = "video files"
    supports_frames = True  # codec eval --frames N

    @property
    def extensions(self):
        from codec.media import VIDEO_EXTENSIONS

        return tuple(sorted(VIDEO_EXTENSIONS))

    def accepts(self, path: Path) -> bool:
        from codec.media import medium_of

        return medium_of(path) == "video"

    def load(self, path: Path, frames: int | None = None) -> VideoItem:
        return read_yuv420(path, frames)

    def rate(self, nbytes: int, item: VideoItem) -> float:
        from codec.media import video

        return video.rate(nbytes, item.info)

    def extras(self, nbytes: int, item: VideoItem, rec, encoding_time: float, decoding_time: float) -> dict:
        """The :attr:`extra_keys` of a point but the PSNRs (those come from :meth:`score`)."""
        from codec.media import video

        n = item.count
        return {"bpp": video.bpp(nbytes, item.info), "frames": n,
                "encoding_fps": n / encoding_time if encoding_time > 0 else None,
                "decoding_fps": n / decoding_time if decoding_time > 0 else None}

    def score(self, ref: VideoItem, rec) -> dict[str, float | None]:
        from codec.media import video_metrics as vm

        small = min(ref.width, ref.height) < vm.MS_SSIM_MIN_SIDE
        s = vm.SequenceScore(ms_ssim=not small)
        if isinstance(rec, VideoItem) or all(hasattr(rec, k) for k in ("y", "u", "v")):  # decoded planes
            if rec.y.shape != ref.y.shape or rec.u.shape != ref.u.shape or rec.v.shape != ref.v.shape:
                raise CodecError(f"decoded clip is {_shape(rec)}, the original {_shape(ref)}")
            for i in range(ref.count):
                s.add_yuv(ref.planes(i), rec.planes(i))
                s.add_rgb(ref.to_rgb(*ref.planes(i)), ref.to_rgb(*rec.planes(i)))
        else:  # RGB frames (ours)
            n = 0
            for i, frame in enumerate(_rgb_frames(rec)):
                if i >= ref.count:
                    raise CodecError(f"decoded clip has more frames than the original's {ref.count}")
                if frame.shape != (ref.height, ref.width, 3):
                    raise CodecError(f"decoded frame {i} is {frame.shape}, the original "
                                     f"{(ref.height, ref.width, 3)} (H x W x 3 RGB)")
                s.add_yuv(ref.planes(i), ref.to_yuv(frame))
                s.add_rgb(ref.to_rgb(*ref.planes(i)), frame)
                n += 1
            if n != ref.count:
                raise CodecError(f"decoded clip has {n} frames, the original {ref.count}")
        r = s.result()
        return {k: r[k] for k in ("psnr-yuv", "psnr-rgb", "ms-ssim-rgb", "psnr-y", "psnr-u", "psnr-v")}


def _shape(x) -> str:
    n, h, w = x.y.shape
    return f"{n} frames of {w}x{h}"


def _rgb_frames(rec) -> Iterator[np.ndarray]:
    """uint8 ``H x W x 3`` frames from an ``[N, H, W, 3]`` array, a sequence of frames, or an
    object with ``.frames`` (:class:`codec.media.video.Video`: an iterable, or a method giving one)."""
    frames = getattr(rec, "frames", rec)
    if callable(frames):
        frames = frames()
    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise CodecError(f"decoded video is an array of shape {frames.shape}, expected [N, H, W, 3]")
    try:
        it = iter(frames)
    except TypeError:
        raise CodecError(f"decoded video is a {type(rec).__name__}: expected RGB frames or YUV planes") from None
    for f in it:
        if hasattr(f, "detach"):
            f = f.detach().cpu().numpy()
        f = np.asarray(f)
        if f.dtype != np.uint8:
            raise CodecError(f"decoded frames are {f.dtype}, expected uint8 RGB")
        yield f


VIDEO = register_media(VideoMedia())


# --------------------------------------------------------------------------- PyAV codecs
def _quiet_av() -> None:
    import av

    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 logs to stderr unless told otherwise
    try:
        av.logging.set_level(av.logging.ERROR)
    except Exception:  # pragma: no cover - older PyAV
        pass


def _even(x: np.ndarray) -> np.ndarray:
    h, w = x.shape
    return x if not (h % 2 or w % 2) else np.pad(x, ((0, h % 2), (0, w % 2)), mode="edge")


class _VideoCodec(Codec):
    """One FFmpeg video encoder/decoder pair through PyAV (module docstring: GOP, framing)."""

    media = "video"
    encoder = ""
    decoder = ""
    quality_type = int
    quality_meaning = ""
    settings = ""
    #: encoder options that do not depend on the quality or the GOP (in info(), so in the fingerprint)
    options: dict[str, str] = {}
    needs_even = True  # 4:2:0 encoders that want even sizes: pad by edge replication, crop after decoding
    chroma = "4:2:0 (the source's yuv420p planes, coded as they are: no colour conversion)"
    bits_counted = ("elementary stream: decoder configuration (extradata, empty for in-band headers) with its "
                    "varint length, then the packets in decoding order each with a varint length; no container, "
                    "no timestamps")

    def __init__(self, gop: int = DEFAULT_GOP) -> None:
        import av

        for name in (self.encoder, self.decoder):
            if name not in av.codecs_available:
                raise CodecError(f"{self.key}: PyAV {av.__version__} has no {name} codec")
        self.gop = gop

    @property
    def gop(self) -> int:
        return self._gop

    @gop.setter
    def gop(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CodecError(f"{self.key}: the GOP (key-frame interval) must be a whole number >= 1, not {value!r}")
        self._gop = value

    # ---- settings
    def quality_options(self, quality) -> dict[str, str]:
        """Encoder options that depend on the quality and the GOP."""
        raise NotImplementedError

    def setup(self, cc, quality) -> None:
        """Codec-context fields beyond size, format, rate and options (default: the GOP)."""
        cc.gop_size = self.gop

    # ---- coding
    def encode(self, item: VideoItem, quality) -> bytes:
        import av

        _quiet_av()
        h, w = item.height, item.width
        ph, pw = (h + h % 2, w + w % 2) if self.needs_even else (h, w)
        fps = Fraction(item.fps)
        cc = av.CodecContext.create(self.encoder, "w")
        cc.width, cc.height, cc.pix_fmt = pw, ph, "yuv420p"
        cc.time_base = 1 / fps
        cc.framerate = fps
        cc.thread_count = 1
        self.setup(cc, quality)
        cc.options = {**self.options, **self.quality_options(quality)}
        packets = []
        try:
            cc.open()
            for i in range(item.count):
                frame = av.VideoFrame(pw, ph, "yuv420p")
                y, u, v = item.planes(i)
                for plane, arr in zip(frame.planes, (_even(y) if self.needs_even else y, u, v)):
                    buf = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
                    buf[:, :arr.shape[1]] = arr
                frame.pts = i
                frame.time_base = cc.time_base
                packets += cc.encode(frame)
            packets += cc.encode(None)
        except av.error.FFmpegError as exc:
            raise CodecError(f"{self.key}: the encoder failed on {w}x{h} at {fps} fps ({exc})") from None
        packets = [p for p in packets if p.size]
        if not packets:
            raise CodecError(f"{self.key}: the encoder gave no data")
        extradata = bytes(cc.extradata or b"")
        out = bytearray(_uvarint(len(extradata)) + extradata)
        for p in packets:
            out += _uvarint(p.size)
            out += bytes(p)
        return bytes(out)

    def decode(self, data: bytes, item: VideoItem) -> VideoItem:
        import av

        _quiet_av()
        k, pos = _read_uvarint(data, 0)
        if pos + k > len(data):
            raise CodecError(f"{self.key}: truncated stream (the decoder configuration runs past the end)")
        extradata, pos = data[pos:pos + k], pos + k
        packets = []
        while pos < len(data):
            k, pos = _read_uvarint(data, pos)
            if pos + k > len(data):
                raise CodecError(f"{self.key}: truncated stream (a packet runs past the end)")
            packets.append(av.Packet(data[pos:pos + k]))
            pos += k
        dc = av.CodecContext.create(self.decoder, "r")
        if extradata:
            dc.extradata = extradata
        h, w = item.height, item.width
        dc.width, dc.height = (w + w % 2, h + h % 2) if self.needs_even else (w, h)
        dc.thread_count = 1
        frames = []
        try:
            for p in packets:
                frames += dc.decode(p)
            frames += dc.decode(None)
        except av.error.FFmpegError as exc:
            raise CodecError(f"{self.key}: cannot decode the stream ({exc})") from None
        if len(frames) != item.count:
            raise CodecError(f"{self.key}: the decoder gave {len(frames)} frames, the clip has {item.count}")
        ys, us, vs = [], [], []
        for f in frames:
            if f.format.name not in _NATIVE:
                raise CodecError(f"{self.key}: decoded pixel format {f.format.name}, expected yuv420p")
            y, u, v = (_plane(p) for p in f.planes)
            if y.shape[0] < h or y.shape[1] < w:
                raise CodecError(f"{self.key}: decoded frames are {y.shape[1]}x{y.shape[0]}, the clip {w}x{h}")
            ys.append(y[:h, :w]), us.append(u[:(h + 1) // 2, :(w + 1) // 2]), vs.append(v[:(h + 1) // 2, :(w + 1) // 2])
        return VideoItem(np.stack(ys), np.stack(us), np.stack(vs), item.fps, matrix=item.matrix,
                         full_range=item.full_range)

    # ---- description
    def info(self) -> dict[str, Any]:
        import av

        lavc = ".".join(map(str, av.library_versions["libavcodec"]))
        return {
            "library": f"PyAV {av.__version__} (libavcodec {lavc}), encoder {self.encoder}, decoder {self.decoder}",
            "settings": self.settings,
            "encoder_options": dict(self.options),
            "gop": f"key frame every {self.gop} frames (closed GOPs, no scene-cut key frames)",
            "quality_options": self.quality_options("{quality}"),
            "chroma": self.chroma + ("; odd sizes edge-padded to even, cropped after decoding" if self.needs_even
                                     else ""),
            "threads": "1 (encoder and decoder)",
            "quality": self.quality_meaning,
            "bits_counted": self.bits_counted,
        }


@register_codec("x264")
class X264(_VideoCodec):
    display_name = "H.264 (x264 medium)"
    encoder, decoder = "libx264", "h264"
    preset = "medium"
    quality_meaning = "x264 CRF 0..51 (lower = better)"
    quality_range = (0, 51)
    default_qualities = (18, 22, 26, 30, 34, 38, 42)

    @property
    def settings(self) -> str:
        return (f"x264 preset {self.preset}, tune psnr, CRF, 8-bit 4:2:0 (High profile), the preset's B-frames "
                "(adaptive), 1 thread")

    @property
    def options(self) -> dict[str, str]:
        return {"preset": self.preset, "tune": "psnr"}

    def quality_options(self, quality) -> dict[str, str]:
        return {"crf": str(quality), "x264-params": f"keyint={self.gop}:min-keyint={self.gop}:scenecut=0:open-gop=0"}


@register_codec("x264-veryslow")
class X264VerySlow(X264):
    key = "x264-veryslow"  # not the inherited "x264"
    display_name = "H.264 (x264 veryslow)"
    preset = "veryslow"


@register_codec("x265")
class X265(_VideoCodec):
    display_name = "HEVC (x265 medium)"
    encoder, decoder = "libx265", "hevc"
    preset = "medium"
    settings = ("x265 preset medium, tune psnr, CRF, 8-bit 4:2:0 (Main profile), the preset's B-frames, 1 thread "
                "(pools=1, frame-threads=1), info SEI off")
    quality_meaning = "x265 CRF 0..51 (lower = better)"
    quality_range = (0, 51)
    default_qualities = (18, 22, 26, 30, 34, 38, 42)
    options = {"preset": "medium", "tune": "psnr"}

    def quality_options(self, quality) -> dict[str, str]:
        return {"crf": str(quality),
                "x265-params": f"keyint={self.gop}:min-keyint={self.gop}:scenecut=0:open-gop=0:info=0:pools=1:"
                               "frame-threads=1:lookahead-threads=1:log-level=error"}


@register_codec("svt-av1")
class SVTAV1(_VideoCodec):
    display_name = "AV1 (SVT-AV1 preset 6)"
    encoder, decoder = "libsvtav1", "libdav1d"
    settings = ("SVT-AV1 preset 6, tune PSNR, CRF, 8-bit 4:2:0 (main profile), its default hierarchical "
                "mini-GOPs, key frames as IDR (irefresh-type=2), 1 thread (lp=1); decoded by libdav1d")
    quality_meaning = "SVT-AV1 CRF 1..63 (lower = better)"
    quality_range = (1, 63)
    default_qualities = (25, 30, 35, 40, 45, 50, 55)
    options = {"preset": "6"}

    def quality_options(self, quality) -> dict[str, str]:
        return {"crf": str(quality), "svtav1-params": f"lp=1:tune=1:keyint={self.gop}:irefresh-type=2:scd=0"}

    def setup(self, cc, quality) -> None:
        pass  # the GOP is in svtav1-params (FFmpeg maps gop_size to keyint - 1 in some versions)


@register_codec("vp9")
class VP9(_VideoCodec):
    display_name = "VP9 (libvpx)"
    encoder, decoder = "libvpx-vp9", "vp9"
    settings = ("libvpx-vp9 constant quality (crf with b:v 0), deadline good, cpu-used 2, two-pass off, its "
                "default alt-ref frames (lag 25), 1 thread, row-mt off, tune psnr")
    quality_meaning = "libvpx-vp9 CRF 0..63 (lower = better)"
    quality_range = (0, 63)
    default_qualities = (20, 25, 30, 35, 40, 45, 50, 55)
    options = {"deadline": "good", "cpu-used": "2", "row-mt": "0", "tune": "psnr"}

    def setup(self, cc, quality) -> None:
        cc.gop_size = self.gop
        cc.bit_rate = 0

    def quality_options(self, quality) -> dict[str, str]:
        return {"crf": str(quality), "b": "0", "keyint_min": str(self.gop)}


@register_codec("ffv1")
class FFV1(_VideoCodec):
    display_name = "FFV1 (lossless)"
    encoder, decoder = "ffv1", "ffv1"
    needs_even = False
    settings = "FFmpeg's FFV1 version 3, range coder, slice CRCs off, one slice, key frame every GOP (context reset)"
    quality_meaning = "FFV1 context model: 0 small, 1 large"
    quality_range = (0, 1)
    default_qualities = (1,)
    options = {"level": "3", "coder": "range_def", "slicecrc": "0", "slices": "1"}

    def quality_options(self, quality) -> dict[str, str]:
        return {"context": str(quality)}
