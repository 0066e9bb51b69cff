"""The INR decoder's arithmetic: integers in float64 with bounded sums, so every device gives
the same latents, table rows and pixels (``../shared/notes/determinism.md``).

Fixed point: an activation ``a`` stands for ``a / 2**FRAC``; a layer's weights and biases are
integers ``w`` standing for ``w / 2**shift`` (``shift`` chosen per layer by the encoder and
written in the stream).  A layer computes

    acc = conv(a, w) + b * 2**FRAC          (exact: |w| < W_MAX, |a| <= ACT_MAX, fan-in <= MAX_FAN_IN)
    out = floor((acc + 2**(shift-1)) / 2**shift)   [+ a, for a residual layer]  [ReLU]  clamped to +-ACT_MAX

The largest partial sum is ``MAX_FAN_IN * W_MAX * ACT_MAX = 2**9.2 * 2**14 * 2**26 < 2**50``,
far below 2**53, so float64 sums are exact in any order (CPU, CUDA, any BLAS).  The float
versions used for fitting (:func:`float_layer`, :func:`float_upsample2`) are the same maps
without the rounding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

FRAC = 12
ONE = float(1 << FRAC)
ACT_MAX = float(1 << 26)
W_MAX = 1 << 14  # |weight|, |bias| < W_MAX
LAT_MAX = 1 << 12  # |latent| <= LAT_MAX
MAX_FAN_IN = 64 * 9
MAX_SHIFT = 20

#: the autoregressive model's causal context: (row, column) offsets of already decoded latents.
#: The furthest reach right is +1 column one row up, so the latents with equal ``2 * row + col``
#: (a wavefront) depend only on earlier wavefronts and decode together.
CONTEXT = ((0, -1), (0, -2), (0, -3), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-2, -1), (-2, 0), (-2, 1))
PAD_TOP, PAD_LEFT, PAD_RIGHT = 2, 3, 1

#: Laplace diversities ``b_r = 2 ** (LOG2_MIN + r / ROWS_PER_OCTAVE)``, ``r < SCALES``; below a
#: diversity of 1 (``r < SHIFTED``) a mean's fraction matters, so those scales have MEAN_STEPS rows each,
#: of means ``k / MEAN_STEPS``; the others one zero-mean row.  Table row of (r, k):
#: ``r * MEAN_STEPS + k`` for ``r < SHIFTED``, else ``SHIFTED * MEAN_STEPS + r - SHIFTED``.
LOG2_MIN, ROWS_PER_OCTAVE, SCALES = -3, 4, 36
SHIFTED = -LOG2_MIN * ROWS_PER_OCTAVE
MEAN_STEPS = 8
ROWS = SHIFTED * MEAN_STEPS + SCALES - SHIFTED


def int_layer(a, w, b, shift: int, relu: bool, residual: bool):
    """One integer layer on ``a`` ``[N, C, H, W]`` (float64, integer-valued); ``w`` ``[O, C, k, k]``
    (k = 1 or 3, replicate padding), ``b`` ``[O]``: see the module docstring."""
    k = w.shape[-1]
    x = F.pad(a, (k // 2,) * 4, mode="replicate") if k > 1 else a
    acc = F.conv2d(x, w) + (b * ONE).view(1, -1, 1, 1)
    if shift:
        acc = torch.floor((acc + float(1 << (shift - 1))) / float(1 << shift))
    if residual:
        acc = acc + a
    if relu:
        acc = acc.clamp_min(0.0)
    return acc.clamp(-ACT_MAX, ACT_MAX)


def int_dense(a, w, b, shift: int, relu: bool):
    """:func:`int_layer` for a 1x1 layer on columns ``a`` ``[C, N]`` (pixels or latents side by side):
    the same integers as the convolution gives at those positions (exact sums in any order)."""
    acc = w[:, :, 0, 0] @ a + (b * ONE)[:, None]
    if shift:
        acc = torch.floor((acc + float(1 << (shift - 1))) / float(1 << shift))
    if relu:
        acc = acc.clamp_min(0.0)
    return acc.clamp(-ACT_MAX, ACT_MAX)


def float_dense(a, w, b, relu: bool):
    """A 1x1 layer on columns ``a`` ``[C, N]`` (float, for fitting)."""
    y = torch.addmm(b[:, None], w[:, :, 0, 0], a)
    return F.relu(y) if relu else y


def float_layer(a, w, b, relu: bool, residual: bool):
    k = w.shape[-1]
    x = F.pad(a, (k // 2,) * 4, mode="replicate") if k > 1 else a
    y = F.conv2d(x, w, b)
    if residual:
        y = y + a
    return F.relu(y) if relu else y


def _up_axis(a, dim: int, n: int, exact: bool):
    """Twice as many samples along ``dim`` (then the first ``n``): ``(3 a[k] + a[k-1]) / 4`` and
    ``(3 a[k] + a[k+1]) / 4``, edges replicated; rounded (``floor(. + 1/2)``) when exact."""
    size = a.shape[dim]
    prev = torch.cat([a.narrow(dim, 0, 1), a.narrow(dim, 0, size - 1)], dim)
    nxt = torch.cat([a.narrow(dim, 1, size - 1), a.narrow(dim, size - 1, 1)], dim)
    even, odd = 3 * a + prev, 3 * a + nxt
    if exact:
        even, odd = torch.floor((even + 2) / 4), torch.floor((odd + 2) / 4)
    else:
        even, odd = even / 4, odd / 4
    out = torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)
    return out.narrow(dim, 0, n)


def features(grids, exact: bool):
    """The synthesis input ``[1, levels, H, W]`` from latent grids (finest first, each ``[h_l, w_l]``,
    already in fixed point when ``exact``): from the coarsest grid up, the planes so far are doubled
    (:func:`_up_axis`, to the next grid's size) and the next grid joins them, so level ``l`` is
    doubled ``l`` times and the planes come out finest first."""
    a = grids[-1][None, None]
    for g in reversed(grids[:-1]):
        h, w = g.shape
        a = torch.cat([g[None, None], _up_axis(_up_axis(a, 2, h, exact), 3, w, exact)], 1)
    return a


def context(grid):
    """``[n_ctx, h, w]``: each latent's causal neighbours (zero outside the grid) from ``grid`` ``[h, w]``."""
    h, w = grid.shape
    p = F.pad(grid, (PAD_LEFT, PAD_RIGHT, PAD_TOP, 0))
    return torch.stack([p[PAD_TOP + dy: PAD_TOP + dy + h, PAD_LEFT + dx: PAD_LEFT + dx + w] for dy, dx in CONTEXT])


def rows_and_means(out):
    """The autoregressive model's integer outputs ``[2, n]`` (mean, log2 diversity; FRAC bits) ->
    (table row, base) int64 ``[n]``: a latent is coded as ``value - base`` with that row."""
    m = torch.floor((out[0] * MEAN_STEPS + ONE / 2) / ONE)  # the mean in 1/MEAN_STEPS
    r = torch.floor(((out[1] - LOG2_MIN * ONE) * ROWS_PER_OCTAVE + ONE / 2) / ONE).clamp(0, SCALES - 1)
    floor_ = torch.floor(m / MEAN_STEPS)
    shifted = r < SHIFTED
    row = torch.where(shifted, r * MEAN_STEPS + (m - floor_ * MEAN_STEPS), SHIFTED * (MEAN_STEPS - 1) + r)
    base = torch.where(shifted, floor_, torch.floor((m + MEAN_STEPS // 2) / MEAN_STEPS))
    return row.to(torch.int64), base.to(torch.int64)


def scale_rows():
    """(diversities, means) of the table rows (``means`` None for the zero-mean ones), for building the tables."""
    import numpy as np

    b = 2.0 ** (LOG2_MIN + np.arange(SCALES) / ROWS_PER_OCTAVE)
    small = np.repeat(b[:SHIFTED], MEAN_STEPS), np.tile(np.arange(MEAN_STEPS) / MEAN_STEPS, SHIFTED)
    return small, b[SHIFTED:]


def wavefronts(h: int, w: int):
    """The decoding order of an ``h x w`` grid: lists of (rows, columns) index tensors, one per wavefront
    ``2 * row + col = t``, rows increasing within one."""
    out = []
    for t in range(2 * (h - 1) + w):
        i = torch.arange(max(0, -(-(t - (w - 1)) // 2)), min(h - 1, t // 2) + 1)
        out.append((i, t - 2 * i))
    return out


def order(h: int, w: int) -> torch.Tensor:
    """Flat (row-major) positions of an ``h x w`` grid in decoding order."""
    return torch.cat([i * w + j for i, j in wavefronts(h, w)])
