"""``vq-f16``: a VQ tokenizer codec for very low rates (about 0.01-0.06 bpp).

A convolutional encoder maps a picture to a grid of vectors at 1/16 of its size; each
vector is replaced by the nearest entry of a codebook; a decoder maps the grid of entries
back to pixels.  The stream is the grid of entry indexes, entropy-coded with a learned
prior: an index costs what the prior says, not ``log2 K`` bits.

- **Codebook**: finite scalar quantisation (FSQ, Mentzer et al. 2023; one of the
  quantisers the VQ issue names): the encoder's 4 output channels are bounded and each
  rounded to 8 levels, so the codebook is the 8^4 = 4096 points of a grid, and no entry can
  die (a learned EMA codebook collapsed to a few entries from the first steps here).
  Straight-through gradients.
- **Variable rate** (after Mao et al., "Extreme image compression using fine-tuned
  VQGANs"): k-means of the codebook's entries, weighted by how often each was used in
  training, into smaller codebooks (:data:`SIZES`: 64, 256, 1024 and 4096 entries for
  qualities 1 to 4); the encoder picks the centre nearest to its (bounded, unrounded)
  output and the decoder decodes the centres.  One set of weights serves every quality.
- **Prior**: per quality, a categorical distribution over the codebook (the training usage
  of its entries, summed over each centre's members, plus one), built once into CDF rows by
  :meth:`VQModel.freeze` and stored with the weights.  The indexes go into one sequential
  rANS stream (``entropy/FORMAT.md`` section 8).
- **Exactness**: the decoder decodes integers (indexes) with stored integer tables and looks
  the centres up in a stored table; only the decoder network runs in float, so a stream
  decodes on any device to what ``decode_tokens`` of the same indexes gives there.
"""
from __future__ import annotations

import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from codec import entropy
from codec.models.payload import Payload, PayloadError, Section

