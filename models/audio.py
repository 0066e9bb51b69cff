"""Audio models: a wavelet packet transform around a shallow autoencoder, with a learned
entropy model (WaLLoC-style, Jacobellis et al., "Learned Compression for Compressed
Learning", plus what WaLLoC lacks: a hyperprior coded through the exact index path and
the rate in the loss).

One signal type: a waveform ``[B, 1, n]`` float in [-1, 1] at :attr:`AudioModel.sample_rate`.

- the transform (arch kwarg ``transform``): 0, :class:`WaveletPacket`, ``levels`` levels
  of a CDF 9/7 wavelet packet (lifting, whole-sample symmetric extension at both ends); 1,
  :class:`MDCT`, a sine-window MDCT of ``2**levels`` bins in the packet's band order.
  Both map ``[B, 1, n] -> [B, 2**levels, n / 2**levels]`` and invert to rounding error
  (the transform itself loses nothing); the MDCT's bands leak far less into each other;
- a light analysis (three 1-D convolutions on the subbands) to a latent ``y`` of ``M``
  channels at ``sample_rate / 2**levels`` frames a second; a heavier synthesis (dilated
  residual blocks) back to the subbands;
- the latent codec is the image models' (:mod:`codec.models.latent_codecs`): gain units
  around a mean-scale hyperprior; a latent is carried as ``[B, M, 1, frames]`` so that the
  hyper-transforms are ``(1, k)`` convolutions that run as exact integer networks.

Coding (:meth:`AudioModel.compress`) cuts the signal into chunks of :attr:`hop` samples;
each chunk is coded on its own, with :attr:`context` samples of the neighbouring audio on
either side, so any chunk decodes alone (random access) and neighbours are cross-faded
over their ``2 * context`` shared samples (no clicks at chunk boundaries).  Stereo is
coded as mid and side; other channel counts as independent channels.  A chunk's
channels are one batch: one hyper-latent and one latent section per chunk (after a
gains section with loudness steps), each with the chunk's number as its index (the
first with the random-access flag).

Loudness-adaptive steps (arch kwarg ``loudness``, 0 = off): the encoder scales the latent
of each block of :attr:`LOUD_FRAMES` frames by ``2**(k/4)`` before quantisation (and the
decoder by its inverse after), ``k`` from the block's RMS (:meth:`AudioModel.loud_index`),
so quiet passages get finer steps than a fixed step gives them; the ``k`` of a chunk are
its first section (``gains``), their differences coded under one Laplace row (one
sequential rANS stream: a few bytes of overhead a chunk).

Level-dependent noise fill (arch kwarg ``fill_levels``, 0 = off): the fill of the zeros
(:class:`~codec.models.latent_codecs.NoiseFill`) is scaled per band and, with
``fill_levels`` groups of the scale table's levels, per group too, so quiet bands can be
filled to their predicted energy (the log-mel distance punishes holes there) while loud
ones are filled less (the waveform MSE punishes noise there).
"""
from __future__ import annotations

import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from codec import entropy
from codec.models.audio_energy import FRAMES, BandEnergy
from codec.models.integer import exact_mode
from codec.models.latent_codecs import (GainLatentCodec, HyperpriorLatentCodec, LatentCodecModel, NoiseFill,
                                        NotFrozenError)
from codec.models.payload import FLAG_KEY, Payload, PayloadError, Section

# CDF 9/7 lifting constants (Daubechies & Sweldens 1998)
_ALPHA, _BETA, _GAMMA, _DELTA = -1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971
_ZETA = 1.149604398860241
#: the smallest scale of the latents' Gaussian tables (in quantisation steps)
MIN_SCALE = 0.02


def _next(s):  # s[n + 1], with s[N] = s[N - 1] (whole-sample symmetric extension on the right)
    return torch.cat([s[..., 1:], s[..., -1:]], -1)


def _prev(d):  # d[n - 1], with d[-1] = d[0] (whole-sample symmetric extension on the left)
    return torch.cat([d[..., :1], d[..., :-1]], -1)


def dwt97(x):
    """One level of the CDF 9/7 wavelet: ``[..., 2n] -> ([..., n] low, [..., n] high)``."""
    s, d = x[..., 0::2], x[..., 1::2]
    d = d + _ALPHA * (s + _next(s))
    s = s + _BETA * (_prev(d) + d)
    d = d + _GAMMA * (s + _next(s))
    s = s + _DELTA * (_prev(d) + d)
    return s * _ZETA, d / _ZETA


def idwt97(s, d):
    """The inverse of :func:`dwt97`."""
    s, d = s / _ZETA, d * _ZETA
    s = s - _DELTA * (_prev(d) + d)
    d = d - _GAMMA * (s + _next(s))
    s = s - _BETA * (_prev(d) + d)
    d = d - _ALPHA * (s + _next(s))
    return torch.stack([s, d], -1).flatten(-2)


