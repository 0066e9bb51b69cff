"""The network layers the image, video and audio models are built of: GDN, strided
convolutions, and the two densities training uses (the factorized ``EntropyBottleneck``
and the ``GaussianConditional``).

They follow CompressAI's layers of the same names (Ballé et al. 2016-2018; CompressAI
1.2) parameter for parameter and buffer for buffer, so weights trained with either load
in the other, and compute the same functions with the same gradients (tests compare
them on random inputs).  They are written here so that coding never imports CompressAI,
whose import alone takes seconds (its datasets pull in torch_geometric and more); what
codes a stream is ours anyway (``codec.entropy``'s tables and coder).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _LowerBoundFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad):
        x, bound = ctx.saved_tensors
        # the gradient passes where x is above the bound, or where it pushes x up towards it
        return ((x >= bound) | (grad < 0)) * grad, None


class LowerBound(nn.Module):
    """``max(x, bound)`` whose gradient also passes below the bound when it points up."""

    def __init__(self, bound: float):
        super().__init__()
        self.register_buffer("bound", torch.Tensor([float(bound)]))

    def forward(self, x):
        return _LowerBoundFn.apply(x, self.bound)


class NonNegativeParametrizer(nn.Module):
    """A parameter ``p`` stands for ``max(p, sqrt(minimum + offset**2))**2 - offset**2``."""

    def __init__(self, minimum: float = 0.0, reparam_offset: float = 2 ** -18):
        super().__init__()
        self.minimum, self.reparam_offset = float(minimum), float(reparam_offset)
        self.register_buffer("pedestal", torch.Tensor([self.reparam_offset ** 2]))
        self.lower_bound = LowerBound((self.minimum + self.reparam_offset ** 2) ** 0.5)

    def init(self, x):
        return torch.sqrt(torch.max(x + self.pedestal, self.pedestal))

    def forward(self, x):
        return self.lower_bound(x) ** 2 - self.pedestal


class GDN(nn.Module):
    """Generalized divisive normalization: ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j**2)``
    (``inverse=True``: times the square root instead)."""

    def __init__(self, in_channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = bool(inverse)
        self.beta_reparam = NonNegativeParametrizer(minimum=float(beta_min))
        self.beta = nn.Parameter(self.beta_reparam.init(torch.ones(in_channels)))
        self.gamma_reparam = NonNegativeParametrizer()
        self.gamma = nn.Parameter(self.gamma_reparam.init(float(gamma_init) * torch.eye(in_channels)))

    def forward(self, x):
        C = x.shape[1]
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).reshape(C, C, 1, 1)
        norm = F.conv2d(x ** 2, gamma, beta)
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))


def conv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> nn.Conv2d:
    """A strided convolution that keeps ``H / stride`` (padding ``kernel_size // 2``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=kernel_size // 2)


def deconv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """The transposed convolution that undoes :func:`conv`'s size: ``H * stride``."""
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                              output_padding=stride - 1, padding=kernel_size // 2)


class _Density(nn.Module):
    """What both densities share: a likelihood floor, and three empty integer buffers that
    CompressAI's coders fill (ours never do; they exist so that state dicts match)."""

    def __init__(self, likelihood_bound: float = 1e-9):
        super().__init__()
        self.likelihood_lower_bound = LowerBound(likelihood_bound)
        self.register_buffer("_offset", torch.IntTensor())
        self.register_buffer("_quantized_cdf", torch.IntTensor())
        self.register_buffer("_cdf_length", torch.IntTensor())

    @staticmethod
    def quantize(x, mode: str, means=None):
        """``"noise"``: ``x`` plus uniform noise in [-0.5, 0.5); ``"dequantize"``:
        ``round(x - means) + means``."""
        if mode == "noise":
            return x + torch.empty_like(x).uniform_(-0.5, 0.5)
        if mode != "dequantize":
            raise ValueError(f"unknown quantization mode {mode!r}")
        if means is None:
            return torch.round(x)
        return torch.round(x - means) + means


class EntropyBottleneck(_Density):
    """The factorized density of Ballé et al. 2018 (appendix 6.1): per channel, a cumulative
    ``sigmoid(f(x))`` with ``f`` a small monotonic network; and learned quantiles (the
    ``aux`` loss puts them at the tails ``tail_mass / 2`` and at the median)."""

    def __init__(self, channels: int, tail_mass: float = 1e-9, init_scale: float = 10.0,
                 filters: tuple = (3, 3, 3, 3)):
        super().__init__()
        self.channels, self.filters = int(channels), tuple(int(f) for f in filters)
        self.init_scale, self.tail_mass = float(init_scale), float(tail_mass)
        dims = (1,) + self.filters + (1,)
        scale = self.init_scale ** (1 / (len(self.filters) + 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for i in range(len(self.filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(self.filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        self.quantiles = nn.Parameter(torch.Tensor([-self.init_scale, 0, self.init_scale]).repeat(channels, 1, 1))
        target = math.log(2 / self.tail_mass - 1)
        self.register_buffer("target", torch.Tensor([-target, 0, target]))

    def _get_medians(self):
        return self.quantiles[:, :, 1:2]

    def _logits_cumulative(self, x, stop_gradient: bool):
        """``f(x)`` for ``x`` ``[C, 1, K]``: the logit of the cumulative at ``x``."""
        for i in range(len(self.filters) + 1):
            matrix, bias = self.matrices[i], self.biases[i]
            if stop_gradient:
                matrix, bias = matrix.detach(), bias.detach()
            x = torch.matmul(F.softplus(matrix), x) + bias
            if i < len(self.filters):
                factor = self.factors[i].detach() if stop_gradient else self.factors[i]
                x = x + torch.tanh(factor) * torch.tanh(x)
        return x

    def _likelihood(self, x, stop_gradient: bool = False):
        lower = self._logits_cumulative(x - 0.5, stop_gradient)
        upper = self._logits_cumulative(x + 0.5, stop_gradient)
        return torch.sigmoid(upper) - torch.sigmoid(lower), lower, upper

    def loss(self):
        """The auxiliary loss: the quantiles' cumulative logits against their targets."""
        return torch.abs(self._logits_cumulative(self.quantiles, stop_gradient=True) - self.target).sum()

    def forward(self, x, training: bool | None = None):
        """(``x`` noisy in training, else rounded around the medians; its likelihood)."""
        training = self.training if training is None else training
        perm = (1, 0, *range(2, x.ndim))  # channels first: [C, B, ...]
        xc = x.permute(*perm).contiguous()
        shape = xc.shape
        values = xc.reshape(shape[0], 1, -1)
        out = self.quantize(values, "noise" if training else "dequantize", self._get_medians())
        lik = self.likelihood_lower_bound(self._likelihood(out)[0])
        return (out.reshape(shape).permute(*perm).contiguous(), lik.reshape(shape).permute(*perm).contiguous())


class GaussianConditional(_Density):
    """The Gaussian density of a latent given its scale (and mean): the likelihood of
    ``x`` is the Gaussian's mass on ``[x - 0.5, x + 0.5]``, scales floored at
    ``scale_bound``."""

    def __init__(self, scale_table, scale_bound: float = 0.11, tail_mass: float = 1e-9):
        super().__init__()
        if scale_table is not None and not isinstance(scale_table, (list, tuple)):
            raise ValueError(f"scale_table must be a list or tuple, not {type(scale_table).__name__}")
        if scale_table and (list(scale_table) != sorted(scale_table) or any(s <= 0 for s in scale_table)):
            raise ValueError("scale_table must be positive and increasing")
        if scale_bound <= 0:
            raise ValueError("scale_bound must be positive")
        self.tail_mass = float(tail_mass)
        self.lower_bound_scale = LowerBound(scale_bound)
        self.register_buffer("scale_table", torch.Tensor(tuple(float(s) for s in scale_table))
                             if scale_table else torch.Tensor())
        self.register_buffer("scale_bound", torch.Tensor([float(scale_bound)]))

    @staticmethod
    def _standardized_cumulative(x):
        return 0.5 * torch.erfc(-(2 ** -0.5) * x)

    def _likelihood(self, x, scales, means=None):
        values = torch.abs(x - means if means is not None else x)
        scales = self.lower_bound_scale(scales)
        return self._standardized_cumulative((0.5 - values) / scales) - self._standardized_cumulative(
            (-0.5 - values) / scales)

    def forward(self, x, scales, means=None, training: bool | None = None):
        """(``x`` noisy in training, else rounded around ``means``; its likelihood)."""
        training = self.training if training is None else training
        out = self.quantize(x, "noise" if training else "dequantize", means)
        return out, self.likelihood_lower_bound(self._likelihood(out, scales, means))
