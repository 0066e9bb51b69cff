"""Latent codecs: how a latent tensor becomes entropy-coded streams and back.

Composable pieces (after CompressAI's ``latent_codecs``):

- :class:`FactorizedLatentCodec` - a learned factorized density per channel
  (the ``EntropyBottleneck`` of :mod:`codec.models.layers` for training); codes ``round(y)``.
- :class:`GainLatentCodec` - variable rate around any of the others: ``y`` is scaled
  per channel by a learned gain before the inner codec and by a learned inverse gain
  after it (gain units, Cui et al. 2021), at a continuous quality between trained levels.
- :class:`HyperpriorLatentCodec` - a hyper-latent ``z = h_a(y)`` coded by a factorized
  codec, and ``y`` coded with zero-mean Gaussian rows whose scale level (and, for
  mean-scale models, mean) come from ``h_s(z_hat)``.  At coding time ``h_s`` runs as a
  frozen :class:`~codec.models.integer.IntegerNet`, so the table indexes and means are
  the same integers on every device.

Every codec has ``forward(y) -> {"y_hat", "y_rounded", "likelihoods"}`` (training: noisy
latents, or rounded in eval mode; ``y_rounded``: the latent rounded as the encoder rounds it,
around the means predicted from the training path's hyper-latent, straight-through), ``compress(y) -> (streams, y_hat)`` and
``decompress(streams, y_shape) -> y_hat`` (:class:`GainLatentCodec` takes a quality
after ``y`` / ``y_shape`` in each); ``freeze()`` builds its coding state (CDF
tables, integer networks) and ``frozen_state()/load_frozen()`` store it with the weights.
Shapes: ``y`` is ``[B, C, h, w]`` float in training, ``[1, C, h, w]`` for coding; streams
are ``bytes``.  Symbols and table
indexes stay on the device of ``y``: the entropy coder runs on the GPU for CUDA tensors
(after its self-check, see :mod:`codec.entropy.coder`) and on the CPU otherwise, and
writes the same bytes either way.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
from codec.models.layers import EntropyBottleneck, GaussianConditional

from codec import entropy
from codec.models.integer import ACT_BITS, IntegerNet


class NotFrozenError(RuntimeError):
    pass


def ste_round(x):
    """``round(x)`` forward, identity backward."""
    return x + (torch.round(x) - x).detach()


class FactorizedLatentCodec(nn.Module):
    kinds = ("latent",)  # the sections it writes, in order (codec.models.payload.KINDS)

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.entropy_bottleneck = EntropyBottleneck(channels)
        self.tables: entropy.CDFTables | None = None

    def forward(self, y):
        y_hat, lik = self.entropy_bottleneck(y)
        return {"y_hat": y_hat, "y_rounded": ste_round(y), "likelihoods": {"y": lik}}

    def aux_loss(self):
        return self.entropy_bottleneck.loss()

    # -- coding state ---------------------------------------------------------------
    def freeze(self):
        from codec.models.compressai_tables import factorized_tables_from_bottleneck

        self.tables = factorized_tables_from_bottleneck(self.entropy_bottleneck)

    def frozen_state(self, prefix):
        return self._tables().state_dict(prefix + "tables.")

    def load_frozen(self, state, prefix):
        self.tables = entropy.CDFTables.from_state_dict(state, prefix + "tables.", family="factorized")
        if self.tables.num_rows != self.channels:
            raise ValueError("factorized tables do not match the channel count")

    def _tables(self):
        if self.tables is None:
            raise NotFrozenError("call freeze() (or load frozen weights) before coding")
        return self.tables

    def _index(self, shape, device):
        return torch.arange(self.channels, device=device, dtype=torch.int32).view(1, -1, 1, 1).expand(shape)

    # -- coding -------------------------------------------------------------------------
    def compress(self, y):
        sym = torch.round(y).to(torch.int32)
        data = entropy.encode(sym, self._index(sym.shape, sym.device), self._tables())
        return [data], sym.to(y.dtype)

    def decompress(self, streams, shape, device="cpu"):
        sym = entropy.decode(streams[0], self._index(shape, device), self._tables())
        return sym.to(device=device, dtype=torch.float32)


def hash_noise(shape, device="cpu") -> torch.Tensor:
    """Deterministic noise of unit variance (uniform on ``[-sqrt(3), sqrt(3))``), ``shape``:
    element ``i`` (in C order) from a 32-bit integer hash of ``i`` (Wellons' ``lowbias32``,
    its products split so that every intermediate fits in 49 bits): the same values on
    every device and install."""
    n = math.prod(shape)
    x = torch.arange(n, dtype=torch.int64, device=device) + 0x9E3779B9
    m32 = 0xFFFFFFFF

    def mul(x, c):  # (x * c) mod 2**32, x < 2**32
        return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & m32

    x = x & m32
    x = mul(x ^ (x >> 16), 0x7FEB352D)
    x = mul(x ^ (x >> 15), 0x846CA68B)
    x = x ^ (x >> 16)
    u = (x >> 8).double() / float(1 << 24) - 0.5 + 0.5 / float(1 << 24)  # 24 bits: exact in float32
    return (u * math.sqrt(12.0)).float().reshape(shape)


class NoiseFill(nn.Module):
    """Noise substitution for the latents quantised to their mean (symbol 0): the decoder
    puts ``alpha_c * s * noise`` there, ``s`` the spread within one quantisation step of a
    Gaussian of the predicted scale ``sigma`` above the scale floor (``t / sqrt(1 + 12 t^2)``,
    ``t = sqrt(max(sigma^2 - floor^2, 0))``, ``floor`` the codec's smallest table scale:
    nothing where the model predicts silence), noise
    :func:`hash_noise` when coding (fresh uniform noise in training), ``alpha_c`` learned per
    channel.  Restores the energy of what quantised to nothing (spectral holes in audio).

    With ``groups`` > 0 the amount also depends on the predicted scale: ``alpha_c`` times a
    learned ``beta_g``, ``g = level * groups // levels`` the group of the element's
    scale-table level (an integer on the coding path, so the product is the same on every
    device), so that quiet elements can be filled to their whole predicted energy while
    loud ones, whose zeros cost more in squared error, get less.  ``beta`` starts at 1."""

    def __init__(self, channels: int, alpha: float = 0.5, groups: int = 0, levels: int = 1):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.full((channels,), math.log(alpha)))
        self.groups, self.levels = int(groups), int(levels)
        if self.groups:
            if not 1 <= self.groups <= self.levels:
                raise ValueError(f"noise fill groups must lie in 1..{self.levels}")
            self.log_beta = nn.Parameter(torch.zeros(self.groups))

    def forward(self, zero, scales, noise, floor: float, levels=None):
        t = torch.sqrt((scales.square() - floor ** 2).clamp_min(0) + 1e-12)
        s = t / torch.sqrt(1 + 12 * t.square())
        a = torch.exp(self.log_alpha).reshape(1, -1, *([1] * (scales.dim() - 2)))
        if self.groups:
            a = a * torch.exp(self.log_beta)[levels.long() * self.groups // self.levels]
        return zero * (a * s * noise)


class HyperpriorLatentCodec(nn.Module):
    """``y`` given a hyper-latent: scale hyperprior (``mean=False``) or mean-scale (``mean=True``)."""

    kinds = ("hyper-latent", "latent")
    int_store = torch.int32  # the dtype its integer networks' weights are stored in (IntegerNet.freeze)

    def __init__(self, h_a: nn.Module, h_s: nn.Sequential, z_channels: int, mean: bool,
                 abs_input: bool = False, scale_table=None, fill: NoiseFill | None = None):
        super().__init__()
        self.h_a, self.h_s = h_a, h_s
        self.fill = fill
        self.mean, self.abs_input = mean, abs_input
        self.z = FactorizedLatentCodec(z_channels)
        scales = entropy.default_scale_table() if scale_table is None else np.asarray(scale_table)
        self.register_buffer("scale_table", torch.tensor(scales, dtype=torch.float32), persistent=False)
        # a table of its own sets the floor of the scales (the default table's is CompressAI's 0.11)
        self.gaussian_conditional = GaussianConditional(scales.tolist(), **(
            {} if scale_table is None else {"scale_bound": float(scales[0])}))
        self._scales = scales
        self.tables: entropy.CDFTables | None = None
        self.h_s_int: IntegerNet | None = None
        # integer thresholds: level = #{i < L-1 : scale_int > floor(scale_i * 2**ACT_BITS)}
        self.register_buffer("thresholds", torch.floor(torch.tensor(scales[:-1], dtype=torch.float64)
                                                       * (1 << ACT_BITS)), persistent=False)

    def _params(self, z_hat):
        p = self.h_s(z_hat)
        if self.mean:
            scales, means = p.chunk(2, 1)
            return scales, means
        return p, None

    def forward(self, y):
        z = self.h_a(torch.abs(y) if self.abs_input else y)
        zo = self.z(z)
        scales, means = self._params(zo["y_hat"])
        y_hat, y_lik = self.gaussian_conditional(y, scales, means)
        y_rounded = ste_round(y - means) + means if means is not None else ste_round(y)
        if self.fill is not None:
            zero = (torch.round(y - means) == 0) if means is not None else (torch.round(y) == 0)
            s = self.gaussian_conditional.lower_bound_scale(scales)
            # the table level of each scale (the number of table scales below it), as coding finds it
            lv = torch.bucketize(s.detach(), self.scale_table[:-1]) if self.fill.groups else None
            y_rounded = y_rounded + self.fill(zero, s, (torch.rand_like(y) - 0.5) * math.sqrt(12.0),
                                              float(self._scales[0]), lv)
        return {"y_hat": y_hat, "y_rounded": y_rounded, "likelihoods": {"y": y_lik, "z": zo["likelihoods"]["y"]}}

    def _filled(self, y_sym, levels, means):
        """The decoded latents: symbols plus means, and the noise fill where a symbol is 0."""
        y_hat = y_sym.double() + means if means is not None else y_sym.double()
        y_hat = y_hat.float()
        if self.fill is not None:
            s = self.scale_table.to(levels.device)[levels.long()]
            y_hat = y_hat + self.fill(y_sym == 0, s, hash_noise(tuple(y_sym.shape), y_sym.device),
                                      float(self._scales[0]), levels)
        return y_hat

    def aux_loss(self):
        return self.z.aux_loss()

    # -- coding state ---------------------------------------------------------------
    def freeze(self):
        self.z.freeze()
        self.tables = entropy.gaussian_tables(self._scales)
        self.h_s_int = IntegerNet.freeze(self.h_s, store=self.int_store)

    def frozen_state(self, prefix):
        if self.tables is None or self.h_s_int is None:
            raise NotFrozenError("call freeze() before exporting")
        out = self.z.frozen_state(prefix + "z.")
        out.update(self.tables.state_dict(prefix + "y_tables."))
        out.update(self.h_s_int.state(prefix + "h_s_int."))
        return out

    def load_frozen(self, state, prefix):
        self.z.load_frozen(state, prefix + "z.")
        self.tables = entropy.CDFTables.from_state_dict(state, prefix + "y_tables.", family="gaussian")
        if self.tables.num_rows != len(self._scales):
            raise ValueError("Gaussian tables do not match the scale table")
        self.h_s_int = IntegerNet.from_state(self.h_s, state, prefix + "h_s_int.")

    # -- the exact index path -------------------------------------------------------------
    def hyper_int(self, z_sym: torch.Tensor) -> torch.Tensor:
        """Decoded hyper-latent (integers) -> the integer hyper-synthesis output (units of 2**-ACT_BITS)."""
        if self.h_s_int is None:
            raise NotFrozenError("call freeze() (or load frozen weights) before coding")
        return self.h_s_int(z_sym)

    def levels_of(self, s_int: torch.Tensor) -> torch.Tensor:
        """Integer scales (units of 2**-ACT_BITS) -> scale levels (rows of the Gaussian tables), by
        integer comparison with the thresholds."""
        return torch.bucketize(s_int.contiguous(), self.thresholds.to(s_int.device), right=False)

    def index_path(self, z_sym: torch.Tensor):
        """Decoded hyper-latent (integers) -> (int32 scale levels, exact float64 means or None)."""
        out = self.hyper_int(z_sym)
        if self.mean:
            s_int, m_int = out.chunk(2, 1)
            means = m_int / float(1 << ACT_BITS)  # exact: an integer times a power of two
        else:
            s_int, means = out, None
        return self.levels_of(s_int).to(torch.int32), means

    def compress(self, y):
        z = self.h_a(torch.abs(y) if self.abs_input else y)
        z_streams, z_sym = self.z.compress(z)
        levels, means = self.index_path(z_sym.to(y.device))
        if means is not None:
            y_sym = torch.round(y.double() - means).to(torch.int32)
        else:
            y_sym = torch.round(y).to(torch.int32)
        data = entropy.encode(y_sym, levels, self.tables)
        return z_streams + [data], self._filled(y_sym, levels, means)

    def decompress(self, streams, y_shape, device="cpu"):
        if len(streams) != 2:
            raise ValueError("a hyperprior latent needs 2 streams")
        B, C, h, w = y_shape
        z_shape = (B, self.z.channels, -(-h // 4), -(-w // 4))
        z_sym = self.z.decompress(streams[:1], z_shape, device=device)
        levels, means = self.index_path(z_sym)
        if tuple(levels.shape) != tuple(y_shape):
            raise ValueError(f"hyper-synthesis gives {tuple(levels.shape)}, expected {tuple(y_shape)}")
        y_sym = entropy.decode(streams[1], levels, self.tables).to(device)
        return self._filled(y_sym, levels.to(device), means)


def interpolate_levels(table: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` (``[L, ...]``, one per level) at qualities ``quality`` (``[B]``, in
    ``[1, L]``): linear between the two neighbouring levels, exact at whole qualities.
    Gains (and training lambdas) use it on their logarithms."""
    t = quality - 1
    i = torch.clamp(torch.floor(t), max=table.shape[0] - 2).long()
    f = (t - i.to(t.dtype)).reshape(-1, *([1] * (table.dim() - 1)))
    return table[i] * (1 - f) + table[i + 1] * f


