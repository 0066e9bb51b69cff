"""Video model: I-frames and P-frames whose decoded frames are the same integers on every device.

A group of pictures starts with a key frame (an I-frame) every ``gop`` frames; the frames
between are P-frames predicted from the previous *decoded* frame:

- **I-frame**: the picture coded by :attr:`VideoModel.intra`, a variable-rate mean-scale
  hyperprior (the image model's architecture).
- **P-frame**: overlapped block motion compensation (``BLOCK`` x ``BLOCK`` blocks,
  half-pel vectors within +-``SEARCH`` pixels found by the encoder, blended across block
  edges with a raised-cosine window), the vectors coded against the median
  of their neighbours with Laplace tables (:meth:`VideoModel.motion_symbols`), and the
  residual (frame - prediction, shifted to mid-grey) coded by :attr:`VideoModel.inter`,
  a second model of the same architecture.

**Exactness.**  A P-frame is predicted from a decoded frame, so a one-unit difference in
one pixel on another device would feed every later frame of its group.  So everything
from the decoded symbols to the decoded pixels is integer arithmetic:

- the latents: decoded symbols plus the integer hyper-synthesis' means (exact, as for images);
- the inverse gain of the quality: ``exp`` of the interpolated log gain with the
  deterministic :func:`codec.entropy.numerics.exp`, in fixed point (``2**-16``);
- the synthesis transform: frozen into an :class:`~codec.models.integer.IntegerNet` with
  12 fractional activation bits (inverse GDN included); float64 convolutions on integers
  with bounded sums, identical on CPU and CUDA;
- pixels: ``floor((a * 255 + 2**11) / 2**12)``; motion compensation: integer half-pel
  averages ``(a + b + 1) >> 1`` and ``(a + b + c + d + 2) >> 2`` of the reference, blended
  with integer weights (64ths per axis) and one rounding ``(sum + 2**11) >> 12``.

The float synthesis is used only in training; what the integer path costs is measured in
``tests/test_video_codec.py`` (about 0.003 dB on a Kodak crop).

Frames are RGB ``uint8`` arrays ``[H, W, 3]`` (any size).  Sections (the container's
index is the frame number): two per frame, ``hyper-latent`` then ``latent``.  A key frame
(its hyper-latent flagged :data:`~codec.models.payload.FLAG_KEY`) holds :attr:`intra`'s
streams; a P-frame's hyper-latent section holds two bytes (the motion table rows) and one
stream of the vectors' differences followed by :attr:`inter`'s hyper-latent, and its
latent section :attr:`inter`'s latent.  The model header is ``<IIBB>``: width, height,
block size, search range.
"""
from __future__ import annotations

import math
import struct
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from codec import entropy
from codec.models.image import VariableRateMeanScale
from codec.models.integer import IntegerNet, exact_mode
from codec.models.payload import FLAG_KEY, Payload, PayloadError, Section

SYNTH_BITS = 12  # fractional activation bits of the integer synthesis
GAIN_BITS = 16  # fixed-point bits of the inverse gains
_ONE = float(1 << SYNTH_BITS)
_HALF = float(1 << (SYNTH_BITS - 1))


def _as_tensor(frame, device) -> torch.Tensor:
    """RGB uint8 ``[H, W, 3]`` (numpy or torch) -> int32 ``[3, H, W]`` on ``device``."""
    t = torch.as_tensor(np.ascontiguousarray(frame)) if isinstance(frame, np.ndarray) else frame
    return t.to(device).permute(2, 0, 1).to(torch.int32)


