"""Bad input gets a clear error and nothing is lost: bombs, special files, API misuse."""
import json
import os
import pathlib
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import codec
from codec import container as ct
from codec import entropy
from codec.cli import main as cli
from codec.errors import InputError, LimitError, ResourceError
from codec.models import registry
from codec.models.payload import Payload, Section

from pictures import smooth_image

pytestmark = pytest.mark.filterwarnings("ignore::codec.api.UntrainedModelWarning")
ROOT = pathlib.Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers
def _peak(script: str, *args) -> dict:
    """Run ``script`` in a fresh interpreter; it prints JSON; add its peak RSS (MB): VmHWM of
    /proc/self/status, the high-water mark of this program's own memory (getrusage's
    ru_maxrss would count the forking test process's memory too, kept across exec)."""
    code = textwrap.dedent("""
        import json, resource, sys, warnings
        warnings.simplefilter("ignore")
        out = {}
    """) + textwrap.dedent(script) + textwrap.dedent("""
        with open("/proc/self/status") as f:
            out["peak_mb"] = next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024
        print(json.dumps(out))
    """)
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def bomb_stream(side: int = 16384, model: str = "mean-scale-vr") -> bytes:
    """A valid stream whose picture is ``side x side`` with an all-zero hyper-latent: a few
    hundred KB that ask a decoder for side**2 pixels of work."""
    m = registry.load_model(model)
    h, w = m.grid(side, side)
    z = torch.zeros((1, m.latent_codec.inner.z.channels, h // 4, w // 4), dtype=torch.int32)
    zs = m.latent_codec.inner.z
    z_data = entropy.encode(z, zs._index(z.shape, "cpu"), zs.tables)
    payload = Payload([Section("hyper-latent", z_data), Section("latent", b"\0" * 64)], m.header_for(side, side))
    spec = registry.get_spec(model)
    return ct.pack(ct.Container(model, m.weights_id, spec.quality_code(4), ct.ImageInfo(side, side), payload))


# --------------------------------------------------------------------------- decoder bomb
@pytest.mark.slow
def test_decoder_bomb_is_refused_before_any_network_with_bounded_memory(tmp_path):
    bomb = tmp_path / "bomb.nmc"
    bomb.write_bytes(bomb_stream())
    small = tmp_path / "small.nmc"
    small.write_bytes(codec.encode(smooth_image(64, 64), device="cpu"))
    assert len(bomb.read_bytes()) < 1 << 20
    run = """
        from codec.cli import main
        import io, contextlib
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            out["rc"] = main(["decode", sys.argv[1], "-o", sys.argv[2]])
        out["stderr"] = err.getvalue()
    """
    base = _peak(run, str(small), str(tmp_path / "small.png"))
    got = _peak(run, str(bomb), str(tmp_path / "bomb.png"))
    assert base["rc"] == 0 and got["rc"] == 2
    lines = got["stderr"].strip().splitlines()
    assert len(lines) == 1 and "16384x16384" in lines[0] and "--max-pixels" in lines[0], lines
    # refused before any model loads: less memory than decoding a 64x64 picture, which loads one
    assert got["peak_mb"] < min(200, base["peak_mb"]), (base, got)
    assert not (tmp_path / "bomb.png").exists()


def test_the_pixel_limit_can_be_raised_and_lowered():
    data = codec.encode(smooth_image(40, 50), model="factorized")
    with pytest.raises(LimitError, match="limit of 0.0 Mpx"):
        codec.decode(data, max_pixels=1000)
    assert codec.decode(data, max_pixels=2000).shape == (40, 50, 3)
    with pytest.raises(LimitError):
        codec.encode(smooth_image(40, 50), model="factorized", max_pixels=1999)
    assert codec.decode(data, max_pixels=np.int64(2000)).shape == (40, 50, 3)
    try:
        os.environ["CODEC_MAX_PIXELS"] = "1000"
        with pytest.raises(LimitError):
            codec.decode(data)
        for bad in ["inf", "1e400", "lots"]:
            os.environ["CODEC_MAX_PIXELS"] = bad
            with pytest.raises(InputError, match="CODEC_MAX_PIXELS"):
                codec.decode(data)
    finally:
        del os.environ["CODEC_MAX_PIXELS"]


@pytest.mark.slow
def test_allocation_failure_within_the_limit_is_one_line(tmp_path):
    """With the limit raised, a decoder that runs out of memory says so in one line."""
    bomb = tmp_path / "bomb.nmc"
    bomb.write_bytes(bomb_stream())
    got = _peak("""
        import io, contextlib, resource, warnings
        from codec.cli import main
        import codec
        codec.load_model("mean-scale-vr")  # imports and weights first: then cap the address space
        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            out["rc"] = main(["decode", sys.argv[1], "-o", sys.argv[2], "--max-pixels", "1e9"])
        out["stderr"] = err.getvalue()
    """, str(bomb), str(tmp_path / "out.png"))
    lines = got["stderr"].strip().splitlines()
    assert got["rc"] == 2 and len(lines) == 1 and "not enough memory" in lines[0], lines
    assert not (tmp_path / "out.png").exists()


def test_out_of_memory_errors_become_resource_errors(monkeypatch):
    data = codec.encode(smooth_image(40, 50), model="factorized")
    m = codec.load_model("factorized")
    for exc in [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.85 GiB"), MemoryError(),
                RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: not enough memory: "
                             "you tried to allocate 9851142144 bytes.")]:
        def boom(*a, exc=exc, **k):
            raise exc
        monkeypatch.setattr(m, "decompress", boom)
        with pytest.raises(ResourceError, match="not enough memory to decode a 50x40 picture"):
            codec.decode(data)
        monkeypatch.setattr(m, "compress", boom)
        with pytest.raises(ResourceError, match="not enough memory to encode.*--effort fast"):
            codec.encode(smooth_image(40, 50), model="factorized")  # (it refines by default)
        with pytest.raises(ResourceError, match="not enough memory to encode.*another device$"):
            codec.encode(smooth_image(40, 50), model="factorized", effort="fast")
    monkeypatch.undo()


# --------------------------------------------------------------------------- encoder bomb
def _big_png(path, width, height):
    """A 1-bit PNG of ``width x height`` written row by row (small on disk, huge decoded)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    z = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    parts = [z.compress(row) for _ in range(height)] + [z.flush()]
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [10000, 30000])  # 100 Mpx (over our limit), 900 Mpx (over Pillow's too)
def test_encoder_bomb_is_refused_before_decoding_pixels(tmp_path, capsys, side):
    src = tmp_path / "big.png"
    _big_png(src, side, side)
    assert src.stat().st_size < 2 << 20
    out = tmp_path / "big.nmc"
    assert cli(["encode", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{side}x{side}" in err[0] and "limit" in err[0], err
    assert not out.exists()
    with pytest.raises(LimitError):
        codec.media.image.read(src)
    got = _peak("""
        from codec.cli import main
        out["rc"] = main(["encode", sys.argv[1], "-o", sys.argv[2]])
    """, str(src), str(out))
    assert got["rc"] == 2 and got["peak_mb"] < 200, got  # no pixel was decoded, no model loaded


def test_api_refuses_arrays_over_the_limit_before_loading_a_model():
    codec.api._load.cache_clear()
    big = np.zeros((6000, 6000, 3), np.uint8)  # 36 Mpx > 33.5 Mpx
    with pytest.raises(LimitError):
        codec.encode(big)
    assert codec.api._load.cache_info().currsize == 0


# --------------------------------------------------------------------------- files
def test_force_never_replaces_special_files(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(smooth_image(20, 20)).save(src)
    target = tmp_path / "target.nmc"
    target.write_bytes(b"keep me")
    link = tmp_path / "link.nmc"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.nmc"
    os.mkfifo(fifo)
    for out, what in [(link, "symbolic link"), (fifo, "FIFO"), ("/dev/null", "device")]:
        assert cli(["encode", str(src), "-o", str(out), "--force", "--model", "factorized"]) == 2
        assert what in capsys.readouterr().err
    assert link.is_symlink() and target.read_bytes() == b"keep me"
    assert fifo.is_fifo() and os.path.exists("/dev/null") and pathlib.Path("/dev/null").is_char_device()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.nmc", "in.png", "link.nmc", "target.nmc"]


def test_encoder_checks_the_input_before_loading_a_model(tmp_path, capsys):
    codec.api._load.cache_clear()
    for args in [["encode", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.nmc")],
                 ["encode", str(tmp_path), "-o", str(tmp_path / "o.nmc")],
                 ["encode", str(tmp_path / "song.flac"), "-o", str(tmp_path / "o.nmc")]]:
        if args[1].endswith(".flac"):
            pathlib.Path(args[1]).write_bytes(b"fLaC")
        assert cli(args) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert codec.api._load.cache_info().currsize == 0


def test_broken_files_of_every_medium_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(InputError, match="frame rate"):
        codec.encode(np.zeros((2, 8, 8, 3), np.uint8), medium="video")  # frames without their fps
    with pytest.raises(InputError, match="codes image, not audio"):
        codec.encode(np.zeros(100, np.float32), model="factorized", medium="audio")
    for name in ("song.flac", "clip.mp4"):  # a broken file: one line naming it, no output
        p = tmp_path / name
        p.write_bytes(b"\0" * 16)
        assert cli(["encode", str(p), "-o", str(tmp_path / "y.nmc")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and name in err[0] and not (tmp_path / "y.nmc").exists()


def test_side_limit_and_16_bit_are_checked_before_a_model_loads(tmp_path, capsys):
    codec.api._load.cache_clear()
    with pytest.raises(LimitError, match="65536 pixels a side"):
        codec.encode(np.zeros((2, 65600, 3), np.uint8))
    Image.fromarray(np.zeros((2, 65600), np.uint8)).save(tmp_path / "wide.png")
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(tmp_path / "deep.png")
    for name, what in [("wide.png", "a side"), ("deep.png", "only 8-bit")]:
        assert cli(["encode", str(tmp_path / name), "-o", str(tmp_path / "o.nmc")]) == 2
        err = capsys.readouterr().err
        assert what in err and name in err
    assert codec.api._load.cache_info().currsize == 0


def test_animated_gif_is_refused_not_truncated(tmp_path, capsys):
    frames = [Image.fromarray(smooth_image(16, 16, seed=i)) for i in range(3)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    assert cli(["encode", str(gif), "-o", str(tmp_path / "a.nmc")]) == 2
    assert "animated (3 frames)" in capsys.readouterr().err
    with Image.open(gif) as im:  # the API refuses it too
        with pytest.raises(InputError, match="animated"):
            codec.encode(im, model="factorized")
    still = tmp_path / "still.gif"
    frames[0].save(still)
    assert cli(["encode", str(still), "-o", str(tmp_path / "s.nmc"), "--model", "factorized", "-q"]) == 0


def test_info_summarises_a_million_sections(tmp_path, capsys):
    payload = Payload([Section("latent", b"")] * ct.MAX_SECTIONS, codec.load_model("factorized").header_for(8, 8))
    c = ct.Container("factorized", codec.load_model("factorized").weights_id, 4, ct.ImageInfo(8, 8), payload)
    p = tmp_path / "many.nmc"
    p.write_bytes(ct.pack(c))
    assert cli(["info", str(p)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) < 30 and any("1048560 more sections" in ln for ln in out), out[-3:]
    with pytest.raises(codec.CodecError, match="writes sections latent; this stream has latent, latent"):
        codec.decode(p.read_bytes())  # and decoding it is refused, quickly


# --------------------------------------------------------------------------- API misuse
@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 0, 3), np.float32), "empty"),
    (np.zeros((0, 5), np.uint8), "empty"),
    (np.zeros((4, 4, 2), np.uint8), "C = 1, 3 or 4"),
    (np.full((4, 4, 3), 2.0), "in \\[0, 1\\]"),
    (np.full((4, 4, 3), np.nan, np.float32), "finite"),
    (np.zeros((4, 4, 3), np.int64), "int64"),
    (np.zeros((4, 4, 3), bool), "bool"),
    (np.zeros((4, 4, 3), complex), "complex"),
    (np.array([[None]]), "object"),
    ("photo.png", "str .*read it first"),
    (b"\x89PNG", "bytes"),
    (pathlib.Path("photo.png"), "PosixPath"),
    (None, "NoneType"),
    ([[1, 2], [3, 4]], "list"),
    (42, "int"),
    (torch.zeros(2, 3, 4, 4), "one image at a time"),
    (torch.zeros(1, 1, 3, 4, 4), "\\[C, H, W\\]"),
    (torch.zeros(3, 4, 4, device="meta"), "meta"),
    (torch.zeros(3, 4, 4, dtype=torch.int32), "int32"),
    (torch.zeros(3, 4, 4, dtype=torch.complex64), "complex"),
    (torch.zeros(3, 4, 4).to_sparse(), "layout"),
])
def test_bad_inputs_to_encode_are_codec_errors_naming_the_input(bad, match):
    with pytest.raises(InputError, match=match):
        codec.encode(bad, model="factorized")


def test_low_precision_tensors_are_coded_like_float32():
    x = torch.from_numpy(smooth_image(12, 10)).permute(2, 0, 1).float() / 255
    want = codec.encode(x.to(torch.bfloat16).float(), model="factorized")
    assert codec.encode(x.to(torch.bfloat16), model="factorized") == want
    assert codec.encode(x.half(), model="factorized") == codec.encode(x.half().float(), model="factorized")


@pytest.mark.parametrize("bad", [None, "stream", 42, [1, 2], b"", b"\x89NMC", bytearray(b"junk")])
def test_bad_inputs_to_decode_and_info_are_codec_errors(bad):
    with pytest.raises(codec.CodecError):
        codec.decode(bad)
    with pytest.raises(codec.CodecError):
        codec.info(bad)


def test_bad_arguments_are_codec_errors():
    data = codec.encode(smooth_image(8, 8), model="factorized")
    for kwargs in [dict(output="jpeg"), dict(device="tpu"), dict(max_pixels=-1), dict(max_pixels="many"),
                   dict(max_pixels=float("inf")), dict(max_pixels=float("nan")), dict(max_pixels=1e400)]:
        with pytest.raises(codec.CodecError):
            codec.decode(data, **kwargs)
    for kwargs in [dict(model="nope"), dict(model="factorized", quality=99), dict(model="mean-scale-vr", quality=0.5),
                   dict(model="mean-scale-vr", quality=float("nan")), dict(quality="high"), dict(quality=True),
                   dict(medium="smell")]:
        with pytest.raises(codec.CodecError):
            codec.encode(smooth_image(8, 8), **kwargs)


def test_the_entropy_stage_errors_are_in_the_family():
    assert issubclass(entropy.StreamError, codec.CodecError)
    assert issubclass(entropy.TableError, codec.CodecError)
    t = entropy.gaussian_tables()
    idx = torch.zeros(100, dtype=torch.int32)
    with pytest.raises(codec.CodecError):
        entropy.decode(b"\0" * 40, idx, t)
