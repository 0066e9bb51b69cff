"""``inr-video``: a NeRV / HNeRV-style codec that fits one small network to each group of frames.

A group of ``gop`` frames (a key frame starts each) is coded as one network and one small
embedding per frame: frame ``t`` is ``head(blocks(e_t))``, each block a 3x3 convolution to
four times its output channels, a pixel shuffle (x2) and a ReLU (NeRV's block), the head a
3x3 convolution to RGB (by default ``C_e = 4``, ``K = 3`` blocks of 24, 16 and 12 channels);
the embeddings are ``C_e x ceil(H / 2**K) x ceil(W / 2**K)`` grids
fitted with the network (HNeRV's content-adaptive embeddings, fitted directly instead of
produced by an encoder).  Encoding fits them to the group (:meth:`InrVideoModel._fit`: MSE,
Adam, one step per frame, cosine schedule, starting from the previous group's network as
NIRVANA does; any device).  After :data:`QAT_FRACTION` of the epochs are left it picks each
layer's and the embeddings' power-of-two quantisation step (lowest rate-distortion cost at
the quality's lambda, measured with the decoder's integer arithmetic) and fits the rest
through those steps (straight-through rounding: quantisation-aware); then it codes the
integers with sequential rANS streams (:mod:`codec.entropy.sequential`).

Sections (the container's index is the frame): a group's first frame has a ``network``
section (flagged key) -- one byte pair (shift, parameter row) per layer and for the
embeddings, then the layers' integer weights and biases -- and every frame a ``latent``
section, its embedding.  Decoding a frame is one forward pass of its group's network:
any frame can be decoded alone, after its group's network.

**Exactness**: the forward pass is :mod:`codec.models.inr.exact`'s integer arithmetic
(float64 sums of integers below 2**53; the pixel shuffle moves values), so every device
decodes the same pixels.  Model header ``<IIBBB>`` + ``K`` bytes: width, height, version,
``C_e``, ``K``, the blocks' output channels.
"""
from __future__ import annotations

import functools
import math
import struct
import time
from typing import Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from codec import entropy
from codec.models.inr import exact
from codec.models.inr.image import PARAM_LOG2, SHIFTS
from codec.models.rd import effort_iterations, lam_of
from codec.models.payload import FLAG_KEY, PayloadError, Section

HEADER = struct.Struct("<IIBBB")
VERSION = 1
MAX_BLOCKS, MAX_CHANNELS = 7, 64
VIDEO_EFFORTS = {"fast": 100, "medium": 300, "slow": 1000, "placebo": 5000}  # epochs (a step per frame)
LR = 1e-2
QAT_FRACTION = 0.3  # the last epochs of a fit run through the chosen quantisation steps


def _f64(a, device="cpu"):
    return torch.as_tensor(a, dtype=torch.float64, device=device)


class _Layer:
    def __init__(self, name, cin, cout, shuffle):
        self.name, self.cin, self.cout, self.shuffle = name, cin, cout, shuffle
        self.k = 3

    @property
    def params(self):
        return self.cout * self.cin * 9 + self.cout


def layers(c_e: int, widths) -> list:
    out, cin = [], c_e
    for i, c in enumerate(widths):
        out.append(_Layer(f"block{i}", cin, 4 * c, True))
        cin = c
    out.append(_Layer("head", cin, 3, False))
    return out


def parse(header: bytes):
    """(width, height, embedding channels, block widths) of a model header, every field bounded."""
    if len(header) < HEADER.size:
        raise PayloadError(f"an INR video header has at least {HEADER.size} bytes, not {len(header)}")
    W, H, version, c_e, k = HEADER.unpack_from(header)
    if version != VERSION:
        raise PayloadError(f"INR video header version {version} (this decoder reads {VERSION})")
    if not (1 <= c_e <= MAX_CHANNELS and 1 <= k <= MAX_BLOCKS) or len(header) != HEADER.size + k:
        raise PayloadError("INR video header: architecture out of bounds")
    widths = tuple(header[HEADER.size:])
    if not all(1 <= c <= MAX_CHANNELS for c in widths):
        raise PayloadError("INR video header: a block's channels are out of bounds")
    if W < 1 or H < 1:
        raise PayloadError("INR video header: empty frames")
    return W, H, c_e, widths


