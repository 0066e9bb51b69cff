"""Our layers (codec.models.layers) against CompressAI's of the same names: the same
parameters and buffers, the same outputs and gradients, so weights move between them;
and coding imports no CompressAI."""
import subprocess
import sys

import pytest
import torch

from codec.models import layers

cai = pytest.importorskip("compressai")
from compressai.entropy_models import EntropyBottleneck, GaussianConditional  # noqa: E402
from compressai.layers import GDN  # noqa: E402
from compressai.models.utils import conv, deconv  # noqa: E402


def _pair(ours, theirs):
    """``theirs`` given ``ours``'s state (randomised a little), both in training mode."""
    a, b = ours.state_dict(), theirs.state_dict()
    assert {k: tuple(v.shape) for k, v in a.items()} == {k: tuple(v.shape) for k, v in b.items()}
    assert {k: v.dtype for k, v in a.items()} == {k: v.dtype for k, v in b.items()}
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def _same(out_a, out_b, inputs, params_a, params_b):
    for a, b in zip(out_a, out_b):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)
    loss_a = sum((a * torch.linspace(-1, 1, a.numel()).view(a.shape)).sum() for a in out_a)
    loss_b = sum((b * torch.linspace(-1, 1, b.numel()).view(b.shape)).sum() for b in out_b)
    ga = torch.autograd.grad(loss_a, [*inputs[0], *params_a], allow_unused=True)
    gb = torch.autograd.grad(loss_b, [*inputs[1], *params_b], allow_unused=True)
    for a, b in zip(ga, gb):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn(inverse):
    ours, theirs = _pair(layers.GDN(6, inverse=inverse), GDN(6, inverse=inverse))
    x = torch.randn(2, 6, 5, 7, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    _same([ours(x)], [theirs(x2)], ([x], [x2]), list(ours.parameters()), list(theirs.parameters()))


def test_conv_deconv_shapes_and_init():
    for ours, theirs in [(layers.conv(3, 8), conv(3, 8)), (layers.deconv(8, 3), deconv(8, 3)),
                         (layers.conv(4, 4, 3, 1), conv(4, 4, 3, 1))]:
        assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("training", [True, False])
def test_entropy_bottleneck(training):
    torch.manual_seed(1)
    ours = layers.EntropyBottleneck(5)
    torch.manual_seed(1)
    theirs = EntropyBottleneck(5)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    ours, theirs = _pair(ours, theirs)
    ours.train(training), theirs.train(training)
    x = 3 * torch.randn(2, 5, 4, 6)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    torch.manual_seed(2)
    oa = ours(xa)
    torch.manual_seed(2)
    ob = theirs(xb)
    _same(list(oa), list(ob), ([xa], [xb]), list(ours.parameters()), list(theirs.parameters()))
    assert torch.allclose(ours.loss(), theirs.loss())


@pytest.mark.parametrize("training", [True, False])
def test_gaussian_conditional(training):
    table = [0.11 * 1.2 ** i for i in range(10)]
    ours, theirs = layers.GaussianConditional(table), GaussianConditional(table)
    ours, theirs = _pair(ours, theirs)
    ours.train(training), theirs.train(training)
    x, s, m = 4 * torch.randn(2, 3, 4, 4), torch.rand(2, 3, 4, 4) * 3, torch.randn(2, 3, 4, 4)
    s[0, 0] = 0.01  # below the scale bound: the custom gradient
    ins = [[t.clone().requires_grad_() for t in (x, s, m)] for _ in range(2)]
    torch.manual_seed(3)
    oa = ours(*ins[0])
    torch.manual_seed(3)
    ob = theirs(*ins[1])
    _same(list(oa), list(ob), (ins[0], ins[1]), [], [])


def test_coding_imports_no_compressai(tmp_path):
    """codec encode / decode of a picture with the default model never import CompressAI."""
    code = ("import sys, numpy as np, codec\n"
            "x = (np.arange(64 * 64 * 3) % 251).astype(np.uint8).reshape(64, 64, 3)\n"
            "data = codec.encode(x, effort='fast')\n"
            "codec.decode(data)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'compressai'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
