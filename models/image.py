"""Image models: analysis transform -> latent codec -> synthesis transform.

Architectures of Balle et al. 2018 (factorized prior, scale hyperprior) and Minnen et
al. 2018 (mean-scale hyperprior, without the autoregressive context), built from
CompressAI's layers.  Images are ``[1, 3, H, W]`` float in ``[0, 1]`` with ``H`` and
``W`` multiples of :attr:`ImageModel.multiple` (the API pads and crops).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from compressai.layers import GDN
from compressai.models.utils import conv, deconv

from codec.models.integer import exact_mode
from codec.models.latent_codecs import FactorizedLatentCodec, GainLatentCodec, HyperpriorLatentCodec


def _analysis(N, M):
    return nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))


def _synthesis(N, M):
    return nn.Sequential(deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
                         deconv(N, N), GDN(N, inverse=True), deconv(N, 3))


class ImageModel(nn.Module):
    """Base: ``g_a``, ``latent_codec``, ``g_s``.

    Variable-rate models (``variable_rate = True``) take a ``quality`` (float in
    ``[1, levels]``, or a tensor ``[B]`` in training) in ``forward``, ``compress`` and
    ``decompress``; fixed-rate models take none (their quality is their weights).
    """

    multiple = 16  # H, W must be multiples of this (64 with a hyperprior)
    variable_rate = False

    def __init__(self, N: int, M: int):
        super().__init__()
        self.N, self.M = N, M
        self.g_a = _analysis(N, M)
        self.g_s = _synthesis(N, M)

    def _q(self, quality):
        """The latent codec's extra arguments for ``quality``."""
        if self.variable_rate:
            if quality is None:
                raise ValueError("a variable-rate model needs a quality")
            return (quality,)
        if quality is not None:
            raise ValueError("a fixed-rate model takes no quality argument (its weights are its quality)")
        return ()

    def forward(self, x, quality=None):
        y = self.g_a(x)
        out = self.latent_codec(y, *self._q(quality))
        return {"x_hat": self.g_s(out["y_hat"]), "likelihoods": out["likelihoods"]}

    def aux_loss(self):
        return self.latent_codec.aux_loss()

    def freeze(self):
        """Build the coding state (CDF tables, integer networks) from the current weights."""
        self.latent_codec.freeze()

    def frozen_state(self) -> dict:
        return self.latent_codec.frozen_state("frozen.")

    def load_frozen(self, state: dict):
        self.latent_codec.load_frozen(state, "frozen.")

    def latent_shape(self, H: int, W: int):
        return (1, self.M, H // 16, W // 16)

    @torch.no_grad()
    def compress(self, x, quality=None):
        """``x``: ``[1, 3, H, W]`` in [0, 1] -> (list of streams, y_hat)."""
        if x.shape[0] != 1 or x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise ValueError(f"compress takes one image with sides multiple of {self.multiple}")
        with exact_mode():
            y = self.g_a(x)
            return self.latent_codec.compress(y, *self._q(quality))

    @torch.no_grad()
    def decompress(self, streams, H: int, W: int, device="cpu", quality=None):
        """Streams -> reconstruction ``[1, 3, H, W]`` (float, not clamped)."""
        with exact_mode():
            y_hat = self.latent_codec.decompress(streams, self.latent_shape(H, W), *self._q(quality), device=device)
            return self.g_s(y_hat.to(device))

    @torch.no_grad()
    def synthesize(self, y_hat):
        with exact_mode():
            return self.g_s(y_hat)


class FactorizedPrior(ImageModel):
    """Balle et al. 2018, factorized prior (CompressAI ``bmshj2018-factorized``)."""

    multiple = 16

    def __init__(self, N=128, M=192):
        super().__init__(N, M)
        self.latent_codec = FactorizedLatentCodec(M)


def _hyper_analysis(N, M):
    return nn.Sequential(conv(M, N, stride=1, kernel_size=3), nn.ReLU(inplace=True), conv(N, N),
                         nn.ReLU(inplace=True), conv(N, N))


class ScaleHyperprior(ImageModel):
    """Balle et al. 2018, scale hyperprior (CompressAI ``bmshj2018-hyperprior``)."""

    multiple = 64

    def __init__(self, N=128, M=192):
        super().__init__(N, M)
        h_s = nn.Sequential(deconv(N, N), nn.ReLU(inplace=True), deconv(N, N), nn.ReLU(inplace=True),
                            conv(N, M, stride=1, kernel_size=3), nn.ReLU(inplace=True))
        self.latent_codec = HyperpriorLatentCodec(_hyper_analysis(N, M), h_s, N, mean=False, abs_input=True)


class MeanScaleHyperprior(ImageModel):
    """Minnen et al. 2018 mean-scale hyperprior without context model (CompressAI ``mbt2018-mean``),
    with ReLU in the hyper-synthesis so that it runs as an exact integer network."""

    multiple = 64

    def __init__(self, N=128, M=192):
        super().__init__(N, M)
        h_s = nn.Sequential(deconv(N, M), nn.ReLU(inplace=True), deconv(M, M * 3 // 2), nn.ReLU(inplace=True),
                            conv(M * 3 // 2, M * 2, stride=1, kernel_size=3))
        self.latent_codec = HyperpriorLatentCodec(_hyper_analysis(N, M), h_s, N, mean=True, abs_input=False)


class VariableRateMeanScale(MeanScaleHyperprior):
    """The mean-scale hyperprior with gain units (:class:`GainLatentCodec`): one set of
    weights, ``levels`` trained rates and a continuous quality knob between them."""

    variable_rate = True

    def __init__(self, N=64, M=96, levels=8):
        super().__init__(N, M)
        self.levels = levels
        self.latent_codec = GainLatentCodec(self.latent_codec, M, levels)
