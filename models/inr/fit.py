"""Fitting an INR to one picture (the encoder's optimisation; float, on any device).

Quantisation-aware, as C3 and Cool-chic fit: the latents first carry additive uniform noise
(a differentiable stand-in for rounding), then are rounded with a straight-through gradient
for the last :data:`STE_FRACTION` of the iterations.  The loss is ``bits / pixel + lambda *
255**2 * MSE``, the bits those of a Laplace distribution per latent whose mean and diversity
the autoregressive model gives from the latent's causal context (the same model the decoder
runs, in float here).  Adam with a cosine learning rate per phase.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from codec.models.inr import exact
from codec.models.inr.arch import Dims, grid_sizes, layers
from codec.models.latent_codecs import ste_round

STE_FRACTION = 0.1
LR, LR_STE = 2e-2, 3e-3
ALPHA = (2.0, 32.0)  # soft-rounding sharpness over the first phase (log-spaced)
_LOG2_MAX = exact.LOG2_MIN + (exact.SCALES - 1) / exact.ROWS_PER_OCTAVE


@dataclass
class Fitted:
    latents: list  # float [h_l, w_l] per level (not rounded)
    weights: dict  # layer name -> (w, b) float tensors
    iterations: int
    seconds: float


def laplace_bits(y, mu, log2b):
    """Bits of ``y`` (integers, or noisy) under Laplace(mu, 2**log2b) integrated over y +- 1/2."""
    b = torch.exp2(log2b.clamp(exact.LOG2_MIN, _LOG2_MAX))
    d = (y - mu).abs()
    # the mass of [d - 1/2, d + 1/2] from the tail formula 0.5 exp(-t / b) (stable); each branch
    # sees only its own d, so neither overflows (a where() would pass 0 * inf = nan back)
    near = d.clamp_max(0.5)
    far = d.clamp_min(0.5)
    p = torch.where(d < 0.5, 1 - 0.5 * torch.exp(-(0.5 - near) / b) - 0.5 * torch.exp(-(0.5 + near) / b),
                    0.5 * torch.exp(-(far - 0.5) / b) - 0.5 * torch.exp(-(far + 0.5) / b))
    return -torch.log2(p.clamp_min(2.0 ** -16))


class _Net(nn.Module):
    def __init__(self, H, W, d: Dims):
        super().__init__()
        self.H, self.W, self.d = H, W, d
        self.sizes = grid_sizes(H, W, d.levels)
        self.latents = nn.ParameterList([nn.Parameter(torch.zeros(h, w)) for h, w in self.sizes])
        self.specs = layers(d)
        self.w = nn.ParameterDict()
        self.b = nn.ParameterDict()
        for L in self.specs:
            fan = L.cin * L.k * L.k
            scale = 0.0 if L.residual or L.name == "arm_out" else 1.0 / math.sqrt(fan)
            self.w[L.name] = nn.Parameter(torch.randn(L.cout, L.cin, L.k, L.k) * scale)
            self.b[L.name] = nn.Parameter(torch.zeros(L.cout))

    def synthesis(self, grids):
        a = exact.features(grids, exact=False)
        H, W = a.shape[-2:]
        x = a[0].flatten(1)  # [levels, pixels]: the 1x1 layers as matrix products
        for L in self.specs:
            if L.group == "syn" and L.k == 1:
                x = exact.float_dense(x, self.w[L.name], self.b[L.name], L.relu)
        x = x.reshape(1, -1, H, W)
        for L in self.specs:
            if L.group == "syn" and L.k > 1:
                x = exact.float_layer(x, self.w[L.name], self.b[L.name], L.relu, L.residual)
        return x

    def arm(self, ctx):
        """``[n_ctx, n]`` contexts -> ``[2, n]`` (mean, log2 diversity)."""
        x = ctx
        for L in self.specs:
            if L.group == "arm":
                x = exact.float_dense(x, self.w[L.name], self.b[L.name], L.relu)
        return x

    def forward(self, x, lam, alpha=None):
        """The loss; ``alpha`` None: rounded latents (straight-through gradient), else soft
        rounding of sharpness ``alpha`` with noise (see :func:`soft_round`)."""
        noisy, grids = [], []
        for y in self.latents:
            if alpha is None:
                q = ste_round(y)
                noisy.append(q)
                grids.append(q)
            else:
                z = soft_round(y, alpha) + torch.empty_like(y).uniform_(-0.5, 0.5)
                noisy.append(z)
                grids.append(soft_round(z, alpha))
        x_hat = self.synthesis(grids)
        ctx = torch.cat([exact.context(g).flatten(1) for g in grids], 1)
        out = self.arm(ctx)
        bits = laplace_bits(torch.cat([z.reshape(-1) for z in noisy]), out[0], out[1]).sum()
        bpp = bits / (self.H * self.W)
        mse = F.mse_loss(x_hat, x)
        return bpp + lam * 255 ** 2 * mse, bpp, mse


def soft_round(y, alpha: float):
    """Agustsson & Theis' soft rounding: identity as ``alpha -> 0``, rounding as ``alpha -> inf``.
    As C3 does, the noise phase codes ``soft_round(y) + u`` and synthesises ``soft_round`` of that,
    with ``alpha`` sharpened over the phase, so the fit meets rounding gradually."""
    m = torch.floor(y) + 0.5
    return m + torch.tanh(alpha * (y - m)) / (2 * math.tanh(alpha / 2))


def fit(x, lam: float, d: Dims, iterations: int, progress=None, seed: int = 0) -> Fitted:
    """Fit latents and networks to ``x`` ``[1, 3, H, W]`` in [0, 1] (on ``x``'s device) for
    ``iterations`` steps.  ``progress(step, total, bpp, psnr)`` every few steps."""
    H, W = x.shape[-2:]
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        net = _Net(H, W, d).to(x.device)
        n_ste = max(1, int(round(iterations * STE_FRACTION))) if iterations > 1 else 0
        n_noise = iterations - n_ste
        t0 = time.perf_counter()
        every = max(1, iterations // 100)
        for phase, n, lr in (("soft", n_noise, LR), ("ste", n_ste, LR_STE)):
            if n <= 0:
                continue
            opt = torch.optim.Adam(net.parameters(), lr=lr)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i, n=n: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * i / n)))
            for i in range(n):
                alpha = None if phase == "ste" else ALPHA[0] * (ALPHA[1] / ALPHA[0]) ** (i / max(1, n - 1))
                loss, bpp, mse = net(x, lam, alpha)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                with torch.no_grad():
                    for y in net.latents:
                        y.clamp_(-exact.LAT_MAX, exact.LAT_MAX)
                step = i + 1 + (n_noise if phase == "ste" else 0)
                if progress is not None and (step % every == 0 or step == iterations):
                    progress(step, iterations, float(bpp.detach()), float(-10 * torch.log10(mse.detach().clamp_min(1e-10))))
    return Fitted([y.detach() for y in net.latents], {L.name: (net.w[L.name].detach(), net.b[L.name].detach())
                                                        for L in net.specs}, iterations, time.perf_counter() - t0)
