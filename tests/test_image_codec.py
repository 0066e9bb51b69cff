"""Image codec end to end: models, container, API, CLI, errors."""
import os
import pathlib
import subprocess
import sys
import numpy as np
import pytest
import torch
from PIL import Image

import codec
from codec import container as ct
from codec.media.image import to_8bit
from codec.cli import main as cli
from codec.models import registry
from codec.models.integer import ACT_BITS, IntegerNet

from pictures import smooth_image

pytestmark = pytest.mark.filterwarnings("ignore::codec.api.UntrainedModelWarning")
# the transform models (the INR model, fitted per picture, has its own tests: test_inr.py)
def _transform_codec(name) -> bool:  # the latent-codec image models (not the INR and VQ ones: tests of their own)
    from codec.models.image import ImageModel

    spec = registry.MODELS[name]
    return spec.modality == "image" and not spec.fitted and issubclass(spec.arch_class(), ImageModel)


MODELS = [n for n in registry.list_models() if _transform_codec(n)]
ROOT = pathlib.Path(__file__).resolve().parents[1]


def sample(h=40, w=72, seed=0, gray=False):
    img = smooth_image(h, w, seed)
    return img[..., 0].copy() if gray else img


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    return codec.load_model(request.param, device="cpu")


# --------------------------------------------------------------------------- models
def test_roundtrip_equals_forward_with_same_latents(model):
    img = sample()
    data = codec.encode(img, model=model.name, device="cpu", effort="fast")
    out = codec.decode(data, device="cpu")
    # what the model's synthesis gives for the latents the encoder quantised
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    xp = torch.nn.functional.pad(x, (0, (-72) % model.multiple, 0, (-40) % model.multiple), mode="replicate")
    q = registry.get_spec(model.name).check_quality(None)
    streams, y_hat = model.latent_codec.compress(model.g_a(xp), *model._q(q))
    ref = to_8bit(model.synthesize(y_hat)[0, :, :40, :72])
    np.testing.assert_array_equal(out, ref)
    c = ct.unpack(data)
    assert [s.data for s in c.sections] == streams
    assert c.payload.kinds() == model.section_kinds and c.payload.header == model.header_for(40, 72)
    # the model's own compress writes the same payload, padding included
    assert model.compress(x, q, effort="fast") == c.payload
    # the decoder reconstructs exactly the encoder's latents
    y_dec = model.latent_codec.decompress(streams, (1, model.M, *model.grid(40, 72)), *model._q(q))
    assert torch.equal(y_dec, y_hat)


