"""Video coding speed at CIF (352x288): frames/s of the learned codec's encoder and decoder,
against x264 (PyAV, preset medium, one thread) measured in the same run on the same frames.

    python -m codec.tools.bench_video [--frames 32] [--quality 4] [--gop 32] [--device cpu]
           [--clip ../shared/data/video/akiyo_cif.mp4] [--threads 1]

Without ``--clip`` the bundled sample (Big Buck Bunny, 320x180) is scaled to 352x288.  The
learned decoder's time is all of it: entropy decoding, the integer synthesis (float64
convolutions) and motion compensation; its ratio to x264's decoder is printed.  Timings
are wall-clock medians of ``--repeat`` runs.
"""
from __future__ import annotations

import argparse
import statistics
import time
from fractions import Fraction
from importlib import resources

import numpy as np


def _frames(clip, n: int) -> tuple:
    from PIL import Image

    from codec.media import video as V

    if clip is None:
        with resources.as_file(resources.files("codec").joinpath("assets", "bbb-320x180.mp4")) as p:
            v = V.read(p)
            src = [np.asarray(Image.fromarray(f).resize((352, 288), Image.BILINEAR)) for f in v.frames]
        name = "bbb-320x180.mp4 scaled to 352x288"
    else:
        v = V.read(clip)
        src = []
        for f in v.frames:
            src.append(f)
            if len(src) >= n:
                break
        name = str(clip)
    src = (src * (-(-n // len(src))))[:n]
    return np.stack(src), Fraction(v.fps), name


def _x264(frames, fps, gop: int) -> tuple:
    """(encode s, decode s, bytes) of x264 preset medium, one thread, CRF 26."""
    import av

    from codec.media import video as V

    h, w = frames.shape[1:3]
    yuv = [V.rgb_to_yuv420(f) for f in frames]
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt, cc.time_base = w, h, "yuv420p", Fraction(1, int(round(fps)))
    cc.framerate = fps
    cc.gop_size = gop
    cc.options = {"crf": "26", "preset": "medium", "threads": "1"}
    vfs = []
    for i, (y, u, v) in enumerate(yuv):
        f = av.VideoFrame(w, h, "yuv420p")
        for p, a in zip(f.planes, (y, u, v)):
            np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:a.shape[0], :a.shape[1]] = a
        f.pts = i
        vfs.append(f)
    t0 = time.perf_counter()
    packets = [p for f in vfs for p in cc.encode(f)] + list(cc.encode())
    t1 = time.perf_counter()
    dc = av.CodecContext.create("h264", "r")
    dc.options = {"threads": "1"}
    out = [f for p in packets for f in dc.decode(p)] + list(dc.decode())
    t2 = time.perf_counter()
    assert len(out) == len(frames)
    return t1 - t0, t2 - t1, sum(p.size for p in packets)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m codec.tools.bench_video", description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--quality", type=float, default=4.0)
    ap.add_argument("--gop", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clip", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)

    import torch

    import codec

    torch.set_num_threads(a.threads)
    frames, fps, name = _frames(a.clip, a.frames)
    n, h, w = frames.shape[:3]
    print(f"clip     {name}: {n} frames, {w}x{h}; torch threads {a.threads}, device {a.device}")
    codec.load_model(medium="video", device=a.device)  # loaded once, outside the timings
    enc, dec = [], []
    data = b""
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        data = codec.encode(frames, fps=fps, quality=a.quality, gop=a.gop, device=a.device)
        t1 = time.perf_counter()
        out = codec.decode(data, device=a.device, output="numpy")
        t2 = time.perf_counter()
        enc.append(t1 - t0)
        dec.append(t2 - t1)
    assert out.shape == frames.shape
    keys = sum(1 for s in codec.info(data)["sections"] if s["flags"] & 1)
    xe, xd, xb = zip(*[_x264(frames, fps, a.gop) for _ in range(a.repeat)])
    me, md, mxe, mxd = (statistics.median(v) for v in (enc, dec, xe, xd))
    print(f"ours     {len(data)} bytes ({keys} key frames): encode {n / me:7.2f} frames/s, decode {n / md:7.2f} frames/s")
    print(f"x264     {xb[0]} bytes (CRF 26, medium):   encode {n / mxe:7.2f} frames/s, decode {n / mxd:7.2f} frames/s")
    print(f"ratio    ours / x264 frames/s: encode {mxe / me:.4f}, decode {mxd / md:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
