"""The context model (``context-vr``): channel slices and checkerboard passes, exact integer
context path, one sequential stream; started from mean-scale weights it is that model."""
from __future__ import annotations

import warnings

import pytest
import torch

from codec import entropy
from codec.models import registry
from codec.models.context import ContextLatentCodec, anchors
from codec.models.payload import Payload
from codec.training import config as C
from codec.training.models import init_weights

from pictures import smooth_image

warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
pytestmark = pytest.mark.filterwarnings("ignore::codec.api.UntrainedModelWarning")
TINY = {"N": 8, "M": 12}


def picture(h=64, w=128, seed=0):
    return torch.from_numpy(smooth_image(h, w, seed)).permute(2, 0, 1)[None].float() / 255


def tiny(seed=0, context=True):
    """A small context-vr whose context networks all act (their last layers are not zero)."""
    torch.manual_seed(seed)
    m = registry.MODELS["context-vr"].arch_class()(**TINY)
    m.latent_codec.init_gains(C.LAMBDAS["mse"], ref=4)
    if context:
        with torch.no_grad():
            for agg in m.latent_codec.inner.aggregate:
                agg[-1].weight.normal_(0, 0.3)
                agg[-1].bias.normal_(0, 0.3)
    m.eval()
    m.freeze()
    return m


def test_slices_and_anchors():
    inner = tiny().latent_codec.inner
    assert inner.slices == (1, 1, 2, 3, 5) and inner.bounds[-1] == (7, 12)
    assert registry.load_model("context-vr").latent_codec.inner.slices == (8, 8, 16, 24, 40)
    a = anchors(3, 4, "cpu")
    assert a.tolist() == [[True, False, True, False], [False, True, False, True], [True, False, True, False]]
    with pytest.raises(ValueError, match="divisible by 12"):
        registry.MODELS["context-vr"].arch_class()(N=8, M=20)


@pytest.mark.parametrize("quality", [1.0, 4.5, 8.0])
def test_roundtrip_is_exact_and_the_context_is_causal(quality):
    """With every context network active, the decoder (which sees only what it decoded)
    gets the encoder's latents back exactly: no pass used a value decoded after it."""
    m = tiny()
    x = picture()
    p = m.compress(x, quality, effort="fast")
    assert p.kinds() == ("latent",)
    y_hat = m.latent_codec.compress(m.g_a(x), quality)[1]
    y_dec = m.latent_codec.decompress([p.sections[0].data], (1, 12, 4, 8), quality)
    assert torch.equal(y_dec, y_hat)
    assert torch.equal(m.decompress(p, quality), m.synthesize(y_hat))


def test_the_context_changes_the_tables_and_the_decoder_needs_it():
    """The context networks shape the coded bits: another model's context cannot decode the stream."""
    on, off = tiny(seed=1), tiny(seed=1, context=False)
    x = picture(seed=2)
    p_on, p_off = on.compress(x, 4.0, effort="fast"), off.compress(x, 4.0, effort="fast")
    assert p_on.sections[0].data != p_off.sections[0].data
    want = on.latent_codec.decompress([p_on.sections[0].data], (1, 12, 4, 8), 4.0)
    try:
        got = off.latent_codec.decompress([p_on.sections[0].data], (1, 12, 4, 8), 4.0)
    except entropy.CodecError:
        return  # the stream did not end where the wrong model's symbols did
    assert not torch.equal(got, want)


def test_float_forward_estimates_the_bytes():
    """The training forward (rounded, eval mode) and the integer coding path agree on the rate."""
    m = tiny(seed=3)
    x = picture(128, 192, seed=4)
    with torch.no_grad():
        lik = m(x, 6.0)["likelihoods"]
    est = float(sum(-torch.log2(v).sum() for v in lik.values())) / 8
    real = m.compress(x, 6.0, effort="fast").nbytes
    assert abs(real - est) < 0.1 * est + 40, (real, est)


def test_started_from_mean_scale_weights_it_is_that_model_in_fewer_bytes():
    """Zero-initialised corrections: mean-scale-vr's weights give mean-scale-vr's reconstruction;
    one sequential stream instead of two lane streams saves their headers, CRCs and final
    states (about 25 bytes a stream with the rANS format's version 2 at these sizes)."""
    ref = registry.load_model("mean-scale-vr")
    if not ref.trained:
        pytest.skip("needs the shipped mean-scale-vr weights")
    ctx = registry.MODELS["context-vr"].arch_class()()
    init_weights(ctx, registry.weights_path("mean-scale-vr"))
    ctx.eval()
    ctx.freeze()
    x = picture(128, 192, seed=5)
    for q in (1.0, 5.0):
        a, b = ctx.compress(x, q, effort="fast"), ref.compress(x, q, effort="fast")
        assert torch.equal(ctx.decompress(a, q), ref.decompress(b, q))
        assert a.nbytes < b.nbytes - 40, (a.nbytes, b.nbytes)