def test_file_size_is_what_info_reports(model, tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(sample(33, 47, seed=3)).save(src)
    out = tmp_path / "s.nmc"
    assert cli(["encode", str(src), "-o", str(out), "--model", model.name, "--device", "cpu", "-q"]) == 0
    data = out.read_bytes()
    info = codec.info(data)
    assert info["bytes"] == out.stat().st_size == len(data)
    assert info["bytes"] == info["header_bytes"] + sum(s["bytes"] for s in info["sections"])
    assert info["bpp"] == pytest.approx(8 * len(data) / (33 * 47))
    assert (info["model"], info["width"], info["height"]) == (model.name, 47, 33)


def test_shapes_colour_and_io_types():
    name = "factorized"  # the quickest model; the paths below do not depend on the model
    for h, w in [(1, 1), (17, 33), (64, 64), (65, 3)]:
        img = sample(h, w, seed=h)
        out = codec.decode(codec.encode(img, model=name, device="cpu"))
        assert out.shape == (h, w, 3) and out.dtype == np.uint8
    g = sample(20, 30, gray=True)
    out = codec.decode(codec.encode(g, model=name, device="cpu"))
    assert out.shape == (20, 30)
    pil = Image.fromarray(g, mode="L")
    assert codec.decode(codec.encode(pil, model=name), output="pil").mode == "L"
    rgba = np.dstack([sample(10, 12), np.full((10, 12), 7, np.uint8)])
    t = codec.decode(codec.encode(rgba, model=name), output="torch")
    assert t.shape == (3, 10, 12) and t.dtype == torch.float32 and float(t.max()) <= 1
    assert torch.allclose(t * 255, torch.round(t * 255), atol=1e-3)  # exactly the 8-bit values / 255
    ten = torch.from_numpy(sample(10, 12)).permute(2, 0, 1).float() / 255
    assert codec.encode(ten, model=name) == codec.encode(sample(10, 12), model=name)


def test_bad_inputs_to_the_api():
    with pytest.raises(codec.CodecError):
        codec.encode(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(codec.CodecError):
        codec.encode(np.full((4, 4, 3), 2.0))
    with pytest.raises(codec.CodecError):
        codec.encode(np.zeros((4, 4, 3), np.uint8), model="no-such-model")
    with pytest.raises(codec.CodecError):
        codec.encode(np.zeros((4, 4, 3), np.uint8), model="factorized", quality=99)
    with pytest.raises(codec.CodecError):
        codec.decode(b"not a stream")


# --------------------------------------------------------------------------- integer index path
def test_integer_network_is_integer_and_close_to_float():
    torch.manual_seed(0)
    m = registry.MODELS["hyperprior"].arch_class()(N=16, M=24)
    lc = m.latent_codec
    lc.freeze()
    z = torch.randint(-6, 7, (1, 16, 3, 5)).float()
    out = lc.h_s_int(z)
    assert out.dtype == torch.float64 and torch.equal(out, torch.round(out))
    ref = lc.h_s(z).double() * (1 << ACT_BITS)
    assert (out - ref).abs().max() <= 0.02 * ref.abs().max() + 4
    # stored and reloaded integers give the same network
    state = lc.h_s_int.state("p.")
    again = IntegerNet.from_state(lc.h_s, state, "p.")
    assert torch.equal(again(z), out)


def test_integer_network_bound_is_checked():
    seq = torch.nn.Sequential(torch.nn.Conv2d(200_000, 1, 5))  # sum |w_int| * 2**20 > 2**53
    with torch.no_grad():
        seq[0].weight.fill_(1.0)
    with pytest.raises(ValueError):
        IntegerNet.freeze(seq)


# --------------------------------------------------------------------------- CLI
def run_cli(*args):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "codec.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_cli_errors_are_one_line_and_leave_no_files(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(sample()).save(good)
    (tmp_path / "junk.png").write_bytes(b"\x89PNG garbage")
    stream = tmp_path / "s.nmc"
    assert cli(["encode", str(good), "-o", str(stream), "--model", "factorized", "-q"]) == 0
    data = stream.read_bytes()
    (tmp_path / "trunc.nmc").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[-5] ^= 1
    (tmp_path / "flip.nmc").write_bytes(bytes(flipped))
    before = sorted(os.listdir(tmp_path))
    cases = [
        ("encode", str(tmp_path / "junk.png"), "-o", str(tmp_path / "o1.nmc")),
        ("encode", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o2.nmc")),
        ("encode", str(good), "-o", str(tmp_path / "nodir" / "o3.nmc")),
        ("encode", str(good), "-o", str(stream)),  # exists, no --force
        ("decode", str(tmp_path / "trunc.nmc"), "-o", str(tmp_path / "o4.png")),
        ("decode", str(tmp_path / "flip.nmc"), "-o", str(tmp_path / "o5.png")),
        ("decode", str(good), "-o", str(tmp_path / "o6.png")),
        ("encode", str(good), "-o", str(tmp_path / "o7.nmc"), "--model", "nope"),
        ("encode", str(good), "-o", str(tmp_path / "o8.nmc"), "--device", "cuda:7"),
    ]
    for args in cases:
        r = run_cli(*args)
        assert r.returncode != 0, args
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("codec: error")]
        assert len(errors) == 1 and "Traceback" not in r.stderr, (args, r.stderr)
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no temporary left behind


def test_cli_unwritable_output(tmp_path, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(sample()).save(good)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    # a read-only directory (for root, which may write there, /proc stands in)
    target = ro / "x.nmc" if os.geteuid() != 0 else pathlib.Path("/proc/codec-test.nmc")
    assert cli(["encode", str(good), "-o", str(target), "--model", "factorized"]) == 2
    err = capsys.readouterr().err
    assert "codec: error" in err and not target.exists()


def test_cli_many_files_with_progress_and_force(tmp_path):
    srcs = []
    for i in range(3):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(sample(20 + i, 30, seed=i)).save(p)
        srcs.append(str(p))
    out = tmp_path / "out"
    assert cli(["encode", *srcs, "-o", str(out) + "/", "--model", "factorized", "-q"]) == 0
    streams = sorted(str(p) for p in out.iterdir())
    assert [os.path.basename(s) for s in streams] == ["im0.nmc", "im1.nmc", "im2.nmc"]
    dec = tmp_path / "dec"
    assert cli(["decode", *streams, "-o", str(dec), "-q"]) == 0
    for i in range(3):
        img = np.asarray(Image.open(dec / f"im{i}.png"))
        assert img.shape == (20 + i, 30, 3)
    assert cli(["decode", *streams, "-o", str(dec), "-q"]) == 2  # exists
    assert cli(["decode", *streams, "-o", str(dec), "-q", "--force"]) == 0


def test_cli_demo_and_info(tmp_path, capsys):
    assert cli(["demo", "--model", "factorized", "--device", "cpu", "--effort", "fast", "-o", str(tmp_path / "d.png")]) == 0
    out = capsys.readouterr().out
    assert "bpp" in out and "PSNR" in out and (tmp_path / "d.png").exists() and "effort fast" in out
    assert cli(["demo", "--audio", "--effort", "fast"]) == 2  # (an image encoder's setting)
    assert cli(["models"]) == 0


# --------------------------------------------------------------------------- cross-device (GPU)
KODAK = ROOT.parent / "shared" / "data" / "kodak"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.skipif(not KODAK.is_dir(), reason="needs ../shared/data/kodak")
@pytest.mark.parametrize("name", MODELS)
def test_cross_device_kodak(name, capsys):
    """Encode on CUDA, decode on CPU (and back) for all 24 Kodak images."""
    files = sorted(KODAK.glob("*.png"))
    assert len(files) == 24
    worst, differing, total = 0, 0, 0
    models = {d: codec.load_model(name, device=d) for d in ("cpu", "cuda")}
    for f in files:
        img = np.asarray(Image.open(f).convert("RGB"))
        for enc, dec in [("cuda", "cpu"), ("cpu", "cuda")]:
            data = codec.encode(img, model=name, device=enc, effort="fast")  # (decoding is what is tested)
            c = ct.unpack(data)
            shape = (1, models[enc].M, *models[enc].grid(c.media.height, c.media.width))
            streams = [s.data for s in c.sections]
            q = models[enc]._q(codec.api.stream_quality(c))
            y = {d: models[d].latent_codec.decompress(streams, shape, *q, device=d).cpu() for d in ("cpu", "cuda")}
            assert torch.equal(y["cpu"], y["cuda"])  # the same symbols (and exact means) on both devices
            a = codec.decode(data, device=dec).astype(int)
            b = codec.decode(data, device=enc).astype(int)
            d = np.abs(a - b)
            worst = max(worst, int(d.max()))
            differing += int((d > 0).sum())
            total += d.size
    with capsys.disabled():
        print(f"\n{name}: max |diff| {worst}, {differing} of {total} values differ ({100 * differing / total:.4f}%)")
    assert worst <= 1 and differing / total < 1e-3


def test_end_to_end_benchmark_runs(capsys):
    from codec.entropy import rans
    from codec.tools.bench_image_e2e import run

    rows = run([("p.png", sample(64, 64))], model="factorized", repeat=1)
    cpu = [r for r in rows if r["device"] == "cpu"]
    want = "native" if rans.native_available() else "numpy"  # the CPU coder a user gets
    assert len(cpu) == 1 and cpu[0]["coder"] == want and cpu[0]["bytes"] > 0
    assert 0 < cpu[0]["encode_entropy_s"] < cpu[0]["encode_s"] and 0 < cpu[0]["decode_entropy_s"] < cpu[0]["decode_s"]
    assert codec.entropy.encode.__name__ == "encode"  # the timers are removed again
    # several models: the sequential streams of the context model count as its entropy stage
    rows = run([("p.png", sample(64, 64))], model=["factorized@fast", "context-vr", "context-vr@fast"], repeat=1)
    assert [r["model"] for r in rows] == ["factorized@fast", "context-vr", "context-vr@fast"]
    assert rows[1]["coder"] == "sequential" and rows[1]["bytes"] != rows[2]["bytes"]  # (refined by default)
    assert 0 < rows[1]["encode_entropy_s"] < rows[1]["encode_s"] and 0 < rows[1]["decode_entropy_s"] < rows[1]["decode_s"]
    assert codec.entropy.encode_sequential.__name__ == "encode_sequential"
    from codec.tools.bench_image_e2e import _print

    _print(rows)  # the second model's row is timed against the first's (same image, device, backend)
    assert "1.00x / 1.00x" in capsys.readouterr().out.splitlines()[1]


def test_registry_specs_agree_with_their_architectures():
    for name, spec in registry.MODELS.items():
        cls = spec.arch_class()
        assert cls.variable_rate == spec.quality.continuous, name
        assert cls.modality == spec.modality, name
    assert set(registry.DEFAULT_MODELS.values()) <= set(registry.MODELS)


def test_weights_ids_of_models_without_weights_are_stable():
    """A model without shipped weights starts from a draw seeded by its name: changing the order
    in which its layers are built changes its weights, and streams written before stop decoding."""
    pinned = {("factorized", 1): "3706b2468de934aa", ("hyperprior", 1): "da65c2da021c1e9e",
              ("mean-scale", 8): "b8b3196bc152cede", ("mean-scale-small", 1): "cea7779e1bb0a8fa"}
    for (name, q), want in pinned.items():
        m = registry.load_model(name, q)
        assert not m.trained and m.weights_id.hex() == want, name


def test_read_ahead_keeps_order_and_errors_in_turn():
    """codec encode of several files reads the next input while it codes the current one:
    results come in order, each read once, and a bad input fails at its own turn."""
    import threading

    from codec.commands import _read_ahead

    pairs = [(f"f{i}", f"o{i}") for i in range(5)]
    seen, threads = [], set()

    def read(src):
        seen.append(src)
        threads.add(threading.current_thread().name.startswith("codec-read"))
        if src == "f2":
            raise ValueError("bad f2")
        return src.upper()

    r, close = _read_ahead(pairs, read)
    assert r("f0") == "F0" and r("f1") == "F1"
    with pytest.raises(ValueError, match="bad f2"):
        r("f2")
    assert r("f3") == "F3" and r("f4") == "F4"
    close()
    assert sorted(seen) == [s for s, _ in pairs] and True in threads
    assert _read_ahead(pairs[:1], read)[0] is read
