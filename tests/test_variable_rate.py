"""Variable-rate models (gain units): the quality knob, its container field, training and export."""
from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from PIL import Image

import codec
from codec import container as ct
from codec.cli import main as cli
from codec.models import registry
from codec.models.latent_codecs import GainLatentCodec
from codec.training import config as C
from codec.training.models import init_weights
from codec.training.tasks.image_rd import rd_loss, sample_qualities, train

from pictures import smooth_image

warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
pytestmark = pytest.mark.filterwarnings("ignore::codec.api.UntrainedModelWarning")
LAMBDAS = C.LAMBDAS["mse"]
TINY = {"N": 8, "M": 12}


def tiny_vr(seed=0):
    torch.manual_seed(seed)
    m = registry.MODELS["mean-scale-vr"].arch_class()(**TINY)
    m.latent_codec.init_gains(LAMBDAS, ref=4)
    return m


def test_gains_interpolate_exponentially_between_levels():
    lc = tiny_vr().latent_codec
    with torch.no_grad():
        lc.log_gain.normal_()
        lc.log_inv_gain.normal_()
    g, gi = lc.gains(torch.tensor([1.0, 3.0, 8.0, 2.5]), 4, "cpu")
    assert g.shape == (4, 12, 1, 1)
    for row, level in ((0, 0), (1, 2), (2, 7)):
        torch.testing.assert_close(g[row, :, 0, 0], torch.exp(lc.log_gain[level]))
        torch.testing.assert_close(gi[row, :, 0, 0], torch.exp(lc.log_inv_gain[level]))
    torch.testing.assert_close(g[3, :, 0, 0], torch.sqrt(torch.exp(lc.log_gain[1] + lc.log_gain[2])))
    with pytest.raises(ValueError, match=r"\[1, 8\]"):
        lc.gains(8.5, 1, "cpu")
    with pytest.raises(ValueError, match="at least 2 levels"):
        GainLatentCodec(lc.inner, 12, 1)


def test_init_gains_follow_the_square_root_of_lambda():
    lc = tiny_vr().latent_codec
    g, gi = lc.gains(torch.arange(1.0, 9.0), 8, "cpu")
    want = torch.tensor([math.sqrt(v / LAMBDAS[3]) for v in LAMBDAS])
    torch.testing.assert_close(g[:, 0, 0, 0], want)
    torch.testing.assert_close(gi[:, 0, 0, 0], 1 / want)


def test_quality_knob_spends_more_bits_and_decodes_exactly():
    m = tiny_vr()
    m.eval().freeze()
    x = torch.from_numpy(smooth_image(64, 128, 3)).permute(2, 0, 1)[None].float() / 255
    sizes = []
    for q in (1.0, 2.5, 4.0, 6.25, 8.0):
        payload = m.compress(x, q, effort="fast")
        with torch.no_grad():  # the encoder's latents (64 x 128: no padding)
            streams, y_hat = m.latent_codec.compress(m.g_a(x), q)
        assert [s.data for s in payload.sections] == streams
        sizes.append(payload.nbytes)
        # the decoder gets the encoder's latents (the gains only scale them)
        y_dec = m.latent_codec.decompress(streams, (1, m.M, *m.grid(64, 128)), q)
        assert torch.equal(y_dec, y_hat)
        assert torch.equal(m.decompress(payload, q), m.synthesize(y_hat))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    with pytest.raises(ValueError, match="needs a quality"):
        m.compress(x)
    with pytest.raises(ValueError, match="codes at quality 4 only"):
        registry.load_model("factorized").compress(x, 3)


def test_spec_quality_rules():
    vr, fixed = registry.get_spec("mean-scale-vr"), registry.get_spec("mean-scale")
    assert vr.variable_rate and not fixed.variable_rate
    assert vr.check_quality(None) == 4.0 and vr.check_quality("3.257") == 3.26 and vr.check_quality(8) == 8.0
    assert vr.quality_code(3.25) == 325 and vr.quality_from_code(325) == 3.25
    assert fixed.check_quality(4.0) == 4 and fixed.quality_code(4) == 4 and fixed.quality_from_code(4) == 4
    for spec, bad in ((vr, 0.99), (vr, 8.01), (fixed, 2.5), (fixed, 9), (vr, "x")):
        with pytest.raises(ValueError):
            spec.check_quality(bad)
    assert registry.weights_filename("mean-scale-vr", 3) == "mean-scale-vr.safetensors"
    assert registry.weights_filename("mean-scale", 3) == "mean-scale-q3.safetensors"