class VideoModel(nn.Module):
    """I/P-frame video codec; see the module docstring.  ``compress_frames`` / ``decode_frames``
    stream frame by frame (memory: a frame and its reference)."""

    modality = "video"
    variable_rate = True
    BLOCK = 16
    SEARCH = 16  # full pixels each way; vectors are in half pixels, |v| <= 2 * SEARCH
    MV_SCALES = tuple(0.25 * 2 ** (i / 2) for i in range(16))  # Laplace diversities, half-pel units
    multiple = 64  # the intra and inter models pad to this
    MV_COST = 2.0  # the search's penalty per unit of a candidate's length, in luma SAD (encoder only)
    max_frames = 1 << 24
    _HEADER = struct.Struct("<IIBB")

    def __init__(self, N=64, M=96, levels=8):
        super().__init__()
        self.N, self.M, self.levels = N, M, levels
        self.intra = VariableRateMeanScale(N, M, levels)
        self.inter = VariableRateMeanScale(N, M, levels)
        self.synth_int: dict[str, IntegerNet] = {}
        self.mv_tables: entropy.CDFTables | None = None

    def _subs(self):
        return {"intra": self.intra, "inter": self.inter}

    # -- training-facing ---------------------------------------------------------------
    def aux_loss(self):
        return self.intra.aux_loss() + self.inter.aux_loss()

    # -- coding state ------------------------------------------------------------------
    def freeze(self):
        for name, sub in self._subs().items():
            sub.freeze()
            self.synth_int[name] = IntegerNet.freeze(sub.g_s, act_bits=SYNTH_BITS)
        self.mv_tables = entropy.laplace_tables(np.array(self.MV_SCALES))
        self._side()

    def _side(self):
        """The P-frame side stream's tables: the inter hyper-latent's rows, then the vectors'."""
        self.side_tables = entropy.concat_tables(self.inter.latent_codec.inner.z._tables(), self.mv_tables)

    def frozen_state(self) -> dict:
        if not self.synth_int or self.mv_tables is None:
            raise RuntimeError("call freeze() before exporting")
        out = {}
        for name, sub in self._subs().items():
            out.update(sub.latent_codec.frozen_state(f"frozen.{name}."))
            out.update(self.synth_int[name].state(f"frozen.{name}_synthesis."))
        out.update(self.mv_tables.state_dict("frozen.motion_tables."))
        return out

    def load_frozen(self, state: dict):
        for name, sub in self._subs().items():
            sub.latent_codec.load_frozen(state, f"frozen.{name}.")
            self.synth_int[name] = IntegerNet.from_state(sub.g_s, state, f"frozen.{name}_synthesis.")
        self.mv_tables = entropy.CDFTables.from_state_dict(state, "frozen.motion_tables.", family="laplace")
        if self.mv_tables.num_rows != len(self.MV_SCALES):
            raise ValueError("motion tables do not match the model")
        self._side()

    # -- header ------------------------------------------------------------------------
    def header_for(self, width: int, height: int) -> bytes:
        return self._HEADER.pack(width, height, self.BLOCK, self.SEARCH)

    def parse_header(self, header: bytes) -> tuple:
        """(width, height) of a model header; :class:`PayloadError` if it is not this model's."""
        if len(header) != self._HEADER.size:
            raise PayloadError(f"a video model's header has {self._HEADER.size} bytes, not {len(header)}")
        w, h, b, s = self._HEADER.unpack(header)
        if (b, s) != (self.BLOCK, self.SEARCH):
            raise PayloadError(f"blocks of {b} and search range {s} are not this model's ({self.BLOCK}, {self.SEARCH})")
        if not (1 <= w <= 65536 and 1 <= h <= 65536):
            raise PayloadError(f"frame size {w}x{h} is out of range")
        return w, h

    # -- the exact reconstruction path --------------------------------------------------
    def inverse_gain(self, sub, quality) -> np.ndarray:
        """Fixed-point inverse gains ``round(g' * 2**16)`` (float64 integers, ``[C]``) of
        ``quality``, the same bits on every install (deterministic ``exp``)."""
        L = sub.latent_codec.log_inv_gain.detach().to("cpu", torch.float64).numpy()
        t = float(quality) - 1.0
        i = min(int(math.floor(t)), L.shape[0] - 2)
        f = t - i
        lg = L[i] * (1.0 - f) + L[i + 1] * f
        return np.floor(entropy.numerics.exp(lg) * float(1 << GAIN_BITS) + 0.5)

    def _synthesize(self, name: str, y_inner: torch.Tensor, quality) -> torch.Tensor:
        """Inner latents (symbols + exact means, as the latent codec returns them) -> the
        synthesis output in units of ``2**-12`` (float64 integers), exactly."""
        sub = self._subs()[name]
        v = torch.round(y_inner.to(torch.float64) * 256.0)  # symbols * 256 + integer means: exact
        gi = torch.from_numpy(self.inverse_gain(sub, quality)).to(v.device).view(1, -1, 1, 1)
        a = torch.floor((v * float(1 << (SYNTH_BITS - 8)) * gi + float(1 << (GAIN_BITS - 1))) / float(1 << GAIN_BITS))
        net = self.synth_int[name]
        if next(iter(net.buffers())).device != a.device:
            net.to(a.device)
        return net(a, scaled=True)

    def _latents(self, name: str, x: torch.Tensor, quality):
        """Analysis of ``x`` ``[1, 3, H, W]`` by sub-model ``name``, at ``quality``: (y, z) as the
        inner hyperprior codes them (``y`` scaled by the gains)."""
        sub = self._subs()[name]
        with exact_mode():
            y = sub.g_a(sub.pad(x))
            g, _ = sub.latent_codec.gains(quality, 1, y.device)
            y = y * g
            z = sub.latent_codec.inner.h_a(y)
        return y, torch.round(z).to(torch.int32)

    def _code_y(self, name: str, y: torch.Tensor, z_sym: torch.Tensor) -> tuple:
        """(latent stream, inner latents = symbols + exact means) of ``y`` given its hyper-latent."""
        inner = self._subs()[name].latent_codec.inner
        levels, means = inner.index_path(z_sym)
        y_sym = torch.round(y.double() - means).to(torch.int32)
        return entropy.encode(y_sym, levels, inner.tables), (y_sym.double() + means).float()

    def _decode_y(self, name: str, data: bytes, z_sym: torch.Tensor) -> torch.Tensor:
        inner = self._subs()[name].latent_codec.inner
        levels, means = inner.index_path(z_sym)
        return (entropy.decode(data, levels, inner.tables).to(levels.device).double() + means).float()

    def _z_shape(self, name: str, H: int, W: int) -> tuple:
        sub = self._subs()[name]
        h, w = sub.grid(H, W)
        return (1, sub.latent_codec.inner.z.channels, -(-h // 4), -(-w // 4))

    def _code_intra(self, x: torch.Tensor, quality) -> tuple:
        """I-frame ``x`` ``[1, 3, H, W]`` -> ([hyper-latent, latent] streams, exact synthesis output)."""
        H, W = x.shape[-2:]
        y, z_sym = self._latents("intra", x, quality)
        zc = self.intra.latent_codec.inner.z
        z_data = entropy.encode(z_sym, zc._index(z_sym.shape, z_sym.device), zc._tables())
        y_data, y_inner = self._code_y("intra", y, z_sym)
        return [z_data, y_data], self._synthesize("intra", y_inner, quality)[..., :H, :W]

    def _decode_intra(self, streams, H: int, W: int, quality, device) -> torch.Tensor:
        zc = self.intra.latent_codec.inner.z
        shape = self._z_shape("intra", H, W)
        z_sym = entropy.decode(streams[0], zc._index(shape, device), zc._tables()).to(device)
        return self._synthesize("intra", self._decode_y("intra", streams[1], z_sym), quality)[..., :H, :W]

    def _code_inter(self, resid: torch.Tensor, mv: torch.Tensor, quality) -> tuple:
        """P-frame residual ``[1, 3, H, W]`` and vectors -> ([side, latent] streams, exact output).
        The side stream codes the vectors' differences and the hyper-latent together (one
        rANS stream: a stream's fixed cost is about 184 bytes), after two bytes naming the
        vectors' table rows."""
        H, W = resid.shape[-2:]
        y, z_sym = self._latents("inter", resid, quality)
        rows, d = self.motion_symbols(mv)
        zc = self.inter.latent_codec.inner.z
        dev = z_sym.device
        mi = torch.stack([torch.full_like(d[0], rows[0]), torch.full_like(d[1], rows[1])]) + zc.channels
        sym = torch.cat([d.reshape(-1).to(dev), z_sym.reshape(-1)])
        idx = torch.cat([mi.reshape(-1).to(dev), zc._index(z_sym.shape, dev).reshape(-1)])
        side = bytes(rows) + entropy.encode(sym, idx, self.side_tables)
        y_data, y_inner = self._code_y("inter", y, z_sym)
        return [side, y_data], self._synthesize("inter", y_inner, quality)[..., :H, :W]

    def _decode_inter(self, streams, H: int, W: int, quality, device) -> tuple:
        """(vectors, exact synthesis output) of a P-frame's streams."""
        side = streams[0]
        if len(side) < 2 or side[0] >= len(self.MV_SCALES) or side[1] >= len(self.MV_SCALES):
            raise PayloadError("P-frame side stream: bad motion table rows")
        bh, bw = self.blocks_of(W, H)
        zc = self.inter.latent_codec.inner.z
        shape = self._z_shape("inter", H, W)
        mi = torch.stack([torch.full((bh, bw), side[0], dtype=torch.int32),
                          torch.full((bh, bw), side[1], dtype=torch.int32)]).to(device) + zc.channels
        idx = torch.cat([mi.reshape(-1), zc._index(shape, device).reshape(-1)])
        sym = entropy.decode(side[2:], idx, self.side_tables).to(device)
        n = 2 * bh * bw
        mv = self.vectors(sym[:n].reshape(2, bh, bw)).to(device)
        z_sym = sym[n:].reshape(shape)
        return mv, self._synthesize("inter", self._decode_y("inter", streams[1], z_sym), quality)[..., :H, :W]

    @staticmethod
    def _pixels(a: torch.Tensor) -> torch.Tensor:
        """Synthesis output (units of 2**-12, value 1 = white) -> int32 pixels 0..255."""
        return torch.clamp(torch.floor((a * 255.0 + _HALF) / _ONE), 0, 255).to(torch.int32)[0]

    @staticmethod
    def _residual(a: torch.Tensor) -> torch.Tensor:
        """Inter synthesis output (mid-grey = no change) -> int32 pixel differences."""
        return torch.floor(((a - _HALF) * 255.0 + _HALF) / _ONE).to(torch.int32)[0]

    # -- motion --------------------------------------------------------------------------
    def _padded(self, ref: torch.Tensor) -> torch.Tensor:
        """The reference ``[3, H, W]`` on the block grid, replicated ``SEARCH + 1`` pixels around."""
        H, W = ref.shape[-2:]
        B, P = self.BLOCK, self.SEARCH + 1
        ph, pw = (-H) % B, (-W) % B
        return F.pad(ref[None].float(), (P, P + pw, P, P + ph), mode="replicate")[0].to(torch.int32)

    @staticmethod
    def half_pel(p: torch.Tensor) -> torch.Tensor:
        """Integer half-pel grid of ``p`` ``[C, h, w]`` -> ``[C, 2h - 1, 2w - 1]`` (exact)."""
        C, h, w = p.shape
        out = torch.empty((C, 2 * h - 1, 2 * w - 1), dtype=torch.int32, device=p.device)
        out[:, 0::2, 0::2] = p
        out[:, 0::2, 1::2] = (p[:, :, :-1] + p[:, :, 1:] + 1) >> 1
        out[:, 1::2, 0::2] = (p[:, :-1] + p[:, 1:] + 1) >> 1
        out[:, 1::2, 1::2] = (p[:, :-1, :-1] + p[:, :-1, 1:] + p[:, 1:, :-1] + p[:, 1:, 1:] + 2) >> 2
        return out

    OBMC_BITS = 6  # the overlap window's weights, per axis, in 64ths
    #: per row (or column) offset ``r`` in a block, the own block's weight in 64ths,
    #: ``round(64 sin^2(pi (r + 8.5) / 32))`` (written out: the format, not a libm, fixes them;
    #: none is within 0.08 of a rounding tie); the nearer neighbour (above for ``r < 8``,
    #: else below; left / right) gets the rest
    OBMC_WEIGHTS = (35, 41, 47, 52, 57, 60, 63, 64, 64, 63, 60, 57, 52, 47, 41, 35)

    def obmc_weights(self) -> torch.Tensor:
        return torch.tensor(self.OBMC_WEIGHTS, dtype=torch.int32)

    def compensate(self, ref: torch.Tensor, mv: torch.Tensor, overlap: bool = True) -> torch.Tensor:
        """Prediction ``[3, H, W]`` (int32) of the frame from the decoded ``ref`` ``[3, H, W]`` and
        the half-pel vectors ``mv`` ``[2, bh, bw]`` (dy, dx), exactly.  With ``overlap``
        (as coding does) the blocks' predictions are blended over a raised-cosine window
        (overlapped block motion compensation): each pixel mixes the vectors of its block
        and of the nearest blocks above/below and left/right (its own at the frame's edge),
        with integer weights ``A_y A_x`` summing to ``2**12``; the sum is rounded once."""
        H, W = ref.shape[-2:]
        B, P = self.BLOCK, self.SEARCH + 1
        r2 = self.half_pel(self._padded(ref))
        bh, bw = mv.shape[-2:]
        dev = ref.device
        ys = torch.arange(bh * B, device=dev)
        xs = torch.arange(bw * B, device=dev)
        flat = r2.reshape(3, -1)

        def predict(field):  # per-block vectors [2, bh, bw] -> [3, bh B, bw B]
            my = field[0].repeat_interleave(B, 0).repeat_interleave(B, 1)
            mx = field[1].repeat_interleave(B, 0).repeat_interleave(B, 1)
            rows = 2 * (ys[:, None] + P) + my
            cols = 2 * (xs[None, :] + P) + mx
            return flat[:, (rows * r2.shape[-1] + cols).reshape(-1)].reshape(3, bh * B, bw * B)

        if not overlap:
            return predict(mv)[:, :H, :W]
        mv = mv.to(dev)
        a = self.obmc_weights().to(dev)
        one = 1 << self.OBMC_BITS
        # the neighbour's vector field per half-block: above (first half) / below (second half)
        up = torch.cat([mv[:, :1], mv[:, :-1]], 1)
        down = torch.cat([mv[:, 1:], mv[:, -1:]], 1)
        left = torch.cat([mv[:, :, :1], mv[:, :, :-1]], 2)
        right = torch.cat([mv[:, :, 1:], mv[:, :, -1:]], 2)
        half_y = (ys % B) < B // 2
        half_x = (xs % B) < B // 2
        wy = a[ys % B][:, None]  # [bh B, 1]
        wx = a[xs % B][None, :]
        own = predict(mv)
        vy = torch.where(half_y[None, :, None], predict(up), predict(down))
        vx = torch.where(half_x[None, None, :], predict(left), predict(right))
        # diagonal neighbour: vertical neighbour's horizontal neighbour
        ul, ur = torch.cat([up[:, :, :1], up[:, :, :-1]], 2), torch.cat([up[:, :, 1:], up[:, :, -1:]], 2)
        dl, dr = torch.cat([down[:, :, :1], down[:, :, :-1]], 2), torch.cat([down[:, :, 1:], down[:, :, -1:]], 2)
        hy, hx = half_y[None, :, None], half_x[None, None, :]
        vd = torch.where(hy, torch.where(hx, predict(ul), predict(ur)), torch.where(hx, predict(dl), predict(dr)))
        acc = wy * wx * own + (one - wy) * wx * vy + wy * (one - wx) * vx + (one - wy) * (one - wx) * vd
        pred = (acc + (1 << (2 * self.OBMC_BITS - 1))) >> (2 * self.OBMC_BITS)
        return pred[:, :H, :W]

    def search(self, cur: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """The encoder's motion search: half-pel vectors ``[2, bh, bw]`` (int32) for ``cur`` from
        ``ref`` (both ``[3, H, W]`` int32).  Coarse-to-fine SAD on luma: +-SEARCH/2 at half
        resolution, +-2 at full resolution, then the 8 half-pel neighbours.  Any search is
        valid: the decoder only compensates."""
        B, S = self.BLOCK, self.SEARCH
        H, W = cur.shape[-2:]
        wts = torch.tensor([2.0, 5.0, 1.0], device=cur.device).view(3, 1, 1) / 8

        def luma(t):
            return (t.float() * wts).sum(0)

        ph, pw = (-H) % B, (-W) % B
        c = F.pad(luma(cur)[None, None], (0, pw, 0, ph), mode="replicate")[0, 0]
        r = luma(self._padded(ref))  # P = S + 1 around
        bh, bw = c.shape[0] // B, c.shape[1] // B
        P = S + 1

        def sad(dy, dx, cc, rr, step, pad):
            h, w = cc.shape
            cand = rr[pad + dy:pad + dy + h, pad + dx:pad + dx + w]
            d = (cc - cand).abs().reshape(h // step, step, w // step, step).sum((1, 3))
            return d

        # coarse: half resolution, blocks of B/2, +-S/2
        c2 = F.avg_pool2d(c[None, None], 2)[0, 0]
        r2 = F.avg_pool2d(r[None, None, 1:-1, 1:-1], 2)[0, 0]  # padding S on each side -> S/2
        S2 = S // 2
        best = torch.full((bh, bw), float("inf"), device=cur.device)
        vy = torch.zeros((bh, bw), dtype=torch.int64, device=cur.device)
        vx = torch.zeros_like(vy)
        for dy in range(-S2, S2 + 1):
            for dx in range(-S2, S2 + 1):
                cost = sad(dy, dx, c2, r2, B // 2, S2) + self.MV_COST * (abs(dy) + abs(dx))
                better = cost < best
                best = torch.where(better, cost, best)
                vy = torch.where(better, torch.full_like(vy, dy), vy)
                vx = torch.where(better, torch.full_like(vx, dx), vx)
        vy, vx = 2 * vy, 2 * vx
        # refine at full resolution, per block around its coarse vector
        base_y, base_x = vy.clone(), vx.clone()
        best = torch.full((bh, bw), float("inf"), device=cur.device)
        cb = c.reshape(bh, B, bw, B).permute(0, 2, 1, 3)
        by = torch.arange(bh, device=cur.device).view(-1, 1) * B
        bx = torch.arange(bw, device=cur.device).view(1, -1) * B
        off = torch.arange(B, device=cur.device)
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ty = torch.clamp(base_y + dy, -S, S)
                tx = torch.clamp(base_x + dx, -S, S)
                rows = (by + P + ty)[..., None] + off  # [bh, bw, B]
                cols = (bx + P + tx)[..., None] + off
                cand = r[rows[..., :, None], cols[..., None, :]]
                cost = (cb - cand).abs().sum((-1, -2)) + self.MV_COST * (ty.abs() + tx.abs())
                better = cost < best
                best = torch.where(better, cost, best)
                vy = torch.where(better, 2 * ty, vy)
                vx = torch.where(better, 2 * tx, vx)
        # half-pel refinement on the interpolated luma of the reference
        rh = self.half_pel(torch.round(r)[None].to(torch.int32))[0].float()
        base_y, base_x = vy.clone(), vx.clone()
        best = torch.full((bh, bw), float("inf"), device=cur.device)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ty = torch.clamp(base_y + dy, -2 * S, 2 * S)
                tx = torch.clamp(base_x + dx, -2 * S, 2 * S)
                rows = (2 * (by + P) + ty)[..., None] + 2 * off
                cols = (2 * (bx + P) + tx)[..., None] + 2 * off
                cand = rh[rows[..., :, None], cols[..., None, :]]
                cost = (cb - cand).abs().sum((-1, -2)) + self.MV_COST / 2 * (ty.abs() + tx.abs())
                better = cost < best
                best = torch.where(better, cost, best)
                vy = torch.where(better, ty, vy)
                vx = torch.where(better, tx, vx)
        return torch.stack([vy, vx]).to(torch.int32)

    @staticmethod
    def _median_predict(mv: np.ndarray, i: int, j: int) -> tuple:
        """Median of the left, top and top-right (else top-left) vectors, zero outside."""
        z = (0, 0)
        left = tuple(mv[:, i, j - 1]) if j > 0 else z
        top = tuple(mv[:, i - 1, j]) if i > 0 else z
        if i > 0 and j + 1 < mv.shape[2]:
            tr = tuple(mv[:, i - 1, j + 1])
        elif i > 0 and j > 0:
            tr = tuple(mv[:, i - 1, j - 1])
        else:
            tr = z
        return tuple(int(sorted((left[k], top[k], tr[k]))[1]) for k in range(2))

    def motion_symbols(self, mv: torch.Tensor) -> tuple:
        """Vectors ``[2, bh, bw]`` -> (table row of each component, int32 differences from
        the median prediction ``[2, bh, bw]``): each component's row is the Laplace scale
        that codes its differences in the fewest bits."""
        m = mv.cpu().numpy().astype(np.int64)
        d = np.zeros_like(m)
        for i in range(m.shape[1]):
            for j in range(m.shape[2]):
                d[:, i, j] = m[:, i, j] - np.array(self._median_predict(m, i, j))
        sym = torch.from_numpy(d.astype(np.int32))
        rows = []
        for k in range(2):
            costs = [entropy.ideal_bits(sym[k], torch.full_like(sym[k], r), self.mv_tables)
                     for r in range(len(self.MV_SCALES))]
            rows.append(int(np.argmin(costs)))
        return tuple(rows), sym

    def vectors(self, d: torch.Tensor) -> torch.Tensor:
        """Differences ``[2, bh, bw]`` -> vectors (int32, CPU); :class:`PayloadError` for a vector
        outside the search range."""
        d = d.cpu().numpy().astype(np.int64)
        m = np.zeros_like(d)
        lim = 2 * self.SEARCH
        for i in range(d.shape[1]):
            for j in range(d.shape[2]):
                m[:, i, j] = d[:, i, j] + np.array(self._median_predict(m, i, j))
                if abs(m[0, i, j]) > lim or abs(m[1, i, j]) > lim:
                    raise PayloadError(f"motion vector {tuple(int(v) for v in m[:, i, j])} outside +-{lim} "
                                       "half pixels")
        return torch.from_numpy(m.astype(np.int32))

    # -- frames ----------------------------------------------------------------------------
    def blocks_of(self, width: int, height: int) -> tuple:
        return -(-height // self.BLOCK), -(-width // self.BLOCK)

    def encode_frame(self, frame, ref, key: bool, quality, index: int) -> tuple:
        """One frame (RGB uint8 ``[H, W, 3]``) -> (sections, decoded frame ``[3, H, W]`` int32).
        ``ref``: the previous decoded frame (None for a key frame)."""
        dev = next(self.parameters()).device
        cur = _as_tensor(frame, dev)
        if key or ref is None:
            streams, a = self._code_intra(cur[None].float() / 255.0, quality)
            rec = self._pixels(a)
            flags = FLAG_KEY
        else:
            mv = self.search(cur, ref)
            pred = self.compensate(ref, mv)
            streams, a = self._code_inter((cur - pred).float()[None] / 255.0 + 0.5, mv, quality)
            rec = torch.clamp(pred + self._residual(a), 0, 255)
            flags = 0
        return [Section("hyper-latent", streams[0], index, flags), Section("latent", streams[1], index)], rec

    @torch.no_grad()  # (a decorator: a with-block around a yield would leak no-grad to the caller)
    def compress_frames(self, frames: Iterable, quality, gop: int = 32, width=None, height=None):
        """Frames -> iterator of (sections of one frame, decoded frame as uint8 ``[H, W, 3]``).
        Key frames every ``gop`` frames (``gop`` >= 1)."""
        if gop < 1:
            raise ValueError("gop must be >= 1")
        ref = None
        for i, f in enumerate(frames):
            secs, ref = self.encode_frame(f, ref, i % gop == 0, quality, i)
            yield secs, ref.permute(1, 2, 0).to(torch.uint8).cpu().numpy()

    def key_frames(self, payload: Payload) -> list:
        return [s.index for s in payload.sections if s.flags & FLAG_KEY]

    def check_sections(self, payload: Payload, frames: int) -> list:
        """The section table checked before any decoding: two sections per frame, in frame
        order, ``hyper-latent`` (flagged :data:`FLAG_KEY` on a key frame) then ``latent``;
        frame 0 a key frame.  Returns the key frames."""
        secs = payload.sections
        if len(secs) != 2 * frames:
            raise PayloadError(f"the stream has {len(secs)} sections; {frames} frames need {2 * frames}")
        keys = []
        for f in range(frames):
            a, b = secs[2 * f], secs[2 * f + 1]
            if a.index != f or b.index != f:
                raise PayloadError(f"sections {2 * f} and {2 * f + 1} belong to frames {a.index} and {b.index}, "
                                   f"expected frame {f}")
            if a.kind != "hyper-latent" or b.kind != "latent" or a.flags not in (0, FLAG_KEY) or b.flags:
                raise PayloadError(f"frame {f} needs a hyper-latent (flagged on a key frame) then a latent")
            if a.flags:
                keys.append(f)
        if not keys or keys[0] != 0:
            raise PayloadError("the first frame is not a key frame")
        return keys

    @torch.no_grad()  # (a decorator: a with-block around a yield would leak no-grad to the caller)
    def decode_frames(self, payload: Payload, quality, frames: int, start: int = 0, stop=None,
                      device="cpu") -> Iterator[np.ndarray]:
        """Decoded frames ``start .. stop - 1`` (RGB uint8 ``[H, W, 3]``), decoding from the
        nearest key frame at or before ``start``: the same frames as a full decode."""
        W, H = self.parse_header(payload.header)
        keys = self.check_sections(payload, frames)
        stop = frames if stop is None else min(stop, frames)
        secs = payload.sections
        first = max(k for k in keys if k <= start) if start < frames else frames
        ref = None
        for f in range(first, stop):
            streams = [secs[2 * f].data, secs[2 * f + 1].data]
            if secs[2 * f].flags & FLAG_KEY:
                ref = self._pixels(self._decode_intra(streams, H, W, quality, device))
            else:
                mv, a = self._decode_inter(streams, H, W, quality, device)
                ref = torch.clamp(self.compensate(ref, mv) + self._residual(a), 0, 255)
            if f >= start:
                yield ref.permute(1, 2, 0).to(torch.uint8).cpu().numpy()
