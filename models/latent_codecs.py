"""Latent codecs: how a latent tensor becomes entropy-coded streams and back.

Composable pieces (after CompressAI's ``latent_codecs``):

- :class:`FactorizedLatentCodec` - a learned factorized density per channel
  (CompressAI ``EntropyBottleneck`` for training); codes ``round(y)``.
- :class:`HyperpriorLatentCodec` - a hyper-latent ``z = h_a(y)`` coded by a factorized
  codec, and ``y`` coded with zero-mean Gaussian rows whose scale level (and, for
  mean-scale models, mean) come from ``h_s(z_hat)``.  At coding time ``h_s`` runs as a
  frozen :class:`~codec.models.integer.IntegerNet`, so the table indexes and means are
  the same integers on every device.

Every codec has ``forward(y) -> {"y_hat", "likelihoods"}`` (training, noisy or
rounded latents), ``compress(y) -> (streams, y_hat)`` and
``decompress(streams, y_shape) -> y_hat``; ``freeze()`` builds its coding state (CDF
tables, integer networks) and ``frozen_state()/load_frozen()`` store it with the weights.
Shapes: ``y`` is ``[1, C, h, w]`` float; streams are ``bytes``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional

from codec import entropy
from codec.models.integer import ACT_BITS, IntegerNet


class NotFrozenError(RuntimeError):
    pass


class FactorizedLatentCodec(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.entropy_bottleneck = EntropyBottleneck(channels)
        self.tables: entropy.CDFTables | None = None

    def forward(self, y):
        y_hat, lik = self.entropy_bottleneck(y)
        return {"y_hat": y_hat, "likelihoods": {"y": lik}}

    def aux_loss(self):
        return self.entropy_bottleneck.loss()

    # -- coding state ---------------------------------------------------------------
    def freeze(self):
        self.tables = entropy.factorized_tables_from_bottleneck(self.entropy_bottleneck)

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
        data = entropy.encode(sym, self._index(sym.shape, "cpu"), self._tables())
        return [data], sym.to(y.dtype)

    def decompress(self, streams, shape, device="cpu"):
        sym = entropy.decode(streams[0], self._index(shape, "cpu"), self._tables())
        return sym.to(device=device, dtype=torch.float32)


class HyperpriorLatentCodec(nn.Module):
    """``y`` given a hyper-latent: scale hyperprior (``mean=False``) or mean-scale (``mean=True``)."""

    def __init__(self, h_a: nn.Module, h_s: nn.Sequential, z_channels: int, mean: bool,
                 abs_input: bool = False, scale_table=None):
        super().__init__()
        self.h_a, self.h_s = h_a, h_s
        self.mean, self.abs_input = mean, abs_input
        self.z = FactorizedLatentCodec(z_channels)
        scales = entropy.default_scale_table() if scale_table is None else np.asarray(scale_table)
        self.register_buffer("scale_table", torch.tensor(scales, dtype=torch.float32), persistent=False)
        self.gaussian_conditional = GaussianConditional(scales.tolist())
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
        return {"y_hat": y_hat, "likelihoods": {"y": y_lik, "z": zo["likelihoods"]["y"]}}

    def aux_loss(self):
        return self.z.aux_loss()

    # -- coding state ---------------------------------------------------------------
    def freeze(self):
        self.z.freeze()
        self.tables = entropy.gaussian_tables(self._scales)
        self.h_s_int = IntegerNet.freeze(self.h_s)

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
    def index_path(self, z_sym: torch.Tensor):
        """Decoded hyper-latent (integers) -> (int32 scale levels, exact float64 means or None)."""
        if self.h_s_int is None:
            raise NotFrozenError("call freeze() (or load frozen weights) before coding")
        out = self.h_s_int(z_sym)
        if self.mean:
            s_int, m_int = out.chunk(2, 1)
            means = m_int / float(1 << ACT_BITS)  # exact: an integer times a power of two
        else:
            s_int, means = out, None
        levels = torch.bucketize(s_int, self.thresholds.to(s_int.device), right=False).to(torch.int32)
        return levels, means

    def compress(self, y):
        z = self.h_a(torch.abs(y) if self.abs_input else y)
        z_streams, z_sym = self.z.compress(z)
        levels, means = self.index_path(z_sym.to(y.device))
        if means is not None:
            y_sym = torch.round(y.double() - means).to(torch.int32)
            y_hat = (y_sym.double() + means).float()
        else:
            y_sym = torch.round(y).to(torch.int32)
            y_hat = y_sym.float()
        data = entropy.encode(y_sym, levels.cpu(), self.tables)
        return z_streams + [data], y_hat

    def decompress(self, streams, y_shape, device="cpu"):
        if len(streams) != 2:
            raise ValueError("a hyperprior latent needs 2 streams")
        B, C, h, w = y_shape
        z_shape = (B, self.z.channels, -(-h // 4), -(-w // 4))
        z_sym = self.z.decompress(streams[:1], z_shape, device=device)
        levels, means = self.index_path(z_sym)
        if tuple(levels.shape) != tuple(y_shape):
            raise ValueError(f"hyper-synthesis gives {tuple(levels.shape)}, expected {tuple(y_shape)}")
        y_sym = entropy.decode(streams[1], levels.cpu(), self.tables).to(device)
        if means is not None:
            return (y_sym.double() + means).float()
        return y_sym.float()
