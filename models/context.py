"""A context model over the latent: uneven channel slices with a checkerboard inside each.

After ELIC (He et al. 2022: unevenly grouped channel slices, each conditioned on the
slices decoded before it, Minnen & Singh 2020) and the checkerboard context (He et al.
2021): slice ``k`` of the latent (:data:`SLICES` channels, 8, 8, 16, 24 and 40 of 96) is
coded in two passes, its *anchors* (positions with ``i + j`` even) and then the other
positions, whose spatial context is the slice's decoded anchors.  Ten passes in all,
each needing only what the passes before it decoded.

Per slice, three small networks give the Gaussian's (scale, mean):

- ``channel[k]`` (slices after the first): two 5x5 convolutions over the decoded slices
  ``0 .. k-1``;
- ``spatial[k]``: a 5x5 convolution over the slice's anchors (zeros elsewhere; at the
  anchor pass it sees only zeros);
- ``aggregate[k]``: three 1x1 convolutions over (hyperprior output, channel context,
  spatial context) giving a *correction* added to the hyperprior's own (scale, mean) of
  the slice.  Its last layer starts at zero, so a model started from mean-scale
  hyperprior weights starts as exactly that model.

**Exact on every device.**  At coding time the hyper-synthesis and all three networks run
as frozen :class:`~codec.models.integer.IntegerNet` s on integers (decoded latents carry
8 fractional bits exactly: a symbol plus a mean that is an integer over ``2**8``), so
table rows and means are the same integers on a CPU and a GPU.  Training runs the float
networks; a straight-through rounding gives the context networks the values the
decoder will have.

**One stream.**  The hyper-latent and all ten passes go into one sequential rANS stream
(``entropy/FORMAT.md`` section 8) over the hyper-latent's factorized tables and the
Gaussian tables joined: no per-pass header or final lane states (a lane stream costs at
least 184 bytes), and the decoder decodes it a pass at a time.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from codec.models.layers import conv

from codec import entropy
from codec.models.integer import ACT_BITS, IntegerNet
from codec.models.latent_codecs import HyperpriorLatentCodec, NotFrozenError, ste_round

#: channels per slice in twelfths of M, coded in this order (uneven, as ELIC's: its energy
#: compaction puts the most informative channels first); 8, 8, 16, 24, 40 of M = 96
SLICES = (1, 1, 2, 3, 5)
CHANNEL_WIDTH = 64  # channel-context features
SPATIAL_WIDTH = 48  # spatial-context features
HIDDEN = 128  # aggregation width

ONE = float(1 << ACT_BITS)


def anchors(h: int, w: int, device) -> torch.Tensor:
    """Checkerboard anchor mask ``[h, w]``: True where ``i + j`` is even (decoded first)."""
    i = torch.arange(h, device=device).view(-1, 1)
    j = torch.arange(w, device=device).view(1, -1)
    return (i + j) % 2 == 0


class ContextLatentCodec(HyperpriorLatentCodec):
    """The mean-scale hyperprior (``h_a``, ``h_s``, the factorized ``z``; state names as in
    :class:`HyperpriorLatentCodec`, so mean-scale weights load into it) with a channel and
    checkerboard context model over ``y``.  Writes one ``latent`` section."""

    kinds = ("latent",)
    int_store = torch.int16  # (integer weights fit in 16 bits: the file is 3.5 MB smaller than with int32)

    def __init__(self, h_a: nn.Module, h_s: nn.Sequential, z_channels: int, M: int):
        super().__init__(h_a, h_s, z_channels, mean=True, abs_input=False)
        if M % sum(SLICES):
            raise ValueError(f"a context model needs M divisible by {sum(SLICES)}, not {M}")
        slices = [f * M // sum(SLICES) for f in SLICES]
        self.M, self.slices = M, tuple(slices)
        self.bounds = []
        c = 0
        for s in slices:
            self.bounds.append((c, c + s))
            c += s
        self.channel = nn.ModuleList(
            nn.Sequential(conv(c0, CHANNEL_WIDTH, kernel_size=5, stride=1), nn.ReLU(inplace=True),
                          conv(CHANNEL_WIDTH, CHANNEL_WIDTH, kernel_size=5, stride=1), nn.ReLU(inplace=True))
            for c0, _ in self.bounds[1:])
        self.spatial = nn.ModuleList(
            nn.Sequential(conv(c1 - c0, SPATIAL_WIDTH, kernel_size=5, stride=1), nn.ReLU(inplace=True))
            for c0, c1 in self.bounds)
        self.aggregate = nn.ModuleList()
        for k, (c0, c1) in enumerate(self.bounds):
            n_in = 2 * M + (CHANNEL_WIDTH if k else 0) + SPATIAL_WIDTH
            agg = nn.Sequential(conv(n_in, HIDDEN, kernel_size=1, stride=1), nn.ReLU(inplace=True),
                                conv(HIDDEN, HIDDEN, kernel_size=1, stride=1), nn.ReLU(inplace=True),
                                conv(HIDDEN, 2 * (c1 - c0), kernel_size=1, stride=1))
            nn.init.zeros_(agg[-1].weight)
            nn.init.zeros_(agg[-1].bias)
            self.aggregate.append(agg)
        self.ints: dict | None = None  # frozen integer copies of the context networks
        self.joint: entropy.CDFTables | None = None  # z's tables, then the Gaussian rows

    # -- the parameters of one pass, float (training) or integer (coding) -------------------
    def _nets(self, k: int, exact: bool):
        if exact:
            if self.ints is None:
                raise NotFrozenError("call freeze() (or load frozen weights) before coding")
            return (self.ints["channel"][k - 1] if k else None), self.ints["spatial"][k], self.ints["aggregate"][k]
        return (self.channel[k - 1] if k else None), self.spatial[k], self.aggregate[k]

    @staticmethod
    def _run(net, x, exact: bool):
        return net(x, scaled=True) if exact else net(x)

    def _pass_params(self, k, hyper, ch_ctx, anchor_vals, exact: bool):
        """(scale, mean) of slice ``k`` (``[B, C_k, h, w]`` each) from the hyperprior output
        ``hyper`` ``[B, 2M, h, w]``, the channel context (None for the first slice) and the
        slice's decoded anchors (zeros elsewhere, all zeros at the anchor pass).  Integer
        mode: every tensor in units of ``2**-8`` (integers in float64)."""
        c0, c1 = self.bounds[k]
        _, spatial, aggregate = self._nets(k, exact)
        sp = self._run(spatial, anchor_vals, exact)
        feats = [hyper] + ([ch_ctx] if ch_ctx is not None else []) + [sp]
        delta = self._run(aggregate, torch.cat(feats, 1), exact)
        C = c1 - c0
        scale = hyper[:, c0:c1] + delta[:, :C]
        mean = hyper[:, self.M + c0:self.M + c1] + delta[:, C:]
        return scale, mean

    def _channel_ctx(self, k, decoded: list, exact: bool):
        if k == 0:
            return None
        net, _, _ = self._nets(k, exact)
        return self._run(net, torch.cat(decoded, 1), exact)

    # -- training ---------------------------------------------------------------------------
    def forward(self, y):
        z = self.h_a(y)
        zo = self.z(z)
        hyper = self.h_s(zo["y_hat"])
        h, w = y.shape[-2:]
        mask = anchors(h, w, y.device)
        decoded, outs, liks = [], [], []
        for k, (c0, c1) in enumerate(self.bounds):
            yk = y[:, c0:c1]
            ctx = self._channel_ctx(k, decoded, exact=False)
            s_a, m_a = self._pass_params(k, hyper, ctx, torch.zeros_like(yk), exact=False)
            anchor_hat = torch.where(mask, ste_round(yk - m_a) + m_a, torch.zeros_like(yk))
            s_n, m_n = self._pass_params(k, hyper, ctx, anchor_hat, exact=False)
            scale, mean = torch.where(mask, s_a, s_n), torch.where(mask, m_a, m_n)
            y_out, lik = self.gaussian_conditional(yk, scale, mean)  # (noisy in training, rounded in eval)
            decoded.append(ste_round(yk - mean) + mean)
            outs.append(y_out)
            liks.append(lik)
        # the synthesis is trained on noisy latents, as the transforms it starts from were (a
        # straight-through rounded input at lr 1e-4 lost 0.1-0.3 dB on the validation pictures
        # in 6 000 steps); the context networks see the rounded values the decoder will have
        return {"y_hat": torch.cat(outs, 1), "y_rounded": torch.cat(decoded, 1),
                "likelihoods": {"y": torch.cat(liks, 1), "z": zo["likelihoods"]["y"]}}

    # -- coding state -----------------------------------------------------------------------
    def _groups(self):
        return {"channel": self.channel, "spatial": self.spatial, "aggregate": self.aggregate}

    def freeze(self):
        super().freeze()
        self.ints = {g: [IntegerNet.freeze(n, store=self.int_store) for n in mods] for g, mods in self._groups().items()}
        self._join()

    def _join(self):
        self.joint = entropy.concat_tables(self.z._tables(), self.tables)

    def frozen_state(self, prefix):
        out = super().frozen_state(prefix)
        if self.ints is None:
            raise NotFrozenError("call freeze() before exporting")
        for g, nets in self.ints.items():
            for i, net in enumerate(nets):
                out.update(net.state(prefix + f"{g}_int.{i}."))
        return out

    def load_frozen(self, state, prefix):
        super().load_frozen(state, prefix)
        self.ints = {g: [IntegerNet.from_state(m, state, prefix + f"{g}_int.{i}.") for i, m in enumerate(mods)]
                     for g, mods in self._groups().items()}
        self._join()

    # -- coding -----------------------------------------------------------------------------

    def compress(self, y, exact: bool = True):
        """``y`` -> ([stream], y_hat).  ``exact=False`` runs the float networks instead of the
        integer ones (levels from the float scales): the rate the float model would have,
        for measuring what exactness costs (:mod:`codec.tools.index_path_cost`); such a
        stream does not decode."""
        if self.joint is None:
            raise NotFrozenError("call freeze() (or load frozen weights) before coding")
        z = self.h_a(y)
        z_sym = torch.round(z)
        if exact:
            hyper, unit, dtype = self.hyper_int(z_sym.to(y.device)), ONE, torch.float64
        else:
            hyper, unit, dtype = self.h_s(z_sym), 1.0, torch.float32
        _, _, h, w = y.shape
        mask = anchors(h, w, y.device)
        yd = y.to(dtype)
        values = [z_sym.reshape(-1).long()]
        rows = [self.z._index(z_sym.shape, z_sym.device).reshape(-1).long()]
        n_z = self.z._tables().num_rows
        decoded = []  # decoded slices (exact: in units of 2**-8)
        for k, (c0, c1) in enumerate(self.bounds):
            yk = yd[:, c0:c1]
            ctx = self._channel_ctx(k, decoded, exact)
            s_a, m_a = self._pass_params(k, hyper, ctx, torch.zeros_like(yk), exact)
            sym_a = torch.round(yk - m_a / unit)
            anchor_dec = torch.where(mask, sym_a * unit + m_a, torch.zeros_like(yk))
            s_n, m_n = self._pass_params(k, hyper, ctx, anchor_dec, exact)
            sym_n = torch.round(yk - m_n / unit)
            for sym, s, keep in ((sym_a, s_a, mask), (sym_n, s_n, ~mask)):
                levels = self.levels_of(s) if exact else torch.bucketize(s, self.scale_table[:-1].to(s), right=False)
                values.append(sym[:, :, keep].reshape(-1).long())
                rows.append(levels[:, :, keep].reshape(-1).long() + n_z)
            decoded.append(torch.where(mask, anchor_dec, sym_n * unit + m_n))
        data = entropy.encode_sequential(torch.cat(values).cpu().numpy(), torch.cat(rows).cpu().numpy(), self.joint)
        y_hat = torch.cat(decoded, 1) / unit
        return [data], y_hat.float()

    def decompress(self, streams, y_shape, device="cpu"):
        if self.joint is None:
            raise NotFrozenError("call freeze() (or load frozen weights) before coding")
        if len(streams) != 1:
            raise ValueError("a context-model latent is one stream")
        B, C, h, w = y_shape
        if B != 1 or C != self.M:
            raise ValueError(f"latent shape {tuple(y_shape)} does not fit the model (1, {self.M}, h, w)")
        z_shape = (1, self.z.channels, -(-h // 4), -(-w // 4))
        mask = anchors(h, w, device)
        n_anchor = int(mask.sum())
        n = (self.z.channels * z_shape[2] * z_shape[3]) + C * h * w
        dec = entropy.SequentialDecoder(streams[0], self.joint, n=n)
        z_rows = self.z._index(z_shape, "cpu").reshape(-1).numpy()
        z_sym = torch.from_numpy(dec.decode(z_rows).astype("float64")).reshape(z_shape).to(device)
        hyper = self.hyper_int(z_sym)
        if tuple(hyper.shape[-2:]) != (h, w):
            raise ValueError(f"hyper-synthesis gives {tuple(hyper.shape[-2:])}, expected {(h, w)}")
        n_z = self.z._tables().num_rows
        decoded = []
        for k, (c0, c1) in enumerate(self.bounds):
            Ck = c1 - c0
            ctx = self._channel_ctx(k, decoded, exact=True)
            slice_int = torch.zeros((1, Ck, h, w), dtype=torch.float64, device=device)
            # the anchor pass sees no spatial context (zeros); the second pass, the decoded anchors
            for keep, count, seen in ((mask, n_anchor, torch.zeros_like(slice_int)),
                                      (~mask, h * w - n_anchor, slice_int)):
                s, m = self._pass_params(k, hyper, ctx, seen, exact=True)
                r = (self.levels_of(s)[:, :, keep].reshape(-1).long() + n_z).cpu().numpy()
                sym = torch.from_numpy(dec.decode(r).astype("float64")).to(device).view(1, Ck, count)
                slice_int[:, :, keep] = sym * ONE + m[:, :, keep]
            decoded.append(slice_int)
        dec.finish()
        return (torch.cat(decoded, 1) / ONE).float()