def test_api_stores_fractional_quality_and_decodes(tmp_path, capsys):
    img = smooth_image(40, 72, 1)
    data = codec.encode(img, model="mean-scale-vr", quality=2.75, device="cpu")
    c = ct.unpack(data)
    assert c.model == "mean-scale-vr" and c.quality == 275
    assert codec.info(data)["quality"] == 2.75
    out = codec.decode(data, device="cpu")
    assert out.shape == (40, 72, 3)
    # another quality: another stream, decoded with its own inverse gains
    other = codec.encode(img, model="mean-scale-vr", quality=7, device="cpu")
    assert other != data and ct.unpack(other).quality == 700
    # a stream whose quality the model does not take is refused with a clear error
    bad = ct.Container(**{**c.__dict__, "quality": 50})
    with pytest.raises(codec.CodecError, match="does not fit its model.*not 0.5"):
        codec.decode(ct.pack(bad))
    with pytest.raises(codec.CodecError, match=r"must lie in 1\.\.8"):
        codec.encode(img, model="mean-scale-vr", quality=9)
    with pytest.raises(codec.CodecError, match="whole number"):
        codec.encode(img, model="mean-scale", quality=2.5)
    # the CLI takes and prints fractional qualities
    src = tmp_path / "in.png"
    Image.fromarray(img).save(src)
    assert cli(["encode", str(src), "-o", str(tmp_path / "s.nmc"), "--model", "mean-scale-vr", "--quality", "5.5",
                "--device", "cpu"]) == 0
    assert "q5.5" in capsys.readouterr().out
    assert cli(["info", str(tmp_path / "s.nmc")]) == 0
    assert "quality 5.5 " in capsys.readouterr().out
    assert cli(["decode", str(tmp_path / "s.nmc"), "-o", str(tmp_path / "d.png"), "--device", "cpu"]) == 0
    assert "q5.5" in capsys.readouterr().out
    assert cli(["encode", str(src), "-o", str(tmp_path / "t.nmc"), "--model", "mean-scale-vr", "--quality", "0.5"]) == 2
    assert "must lie in 1..8" in capsys.readouterr().err and not (tmp_path / "t.nmc").exists()


def test_per_item_lambdas_in_the_loss():
    torch.manual_seed(0)
    q, lam = sample_qualities(1000, LAMBDAS, "cpu")
    assert float(q.min()) >= 1 and float(q.max()) <= 8 and float(q.std()) > 1.5  # spread over the range
    # each drawn lambda lies between its two levels' lambdas, at the log-linear position
    k = torch.floor(q - 1).clamp(max=6).long()
    lo, hi = torch.tensor(LAMBDAS)[k], torch.tensor(LAMBDAS)[k + 1]
    assert bool(((lam >= lo * 0.9999) & (lam <= hi * 1.0001)).all())
    torch.testing.assert_close(torch.log(lam / lo) / torch.log(hi / lo), q - 1 - k)
    # whole qualities give the levels' lambdas, a midpoint their geometric mean
    from codec.models.latent_codecs import interpolate_levels

    log_lam = torch.log(torch.tensor(LAMBDAS))
    at = torch.exp(interpolate_levels(log_lam, torch.tensor([1.0, 4.0, 8.0, 2.5])))
    torch.testing.assert_close(at, torch.tensor([LAMBDAS[0], LAMBDAS[3], LAMBDAS[7],
                                                 math.sqrt(LAMBDAS[1] * LAMBDAS[2])]))
    # a tensor of equal lambdas gives the float loss
    x = torch.rand(3, 3, 16, 16)
    out = {"x_hat": x + 0.01, "likelihoods": {"y": torch.rand(3, 4, 2, 2).clamp(0.1)}}
    a = rd_loss(out, x, "mse", 0.01)
    b = rd_loss(out, x, "mse", torch.full((3,), 0.01))
    for k in ("loss", "bpp", "mse"):
        torch.testing.assert_close(a[k], b[k])
    # items weigh their own lambda
    c = rd_loss(out, x, "mse", torch.tensor([0.01, 0.02, 0.03]))
    assert float(c["loss"]) > float(b["loss"])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("vr-images")
    (root / "train").mkdir()
    (root / "val").mkdir()
    Image.fromarray(smooth_image(96, 80, 1)).save(root / "train" / "a.png")
    Image.fromarray(smooth_image(72, 100, 2)).save(root / "train" / "b.png")
    Image.fromarray(smooth_image(64, 48, 4)).save(root / "val" / "v1.png")
    return root


