"""``inr-image``: a Cool-chic / C3-style codec that fits a small network to each picture.

Encoding *is* fitting (:mod:`codec.models.inr.fit`): multi-resolution latent grids, a tiny
synthesis network and an autoregressive entropy model over the latents are optimised for
the one picture; then the networks' weights are quantised (a power-of-two step per network,
the one with the lowest rate-distortion cost) and everything is entropy-coded:

- section ``network``: every layer's integer weights and biases, in :func:`~codec.models.inr.arch.layers`
  order, one sequential rANS stream (:mod:`codec.entropy.sequential`), each layer's values with
  the zero-mean Laplace row the encoder picked for it (the row is in the header);
- section ``latent``: the rounded latents, level 0 (finest) first, each grid in wavefront
  order (:func:`~codec.models.inr.exact.wavefronts`), each value minus its rounded predicted
  mean, with the table row of its predicted diversity: one sequential rANS stream.

The stream holds all the bits: no weights file is needed to decode.  The model's only stored
state is its two table sets (built once, shipped in ``models/weights/inr-image.safetensors``).

**Exactness.**  The decoder runs the autoregressive model, the upsampling and the synthesis
in the integer arithmetic of :mod:`codec.models.inr.exact`, so every device decodes the same
pixels; the encoder measures its result with the same code.
"""
from __future__ import annotations

import functools
import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn as nn

from codec import entropy
from codec.models.inr import exact
from codec.models.inr.arch import (Dims, grid_sizes, layers, macs_per_pixel, max_levels, pack_header,
                                   parse_header)
from codec.models.inr.fit import fit
from codec.models.payload import Payload, PayloadError, Section
from codec.models.rd import effort_iterations, lam_of

#: effort presets: fitting iterations
EFFORTS = {"fast": 300, "medium": 1000, "slow": 4000, "placebo": 20000}
DEFAULT_EFFORT = "medium"
SHIFTS = range(5, 14)  # the weight steps 2**-s the encoder tries, per network
PARAM_LOG2 = tuple(r / 2 for r in range(19))  # parameter rows: Laplace diversities 2**(r / 2), 1 .. 512


def _f64(a, device="cpu"):
    return torch.as_tensor(a, dtype=torch.float64, device=device)


