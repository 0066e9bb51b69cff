"""Image models: analysis transform -> latent codec -> synthesis transform.

Architectures of Balle et al. 2018 (factorized prior, scale hyperprior) and Minnen et
al. 2018 (mean-scale hyperprior, without the autoregressive context), built from
CompressAI's layers.  Images are ``[1, 3, H, W]`` float in ``[0, 1]``; a model pads
them to a multiple of :attr:`ImageModel.multiple` itself and writes its latent grid in
its payload header.
"""
from __future__ import annotations

import collections
import functools
import json
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from codec.models.layers import GDN, conv, deconv

from codec.models.context import ContextLatentCodec
from codec.models.integer import exact_mode
from codec.models.latent_codecs import (FactorizedLatentCodec, GainLatentCodec, HyperpriorLatentCodec,
                                         LatentCodecModel)
from codec.models.payload import Payload, PayloadError, Section
from codec.models.rd import effort_iterations, lam_of

#: effort presets: iterations of the encoder's latent refinement (:meth:`ImageModel.refine`)
REFINE_EFFORTS = {"fast": 0, "medium": 20, "slow": 50, "placebo": 200}
DEFAULT_REFINE_EFFORT = "medium"
REFINE_LR = 0.05  # Adam's step on the latent at the first iteration, falling linearly to 0
REFINE_STE = 0.5  # the last half of the iterations measure the distortion of the decoder's rounded latent


def _analysis(N, M):
    return nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))