def test_train_from_a_fixed_rate_model_validate_every_level_and_export(images, tmp_path):
    torch.set_num_threads(1)
    # a fixed-rate tiny model to start from
    fixed = registry.MODELS["mean-scale"].arch_class()(**TINY)
    fixed_sd = {k: v.clone() for k, v in fixed.state_dict().items()}
    start = tmp_path / "fixed.pt"
    torch.save({"format": "codec.training.checkpoint/v1", "model": fixed_sd}, start)
    vr = registry.MODELS["mean-scale-vr"].arch_class()(**TINY)
    loaded, kept = init_weights(vr, start)
    assert kept == 2 and loaded == len(fixed_sd)  # everything but the gains
    assert torch.equal(vr.latent_codec.inner.h_s[0].weight, fixed.latent_codec.h_s[0].weight)

    cfg = C.from_dict({
        "model": {"name": "mean-scale-vr", "quality": 4, "arch_kwargs": dict(TINY), "init": str(start)},
        "data": {"train": [str(images / "train")], "val": str(images / "val"), "crop": 64, "batch_size": 2,
                 "workers": 0, "resident": "memory"},
        "optim": {"lr": 1e-3},
        "run": {"steps": 4, "out": str(tmp_path / "run"), "device": "cpu", "threads": 1, "log_every": 2,
                "val_every": 4, "ckpt_every": 100, "progress": False, "tensorboard": False},
    })
    res = train(cfg, quiet=True)
    assert res.step == 4
    per = res.val["per_quality"]
    assert [r["quality"] for r in per] == list(range(1, 9))
    assert [r["bpp"] for r in per] == sorted(r["bpp"] for r in per)  # more bits at every higher level
    assert res.val["loss"] == pytest.approx(sum(r["loss"] for r in per) / 8)
    rows = (tmp_path / "run" / "val.csv").read_text().splitlines()
    assert rows[0].startswith("step,quality,")
    assert [r.split(",")[1] for r in rows[1:]] == ["mean"] + [str(q) for q in range(1, 9)]
    assert all(r.split(",")[0] == "4" for r in rows[1:])
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert resolved["loss"]["lambdas"] == list(LAMBDAS) and resolved["loss"]["lmbda"] is None

    from codec.training.export import export

    (tmp_path / "w").mkdir()
    s = export(res.out, output=tmp_path / "w", half=True)
    assert s["path"].endswith("mean-scale-vr.safetensors") and s["variable_rate"]
    m = registry.load_model("mean-scale-vr", path=s["path"])
    assert m.trained and m.quality is None and json.loads(m.metadata["arch_kwargs"])["levels"] == 8
    assert [r["quality"] for r in json.loads(m.metadata["validation"])] == list(range(1, 9))
    with pytest.raises(ValueError, match="variable rate"):
        export(res.out, output=tmp_path / "w", quality=3)


def test_config_checks_for_variable_rate():
    base = {"model": {"name": "mean-scale-vr"}}
    with pytest.raises(ValueError, match="loss.lmbda"):
        C.from_dict({**base, "loss": {"lmbda": 0.01}}).validate()
    with pytest.raises(ValueError, match="8 positive, increasing"):
        C.from_dict({**base, "loss": {"lambdas": [0.1, 0.2]}}).validate()
    with pytest.raises(ValueError, match="only for variable-rate"):
        C.from_dict({"loss": {"lambdas": list(LAMBDAS)}}).validate()
    cfg = C.load_config("mean-scale-vr-cpu").validate()
    assert cfg.spec.quality.continuous and cfg.lambdas == LAMBDAS and cfg.lmbda == LAMBDAS[3]


def test_models_lists_the_variable_rate_model(capsys):
    assert cli(["models"]) == 0
    out = capsys.readouterr().out
    assert "mean-scale-vr" in out and "any value (steps of 0.01)" in out