def test_frozen_state_round_trips_and_rejects_other_shapes():
    """(Loaded into a model with other float weights: the decoder runs on the stored integers.)"""
    m = tiny(seed=6)
    state = m.frozen_state()
    assert any(k.startswith("frozen.aggregate_int.4.") for k in state)
    # integer weights stored as int16 (they are below 2**12), biases as int64
    assert {state[k].dtype for k in state if k.startswith("frozen.") and "_int." in k and ".w" in k} == {torch.int16}
    other = tiny(seed=7)
    other.load_frozen(state)
    x = picture(seed=8)
    p = m.compress(x, 3.0)
    assert torch.equal(other.latent_codec.decompress([p.sections[0].data], (1, 12, 4, 8), 3.0),
                       m.latent_codec.decompress([p.sections[0].data], (1, 12, 4, 8), 3.0))
    bad = dict(state)
    bad["frozen.spatial_int.0.w0"] = bad["frozen.spatial_int.0.w0"][:, :, :3]
    with pytest.raises(ValueError, match="shape"):
        tiny().load_frozen(bad)
    mixed = dict(state)
    mixed["frozen.aggregate_int.0.w0"] = mixed["frozen.aggregate_int.0.w0"].to(torch.int32)
    with pytest.raises(ValueError, match="all be int16 or all int32"):
        tiny().load_frozen(mixed)
    big = dict(state)
    big["frozen.spatial_int.0.w0"] = big["frozen.spatial_int.0.w0"].clone()
    big["frozen.spatial_int.0.w0"].view(-1)[0] = 5000
    with pytest.raises(ValueError, match="exceeds"):
        tiny().load_frozen(big)


def test_truncated_and_wrong_streams_are_clean_errors():
    m = tiny(seed=9)
    x = picture(seed=10)
    p = m.compress(x, 2.0)
    data = p.sections[0].data
    for bad in (data[: len(data) // 2], data + b"\0\0", b""):
        with pytest.raises(entropy.CodecError):
            m.decompress(Payload([type(p.sections[0])("latent", bad)], p.header), 2.0)
    with pytest.raises(ValueError, match="one stream"):
        m.latent_codec.inner.decompress([data, data], (1, 12, 4, 8))
    assert isinstance(m.latent_codec.inner, ContextLatentCodec)


def test_tools_measure_exactness_cost_and_context_gain():
    from codec.media.image import Picture
    from codec.tools import context_gain, index_path_cost

    m = tiny(seed=11)
    m.name = "context-vr"
    pic = Picture(smooth_image(64, 128, seed=12))
    r = index_path_cost.measure(m, pic, 4.0)
    # the float networks give nearly the integer ones' rate and reconstruction
    assert abs(r["int_bytes"] / r["float_bytes"] - 1) < 0.05 and abs(r["psnr_int"] - r["psnr_float"]) < 0.1
    rows = context_gain.measure(m, [pic], [2.0, 6.0])
    plain = context_gain.without_context(m)
    assert all(float(a[-1].weight.detach().abs().sum()) == 0 for a in plain.latent_codec.inner.aggregate)
    assert float(m.latent_codec.inner.aggregate[0][-1].weight.detach().abs().sum()) > 0  # the original is untouched
    for r in rows:
        assert r["with"]["bytes"] == m.compress(pic.tensor("cpu"), r["quality"], effort="fast").nbytes
        assert r["without"]["bytes"] == plain.compress(pic.tensor("cpu"), r["quality"], effort="fast").nbytes
        assert r["with"]["bytes"] != r["without"]["bytes"]
    with pytest.raises(ValueError, match="no context model"):
        context_gain.measure(registry.load_model("factorized"), [pic], [1.0])


def test_the_channel_order_of_the_starting_weights_changes_nothing_but_the_order():
    from codec.training.context_init import permute

    torch.manual_seed(13)
    ref = registry.MODELS["mean-scale-vr"].arch_class()(**TINY)
    ref.latent_codec.init_gains(C.LAMBDAS["mse"], ref=4)
    perm = torch.randperm(12)
    state = permute({k: v for k, v in ref.state_dict().items()}, perm, 12)
    ctx = registry.MODELS["context-vr"].arch_class()(**TINY)
    ctx.load_state_dict(state, strict=False)
    ref.eval(), ctx.eval()
    x = picture(64, 64, seed=14)
    with torch.no_grad():
        a, b = ref(x, 3.0), ctx(x, 3.0)
    for k in ("y", "z"):
        torch.testing.assert_close(a["likelihoods"][k].log2().sum(), b["likelihoods"][k].log2().sum())
    torch.testing.assert_close(a["likelihoods"]["y"][:, perm], b["likelihoods"]["y"])
    torch.testing.assert_close(a["x_hat"], b["x_hat"], atol=1e-4, rtol=1e-4)