class ResidualBlock(nn.Module):
    """``x + conv(relu(conv(x)))`` (3x3, ``N`` channels); the second convolution starts at
    zero, so a block added to trained weights starts as the identity."""

    def __init__(self, N: int):
        super().__init__()
        self.conv1 = nn.Conv2d(N, N, 3, padding=1)
        self.conv2 = nn.Conv2d(N, N, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


def _synthesis(N, M, blocks: int = 0):
    """Balle et al.'s synthesis; ``blocks`` residual blocks at half resolution, before the
    last upsampling (named ``res0``, ... so that the other layers keep their names)."""
    layers = [deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
              deconv(N, N), GDN(N, inverse=True)]
    named = [(str(i), m) for i, m in enumerate(layers)] + [(f"res{i}", ResidualBlock(N)) for i in range(blocks)]
    return nn.Sequential(collections.OrderedDict(named + [(str(len(layers)), deconv(N, 3))]))


class ImageModel(LatentCodecModel):
    """Base: ``g_a``, ``latent_codec``, ``g_s``; owns its bitstream.

    ``compress(x, quality) -> Payload`` takes one picture ``[1, 3, H, W]`` in [0, 1] of
    any size: it pads it (replicating the border) to a multiple of :attr:`multiple`,
    codes it and writes the latent grid in the payload's header (:meth:`header_for`).
    ``decompress(payload, quality) -> [1, 3, H', W']`` returns the padded reconstruction
    (float, not clamped); the caller crops it to the picture size it knows.

    Variable-rate models (``variable_rate = True``) code at any ``quality`` in
    ``[1, levels]`` (a tensor ``[B]`` in training's ``forward``); a fixed-rate model's
    quality is its weights, so it takes ``None`` or its own :attr:`quality`.
    """

    modality = "image"
    multiple = 16  # the model pads pictures to multiples of this (64 with a hyperprior)
    variable_rate = False
    quality = None  # a fixed-rate model's level, set by the registry
    _HEADER = struct.Struct("<II")  # latent grid: rows, columns
    #: the encoder's effort: iterations of latent refinement (a preset name or a number)
    iterations = staticmethod(functools.partial(effort_iterations, presets=REFINE_EFFORTS,
                                                default=DEFAULT_REFINE_EFFORT, least=0))
    default_effort = DEFAULT_REFINE_EFFORT

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
        if quality is not None and (self.quality is None or float(quality) != float(self.quality)):
            raise ValueError(f"this model codes at quality {self.quality} only (its weights are its quality), "
                             f"not {quality}")
        return ()

    def forward(self, x, quality=None):
        y = self.g_a(x)
        out = self.latent_codec(y, *self._q(quality))
        return {"x_hat": self.g_s(out["y_hat"]), "likelihoods": out["likelihoods"]}

    # -- the bitstream ---------------------------------------------------------------------
    def pad(self, x):
        """``x`` padded to multiples of :attr:`multiple` by replicating its last row and column."""
        ph, pw = (-x.shape[-2]) % self.multiple, (-x.shape[-1]) % self.multiple
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x

    def grid(self, H: int, W: int) -> tuple:
        """The latent grid (rows, columns) of a picture of ``H x W`` pixels."""
        return -(-H // self.multiple) * self.multiple // 16, -(-W // self.multiple) * self.multiple // 16

    def header_for(self, H: int, W: int) -> bytes:
        """The model header of a picture of ``H x W`` pixels: its latent grid."""
        return self._HEADER.pack(*self.grid(H, W))

    def _grid_of(self, header: bytes) -> tuple:
        if len(header) != self._HEADER.size:
            raise PayloadError(f"an image model's header has {self._HEADER.size} bytes, not {len(header)}")
        h, w = self._HEADER.unpack(header)
        if h < 1 or w < 1 or h % (self.multiple // 16) or w % (self.multiple // 16):
            raise PayloadError(f"latent grid {h}x{w} does not fit the model (multiples of {self.multiple // 16})")
        return h, w

    @torch.no_grad()
    def compress(self, x, quality=None, effort=None, progress=None) -> Payload:
        """``x``: ``[1, 3, H, W]`` in [0, 1], any ``H``, ``W`` -> :class:`Payload`.  ``effort``:
        iterations of latent refinement (:meth:`refine`; a name of :data:`REFINE_EFFORTS` or a
        number; default :data:`DEFAULT_REFINE_EFFORT`, or none for weights whose lambda is not
        known, see :meth:`rd_lambda`); ``"fast"``: ``g_a``'s latent as it is.
        ``progress(step, total, bpp, psnr)`` follows the iterations."""
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"compress takes one picture [1, 3, H, W], got {tuple(x.shape)}")
        iters = self.iterations(effort)
        if iters and effort is None:
            try:
                self.rd_lambda(quality)
            except ValueError:
                iters = 0  # (asked for nothing: the default codes without refinement)
        H, W = x.shape[-2:]
        t0 = time.perf_counter()
        with exact_mode():
            y = self.refine(x, quality, iters, progress) if iters else self.g_a(self.pad(x))
            self.last_fit = {"iterations": iters, "seconds": time.perf_counter() - t0}  # (the refinement)
            streams, _ = self.latent_codec.compress(y, *self._q(quality))
        return Payload([Section(k, s) for k, s in zip(self.section_kinds, streams)], self.header_for(H, W))

    def rd_lambda(self, quality) -> float:
        """The lambda of ``quality`` (bits/pixel + lambda * 255**2 * MSE): the weights' own (their
        ``loss`` metadata), else the image models' :data:`~codec.models.rd.LAMBDAS`."""
        loss = json.loads((getattr(self, "metadata", None) or {}).get("loss", "{}") or "{}")
        if loss.get("metric", "mse") != "mse":
            raise ValueError(f"latent refinement minimises MSE; these weights were trained for {loss['metric']}")
        if self.variable_rate:
            self._q(quality)
            return lam_of(quality, tuple(loss["lambdas"])) if loss.get("lambdas") else lam_of(quality)
        if loss.get("lmbda"):
            return float(loss["lmbda"])
        if self.quality is None:
            raise ValueError("latent refinement needs the lambda of this fixed-rate model: weights with loss "
                             "metadata or a quality (effort='fast' codes without refinement)")
        return lam_of(self.quality)

    def refine(self, x, quality, iterations: int, progress=None):
        """The latent to code for picture ``x`` (``[1, 3, H, W]``): ``g_a``'s output, then
        ``iterations`` steps of Adam on it alone against the training loss, bits + lambda *
        255**2 * MSE of the picture, through the model's own training path (the rate with
        uniform noise for the quantisation; the distortion too for the first half of the steps,
        then of the decoder's rounded latent, straight-through; the weights fixed): the encoder's share of the amortisation gap
        (Campos et al. 2019, "Content adaptive optimization for neural image compression";
        Yang et al. 2020).  The decoder is untouched: any latent is a valid one, and the
        stream of the refined latent decodes on every device as any other does.  Seeded (and
        cuDNN's deterministic algorithms, :func:`~codec.models.integer.exact_mode`), so that an
        encode on one device is repeatable.  ``progress(step, total, bpp, psnr)``
        after each step (the training path's estimates)."""
        H, W = x.shape[-2:]
        lam = self.rd_lambda(quality)
        training = self.training
        try:
            with torch.inference_mode(False), torch.enable_grad(), \
                    torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
                x = x.clone()  # (not an inference tensor: the loss needs it in the graph)
                y = self.g_a(self.pad(x)).detach().clone().requires_grad_(True)
                opt = torch.optim.Adam([y], lr=REFINE_LR)
                if x.is_cuda:  # seed the one generator the noise comes from (the caller's state is restored)
                    with torch.cuda.device(x.device):
                        torch.cuda.manual_seed(0)
                else:
                    torch.default_generator.manual_seed(0)
                self.train()  # (noisy quantisation: the rate has a gradient in the latent)
                for it in range(iterations):
                    opt.param_groups[0]["lr"] = REFINE_LR * (1 - it / iterations)
                    out = self.latent_codec(y, *self._q(quality))
                    y_syn = out["y_rounded"] if it >= (1 - REFINE_STE) * iterations else out["y_hat"]
                    mse = torch.mean((self.g_s(y_syn)[..., :H, :W] - x) ** 2)
                    bpp = sum((-torch.log2(v)).sum() for v in out["likelihoods"].values()) / (H * W)
                    (y.grad,) = torch.autograd.grad(bpp + lam * 255 ** 2 * mse, [y])
                    opt.step()
                    if progress is not None:
                        progress(it + 1, iterations, float(bpp.detach()),
                                 float(-10 * torch.log10(mse.detach().clamp_min(1e-10))))
        finally:
            self.train(training)
        return y.detach()

    @torch.no_grad()
    def decompress(self, payload: Payload, quality=None, device="cpu"):
        """:class:`Payload` -> padded reconstruction ``[1, 3, 16 h, 16 w]`` (float, not clamped)."""
        h, w = self._grid_of(payload.header)
        streams = payload.expect(self.section_kinds, f"model '{getattr(self, 'name', type(self).__name__)}'")
        with exact_mode():
            y_hat = self.latent_codec.decompress(streams, (1, self.M, h, w), *self._q(quality), device=device)
            return self.g_s(y_hat.to(device))

    @torch.no_grad()
    def synthesize(self, y_hat):
        """The synthesis transform as coding runs it (for tests and tools)."""
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


def _mean_scale_synthesis(N, M):
    return nn.Sequential(deconv(N, M), nn.ReLU(inplace=True), deconv(M, M * 3 // 2), nn.ReLU(inplace=True),
                         conv(M * 3 // 2, M * 2, stride=1, kernel_size=3))


class MeanScaleHyperprior(ImageModel):
    """Minnen et al. 2018 mean-scale hyperprior without context model (CompressAI ``mbt2018-mean``),
    with ReLU in the hyper-synthesis so that it runs as an exact integer network."""

    multiple = 64

    def __init__(self, N=128, M=192):
        super().__init__(N, M)
        h_s = _mean_scale_synthesis(N, M)  # (built before h_a: the seeded initialisation of models without
        # weights, and so their weights ids, depend on the order)
        self.latent_codec = HyperpriorLatentCodec(_hyper_analysis(N, M), h_s, N, mean=True, abs_input=False)


class VariableRateMeanScale(MeanScaleHyperprior):
    """The mean-scale hyperprior with gain units (:class:`GainLatentCodec`): one set of
    weights, ``levels`` trained rates and a continuous quality knob between them."""

    variable_rate = True

    def __init__(self, N=64, M=96, levels=8):
        super().__init__(N, M)
        self.levels = levels
        self.latent_codec = GainLatentCodec(self.latent_codec, M, levels)


class ContextMeanScale(ImageModel):
    """The variable-rate mean-scale hyperprior with a channel-wise and checkerboard context
    model over the latent (:class:`~codec.models.context.ContextLatentCodec`, ELIC-style),
    every step from decoded symbols to table rows and means in exact integers."""

    multiple = 64
    variable_rate = True

    def __init__(self, N=64, M=96, levels=8, blocks=0):
        super().__init__(N, M)
        if blocks:
            self.g_s = _synthesis(N, M, blocks)
        self.levels = levels
        h_s = _mean_scale_synthesis(N, M)
        inner = ContextLatentCodec(_hyper_analysis(N, M), h_s, N, M)
        self.latent_codec = GainLatentCodec(inner, M, levels)
