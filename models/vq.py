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
  training, into smaller codebooks (:data:`SIZES`: 64, 256, 1024 and 2048 entries for
  qualities 1 to 4); the encoder picks the centre nearest to its (bounded, unrounded)
  output and the decoder decodes the centres.  One set of weights serves every quality.
  The full grid is not shipped: a quarter of its entries are rare enough that Kodak's
  36 864 tokens never use them, and its k-means into 2048 entries decoded Kodak within
  0.03 dB of it (22.53 against 22.56 dB) for 0.2 bit a token less (9.82 against 10.02 bits
  of entropy), with 98% of its entries used against 74% (a one-off measurement with the
  shipped weights, not a script in the repository).
- **Prior**: a two-level checkerboard context over the token grid (:func:`schedule`): a
  sixteenth of the tokens (rows and columns divisible by 4) are coded with a categorical
  table; every other token is predicted by the mean of the code vectors of its four
  already-decoded neighbours, and what is coded is its **rank** among the codebook's entries
  ordered by their distance to that prediction (0: the nearest), with one of
  :data:`CLASSES` tables chosen by how much the neighbours disagree (their spread).  The
  counts are fitted on the training pictures (:meth:`VQModel.fit_prior`), built once into
  CDF rows by :meth:`VQModel.freeze` and stored with the weights.  One sequential rANS
  stream (``entropy/FORMAT.md`` section 8) per picture.
- **Exactness**: the context is integer arithmetic on stored integer points (the centres
  times :data:`SCALE`): sums, squared distances and ranks (ties go to the lower index), so
  the decoder recovers the indexes exactly on any machine, with stored integer tables, and
  looks the centres up in a stored table; only the decoder network runs in float, so a
  stream decodes on any device to what ``decode_tokens`` of the same indexes gives there.
"""
from __future__ import annotations

import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from codec import entropy
from codec.models.payload import Payload, PayloadError, Section

#: codebook size per quality (1..4): k-means of the FSQ grid (the grid itself if a size equals it)
SIZES = (64, 256, 1024, 2048)


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


# -- the token prior: a two-level checkerboard context over the token grid -------------------
#: table rows of the context classes (the prior's "spread" of the neighbours), per quality
CLASSES = 8
#: the integer scale of the code vectors the context uses (``points = round(centres * SCALE)``)
SCALE = 1024


def schedule(h: int, w: int) -> list:
    """The decoding order of a token grid ``h x w``: a list of phases, each ``(positions,
    neighbours)`` with flat positions ``[n]`` (raster order inside the phase) and, for every
    phase but the first, ``neighbours`` ``[n, 4]`` (flat positions, -1 where outside the grid).

    Phase 0 holds the tokens at rows and columns divisible by 4.  Then, for stride ``s`` = 2
    and 1: the tokens at odd multiples of ``s`` in both coordinates, each predicted from its
    four diagonal neighbours at ``(±s, ±s)``; then those at an odd multiple of ``s`` in
    exactly one coordinate (and a multiple of ``s`` in the other), from ``(±s, 0), (0, ±s)``.
    Every neighbour inside the grid is in an earlier phase."""
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    r, c = r.reshape(-1), c.reshape(-1)
    phases = [(np.flatnonzero((r % 4 == 0) & (c % 4 == 0)), None)]
    for s in (2, 1):
        on = (r % s == 0) & (c % s == 0)
        odd_r, odd_c = on & (r % (2 * s) == s), on & (c % (2 * s) == s)
        for mask, offs in ((odd_r & odd_c, ((-s, -s), (-s, s), (s, -s), (s, s))),
                           (odd_r ^ odd_c, ((-s, 0), (s, 0), (0, -s), (0, s)))):
            pos = np.flatnonzero(mask)
            nb = np.empty((pos.size, 4), dtype=np.int64)
            for j, (dr, dc) in enumerate(offs):
                rr, cc = r[pos] + dr, c[pos] + dc
                nb[:, j] = np.where((rr >= 0) & (rr < h) & (cc >= 0) & (cc < w), rr * w + cc, -1)
            phases.append((pos, nb))
    return phases


def _context(points: np.ndarray, tokens: np.ndarray, nb: np.ndarray) -> tuple:
    """The prediction of a phase's tokens from their decoded neighbours, in integers: the sum
    ``[n, D]`` of the neighbours' points, their count ``[n]`` and the spread
    ``sum_i |count * p_i - sum|^2 // count^3`` ``[n]`` (int64)."""
    valid = nb >= 0
    p = points[tokens[np.where(valid, nb, 0)]] * valid[..., None]  # [n, 4, D]
    cnt = valid.sum(1)
    tot = p.sum(1)
    dev = (cnt[:, None, None] * p - tot[:, None, :]) * valid[..., None]
    spread = (dev * dev).sum((1, 2)) // cnt ** 3
    return tot, cnt, spread


