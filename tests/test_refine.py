"""The image encoders' latent refinement (``--effort``): the encoder optimises the latent it
codes against the training loss; the decoder and the stream format are those of any encode."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import codec
from codec.models import registry
from codec.models.image import REFINE_EFFORTS
from codec.models.integer import exact_mode

from pictures import smooth_image

warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)


def picture(h=128, w=128, seed=1):
    return torch.from_numpy(smooth_image(h, w, seed)).permute(2, 0, 1)[None].float() / 255


def rd_cost(m, x, q, payload):
    """bits/pixel from the payload's bytes + lambda * 255**2 * MSE of the decoded 8-bit picture."""
    H, W = x.shape[-2:]
    rec = m.decompress(payload, q)[..., :H, :W]
    mse = float(((torch.round(rec.clamp(0, 1) * 255) - torch.round(x * 255)) ** 2).mean()) / 255 ** 2
    return 8 * payload.nbytes / (H * W) + m.rd_lambda(q) * 255 ** 2 * mse


def data(payload):
    return [s.data for s in payload.sections]


@pytest.mark.parametrize("name,q", [("context-vr", 2), ("context-vr", 7), ("mean-scale-vr", 4)])
def test_refinement_lowers_the_real_rate_distortion_cost(name, q):
    m = registry.load_model(name)
    x = picture()
    fast, refined = (m.compress(x, q, effort=e) for e in ("fast", "slow"))
    assert m.last_fit["iterations"] == REFINE_EFFORTS["slow"]
    assert data(refined) != data(fast)
    assert rd_cost(m, x, q, refined) < 0.98 * rd_cost(m, x, q, fast)


def test_fast_is_the_plain_encode_and_refinement_is_repeatable():
    m = registry.load_model("context-vr")
    x = picture(64, 96)
    with torch.no_grad(), exact_mode():
        streams, _ = m.latent_codec.compress(m.g_a(m.pad(x)), 3.5)
    assert m.compress(x, 3.5, effort="fast").sections[0].data == streams[0]
    assert data(m.compress(x, 3.5, effort=0)) == streams
    rng = torch.random.get_rng_state()
    a, b = (data(m.compress(x, 3.5, effort=5)) for _ in range(2))
    assert a == b  # seeded: the same bytes every time on one device
    assert torch.equal(rng, torch.random.get_rng_state())  # and the caller's random state untouched
    assert not m.training and not any(p.grad is not None for p in m.parameters())


def test_the_default_effort_and_its_progress_through_the_api():
    img = smooth_image(64, 64, 2)
    seen = []
    data = codec.encode(img, quality=4, progress=lambda *a: seen.append(a))
    assert [s[0] for s in seen] == list(range(1, REFINE_EFFORTS["medium"] + 1))
    assert all(s[1] == REFINE_EFFORTS["medium"] and s[2] > 0 and s[3] > 10 for s in seen)
    assert data == codec.encode(img, quality=4, effort="medium")
    assert data != codec.encode(img, quality=4, effort="fast")
    out = codec.decode(data)
    assert out.shape == img.shape and np.abs(out.astype(int) - img).mean() < 8


def test_effort_errors():
    with pytest.raises(codec.CodecError, match="effort must be"):
        codec.encode(smooth_image(64, 64), effort="forever")
    with pytest.raises(codec.CodecError, match="effort must be"):
        codec.encode(smooth_image(64, 64), effort=-1)
    frames = np.stack([smooth_image(64, 64, s) for s in range(2)])
    with pytest.raises(codec.CodecError, match="takes none"):
        codec.encode(frames, fps=25, effort="slow")  # the video model's encoder takes no effort


def test_cli_refines_with_a_bar_and_refuses_a_bad_effort(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    src = tmp_path / "p.png"
    Image.fromarray(smooth_image(48, 64, 3)).save(src)
    run = lambda *a: subprocess.run([sys.executable, "-m", "codec.cli", *a], capture_output=True, text=True, timeout=300)
    r = run("encode", str(src), "-o", str(tmp_path / "p.nmc"), "--effort", "4")
    assert r.returncode == 0, r.stderr
    assert "context-vr q4, effort 4," in r.stdout and "s refining" in r.stdout
    r = run("encode", str(src), "-o", str(tmp_path / "f.nmc"), "--effort", "fast")
    assert r.returncode == 0 and "refining" not in r.stdout
    r = run("encode", str(src), "-o", str(tmp_path / "q.nmc"), "--effort", "hard")
    assert r.returncode == 2 and "effort must be" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "q.nmc").exists()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_latent_refined_on_a_gpu_decodes_identically_on_both_devices():
    img = smooth_image(64, 96, 4)
    data = codec.encode(img, quality=5, device="cuda", effort=10)
    assert np.array_equal(codec.decode(data, device="cpu"), codec.decode(data, device="cuda"))
    assert data == codec.encode(img, quality=5, device="cuda", effort=10)  # repeatable on the device


def test_the_lambda_of_a_fixed_rate_model_and_of_weights_trained_for_another_metric():
    m = registry.load_model("mean-scale-small", 4)
    assert m.rd_lambda(None) == pytest.approx(0.013)  # its weights' lmbda
    x = picture(64, 64)
    assert data(m.compress(x, effort=3)) != data(m.compress(x, effort="fast"))
    m.metadata = {"loss": '{"metric": "ms-ssim", "lmbda": 16.64}'}
    assert data(m.compress(x)) == data(m.compress(x, effort="fast"))  # default: no refinement then
    with pytest.raises(ValueError, match="minimises MSE"):
        m.compress(x, effort=3)
    m.metadata = {}
    assert m.rd_lambda(None) == pytest.approx(0.013)  # the table's, at its quality


def test_an_interrupted_refinement_leaves_the_model_as_it_was():
    m = registry.load_model("mean-scale-vr")

    def stop(step, *_):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        m.compress(picture(64, 64), 3, effort=5, progress=stop)
    assert not m.training and all(p.grad is None for p in m.parameters())
    with torch.inference_mode():  # (and it refines inside inference mode too)
        assert m.compress(picture(64, 64), 3, effort=2).nbytes > 0