class InrImageModel(nn.Module):
    """See the module docstring.  ``compress(x, quality, effort=, progress=)`` fits and codes
    one picture ``[1, 3, H, W]`` in [0, 1]; ``decompress(payload)`` decodes it exactly."""

    modality = "image"
    variable_rate = True
    fitted = True  # encoding fits the model to the item; no trained weights are involved
    section_kinds = ("network", "latent")

    iterations = staticmethod(functools.partial(effort_iterations, presets=EFFORTS, default=DEFAULT_EFFORT))
    default_effort = DEFAULT_EFFORT

    def __init__(self, **dims):
        super().__init__()
        self.dims = Dims(**dims).check()
        self.latent_tables = self.param_tables = None
        # no trained parameters: an empty one tells callers the model's device like any model's
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    # -- coding state (tables only) ------------------------------------------------------
    def freeze(self):
        (b_small, means), b_large = exact.scale_rows()
        self.latent_tables = entropy.concat_tables(entropy.laplace_tables(b_small, 1e-6, means=means),
                                                   entropy.laplace_tables(b_large, 1e-6), family="laplace")
        self.param_tables = entropy.laplace_tables(2.0 ** np.array(PARAM_LOG2), tail_mass=1e-6)

    def frozen_state(self) -> dict:
        if self.latent_tables is None:
            raise RuntimeError("call freeze() before exporting")
        return {**self.latent_tables.state_dict("frozen.latent_tables."),
                **self.param_tables.state_dict("frozen.param_tables.")}

    def load_frozen(self, state: dict):
        self.latent_tables = entropy.CDFTables.from_state_dict(state, "frozen.latent_tables.", "laplace")
        self.param_tables = entropy.CDFTables.from_state_dict(state, "frozen.param_tables.", "laplace")
        if self.latent_tables.num_rows != exact.ROWS or self.param_tables.num_rows != len(PARAM_LOG2):
            raise ValueError("inr-image tables have the wrong number of rows")

    # -- the integer decoder's pieces ----------------------------------------------------
    @staticmethod
    def _synthesize(grids, H, W, specs, ints, device):
        """Exact pixels (uint8 ``[3, H, W]``) from integer latent grids and integer layers."""
        a = exact.features([_f64(g, device) * exact.ONE for g in grids], exact=True)
        x = a[0].flatten(1)
        for L in specs:
            if L.group == "syn" and L.k == 1:
                w, b, s = ints[L.name]
                x = exact.int_dense(x, w, b, s, L.relu)
        a = x.reshape(1, -1, H, W)
        for L in specs:
            if L.group == "syn" and L.k > 1:
                w, b, s = ints[L.name]
                a = exact.int_layer(a, w, b, s, L.relu, L.residual)
        px = torch.floor((a[0] * 255 + exact.ONE / 2) / exact.ONE).clamp(0, 255)
        return px.to(torch.uint8)

    @staticmethod
    def _arm(ctx, specs, ints):
        """Rows and rounded means for contexts ``[n_ctx, n]`` (latent values)."""
        a = ctx * exact.ONE
        for L in specs:
            if L.group == "arm":
                w, b, s = ints[L.name]
                a = exact.int_dense(a, w, b, s, L.relu)
        return exact.rows_and_means(a)

    def _latent_symbols(self, grid, specs, ints):
        """(values - means, rows) of one integer grid in decoding order (the encoder's side)."""
        h, w = grid.shape
        ctx = exact.context(grid).reshape(len(exact.CONTEXT), -1)
        rows, mu = self._arm(ctx, specs, ints)
        o = exact.order(h, w)
        return (grid.reshape(-1).to(torch.int64) - mu)[o], rows[o]

    # -- encoder --------------------------------------------------------------------------
    @staticmethod
    def _quantise(fitted, L, shift):
        w, b = fitted.weights[L.name]
        q = lambda t: torch.round(t.double().cpu() * (1 << shift)).clamp(-exact.W_MAX + 1, exact.W_MAX - 1)
        return q(w), q(b), shift

    def _search_steps(self, fitted, group, cost):
        """Each layer's weight step ``2**-shift`` for one network (``group``): the best shift of
        :data:`SHIFTS` for all its layers, then each layer's own, +-1 and +-2 from there, kept
        when ``cost(ints)`` falls."""
        best = None
        for s in SHIFTS:
            ints = {L.name: self._quantise(fitted, L, s) for L in group}
            c = cost(ints)
            if best is None or c < best[0]:
                best = (c, ints)
        c0, ints = best
        for L in group:
            s0 = ints[L.name][2]
            for s in (s0 - 1, s0 + 1, s0 - 2, s0 + 2):
                if not 0 <= s <= exact.MAX_SHIFT:
                    continue
                trial = {**ints, L.name: self._quantise(fitted, L, s)}
                c = cost(trial)
                if c < c0:
                    c0, ints = c, trial
        return ints

    def _param_rows_and_bits(self, ints, specs):
        """Per layer: the cheapest parameter row and its bits."""
        rows, bits = {}, 0.0
        for L in specs:
            if L.name not in ints:
                continue
            w, b, _ = ints[L.name]
            v = torch.cat([w.reshape(-1), b]).to(torch.int64)
            costs = [entropy.ideal_bits(v, torch.full_like(v, r), self.param_tables) for r in range(len(PARAM_LOG2))]
            r = int(np.argmin(costs))
            rows[L.name], bits = r, bits + costs[r]
        return rows, bits

    @torch.no_grad()
    def compress(self, x, quality=None, effort=None, progress=None) -> Payload:
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"compress takes one picture [1, 3, H, W], got {tuple(x.shape)}")
        if quality is None:
            raise ValueError("a variable-rate model needs a quality")
        iters = self.iterations(effort)
        H, W = x.shape[-2:]
        d = replace(self.dims, levels=min(self.dims.levels, max_levels(H, W)))  # a tiny picture: fewer levels
        lam = lam_of(quality)
        with torch.enable_grad():
            fitted = fit(x.float(), lam, d, iters, progress)
        specs = layers(d)
        grids = [torch.round(y.double().cpu()).clamp(-exact.LAT_MAX, exact.LAT_MAX) for y in fitted.latents]
        target = torch.round(x[0].double().cpu() * 255)
        px = H * W

        def syn_cost(ints):  # distortion + the synthesis parameters' bits, per pixel
            mse = float(((self._synthesize(grids, H, W, specs, ints, "cpu").double() - target) ** 2).mean()) / 255 ** 2
            return self._param_rows_and_bits(ints, specs)[1] / px + lam * 255 ** 2 * mse

        def arm_cost(ints):  # the latents' bits + the entropy model's parameters' bits, per pixel
            bits = self._param_rows_and_bits(ints, specs)[1]
            for g in grids:
                v, r = self._latent_symbols(g, specs, ints)
                bits += entropy.ideal_bits(v, r, self.latent_tables)
            return bits / px

        ints = {}
        for group, cost in (("syn", syn_cost), ("arm", arm_cost)):
            ints.update(self._search_steps(fitted, [L for L in specs if L.group == group], cost))
        rows, _ = self._param_rows_and_bits(ints, specs)

        values, prow = [], []
        for L in specs:
            w, b, _ = ints[L.name]
            v = torch.cat([w.reshape(-1), b]).to(torch.int64)
            values.append(v)
            prow.append(torch.full_like(v, rows[L.name]))
        net = entropy.encode_sequential(torch.cat(values).numpy(), torch.cat(prow).numpy(), self.param_tables)
        sym, lrows = zip(*(self._latent_symbols(g, specs, ints) for g in grids))
        lat = entropy.encode_sequential(torch.cat(sym).numpy(), torch.cat(lrows).numpy(), self.latent_tables)
        header = pack_header(H, W, d, [ints[L.name][2] for L in specs], [rows[L.name] for L in specs])
        # what the encoder knows of its result: fitting time, and the decoder's pixels (the same integers)
        self.last_fit = {"iterations": fitted.iterations, "seconds": fitted.seconds,
                         "pixels": self._synthesize(grids, H, W, specs, ints, "cpu")}
        return Payload([Section("network", net), Section("latent", lat)], header)

    # -- decoder --------------------------------------------------------------------------
    def check_header(self, header: bytes, height: int, width: int):
        H, W, *_ = parse_header(header, len(PARAM_LOG2))
        if (H, W) != (height, width):
            raise PayloadError(f"the INR header is for a {W}x{H} picture, the stream's is {width}x{height}")

    @staticmethod
    def decoder_bytes_per_pixel(header: bytes) -> int:
        """About the most memory decoding takes per pixel (float64 planes, the widest layer's
        input and output, the 3x3 layers' unfolded input), for the medium's memory check."""
        _, _, d, *_ = parse_header(header, len(PARAM_LOG2))
        return 8 * (2 * d.levels + 3 * max(d.syn_hidden, 3) + 27)

    @staticmethod
    def describe_header(header: bytes) -> dict:
        """What ``codec info`` shows of a stream's model header: the architecture and its MACs per pixel."""
        H, W, d, *_ = parse_header(header, len(PARAM_LOG2))
        return {"architecture": d.__dict__, "macs_per_pixel": macs_per_pixel(H, W, d),
                "parameters": sum(L.params for L in layers(d))}

    @torch.no_grad()
    def decompress(self, payload: Payload, quality=None, device="cpu"):
        """:class:`Payload` -> the picture ``[1, 3, H, W]`` (the 8-bit values / 255)."""
        H, W, d, shifts, prow = parse_header(payload.header, len(PARAM_LOG2))
        net_data, lat_data = payload.expect(self.section_kinds, "model 'inr-image'")
        specs = layers(d)
        counts = [L.params for L in specs]
        rows = np.repeat(np.array(prow, dtype=np.int64), counts)
        vals = entropy.decode_sequential(net_data, rows, self.param_tables)
        if np.abs(vals).max(initial=0) >= exact.W_MAX:
            raise PayloadError("an INR layer's parameter is out of range (corrupt stream)")
        ints, pos = {}, 0
        for L, s in zip(specs, shifts):
            nw = L.cout * L.cin * L.k * L.k
            w = _f64(vals[pos:pos + nw], device).reshape(L.cout, L.cin, L.k, L.k)
            b = _f64(vals[pos + nw:pos + L.params], device)
            ints[L.name] = (w, b, s)
            pos += L.params
        sizes = grid_sizes(H, W, d.levels)
        dec = entropy.SequentialDecoder(lat_data, self.latent_tables, sum(h * w for h, w in sizes))
        grids = []
        for h, w in sizes:
            g = torch.zeros(h + exact.PAD_TOP, w + exact.PAD_LEFT + exact.PAD_RIGHT, dtype=torch.float64,
                            device=device)
            for i, j in exact.wavefronts(h, w):
                ctx = torch.stack([g[exact.PAD_TOP + dy + i, exact.PAD_LEFT + dx + j] for dy, dx in exact.CONTEXT])
                r, mu = self._arm(ctx, specs, ints)
                v = torch.as_tensor(dec.decode(r.cpu().numpy()), device=device) + mu
                if v.numel() and int(v.abs().max()) > exact.LAT_MAX:
                    raise PayloadError("an INR latent is out of range (corrupt stream)")
                g[exact.PAD_TOP + i, exact.PAD_LEFT + j] = v.double()
            grids.append(g[exact.PAD_TOP:, exact.PAD_LEFT:exact.PAD_LEFT + w])
        dec.finish()
        return (self._synthesize(grids, H, W, specs, ints, device).float() / 255)[None]