def _keys(points: np.ndarray, tot: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """``[n, K]`` sort keys of every codebook entry for each prediction: squared distance of
    ``count * point`` to the neighbours' sum, then the entry's index (unique integers)."""
    K = points.shape[0]
    d = cnt[:, None, None] * points[None] - tot[:, None, :]
    return (d * d).sum(-1) * K + np.arange(K)


_CHUNK = 1024  # predictions per block of [n, K] keys (bounds the memory of a large picture)


def ranks(points: np.ndarray, tot, cnt, tokens: np.ndarray) -> np.ndarray:
    """Each token's rank among the codebook's entries ordered by their distance to its
    prediction (0: the nearest)."""
    out = np.empty(tokens.size, dtype=np.int64)
    for s in range(0, tokens.size, _CHUNK):
        k = _keys(points, tot[s:s + _CHUNK], cnt[s:s + _CHUNK])
        out[s:s + _CHUNK] = (k < k[np.arange(k.shape[0]), tokens[s:s + _CHUNK]][:, None]).sum(1)
    return out


def unrank(points: np.ndarray, tot, cnt, rank: np.ndarray) -> np.ndarray:
    """The tokens of the given ranks (the inverse of :func:`ranks`)."""
    K = points.shape[0]
    out = np.empty(rank.size, dtype=np.int64)
    for s in range(0, rank.size, _CHUNK):
        k = np.sort(_keys(points, tot[s:s + _CHUNK], cnt[s:s + _CHUNK]), axis=1)
        out[s:s + _CHUNK] = k[np.arange(k.shape[0]), rank[s:s + _CHUNK]] % K
    return out


def token_symbols(points: np.ndarray, edges: np.ndarray, grid: np.ndarray) -> tuple:
    """The coded symbols of a token grid ``[h, w]`` and their table rows, in decoding order:
    phase 0's tokens (row 0), then each later phase's ranks (row ``1 + class``, the class
    being how many of ``edges`` the neighbours' spread reaches).  Also the spreads of the
    predicted tokens (what :meth:`VQModel.fit_prior` places the edges by)."""
    h, w = grid.shape
    tokens = grid.reshape(-1).astype(np.int64)
    syms, rows, spreads = [], [], []
    for pos, nb in schedule(h, w):
        if nb is None:
            syms.append(tokens[pos]); rows.append(np.zeros(pos.size, dtype=np.int64))
            continue
        tot, cnt, spread = _context(points, tokens, nb)
        syms.append(ranks(points, tot, cnt, tokens[pos]))
        rows.append(1 + np.searchsorted(edges, spread, side="right"))
        spreads.append(spread)
    cat = lambda a: np.concatenate(a) if a else np.zeros(0, dtype=np.int64)  # noqa: E731
    return cat(syms), cat(rows), cat(spreads)


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
        if levels ** D < SIZES[-1]:
            raise ValueError(f"the codebook (levels ** D = {levels} ** {D}) has fewer entries than the largest "
                             f"quality's ({SIZES[-1]})")
        self.N, self.D, self.K = N, D, levels ** D
        self.encoder = _encoder(N, D)
        self.quantizer = FSQ((levels,) * D)
        self.decoder = _decoder(N, D)
        self.centres: list | None = None  # per quality: [K_q, D] float32 code vectors
        self.points: list | None = None  # per quality: [K_q, D] int64, the centres times SCALE
        self.tables: list | None = None  # per quality: the token prior's CDF rows
        self.edges: list | None = None  # per quality: the spread classes' edges (int64)
        self.prior_stats: list | None = None  # fit_prior's counts (what freeze() builds from)

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
            raise ValueError(f"a VQ model needs a quality (1..{len(SIZES)}: codebooks of {SIZES[0]} to "
                             f"{SIZES[-1]} entries)")
        q = float(quality)
        if q != int(q) or not 1 <= q <= len(SIZES):
            raise ValueError(f"quality must be a whole number in 1..{len(SIZES)} (codebooks of "
                             f"{', '.join(map(str, SIZES))} entries), not {quality}")
        return int(q) - 1

    # -- coding state -------------------------------------------------------------------
    @torch.no_grad()
    def codebooks(self):
        """The codebook of every quality from the codebook's training usage (k-means of its
        entries, weighted by their usage; the grid itself for a size equal to it), and the
        integer points the token prior predicts with."""
        grid = self.quantizer.grid().double()
        usage = self.quantizer.usage.detach().double().cpu()
        self.centres = [(grid if k == self.K else weighted_kmeans(grid, usage, k)).float().contiguous()
                        for k in SIZES]
        self.points = [torch.round(c.double() * SCALE).long() for c in self.centres]

    def _tokens_of(self, z, qi: int) -> torch.Tensor:
        """The indexes ``[h, w]`` of encoder output ``z`` ``[1, D, h, w]`` in codebook ``qi``."""
        _, D, h, w = z.shape
        c = self.centres[qi].to(z.device)
        u = self.quantizer.bound(z).permute(0, 2, 3, 1).reshape(-1, D)
        return torch.cdist(u.to(c.dtype), c).argmin(dim=1).reshape(h, w)

    @torch.no_grad()
    def fit_prior(self, pictures, progress=None):
        """Fit the token prior of every quality on ``pictures`` (tensors ``[1, 3, H, W]`` in
        [0, 1], e.g. the training set): the counts of phase 0's tokens, the spread edges
        (quantiles of the neighbours' spread, :data:`CLASSES` classes) and the counts of
        the ranks in each class.  :meth:`freeze` builds the tables from them."""
        was_training = self.training
        self.eval()
        self.codebooks()
        points = [p.numpy() for p in self.points]
        top = [np.zeros(k, dtype=np.int64) for k in SIZES]
        rk, sp = [[] for _ in SIZES], [[] for _ in SIZES]
        for x in pictures:
            z = self.encoder(self.pad(x))
            for qi in range(len(SIZES)):
                grid = self._tokens_of(z, qi).cpu().numpy()
                sym, rows, spread = token_symbols(points[qi], np.zeros(0, dtype=np.int64), grid)
                top[qi] += np.bincount(sym[rows == 0], minlength=SIZES[qi])
                rk[qi].append(sym[rows > 0])
                sp[qi].append(spread)
            if progress is not None:
                progress()
        self.train(was_training)
        stats = []
        for qi, k in enumerate(SIZES):
            r, s = np.concatenate(rk[qi]), np.concatenate(sp[qi])
            if not s.size:
                raise ValueError("fit_prior needs pictures of at least 2x2 tokens (32x32 pixels)")
            edges = np.unique(np.quantile(s, np.arange(1, CLASSES) / CLASSES, method="lower")).astype(np.int64)
            cls = np.searchsorted(edges, s, side="right")
            counts = np.stack([np.bincount(r[cls == j], minlength=k) for j in range(edges.size + 1)])
            stats.append({"top": top[qi], "ranks": counts, "edges": edges})
        self.prior_stats = stats

    @torch.no_grad()
    def freeze(self):
        """The codebooks of every quality and their token priors' tables (from
        :meth:`fit_prior`'s counts, plus one half: every token codable at a bounded cost)."""
        if getattr(self, "prior_stats", None) is None:
            raise RuntimeError("fit the token prior (fit_prior(pictures)) before freeze()")
        if self.centres is None:
            self.codebooks()
        tables = []
        for st in self.prior_stats:
            counts = np.concatenate([st["top"][None], st["ranks"]]).astype(np.float64) + 0.5
            tables.append(entropy.categorical_tables(counts / counts.sum(1, keepdims=True)))
        self.tables = tables
        self.edges = [np.asarray(st["edges"], dtype=np.int64) for st in self.prior_stats]

    def frozen_state(self) -> dict:
        if self.tables is None:
            raise RuntimeError("call freeze() before exporting")
        out = {}
        for i, t in enumerate(self.tables):
            out.update(t.state_dict(f"frozen.tables.{i}."))
            out[f"frozen.centres.{i}"] = self.centres[i]
            out[f"frozen.points.{i}"] = self.points[i]
            out[f"frozen.edges.{i}"] = torch.from_numpy(self.edges[i])
        return out

    def load_frozen(self, state: dict):
        centres, points, edges, tables = [], [], [], []
        for i, k in enumerate(SIZES):
            c, p, e = (state.get(f"frozen.{n}.{i}") for n in ("centres", "points", "edges"))
            if c is None or tuple(c.shape) != (k, self.D) or p is None or tuple(p.shape) != (k, self.D) \
                    or p.is_floating_point() or e is None or e.dim() != 1 or e.is_floating_point() \
                    or e.numel() >= CLASSES or bool((e[1:] <= e[:-1]).any()):
                raise ValueError(f"frozen state: the codebook {i} ([{k}, {self.D}] centres and points, "
                                 f"increasing edges) is missing or malformed")
            t = entropy.CDFTables.from_state_dict(state, f"frozen.tables.{i}.", family="categorical")
            if t.num_rows != e.numel() + 2 or any(int(n) != k for n in t.lengths):
                raise ValueError(f"frozen state: the token tables of codebook {i} do not fit it")
            centres.append(c.float().contiguous()); points.append(p.long()); edges.append(e.long().numpy())
            tables.append(t)
        self.centres, self.points, self.edges, self.tables = centres, points, edges, tables

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
        return self._tokens_of(self.encoder(self.pad(x)), self.quality_index(quality))

    def encode_tokens(self, tokens: torch.Tensor, quality) -> bytes:
        """The ``tokens`` section of a token grid ``[h, w]``: one sequential rANS stream."""
        self._need_frozen()
        qi = self.quality_index(quality)
        sym, rows, _ = token_symbols(self.points[qi].numpy(), self.edges[qi], tokens.cpu().numpy())
        return entropy.encode_sequential(sym, rows, self.tables[qi])

    def decode_tokens_stream(self, data: bytes, quality, h: int, w: int) -> torch.Tensor:
        """The token grid ``[h, w]`` of a ``tokens`` section (the inverse of :meth:`encode_tokens`)."""
        self._need_frozen()
        qi = self.quality_index(quality)
        points, edges, K = self.points[qi].numpy(), self.edges[qi], SIZES[qi]
        dec = entropy.SequentialDecoder(data, self.tables[qi], n=h * w)
        tokens = np.full(h * w, -1, dtype=np.int64)
        for pos, nb in schedule(h, w):
            if nb is None:
                sym = dec.decode(np.zeros(pos.size, dtype=np.int64))
            else:
                tot, cnt, spread = _context(points, tokens, nb)
                sym = dec.decode(1 + np.searchsorted(edges, spread, side="right"))
            sym = np.asarray(sym, dtype=np.int64)
            if sym.size and (int(sym.min()) < 0 or int(sym.max()) >= K):
                raise PayloadError("the token stream holds indexes outside the codebook (corrupt data)")
            tokens[pos] = sym if nb is None else unrank(points, tot, cnt, sym)
        dec.finish()
        return torch.from_numpy(tokens.reshape(h, w))

    def vectors(self, tokens: torch.Tensor, quality, device="cpu") -> torch.Tensor:
        """The code vectors ``[1, D, h, w]`` of ``tokens`` ``[h, w]`` in quality's codebook."""
        c = self.centres[self.quality_index(quality)].to(device)
        return c[tokens.to(device).reshape(-1)].reshape(*tokens.shape, self.D).permute(2, 0, 1)[None]

    @torch.no_grad()
    def compress(self, x, quality=None, effort=None, progress=None) -> Payload:
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"compress takes one picture [1, 3, H, W], got {tuple(x.shape)}")
        data = self.encode_tokens(self.tokens(x, quality), quality)
        return Payload([Section("tokens", data)], self.header_for(*x.shape[-2:]))

    @torch.no_grad()
    def decompress(self, payload: Payload, quality=None, device="cpu"):
        self._need_frozen()
        self.quality_index(quality)
        h, w = self._grid_of(payload.header)
        (data,) = payload.expect(self.section_kinds, "model 'vq'")
        return self.decoder(self.vectors(self.decode_tokens_stream(data, quality, h, w), quality, device))

    @torch.no_grad()
    def synthesize_tokens(self, tokens, quality, device="cpu"):
        """What the decoder makes of ``tokens`` ``[h, w]`` (for tests and tools)."""
        return self.decoder(self.vectors(tokens, quality, device))