class InrVideoModel(nn.Module):
    """See the module docstring."""

    modality = "video"
    variable_rate = True
    fitted = True
    max_frames = 1 << 24
    iterations = staticmethod(functools.partial(effort_iterations, presets=VIDEO_EFFORTS))  # per group
    default_effort = "medium"

    def __init__(self, embed=4, blocks=(24, 16, 12)):
        super().__init__()
        self.embed, self.widths = embed, tuple(blocks)
        self.param_tables = None
        self._previous = None
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)  # the device, as for any model

    # -- coding state: the parameters' tables --------------------------------------------
    def freeze(self):
        self.param_tables = entropy.laplace_tables(2.0 ** np.array(PARAM_LOG2), tail_mass=1e-6)

    def frozen_state(self) -> dict:
        return self.param_tables.state_dict("frozen.param_tables.")

    def load_frozen(self, state: dict):
        self.param_tables = entropy.CDFTables.from_state_dict(state, "frozen.param_tables.", "laplace")
        if self.param_tables.num_rows != len(PARAM_LOG2):
            raise ValueError("inr-video tables have the wrong number of rows")

    # -- header and sections ---------------------------------------------------------------
    def header_for(self, width: int, height: int) -> bytes:
        return HEADER.pack(width, height, VERSION, self.embed, len(self.widths)) + bytes(self.widths)

    def parse_header(self, header: bytes):
        """(width, height) of a header (checked; the architecture is the stream's, read by the
        decoder from the header each time: the model object is shared and never changes)."""
        W, H, _, _ = parse(header)
        return W, H

    @staticmethod
    def decoder_bytes_per_pixel(header: bytes) -> int:
        """About the most memory decoding takes per pixel of a frame (float64 activations; the
        head's 3x3 convolution at full size dominates), for the medium's memory check."""
        _, _, _, widths = parse(header)
        return 8 * (11 * widths[-1] + 12)

    @staticmethod
    def describe_header(header: bytes) -> dict:
        """What ``codec info`` shows: the architecture and its multiply-accumulates per pixel."""
        W, H, c_e, widths = parse(header)
        specs = layers(c_e, widths)
        h, w = -(-H // (1 << len(widths))), -(-W // (1 << len(widths)))
        macs, n = 0, 0
        for L in specs:
            macs += h * w * 9 * L.cin * L.cout
            n += L.params
            if L.shuffle:
                h, w = 2 * h, 2 * w
        total = macs / (H * W)
        return {"architecture": {"embedding_channels": c_e, "blocks": list(widths)},
                "macs_per_pixel": {"total": total, "synthesis": total, "entropy_model": 0.0, "upsampling": 0.0},
                "parameters": n, "per": "group of frames"}

    def check_sections(self, payload, frames: int) -> list:
        """A ``network`` section (flagged key) before the first frame of each group, and one
        ``latent`` per frame in order; returns the groups' first frames."""
        keys, f = [], 0
        for s in payload.sections:
            if s.kind == "network":
                if s.flags != FLAG_KEY or s.index != f or (keys and keys[-1] == f):
                    raise PayloadError(f"a network section must be flagged key and start frame {f}, with frames "
                                       "after it")
                keys.append(f)
            elif s.kind == "latent":
                if s.flags or s.index != f or not keys:
                    raise PayloadError(f"frame {f}'s embedding is out of place")
                f += 1
            else:
                raise PayloadError(f"an INR video stream has no {s.kind} sections")
        if f != frames or not keys or keys[0] != 0:
            raise PayloadError(f"the stream codes {f} frames, its descriptor says {frames}")
        if keys and payload.sections[-1].kind == "network":
            raise PayloadError("a network section with no frames after it")
        return keys

    # -- the integer forward pass ----------------------------------------------------------
    @staticmethod
    def _grid(H, W, blocks: int):
        return -(-H // (1 << blocks)), -(-W // (1 << blocks))

    @staticmethod
    def _pixels(e, e_shift, specs, ints, H, W):
        """Exact RGB uint8 ``[N, H, W, 3]`` from integer embeddings ``[N, C_e, h, w]`` (values
        ``e / 2**e_shift``, ``e_shift <= FRAC``)."""
        a = e * float(1 << (exact.FRAC - e_shift))
        for L in specs:
            w, b, s = ints[L.name]
            a = exact.int_layer(a, w, b, s, False, False)
            if L.shuffle:
                a = F.pixel_shuffle(a, 2).clamp_min(0.0)
        px = torch.floor((a[:, :, :H, :W] * 255 + exact.ONE / 2) / exact.ONE).clamp(0, 255)
        return px.permute(0, 2, 3, 1).to(torch.uint8)

    # -- encoder -----------------------------------------------------------------------------
    def _fit(self, frames, iters, choose, seed=0, progress=None, init=None):
        """Fitting of one group (``frames`` ``[N, 3, H, W]`` in [0, 1]) -> (embeddings, weights, steps):
        float for the first :data:`QAT_FRACTION` of the epochs left, then ``choose(embeddings,
        weights) -> steps`` picks the quantisation steps and the rest of the epochs fit through
        those steps (rounding with a straight-through gradient: quantisation-aware); ``init``:
        the previous group's float weights to start from (as NIRVANA does)."""
        N, _, H, W = frames.shape
        h, w = self._grid(H, W, len(self.widths))
        specs = layers(self.embed, self.widths)
        dev = frames.device
        fq = lambda t, s: t + (torch.round(t * (1 << s)) / (1 << s) - t).detach()
        steps = None  # (embedding shift, {layer: shift}) once chosen
        n_float = max(1, round(iters * (1 - QAT_FRACTION)))
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            emb = nn.Parameter(torch.randn(N, self.embed, h, w, device=dev) * 0.5)
            ws = nn.ParameterList()
            for L in specs:
                w0 = torch.randn(L.cout, L.cin, 3, 3, device=dev) / math.sqrt(9 * L.cin / 2)
                b0 = torch.zeros(L.cout, device=dev)
                if init is not None:
                    w0, b0 = (t.clone().to(dev) for t in init[L.name])
                ws.append(nn.Parameter(w0))
                ws.append(nn.Parameter(b0))
            weights = lambda: {L.name: (ws[2 * j].detach(), ws[2 * j + 1].detach()) for j, L in enumerate(specs)}
            opt = torch.optim.Adam([emb, *ws], lr=LR)
            total = iters * N  # an iteration is an epoch: one step per frame, frames in a shuffled order
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * i / total)))
            for i in range(iters):
                if i == n_float:
                    steps = choose(emb.detach(), weights())
                err = 0.0
                for t in torch.randperm(N).tolist():
                    a = emb[t:t + 1] if steps is None else fq(emb[t:t + 1], steps[0])
                    for j, L in enumerate(specs):
                        wj, bj = ws[2 * j], ws[2 * j + 1]
                        if steps is not None:
                            wj, bj = fq(wj, steps[1][L.name]), fq(bj, steps[1][L.name])
                        a = exact.float_layer(a, wj, bj, False, False)
                        if L.shuffle:
                            a = F.relu(F.pixel_shuffle(a, 2))
                    loss = F.mse_loss(a[:, :, :H, :W], frames[t:t + 1])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    err += float(loss.detach()) / N
                if progress is not None:
                    progress(i + 1, iters, float(-10 * math.log10(max(err, 1e-10))))
            if steps is None:
                steps = choose(emb.detach(), weights())
        return emb.detach(), weights(), steps

    def _rows_bits(self, v):
        costs = [entropy.ideal_bits(v, torch.full_like(v, r), self.param_tables) for r in range(len(PARAM_LOG2))]
        r = int(np.argmin(costs))
        return r, costs[r]

    def _code_group(self, frames, q, iters, progress=None):
        """(sections, decoded frames uint8 ``[N, H, W, 3]``) of one group."""
        N, _, H, W = frames.shape
        specs = layers(self.embed, self.widths)
        lam, px = lam_of(q), N * H * W
        target = torch.round(frames.double().cpu() * 255).permute(0, 2, 3, 1)
        quant = lambda t, s: torch.round(t.double().cpu() * (1 << s)).clamp(-exact.W_MAX + 1, exact.W_MAX - 1)
        embed = lambda emb, e_s: torch.round(emb.double().cpu() * (1 << e_s)).clamp(-exact.LAT_MAX, exact.LAT_MAX)

        def cost(emb, e_s, ints):
            e = embed(emb, e_s)
            mse = float(((self._pixels(e, e_s, specs, ints, H, W).double() - target) ** 2).mean()) / 255 ** 2
            bits = self._rows_bits(e.reshape(-1).to(torch.int64))[1]
            for w, b, _ in ints.values():
                bits += self._rows_bits(torch.cat([w.reshape(-1), b]).to(torch.int64))[1]
            return bits / px + lam * 255 ** 2 * mse

        def choose(emb, weights):
            """The steps of lowest rate-distortion cost: one for every layer and one for the
            embeddings, then each layer's own (+-1)."""
            best = None
            for s in SHIFTS:
                ints = {L.name: (quant(weights[L.name][0], s), quant(weights[L.name][1], s), s) for L in specs}
                for e_s in sorted({min(exact.FRAC, max(0, s - d)) for d in (6, 4, 2)}):
                    c = cost(emb, e_s, ints)
                    if best is None or c < best[0]:
                        best = (c, e_s, ints)
            c0, e_s, ints = best
            for L in specs:
                s0 = ints[L.name][2]
                for s in (s0 - 1, s0 + 1):
                    trial = {**ints, L.name: (quant(weights[L.name][0], s), quant(weights[L.name][1], s), s)}
                    c = cost(emb, e_s, trial)
                    if c < c0:
                        c0, ints = c, trial
            return e_s, {k: v[2] for k, v in ints.items()}

        emb, weights, (e_s, shifts) = self._fit(frames, iters, choose, progress=progress, init=self._previous)
        self._previous = weights
        ints = {L.name: (quant(weights[L.name][0], shifts[L.name]), quant(weights[L.name][1], shifts[L.name]),
                         shifts[L.name]) for L in specs}
        e = embed(emb, e_s)
        head, values, rows = [], [], []
        for L in specs:
            w, b, s = ints[L.name]
            v = torch.cat([w.reshape(-1), b]).to(torch.int64)
            r, _ = self._rows_bits(v)
            head += [s, r]
            values.append(v)
            rows.append(torch.full_like(v, r))
        ev = e.reshape(N, -1).to(torch.int64)
        e_row, _ = self._rows_bits(ev.reshape(-1))
        head += [e_s, e_row]
        net = bytes(head) + entropy.encode_sequential(torch.cat(values).numpy(), torch.cat(rows).numpy(),
                                                      self.param_tables)
        secs = [Section("network", net, 0, FLAG_KEY)]
        for t in range(N):
            secs.append(Section("latent", entropy.encode_sequential(ev[t].numpy(), np.full(ev.shape[1], e_row),
                                                                    self.param_tables), t))
        return secs, self._pixels(e, e_s, specs, ints, H, W).numpy()

    def compress_frames(self, frames: Iterable, quality, gop: int = 32, effort=None, progress=None):
        """Frames -> (sections of one frame, its decoded frame) per frame; each group of ``gop``
        frames is fitted once it is complete (memory: one group)."""
        if gop < 1:
            raise ValueError("gop must be >= 1")
        iters = self.iterations(effort)
        group, first = [], 0
        self._previous = None  # each group after the first starts from the one before
        self.last_fit = {"iterations": iters, "seconds": 0.0}

        def flush():
            x = torch.stack([torch.as_tensor(np.ascontiguousarray(f)).permute(2, 0, 1) for f in group])
            x = x.to(self.anchor.device).float() / 255
            t0 = time.perf_counter()
            secs, dec = self._code_group(x, quality, iters, progress)
            self.last_fit["seconds"] += time.perf_counter() - t0
            for s in secs:
                s.index += first
            out = [(secs[:2], dec[0])] + [([secs[t + 1]], dec[t]) for t in range(1, len(group))]
            return out

        for f in frames:
            group.append(f)
            if len(group) == gop:
                yield from flush()
                first += len(group)
                group = []
        if group:
            yield from flush()

    # -- decoder ---------------------------------------------------------------------------
    def _network(self, data: bytes, c_e: int, widths, device):
        specs = layers(c_e, widths)
        n = len(specs)
        if len(data) < 2 * (n + 1):
            raise PayloadError("an INR video network section is too short")
        head = list(data[:2 * (n + 1)])
        shifts, rows = head[0::2], head[1::2]
        if max(shifts) > exact.MAX_SHIFT or shifts[n] > exact.FRAC or max(rows) >= len(PARAM_LOG2):
            raise PayloadError("INR video network: a layer's shift or row is out of range")
        counts = [L.params for L in specs]
        vals = entropy.decode_sequential(data[2 * (n + 1):], np.repeat(np.array(rows[:n]), counts), self.param_tables)
        if np.abs(vals).max(initial=0) >= exact.W_MAX:
            raise PayloadError("an INR video parameter is out of range (corrupt stream)")
        ints, pos = {}, 0
        for L, s in zip(specs, shifts):
            nw = L.cout * L.cin * 9
            ints[L.name] = (_f64(vals[pos:pos + nw], device).reshape(L.cout, L.cin, 3, 3),
                            _f64(vals[pos + nw:pos + L.params], device), s)
            pos += L.params
        return specs, ints, shifts[n], rows[n]

    @torch.no_grad()  # (a decorator: a with-block around a yield would leak no-grad to the caller)
    def decode_frames(self, payload, quality, frames: int, start: int = 0, stop=None, device="cpu"):
        """Decoded frames ``start .. stop - 1`` (RGB uint8 ``[H, W, 3]``): each needs only its group's
        network and its own embedding."""
        W, H, c_e, widths = parse(payload.header)
        self.check_sections(payload, frames)
        stop = frames if stop is None else min(stop, frames)
        h, w = self._grid(H, W, len(widths))
        section, net = None, None
        for s in payload.sections:
            if s.kind == "network":
                section, net = s, None
                continue
            if not start <= s.index < stop:
                continue
            if net is None:
                net = self._network(section.data, c_e, widths, device)
            specs, ints, e_shift, e_row = net
            e = entropy.decode_sequential(s.data, np.full(c_e * h * w, e_row), self.param_tables)
            if np.abs(e).max(initial=0) > exact.LAT_MAX:
                raise PayloadError("an INR video embedding is out of range (corrupt stream)")
            e = _f64(e, device).reshape(1, c_e, h, w)
            yield self._pixels(e, e_shift, specs, ints, H, W)[0].cpu().numpy()