#: codebook size per quality (1..4); the last is the full codebook
SIZES = (64, 256, 1024, 4096)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def _encoder(N: int, D: int) -> nn.Sequential:
    c = (N // 2, N * 3 // 4, N, N)
    return nn.Sequential(
        nn.Conv2d(3, c[0], 5, 2, 2), ResBlock(c[0]),
        nn.Conv2d(c[0], c[1], 5, 2, 2), ResBlock(c[1]),
        nn.Conv2d(c[1], c[2], 5, 2, 2), ResBlock(c[2]),
        nn.Conv2d(c[2], c[3], 5, 2, 2), ResBlock(c[3]), ResBlock(c[3]), nn.ReLU(),
        nn.Conv2d(c[3], D, 1))


def _decoder(N: int, D: int) -> nn.Sequential:
    c = (N, N, N * 3 // 4, N // 2)

    def up(i, o):
        return nn.ConvTranspose2d(i, o, 5, 2, 2, output_padding=1)

    return nn.Sequential(
        nn.Conv2d(D, c[0], 3, padding=1), ResBlock(c[0]), ResBlock(c[0]),
        up(c[0], c[1]), ResBlock(c[1]),
        up(c[1], c[2]), ResBlock(c[2]),
        up(c[2], c[3]), ResBlock(c[3]), nn.ReLU(),
        up(c[3], 3))


def weighted_kmeans(x: torch.Tensor, weights: torch.Tensor, k: int, iterations: int = 30) -> torch.Tensor:
    """``k`` centres of the vectors ``x`` ``[n, D]`` weighted by ``weights`` ``[n]`` (Lloyd's
    algorithm, squared Euclidean distance; deterministic: float64, started from the ``k``
    heaviest vectors; a centre left with no member keeps its place)."""
    x = x.double()
    w = weights.double().clamp_min(0) + 1e-9
    centres = x[torch.argsort(-w, stable=True)[:k]].clone()
    for _ in range(iterations):
        assign = torch.cdist(x, centres).argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x * w[:, None])
        mass = torch.zeros(k, dtype=x.dtype).index_add_(0, assign, w)
        moved = mass > 0
        centres[moved] = sums[moved] / mass[moved, None]
    return centres


class FSQ(nn.Module):
    """Finite scalar quantisation (Mentzer et al. 2023): each of ``len(levels)`` channels is
    bounded (``tanh``) and rounded to ``levels[i]`` evenly spaced values in [-1, 1]; the
    codebook is their product grid (4096 entries for ``(8, 8, 8, 8)``), every entry reachable,
    so it cannot collapse.  Straight-through gradients.  ``usage``: a moving average of each
    entry's share of the tokens (the prior and the k-means weights)."""

    def __init__(self, levels=(8, 8, 8, 8), usage_decay: float = 0.999):
        super().__init__()
        self.levels = tuple(int(v) for v in levels)
        self.D, self.K = len(self.levels), int(np.prod(self.levels))
        self.usage_decay = usage_decay
        self.register_buffer("usage", torch.full((self.K,), 1.0 / self.K))
        L = torch.tensor(self.levels, dtype=torch.float32)
        self.register_buffer("half_width", (L - 1) / 2, persistent=False)
        radix = torch.cumprod(torch.tensor((1,) + self.levels[:-1]), 0)
        self.register_buffer("radix", radix, persistent=False)

    def bound(self, z):
        """``z`` ``[B, D, h, w]`` -> values in (-1, 1) (before rounding)."""
        return torch.tanh(z)

    def forward(self, z):
        """-> (quantised ``[B, D, h, w]`` in [-1, 1], straight-through; indexes ``[B, h, w]``;
        a zero commitment loss; statistics ``{"perplexity", "utilisation"}`` of the batch)."""
        half = self.half_width.view(1, -1, 1, 1)
        u = self.bound(z) * half  # in (-half, half)
        q = torch.round(u + half) - half  # (integers or half-integers: levels[i] values)
        digits = (q + half).round().long()  # 0 .. levels[i] - 1
        idx = (digits * self.radix.view(1, -1, 1, 1)).sum(1)
        count = torch.bincount(idx.reshape(-1), minlength=self.K).float()
        if self.training:
            with torch.no_grad():
                if torch.distributed.is_available() and torch.distributed.is_initialized():
                    torch.distributed.all_reduce(count)
                self.usage.mul_(self.usage_decay).add_(count / count.sum().clamp_min(1), alpha=1 - self.usage_decay)
        p = count / count.sum()
        stats = {"perplexity": torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()).detach(),
                 "utilisation": (count > 0).float().mean().detach()}
        q_st = (u + (q - u).detach()) / half
        return q_st, idx, torch.zeros((), device=z.device), stats

    def grid(self) -> torch.Tensor:
        """Every codebook entry ``[K, D]`` (row ``i``: the entry of index ``i``)."""
        i = torch.arange(self.K)
        digits = torch.stack([(i // int(r)) % L for r, L in zip(self.radix.tolist(), self.levels)], 1)
        return (digits.float() - self.half_width) / self.half_width


class VQModel(nn.Module):
    """See the module docstring.  ``compress(x, quality)`` codes one picture ``[1, 3, H, W]``
    in [0, 1] at quality 1..4 (a codebook of :data:`SIZES`); ``decompress(payload, quality)``
    returns the padded reconstruction ``[1, 3, 16 h, 16 w]``."""

    modality = "image"
    variable_rate = False  # whole quality levels (the registry's QualitySpec(shared=True)), one set of weights
    multiple = 16
    section_kinds = ("tokens",)
    training_task = "vq"  # codec.training.tasks.vq
    _HEADER = struct.Struct("<HH")  # token grid: rows, columns

    def __init__(self, N: int = 64, levels: int = 8, D: int = 4):
        super().__init__()
        if levels ** D != SIZES[-1]:
            raise ValueError(f"the codebook (levels ** D) has {SIZES[-1]} entries, the largest of the quality "
                             f"sizes, not {levels} ** {D}")
        self.N, self.D, self.K = N, D, levels ** D
        self.encoder = _encoder(N, D)
        self.quantizer = FSQ((levels,) * D)
        self.decoder = _decoder(N, D)
        self.centres: list | None = None  # per quality: [K_q, D] float32 code vectors
        self.tables: entropy.CDFTables | None = None  # one categorical row per quality

    # -- training -----------------------------------------------------------------------
    def encode_vectors(self, x):
        return self.encoder(x)

    def decode_tokens(self, vectors):
        """The decoder on a grid of code vectors ``[B, D, h, w]``."""
        return self.decoder(vectors)

    def forward(self, x):
        q, idx, commit, stats = self.quantizer(self.encoder(x))
        return {"x_hat": self.decoder(q), "indexes": idx, "commit": commit, **stats}

    def quality_index(self, quality) -> int:
        if quality is None:
            raise ValueError("a VQ model needs a quality (1..4: codebooks of 64 to 4096 entries)")
        q = float(quality)
        if q != int(q) or not 1 <= q <= len(SIZES):
            raise ValueError(f"quality must be a whole number in 1..{len(SIZES)} (codebooks of "
                             f"{', '.join(map(str, SIZES))} entries), not {quality}")
        return int(q) - 1

    # -- coding state -------------------------------------------------------------------
    @torch.no_grad()
    def freeze(self):
        """The codebooks of every quality (k-means of the codebook, weighted by its usage) and
        their categorical priors (usage summed over each centre's members, plus a floor)."""
        grid = self.quantizer.grid().double()
        usage = self.quantizer.usage.detach().double().cpu()
        centres, probs = [], []
        for k in SIZES:
            c = grid if k == self.K else weighted_kmeans(grid, usage, k)
            assign = torch.cdist(grid, c).argmin(dim=1)
            mass = torch.zeros(k, dtype=torch.float64).index_add_(0, assign, usage)
            centres.append(c.float().contiguous())
            probs.append(mass / mass.sum() + 1.0 / (16 * k))  # (every entry codable at a bounded cost)
        self.centres = centres
        self.tables = entropy.concat_tables(*[entropy.categorical_tables(p.numpy()) for p in probs],
                                            family="categorical")

    def frozen_state(self) -> dict:
        if self.tables is None:
            raise RuntimeError("call freeze() before exporting")
        out = self.tables.state_dict("frozen.tables.")
        out.update({f"frozen.centres.{i}": c for i, c in enumerate(self.centres)})
        return out

    def load_frozen(self, state: dict):
        self.tables = entropy.CDFTables.from_state_dict(state, "frozen.tables.", family="categorical")
        centres = []
        for i, k in enumerate(SIZES):
            c = state.get(f"frozen.centres.{i}")
            if c is None or tuple(c.shape) != (k, self.D):
                raise ValueError(f"frozen state: centres {i} must be [{k}, {self.D}]")
            centres.append(c.float().contiguous())
        if self.tables.num_rows != len(SIZES) or [int(n) for n in self.tables.lengths] != list(SIZES):
            raise ValueError("frozen state: the token tables do not fit the codebook sizes")
        self.centres = centres

    def aux_loss(self):
        return torch.zeros(())

    # -- the bitstream --------------------------------------------------------------------
    def pad(self, x):
        ph, pw = (-x.shape[-2]) % self.multiple, (-x.shape[-1]) % self.multiple
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x

    def grid(self, H: int, W: int) -> tuple:
        return -(-H // self.multiple), -(-W // self.multiple)

    def header_for(self, H: int, W: int) -> bytes:
        return self._HEADER.pack(*self.grid(H, W))

    def _grid_of(self, header: bytes) -> tuple:
        if len(header) != self._HEADER.size:
            raise PayloadError(f"a VQ model's header has {self._HEADER.size} bytes, not {len(header)}")
        h, w = self._HEADER.unpack(header)
        if h < 1 or w < 1:
            raise PayloadError(f"token grid {h}x{w} is empty")
        return h, w

    def _need_frozen(self):
        if self.tables is None:
            raise RuntimeError("call freeze() (or load frozen weights) before coding")

    @torch.no_grad()
    def tokens(self, x, quality) -> torch.Tensor:
        """The indexes ``[h, w]`` (int64) of picture ``x`` ``[1, 3, H, W]`` in quality's codebook."""
        self._need_frozen()
        c = self.centres[self.quality_index(quality)].to(x.device)
        z = self.encoder(self.pad(x))
        _, D, h, w = z.shape
        u = self.quantizer.bound(z).permute(0, 2, 3, 1).reshape(-1, D)
        if c.shape[0] == self.K:  # the full grid: FSQ's own rounding (the nearest entry)
            _, idx, _, _ = self.quantizer(z)
            return idx.reshape(h, w)
        return torch.cdist(u.to(c.dtype), c).argmin(dim=1).reshape(h, w)

    def vectors(self, tokens: torch.Tensor, quality, device="cpu") -> torch.Tensor:
        """The code vectors ``[1, D, h, w]`` of ``tokens`` ``[h, w]`` in quality's codebook."""
        c = self.centres[self.quality_index(quality)].to(device)
        return c[tokens.to(device).reshape(-1)].reshape(*tokens.shape, self.D).permute(2, 0, 1)[None]

    @torch.no_grad()
    def compress(self, x, quality=None, effort=None, progress=None) -> Payload:
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"compress takes one picture [1, 3, H, W], got {tuple(x.shape)}")
        qi = self.quality_index(quality)
        tok = self.tokens(x, quality)
        sym = tok.reshape(-1).cpu().numpy().astype(np.int64)
        data = entropy.encode_sequential(sym, np.full(sym.size, qi, dtype=np.int64), self.tables)
        return Payload([Section("tokens", data)], self.header_for(*x.shape[-2:]))

    @torch.no_grad()
    def decompress(self, payload: Payload, quality=None, device="cpu"):
        self._need_frozen()
        qi = self.quality_index(quality)
        h, w = self._grid_of(payload.header)
        (data,) = payload.expect(self.section_kinds, "model 'vq'")
        sym = entropy.decode_sequential(data, np.full(h * w, qi, dtype=np.int64), self.tables)
        sym = torch.from_numpy(np.asarray(sym, dtype=np.int64))
        if sym.numel() != h * w or int(sym.min()) < 0 or int(sym.max()) >= SIZES[qi]:
            raise PayloadError("the token stream holds indexes outside the codebook (corrupt data)")
        return self.decoder(self.vectors(sym.reshape(h, w), quality, device))

    @torch.no_grad()
    def synthesize_tokens(self, tokens, quality, device="cpu"):
        """What the decoder makes of ``tokens`` ``[h, w]`` (for tests and tools)."""
        return self.decoder(self.vectors(tokens, quality, device))