class GainLatentCodec(nn.Module):
    """Variable rate by gain units (Cui et al., "Asymmetric gained deep image compression
    with continuous rate adaptation", CVPR 2021) around an inner latent codec.

    ``levels`` trained operating points, each a per-channel gain ``g`` and inverse gain
    ``g'``: the inner codec codes ``y * g`` and its output is scaled by ``g'``.  A quality
    ``q`` in ``[1, levels]`` (continuous) sits between levels ``floor(q)`` and ``ceil(q)``;
    its gains are interpolated exponentially (linearly in the logarithm).  The gains touch
    only the encoder's quantisation and the decoder's reconstruction: the decoding path
    from the streams to the table indexes is the inner codec's, exact on every device.

    ``quality`` is a float or a tensor ``[B]`` (one quality per batch item, training).
    """

    def __init__(self, inner: nn.Module, channels: int, levels: int):
        super().__init__()
        if levels < 2:
            raise ValueError("a variable-rate codec needs at least 2 levels")
        self.inner, self.channels, self.levels = inner, channels, levels
        self.kinds = inner.kinds
        self.log_gain = nn.Parameter(torch.zeros(levels, channels))
        self.log_inv_gain = nn.Parameter(torch.zeros(levels, channels))

    @torch.no_grad()
    def init_gains(self, lambdas, ref: int):
        """Start level ``l`` at gain ``sqrt(lambda_l / lambda_ref)`` (uniform quantisation: the
        step shrinks as the square root of the distortion weight), ``ref`` in ``1..levels``."""
        lam = torch.as_tensor(lambdas, dtype=torch.float64)
        if lam.numel() != self.levels or not bool((lam > 0).all()):
            raise ValueError(f"need {self.levels} positive lambdas, got {list(lambdas)}")
        lg = 0.5 * torch.log(lam / lam[ref - 1]).float()
        self.log_gain.copy_(lg[:, None].expand_as(self.log_gain))
        self.log_inv_gain.copy_(-lg[:, None].expand_as(self.log_inv_gain))

    def gains(self, quality, batch: int, device):
        """(gain, inverse gain), each ``[B, C, 1, 1]``, for ``quality`` in ``[1, levels]``."""
        if not torch.is_tensor(quality) and not 1 <= float(quality) <= self.levels:
            raise ValueError(f"quality must lie in [1, {self.levels}], not {quality}")
        # (a tensor of qualities comes from training's sampler, in range by construction: no
        # range check there, it would synchronise the GPU at every step)
        q = torch.as_tensor(quality, dtype=torch.float32, device=device).reshape(-1)
        if q.numel() == 1:
            q = q.expand(batch)
        if q.numel() != batch:
            raise ValueError(f"{q.numel()} qualities for a batch of {batch}")
        lg = interpolate_levels(self.log_gain, q)
        lig = interpolate_levels(self.log_inv_gain, q)
        return torch.exp(lg)[..., None, None], torch.exp(lig)[..., None, None]

    def forward(self, y, quality):
        g, gi = self.gains(quality, y.shape[0], y.device)
        out = dict(self.inner(y * g))
        for k in ("y_hat", "y_rounded"):
            if k in out:
                out[k] = out[k] * gi
        return out

    def aux_loss(self):
        return self.inner.aux_loss()

    def freeze(self):
        self.inner.freeze()

    def frozen_state(self, prefix):
        return self.inner.frozen_state(prefix)

    def load_frozen(self, state, prefix):
        self.inner.load_frozen(state, prefix)

    def compress(self, y, quality):
        g, gi = self.gains(quality, y.shape[0], y.device)
        streams, y_hat = self.inner.compress(y * g)
        return streams, y_hat * gi

    def decompress(self, streams, shape, quality, device="cpu"):
        y_hat = self.inner.decompress(streams, shape, device=device)
        _, gi = self.gains(quality, y_hat.shape[0], y_hat.device)
        return y_hat * gi


class LatentCodecModel(nn.Module):
    """What every model built around one ``self.latent_codec`` has: its sections, its
    auxiliary loss and its coding state (image and audio models)."""

    @property
    def section_kinds(self) -> tuple:
        """The sections this model writes (per item, or per chunk), in order."""
        return self.latent_codec.kinds

    def aux_loss(self):
        return self.latent_codec.aux_loss()

    def freeze(self):
        """Build the coding state (CDF tables, integer networks) from the current weights."""
        self.latent_codec.freeze()

    def frozen_state(self) -> dict:
        return self.latent_codec.frozen_state("frozen.")

    def load_frozen(self, state: dict):
        self.latent_codec.load_frozen(state, "frozen.")