class WaveletPacket(nn.Module):
    """A full wavelet packet of ``levels`` levels: every band is split again."""

    def __init__(self, levels: int):
        super().__init__()
        self.levels = levels

    @property
    def bands(self) -> int:
        return 1 << self.levels

    def forward(self, x):  # [B, 1, n] -> [B, 2**levels, n / 2**levels]
        if x.shape[-1] % self.bands:
            raise ValueError(f"a {self.levels}-level packet needs a multiple of {self.bands} samples")
        for _ in range(self.levels):
            lo, hi = dwt97(x)
            x = torch.stack([lo, hi], 2).flatten(1, 2)  # band b -> bands 2b, 2b + 1
        return x

    def inverse(self, c):  # [B, 2**levels, m] -> [B, 1, m * 2**levels]
        for _ in range(self.levels):
            B, C, m = c.shape
            c = c.view(B, C // 2, 2, m)
            c = idwt97(c[:, :, 0], c[:, :, 1])
        return c


def gray_rank(b: int) -> int:
    """The frequency rank of band ``b`` of a full wavelet packet (its natural order is a Gray
    code of frequency: each high-pass split mirrors the spectrum of the band it splits)."""
    f = 0
    while b:
        f ^= b
        b >>= 1
    return f


class MDCT(nn.Module):
    """A modified discrete cosine transform of ``2**levels`` bins: ``[B, 1, n] -> [B, 2**levels,
    n / 2**levels]`` (n a multiple of the bins), the same shape as a :class:`WaveletPacket` of
    ``levels`` levels and its bands in the same order (bin ``gray_rank(b)`` in channel ``b``),
    so weights trained on the packet start with each band's parameters on the same frequencies.

    Frames of ``2M`` samples (``M`` the bins) every ``M`` samples, the first centred on sample
    ``M/2`` of the signal; a sine window, so the transform is orthogonal (Princen-Bradley time
    domain aliasing cancellation between neighbouring frames).  The first frame's window is
    0 on the ``M/2`` samples before the signal and 1 on its first ``M/2``, the last frame's
    the mirror image: those samples are reconstructed by one frame alone, so a signal is
    inverted exactly (to rounding) with no samples outside it.  Its bands leak far less into
    each other than an 8-level CDF 9/7 packet's (README, 'The audio codec'): quantisation
    noise of a loud band stays out of quiet ones, where the log-mel distance counts it."""

    def __init__(self, levels: int):
        super().__init__()
        self.levels = levels
        M = 1 << levels
        n = torch.arange(2 * M, dtype=torch.float64)
        k = torch.arange(M, dtype=torch.float64)
        basis = math.sqrt(2 / M) * torch.cos(math.pi / M * (n[None] + 0.5 + M / 2) * (k[:, None] + 0.5))
        order = torch.tensor([gray_rank(b) for b in range(M)])
        self.register_buffer("basis", basis[order], persistent=False)  # [M channels, 2M]
        self.register_buffer("window", torch.sin(math.pi * (n + 0.5) / (2 * M)), persistent=False)

    @property
    def bands(self) -> int:
        return 1 << self.levels

    def _windows(self, frames: int, like):
        M = self.bands
        w = self.window.to(like).expand(frames, 2 * M).clone()
        w[0, : M // 2], w[0, M // 2: M] = 0, 1
        w[-1, M + M // 2:], w[-1, M: M + M // 2] = 0, 1
        return w

    def forward(self, x):  # [B, 1, n] -> [B, M, n / M]
        M = self.bands
        if x.shape[-1] % M:
            raise ValueError(f"a {M}-bin MDCT needs a multiple of {M} samples")
        frames = F.pad(x[:, 0], (M // 2, M // 2)).unfold(-1, 2 * M, M)  # [B, T, 2M]
        frames = frames * self._windows(frames.shape[1], frames)
        return torch.einsum("btn,kn->bkt", frames, self.basis.to(frames))

    def inverse(self, c):  # [B, M, T] -> [B, 1, T * M]
        M, T = self.bands, c.shape[-1]
        frames = torch.einsum("bkt,kn->btn", c, self.basis.to(c)) * self._windows(T, c)
        out = F.fold(frames.transpose(1, 2), (1, (T + 1) * M), (1, 2 * M), stride=(1, M))  # overlap-add
        return out[:, :, 0, M // 2: M // 2 + T * M]


def compand(u, p):
    """``sign(u) ((|u| + 1)^p - 1) / p``: slope 1 at 0, then a power law (MP3's and AAC's 3/4
    power, here ``p`` per band): large coefficients get coarser steps than small ones."""
    return torch.sign(u) * (torch.pow(u.abs() + 1, p) - 1) / p


def expand(v, p):
    """The inverse of :func:`compand`."""
    return torch.sign(v) * (torch.pow(p * v.abs() + 1, 1 / p) - 1)


class _Analysis(nn.Module):
    """The analysis: ``y = v + branch(v)``, ``v`` the subbands scaled per band by a learned
    step (``exp(log_scale)``) and companded (:func:`compand`, a learned power per band), the
    branch a light convolutional net whose last layer starts at zero (so training starts
    from a plain transform coder)."""

    def __init__(self, bands: int, E: int, scale: float, power: float = 0.75):
        super().__init__()
        self.log_scale = nn.Parameter(torch.full((bands,), math.log(scale)))
        # power p = 0.25 + 0.75 sigmoid(t): in (0.25, 1)
        self.power_logit = nn.Parameter(torch.full((bands,), math.log((power - 0.25) / (1 - power))))
        self.branch = nn.Sequential(nn.Conv1d(bands, E, 5, padding=2), nn.GELU(), nn.Conv1d(E, E, 3, padding=1),
                                    nn.GELU(), nn.Conv1d(E, bands, 3, padding=1))
        nn.init.zeros_(self.branch[-1].weight)
        nn.init.zeros_(self.branch[-1].bias)

    def power(self):
        return (0.25 + 0.75 * torch.sigmoid(self.power_logit))[:, None]

    def forward(self, c):
        v = compand(c * torch.exp(self.log_scale)[:, None], self.power())
        return v + self.branch(v)


class _Synthesis(nn.Module):
    """The synthesis: ``c = expand(y + branch(y)) * exp(-log_scale)``, the branch a heavier
    residual net (its last layer starts at zero), the power and scale the analysis' ones."""

    def __init__(self, analysis: _Analysis, N: int, blocks: int):
        super().__init__()
        self.analysis = [analysis]  # shares its log_scale (a list: not a second submodule)
        b = analysis.log_scale.numel()
        dil = [1, 3, 9, 1, 3, 9, 1, 3, 9][:blocks]
        self.branch = nn.Sequential(nn.Conv1d(b, N, 3, padding=1), *[_Residual(N, d) for d in dil], nn.GELU(),
                                    nn.Conv1d(N, b, 5, padding=2))
        nn.init.zeros_(self.branch[-1].weight)
        nn.init.zeros_(self.branch[-1].bias)

    def forward(self, y):
        a = self.analysis[0]
        return expand(y + self.branch(y), a.power()) * torch.exp(-a.log_scale)[:, None]


class _Residual(nn.Module):
    def __init__(self, ch: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv1d(ch, ch, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(ch, ch, 1)

    def forward(self, x):
        return x + self.conv2(F.gelu(self.conv1(F.gelu(x))))


def _conv(i, o, k, s=1):  # a (1, k) convolution on [B, C, 1, T]
    return nn.Conv2d(i, o, (1, k), stride=(1, s), padding=(0, k // 2))


def _deconv(i, o, k=5, s=2):
    return nn.ConvTranspose2d(i, o, (1, k), stride=(1, s), padding=(0, k // 2), output_padding=(0, s - 1))


class AudioModel(LatentCodecModel):
    """Wavelet packet -> light analysis -> latent codec -> heavy synthesis -> inverse packet.

    ``compress(x, quality) -> Payload`` takes ``[channels, n]`` (or ``[1, channels, n]``)
    float samples at :attr:`sample_rate`; ``decompress(payload, quality)`` returns
    ``[channels, n]``; :meth:`decode_chunks` yields the same in pieces (bounded memory).
    """

    modality = "audio"
    variable_rate = True
    quality = None
    sample_rate = 48_000  # the default; set per instance
    #: samples: coded lengths are multiples of this (4 frames of 2**wavelet_levels; set per instance)
    multiple = 1024
    # the model header: samples per channel (at sample_rate), channels, channel mode,
    # samples per chunk (hop), context samples on each side of a chunk
    _HEADER = struct.Struct("<QHBII")
    MID_SIDE, INDEPENDENT = 0, 1
    #: channels beyond stereo are coded one by one; more than this is refused
    max_channels = 8

    #: the arch kwarg ``transform`` -> the transform around the autoencoder (its bands are the latent's channels)
    TRANSFORMS = {0: WaveletPacket, 1: MDCT}
    #: latent frames per loudness block (the hyper-latent's resolution)
    LOUD_FRAMES = 4
    #: loudness scheme -> (beta, reference RMS, largest k): ``k = clamp(round(4 beta log2(ref / rms)), 0, kmax)``,
    #: a gain ``2**(k/4)`` (1.5 dB steps) that grows as ``rms**-beta`` below the reference, up to ``2**(kmax/4)``.
    #: The decoder reads ``k`` and needs only ``kmax``: beta and the reference are the encoder's (and
    #: training's) choice.  Beta 0.75 since 2026-12-07 (the weights were trained with 0.5): on the
    #: held-out files mel distance -3.3/-3.8/-2.3% and ViSQOL -3.4/-0.3/-4.4% (BD-rate, speech/music/
    #: environment), SI-SDR +0.8/+0.4/+0.3%, PESQ-WB +4.3%; beta 1 cost PESQ-WB 10.5% (README)
    LOUD_SCHEMES = {1: (0.75, 0.05, 16)}
    #: the diversity of the Laplace row that codes the differences of successive ``k``
    LOUD_DIVERSITY = 0.5
    #: the encoder's weight of a band-energy index's squared error (in index steps) against
    #: its bits, times the channel's share of the input energy
    #: (:meth:`~codec.models.audio_energy.BandEnergy.rd_choice`; 0: the rounded correction).
    #: 4 since 2026-12-08: on the held-out files mel distance -0.5/-1.3/-2.3% (BD-rate,
    #: speech/music/environment), SI-SDR -0.6/-2.0/-1.4%, ViSQOL +0.4/-0.1/-0.8%; 2 gave
    #: ViSQOL +1.4/+1.6/-2.9% (README)
    ENERGY_RDO = 4.0

    def __init__(self, N=192, E=128, levels=8, wavelet_levels=8, blocks=6, hyper=64, z=16,
                 hop=491_520, context=1536, scale=100.0, sample_rate=48_000, loudness=0, fill_levels=0,
                 transform=0, energy=0):
        super().__init__()
        if not 3 <= wavelet_levels <= 8:
            raise ValueError("wavelet_levels must lie in 3..8")
        if loudness and loudness not in self.LOUD_SCHEMES:
            raise ValueError(f"unknown loudness scheme {loudness} (known: 0 (off), "
                             f"{', '.join(map(str, self.LOUD_SCHEMES))})")
        if transform not in self.TRANSFORMS:
            raise ValueError(f"unknown transform {transform} (known: "
                             f"{', '.join(f'{k} ({v.__name__})' for k, v in self.TRANSFORMS.items())})")
        if energy not in (0, 1, 2):
            raise ValueError(f"energy must be 0 (off), 1 or 2 (band-energy correction: half-octave or mel "
                             f"groups), not {energy}")
        self.loudness = int(loudness)
        self.loud_tables: entropy.CDFTables | None = None
        self.sample_rate, self.levels = int(sample_rate), levels
        self.packet = self.TRANSFORMS[transform](wavelet_levels)
        b = self.packet.bands
        self.M = b  # one latent channel per subband
        # channel c holds the band of frequency rank gray_rank(c), with either transform
        self.energy = BandEnergy([gray_rank(c) for c in range(b)], energy) if energy else None
        self.frame = b  # samples per latent frame
        self.multiple = self.multiple_for(wavelet_levels)  # the hyper-latent halves the frames twice
        self.hop, self.context = hop, context
        if hop % self.multiple or context % (self.multiple // 2) or not 0 < context <= hop // 2:
            raise ValueError(f"hop must be a multiple of {self.multiple} and context of {self.multiple // 2}")
        self.g_a = _Analysis(b, E, scale)
        self.g_s = _Synthesis(self.g_a, N, blocks)
        # subband coefficients have no predictable sign: a scale hyperprior on |y|
        h_a = nn.Sequential(_conv(b, hyper, 3), nn.ReLU(inplace=True), _conv(hyper, hyper, 5, 2),
                            nn.ReLU(inplace=True), _conv(hyper, z, 5, 2))
        h_s = nn.Sequential(_deconv(z, hyper), nn.ReLU(inplace=True), _deconv(hyper, b * 3 // 2),
                            nn.ReLU(inplace=True), _conv(b * 3 // 2, b, 3))
        # scales down to 0.02 steps, so that the noise fill can follow quiet passages
        scales = entropy.default_scale_table(min_scale=MIN_SCALE)
        inner = HyperpriorLatentCodec(h_a, h_s, z, mean=False, abs_input=True, scale_table=scales,
                                      fill=NoiseFill(b, 0.25, groups=fill_levels, levels=len(scales)))
        self.latent_codec = GainLatentCodec(inner, b, levels)

    @staticmethod
    def multiple_for(wavelet_levels=8, **_) -> int:
        """:attr:`multiple` of a model built with these kwargs (without building it)."""
        return 4 << wavelet_levels

    # -- transforms -------------------------------------------------------------------
    def analysis(self, x):  # [B, 1, n] -> [B, M, 1, n / frame]
        return self.g_a(self.packet(x)).unsqueeze(2)

    def synthesis(self, y_hat, r=None, cell: int = FRAMES):  # [B, M, 1, m] -> [B, 1, m * frame]
        """``r``: band-energy correction indexes (:mod:`codec.models.audio_energy`) of cells
        of ``cell`` frames, or None."""
        c = self.g_s(y_hat.squeeze(2))
        return self.packet.inverse(c if r is None else self.energy.apply(c, r, cell))

    def forward(self, x, quality, energy: bool = False):
        """Training: ``x`` ``[B, 1, n]`` (``n`` a multiple of :attr:`multiple`), ``quality`` a
        float or ``[B]`` -> ``{"x_hat", "likelihoods"}``.  ``energy`` (a model with band-energy
        correction): ``x_hat`` is corrected as the decoder corrects it, with the indexes the
        encoder would choose (every band compared, cells of :meth:`energy_cell`), ``x_plain``
        is the output before the correction, and the indexes' likelihoods under the stored
        table join the others (a constant: no gradient)."""
        c = self.packet(x)
        y = self.g_a(c).unsqueeze(2)  # = self.analysis(x)
        g = self.loud_gain(self.loud_index(x[:, 0])) if self.loudness else None
        out = self.latent_codec(y if g is None else y * g, quality)
        # the synthesis sees the latents as coded (rounded, straight-through, and noise-filled);
        # the rate, the noisy ones' likelihoods
        y_hat = out["y_rounded"] if g is None else out["y_rounded"] / g
        if not (energy and self.energy is not None):
            return {"x_hat": self.synthesis(y_hat), "likelihoods": out["likelihoods"]}
        c_hat = self.g_s(y_hat.squeeze(2))
        cells = [self.energy_cell(v) for v in torch.as_tensor(quality).reshape(-1).expand(x.shape[0]).tolist()]
        corrected, likelihoods = torch.empty_like(c_hat), dict(out["likelihoods"])
        for cell in sorted(set(cells)):
            rows = torch.tensor([k == cell for k in cells], device=x.device)
            with torch.no_grad():
                r = self.energy.indexes(c[rows], c_hat[rows], None, cell)
                p = torch.ones(x.shape[0], r[0].numel(), dtype=c_hat.dtype, device=x.device)
                p[rows] = self.energy.likelihoods(r).flatten(1).to(p)
            corrected[rows] = self.energy.apply(c_hat[rows], r, cell)
            likelihoods[f"energy{cell}"] = p
        return {"x_hat": self.packet.inverse(corrected), "x_plain": self.packet.inverse(c_hat),
                "likelihoods": likelihoods}

    # -- loudness-adaptive steps -----------------------------------------------------------
    @property
    def section_kinds(self) -> tuple:
        return (("gains",) if self.loudness else ()) + tuple(self.latent_codec.kinds) \
            + (("energy",) if self.energy is not None else ())

    @torch.no_grad()
    def loud_index(self, x):
        """``x`` ``[B, n]`` (``n`` a multiple of ``frame * LOUD_FRAMES``) -> the gain index
        ``k`` of each block, int64 ``[B, n / (frame * LOUD_FRAMES)]`` (see :data:`LOUD_SCHEMES`)."""
        beta, ref, kmax = self.LOUD_SCHEMES[self.loudness]
        blk = self.frame * self.LOUD_FRAMES
        ms = x.double().reshape(x.shape[0], -1, blk).square().mean(-1)
        k = torch.round(2.0 * beta * torch.log2(ref * ref / ms.clamp_min(1e-30)))  # 4 beta log2(ref / rms)
        return k.clamp(0, kmax).long()

    def loud_gain(self, k):
        """Gain indexes ``[B, blocks]`` -> the latent's gains ``[B, 1, 1, blocks * LOUD_FRAMES]``."""
        g = torch.pow(2.0, k.float() / 4)
        return g.repeat_interleave(self.LOUD_FRAMES, -1)[:, None, None]

    def _gain_tables(self):
        if self.loud_tables is None:
            raise NotFrozenError("call freeze() (or load frozen weights) before coding")
        return self.loud_tables

    def encode_gains(self, k) -> bytes:
        """A chunk's gain indexes ``[1, blocks]`` -> its ``gains`` section (the differences of
        successive indexes, the first from 0, under one Laplace row)."""
        d = torch.diff(k.reshape(-1).cpu(), prepend=torch.zeros(1, dtype=k.dtype)).to(torch.int32)
        return entropy.encode_sequential(d.numpy(), np.zeros(d.numel(), dtype=np.int64), self._gain_tables())

    def decode_gains(self, data: bytes, blocks: int):
        """:meth:`encode_gains` inverted, checked: ``[1, blocks]`` int64."""
        d = entropy.decode_sequential(data, np.zeros(blocks, dtype=np.int64), self._gain_tables())
        k = torch.cumsum(torch.from_numpy(np.asarray(d, dtype=np.int64)), 0)
        if bool(((k < 0) | (k > self.LOUD_SCHEMES[self.loudness][2])).any()):
            raise PayloadError("corrupt gains section: a gain index out of range")
        return k[None]

    def freeze(self):
        super().freeze()
        if self.loudness:
            self.loud_tables = entropy.laplace_tables([self.LOUD_DIVERSITY])
        if self.energy is not None:
            self.energy.freeze()

    def frozen_state(self) -> dict:
        out = super().frozen_state()
        if self.loudness:
            out.update(self._gain_tables().state_dict("frozen.gains."))
        if self.energy is not None:
            out.update(self.energy.state_dict("frozen.energy."))
        return out

    def load_frozen(self, state: dict):
        super().load_frozen({k: v for k, v in state.items()
                             if not k.startswith(("frozen.gains.", "frozen.energy."))})
        if self.energy is not None:
            self.energy.load(state, "frozen.energy.")
        if self.loudness:
            self.loud_tables = entropy.CDFTables.from_state_dict(state, "frozen.gains.", family="laplace")
            if self.loud_tables.num_rows != 1:
                raise ValueError("the gains table has one row")

    @torch.no_grad()
    def synthesize(self, y_hat, r=None, cell: int = FRAMES):
        """The synthesis as decoding runs it (tests: decoded samples = this of the coded latents
        and energy indexes)."""
        with exact_mode():
            return self.synthesis(y_hat, r, cell)

    # -- chunks ------------------------------------------------------------------------
    def chunks(self, n: int, hop: int | None = None, context: int | None = None) -> list:
        """``(start, core, coded)`` of each chunk of a signal of ``n`` samples: the chunk
        codes ``coded`` samples from ``start - context`` (zeros outside the signal); its
        ``core`` samples from ``start`` are its own, the rest it shares with neighbours."""
        hop = self.hop if hop is None else hop
        context = self.context if context is None else context
        out = []
        for start in range(0, n, hop):
            core = min(hop, n - start)
            coded = -(-core // self.multiple) * self.multiple + 2 * context
            out.append((start, core, coded))
        return out

    @staticmethod
    def _mix(x):
        """``[C, n]`` -> the coded channels (mid/side for stereo) and the channel mode."""
        if x.shape[0] == 2:
            return torch.stack([(x[0] + x[1]) / 2, (x[0] - x[1]) / 2]), AudioModel.MID_SIDE
        return x, AudioModel.INDEPENDENT

    @staticmethod
    def _unmix(c, mode):
        if mode == AudioModel.MID_SIDE:
            return torch.stack([c[0] + c[1], c[0] - c[1]])
        return c

    def _segment(self, x, start, coded, context):
        """Samples ``start - context ..`` of ``x`` (``[C, n]``), ``coded`` of them, zeros outside."""
        lo, hi = start - context, start - context + coded
        seg = x[:, max(lo, 0):min(hi, x.shape[1])]
        return F.pad(seg, (max(0, -lo), max(0, hi - x.shape[1])))

    def header(self, n: int, channels: int, mode: int) -> bytes:
        return self._HEADER.pack(n, channels, mode, self.hop, self.context)

    def parse_header(self, header: bytes) -> tuple:
        """``(samples, channels, mode, hop, context)`` of a payload header, checked."""
        if len(header) != self._HEADER.size:
            raise PayloadError(f"an audio model's header has {self._HEADER.size} bytes, not {len(header)}")
        n, ch, mode, hop, context = self._HEADER.unpack(header)
        if n < 1 or not 1 <= ch <= self.max_channels or mode not in (self.MID_SIDE, self.INDEPENDENT) or (mode == self.MID_SIDE) != (ch == 2):
            raise PayloadError(f"invalid audio header: {n} samples, {ch} channels, channel mode {mode}")
        # at most the model's own chunk: a small stream cannot ask for a huge chunk's activations
        if not (0 < hop <= self.hop and hop % self.multiple == 0 and 0 < context <= hop // 2
                and context % (self.multiple // 2) == 0):
            raise PayloadError(f"invalid audio chunking: {hop} samples a chunk, {context} of context")
        return n, ch, mode, hop, context

    # -- coding ---------------------------------------------------------------------------
    def encoder(self, channels: int, quality, source_rate: int | None = None) -> "StreamEncoder":
        """A :class:`StreamEncoder`: push blocks of a signal of ``channels`` channels, get a
        Payload.  ``source_rate``: the sample rate the signal had before it was resampled to
        :attr:`sample_rate` (decoding resamples back to it, so nothing above its Nyquist
        frequency is heard; the mel energy correction codes no group above it), or None."""
        return StreamEncoder(self, channels, quality, source_rate)

    @torch.no_grad()
    def compress(self, x, quality, source_rate: int | None = None) -> Payload:
        """``x``: ``[channels, n]`` (or ``[1, channels, n]``) at :attr:`sample_rate` -> :class:`Payload`
        (the same bytes as pushing ``x`` through :meth:`encoder` in blocks of any size;
        ``source_rate`` as there)."""
        if x.dim() == 3 and x.shape[0] == 1:
            x = x[0]
        if x.dim() != 2 or x.shape[1] < 1:
            raise ValueError(f"compress takes a waveform [channels, n], got {tuple(x.shape)}")
        enc = self.encoder(x.shape[0], quality, source_rate)
        enc.push(x)
        return enc.finish()

    @torch.no_grad()
    def code_chunk(self, seg, quality) -> tuple:
        """One chunk ``[C, coded]`` (coded channels) -> ``(streams, c, c_hat)``: its sections'
        data but the energy section's, the input's transform coefficients and the decoder's
        before the energy correction (``[C, bands, frames]``; ``c_hat`` None without it)."""
        with exact_mode():
            c = self.packet(seg[:, None])  # the transform's coefficients (the energy correction compares with them)
            y = self.g_a(c).unsqueeze(2)  # = self.analysis(seg[:, None])
            first = []
            if self.loudness:  # one gain row for the chunk's channels: the loudest channel's
                k = self.loud_index(seg).amin(0, keepdim=True)
                first, y = [self.encode_gains(k)], y * self.loud_gain(k)
            streams, y_hat = self.latent_codec.compress(y, quality)
            c_hat = None
            if self.energy is not None:  # the decoder's coefficients, to compare with the input's
                c_hat = self.g_s((y_hat if not self.loudness else y_hat / self.loud_gain(k)).squeeze(2))
        return first + list(streams), c, c_hat

    def audible_bands(self, source_rate: int | None) -> int:
        """How many of the lowest bands start below the Nyquist frequency of ``source_rate``
        (None: all): band ``f`` starts at ``f * sample_rate / (2 bands)`` Hz (exact integers)."""
        bands = self.packet.bands
        if source_rate is None:
            return bands
        return min(bands, -(-bands * int(source_rate) // self.sample_rate))

    def energy_cell(self, quality) -> int:
        """Frames per cell of the energy correction at ``quality``, the encoder's choice:
        scheme 2, 16 below quality 3 and 8 from there (finer cells cost more bits and pay
        more at the higher rates), scheme 1, 32 (:data:`~codec.models.audio_energy.FRAMES`)."""
        if self.energy.scheme == 1:
            return FRAMES
        return 16 if float(quality) < 3 else 8

    def energy_groups(self, source_rate: int | None) -> int:
        """The energy groups coded for a signal first sampled at ``source_rate`` (None: all):
        scheme 2, those whose lowest band is audible (:meth:`audible_bands`); scheme 1, all."""
        e = self.energy
        if e.scheme == 1:
            return e.groups
        return max(1, sum(1 for f in e.starts if f < self.audible_bands(source_rate)))

    @torch.no_grad()
    def compress_chunk(self, seg, quality, index: int, source_rate: int | None = None) -> list:
        """One chunk ``[C, coded]`` (coded channels) -> its sections (``source_rate``: see
        :meth:`encoder`)."""
        streams, c, c_hat = self.code_chunk(seg, quality)
        if self.energy is not None:
            with exact_mode():
                cell = self.energy_cell(quality)
                r = self.energy.indexes(c, c_hat, self.audible_bands(source_rate), cell, self.ENERGY_RDO)
                streams.append(self.energy.encode(r, self.energy_groups(source_rate), cell))
        return [Section(kind, s, index, FLAG_KEY if i == 0 else 0)
                for i, (kind, s) in enumerate(zip(self.section_kinds, streams))]

    @torch.no_grad()
    def decode_chunk(self, streams, channels: int, coded: int, quality, device="cpu"):
        """One chunk's streams -> its coded channels ``[C, coded]``."""
        with exact_mode():
            shape = (channels, self.M, 1, coded // self.frame)
            g = None
            if self.loudness:
                k = self.decode_gains(streams[0], coded // (self.frame * self.LOUD_FRAMES))
                g, streams = self.loud_gain(k).to(device), streams[1:]
            r, cell = None, FRAMES
            if self.energy is not None:
                (r, cell), streams = self.energy.decode(streams[-1], channels, coded // self.frame), streams[:-1]
            y_hat = self.latent_codec.decompress(streams, shape, quality, device=device).to(device)
            return self.synthesis(y_hat if g is None else y_hat / g, r, cell)[:, 0]

    def _fade(self, n: int, device):
        """The rising half of a raised cosine over ``n`` samples (the falling one is 1 minus it)."""
        t = (torch.arange(n, device=device, dtype=torch.float64) + 0.5) / n
        return (0.5 - 0.5 * torch.cos(math.pi * t)).float()

    @torch.no_grad()
    def decode_chunks(self, payload: Payload, quality, device="cpu", first: int = 0, last: int | None = None):
        """Yield ``(start, samples [channels, m])``: the decoded signal in order, one chunk at
        a time.  With ``first``/``last`` only those chunks are decoded; the samples given
        are then those that equal a full decode: from the end of the samples chunk
        ``first`` shares with its predecessor (from 0 for the first chunk) to the start
        of those chunk ``last`` shares with its successor (to the end for the last)."""
        n, ch, mode, hop, context = self.parse_header(payload.header)
        plan = self.chunks(n, hop, context)
        by_chunk = {}
        for s in payload.sections:
            by_chunk.setdefault(s.index, []).append(s)
        if sorted(by_chunk) != list(range(len(plan))):
            raise PayloadError(f"the stream's chunks do not match its header ({len(plan)} chunks)")
        last = len(plan) - 1 if last is None else last
        if not 0 <= first <= last < len(plan):
            raise ValueError(f"chunks {first}..{last} of {len(plan)}")
        fade = self._fade(2 * context, device)
        coded_ch = 2 if mode == self.MID_SIDE else ch
        tail = None  # the previous chunk's 2 context samples shared with this one
        for k in range(first, last + 1):
            start, core, coded = plan[k]
            secs = by_chunk[k]
            kinds = tuple(s.kind for s in secs)
            if kinds != tuple(self.section_kinds):
                raise PayloadError(f"chunk {k} has sections {', '.join(kinds) or '(none)'}, the model writes "
                                   f"{', '.join(self.section_kinds)}")
            rec = self._unmix(self.decode_chunk([s.data for s in secs], coded_ch, coded, quality, device), mode)
            t0 = start - context  # the time of rec[:, 0]
            if tail is not None:
                yield from self._emit(n, t0, tail * (1 - fade) + rec[:, :2 * context] * fade)
                j0 = 2 * context
            else:
                j0 = context if k == 0 else 2 * context
            if k < last:
                j1, tail = core, rec[:, core:core + 2 * context]
            else:
                j1 = core + context if k == len(plan) - 1 else core
            yield from self._emit(n, t0 + j0, rec[:, j0:j1])

    @staticmethod
    def _emit(n, t, block):
        block = block[:, : max(0, n - t)]
        if block.shape[1]:
            yield t, block

    def chunk_range(self, header: bytes, t0: int, t1: int) -> tuple:
        """The chunks :meth:`decode_chunks` needs to give samples ``t0..t1-1`` exactly as a full decode."""
        n, _, _, hop, context = self.parse_header(header)
        plan = self.chunks(n, hop, context)
        first = min(len(plan) - 1, max(0, t0 // hop))
        if first > 0 and t0 < plan[first][0] + context:
            first -= 1
        last = min(len(plan) - 1, max(first, (max(t1, 1) - 1) // hop))
        if last < len(plan) - 1 and t1 > plan[last][0] + plan[last][1] - context:
            last += 1
        return first, last

    @torch.no_grad()
    def decompress(self, payload: Payload, quality, device="cpu"):
        """:class:`Payload` -> ``[channels, n]`` float (not clipped)."""
        n, ch, *_ = self.parse_header(payload.header)
        out = torch.zeros(ch, n, device=device)
        for start, block in self.decode_chunks(payload, quality, device):
            out[:, start:start + block.shape[1]] = block
        return out


class Chunker:
    """Cuts a signal pushed in blocks of any size into the chunks :meth:`AudioModel.compress`
    codes: :meth:`push` and :meth:`finish` return ``(k, segment)`` pairs, ``segment`` the
    coded channels ``[C, coded]`` of chunk ``k`` (its samples from ``start - context``,
    zeros outside the signal).  Holds at most one chunk and its context of samples."""

    def __init__(self, model: AudioModel, channels: int):
        self.m, self.channels = model, int(channels)
        self.mode = model.MID_SIDE if self.channels == 2 else model.INDEPENDENT
        self.coded_channels = 2 if self.mode == model.MID_SIDE else self.channels
        self.buf = torch.zeros(self.coded_channels, model.context)  # from time -context: zeros before the signal
        self.k, self.n = 0, 0

    def push(self, x) -> list:
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.dim() != 2 or x.shape[0] != self.channels:
            raise ValueError(f"push takes [{self.channels}, m] samples, got {tuple(x.shape)}")
        out = []
        if not x.shape[1]:
            return out
        c, _ = self.m._mix(x)
        self.buf = torch.cat([self.buf, c.to(self.buf.device)], 1)
        self.n += x.shape[1]
        H, P = self.m.hop, self.m.context
        while self.buf.shape[1] >= H + 2 * P:  # chunk k is whole, with its right context
            out.append((self.k, self.buf[:, :H + 2 * P]))
            self.buf = self.buf[:, H:].clone()
            self.k += 1
        return out

    def finish(self) -> list:
        if self.n < 1:
            raise ValueError("no samples were pushed")
        out = []
        for start, core, coded in self.m.chunks(self.n)[self.k:]:
            seg = self.buf[:, :coded]
            out.append((self.k, F.pad(seg, (0, coded - seg.shape[1]))))
            self.buf = self.buf[:, self.m.hop:]
            self.k += 1
        return out

    def header(self) -> bytes:
        return self.m.header(self.n, self.channels, self.mode)


class StreamEncoder:
    """Chunked encoding with bounded memory: :meth:`push` blocks ``[channels, m]`` (any
    sizes) at the model's rate; each chunk is coded as soon as its samples and its right
    context are in (:class:`Chunker`); :meth:`finish` codes the rest and returns the
    :class:`Payload`.  Holds one chunk of samples and the coded sections."""

    def __init__(self, model: AudioModel, channels: int, quality, source_rate: int | None = None):
        self.m, self.q, self.source_rate = model, quality, source_rate
        self.chunker = Chunker(model, channels)
        self.sections = []

    def _code(self, pairs):
        dev = next(self.m.parameters()).device
        for k, seg in pairs:
            self.sections += self.m.compress_chunk(seg.to(dev), self.q, k, self.source_rate)

    def push(self, x) -> None:
        self._code(self.chunker.push(x))

    def finish(self) -> Payload:
        self._code(self.chunker.finish())
        return Payload(self.sections, self.chunker.header())
