"""Band-energy correction of an audio model's decoded transform coefficients (arch kwarg
``energy`` 1 or 2 of :class:`codec.models.audio.AudioModel`: the scheme, :data:`SCHEMES`).

A waveform coder's decoded bands drift from the input's energy where the log-mel distance
looks hardest: quiet bands that quantise to zero and get noise-filled too loudly or not at
all, loud ones a little off.  Opus (CELT) codes every band's energy explicitly; this codes
only a coarse correction of what the decoder would give:

- the bands (transform channels, in frequency order ``f``) fall into groups, and the frames
  into cells of :data:`FRAMES`.  Scheme 1: half-octave groups,
  ``group(f) = max(0, bit_length(f^2) - 4)`` (exact integers: bands 0..3 are group 0, then
  two groups an octave, ``f`` in ``[2^((g+3)/2), 2^((g+4)/2))``; 13 groups of 256 bands).
  Scheme 2: 24 groups of equal width on the mel scale (as the log-mel distance sees the
  spectrum: a half-octave at the top spans 7 kHz, a tenth of the mel bands), the first
  band of each listed in :data:`MEL_STARTS` (of 256 bands; a model with fewer bands takes
  band ``f`` as band ``f * 256 // bands`` of 256, and the groups left empty are dropped);
- per coded channel, group and cell the encoder compares the energy ``E`` of the input's
  coefficients with the energy ``Ê`` of the decoder's (it runs the decoder's synthesis) and
  codes ``r = clamp(round(2 log2(E / Ê)), -R, R)`` (1.5 dB steps; 0 where ``Ê`` is 0; ``R``
  12 in scheme 1, 24 in scheme 2: 18 or 36 dB);
- the decoder multiplies the cell's coefficients by ``2^(r/4)`` before the inverse transform.

The indexes of a chunk are one section (``energy``), coded in one sequential rANS stream
under the scheme's table, stored with the weights.  Scheme 1: one table row, in C order over
``[channels, groups, cells]``.  Scheme 2: the section starts with the number of groups coded
(one byte, 1..groups): the encoder codes only the groups that start below the Nyquist
frequency of the signal's own rate (decoding resamples back to it, so a correction above it
would not be heard; the decoder takes 0 for the others); then the indexes in the order of
:meth:`BandEnergy.order` (anti-diagonals of group and cell), each under the table row of its
context (:func:`contexts`: the classes of the indexes of the cell before and of the group
below, both decoded before it; 25 rows; 3.1 bits an index on training files where one row
costs 4.0).  Any indexes decode (the encoder's rule is a choice); one outside ``-R..R`` is a
corrupt stream.

Scheme 2 against scheme 1 with the same weights (those of 1d76c92; ``codec eval`` of the
held-out files at qualities 1..8, ``codec bdrate --method pchip``): mel distance -6.6% on
speech, -17.5% on music, -63.6% on environment, ViSQOL -14.5/-28.3/-32.7%, SI-SDR
+2.8/+5.2/+15.0% (-0.3, -0.4, -0.9 dB).  It costs 0.2-0.6 kbps more on music and 0.4-0.7 on
environment (stereo, 44.1/48 kHz), 0.1 more to 0.05 less on speech (mostly 16 kHz).
"""
from __future__ import annotations

import bisect

import numpy as np
import torch

from codec import entropy
from codec.models.payload import PayloadError

#: latent frames per cell (32 frames: 171 ms at 48 kHz with 256 bands; 16 and 8 frames cost
#: 2x and 4x the bits for little more, 64 loses more than it saves: a one-off measurement)
FRAMES = 32
#: the largest correction index of scheme 1 (a gain of 2^(R/4): 18 dB)
R = 12
#: scheme 1's probabilities of the indexes -R..R that the coding table is built from: their frequencies
#: (plus one) with the weights of wavelet-audio-cpu-6's step 4000, on every sixth training file
#: (first 10 s, qualities 2, 3.5, 5, 6.5 and 8; 64 870 indexes, 3.84 bits each; one-off script).
#: Heavy tails and the clamp's ends: a Laplace row of diversity 1 costs 5.6 bits an index.
PMF = (0.0576, 0.0062, 0.0103, 0.0077, 0.012, 0.018, 0.0113, 0.0115, 0.0137, 0.0153, 0.0212, 0.0575, 0.2891,
       0.1112, 0.0689, 0.0464, 0.0372, 0.0355, 0.034, 0.0295, 0.0238, 0.0187, 0.0147, 0.0099, 0.0388)


#: scheme 2: the first band (frequency rank, of 256 bands of 93.75 Hz at 48 kHz) of each
#: group: ``floor(24 mel(h) / mel(24 kHz))`` of the band's centre ``h`` changes there
#: (``mel(h) = 2595 log10(1 + h / 700)``; written out, so that no float decides a group)
MEL_STARTS = (0, 1, 3, 4, 6, 8, 11, 14, 17, 21, 25, 31, 37, 44, 52, 62, 73, 86, 101, 118, 138, 161, 188, 220)
#: scheme 2's counts of the indexes -24..24 in each context (:func:`contexts`), from which
#: its table is built (:func:`context_pmf`): fitted with the shipped weights of 1d76c92 on the
#: groups an encoder codes (``python -m codec.tools.fit_energy_pmf ../shared/data/audio
#: --scheme 2 --holdout training/configs/wavelet-audio-cpu-7.json``: 110 815 indexes of 32 files,
#: 3.11 bits each under these rows, 3.99 under one row for all)
COUNTS2 = (
    (597, 30, 26, 27, 32, 32, 25, 44, 39, 66, 56, 85, 121, 97, 89, 101, 130, 315, 287, 181, 221, 55, 41, 20, 19, 15,
     11, 8, 8, 5, 1, 4, 0, 2, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0),
    (120, 16, 8, 6, 14, 228, 0, 2, 9, 8, 1, 5, 3, 16, 17, 42, 90, 87, 88, 237, 295, 139, 60, 51, 45, 34, 21, 10, 6, 8,
     4, 1, 3, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    (19, 11, 17, 9, 7, 4, 2, 58, 18, 4, 3, 3, 5, 6, 8, 11, 36, 28, 53, 82, 81, 53, 72, 62, 139, 77, 45, 30, 14, 25,
     10, 7, 4, 1, 1, 2, 2, 1, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0),
    (30, 8, 4, 3, 8, 6, 5, 17, 11, 6, 20, 2, 2, 5, 8, 16, 23, 24, 34, 41, 61, 48, 48, 37, 40, 36, 50, 41, 47, 39, 22,
     9, 18, 5, 1, 2, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0),
    (3, 3, 5, 14, 1, 1, 2, 1, 2, 13, 10, 6, 20, 21, 20, 19, 21, 22, 35, 72, 454, 51, 31, 39, 37, 32, 49, 47, 49, 35,
     37, 42, 30, 24, 13, 15, 11, 11, 5, 7, 6, 5, 7, 2, 2, 3, 2, 1, 3),
    (93, 1, 7, 0, 3, 2, 2, 3, 2, 10, 11, 13, 13, 22, 24, 27, 39, 34, 39, 56, 75, 68, 330, 217, 46, 21, 7, 5, 5, 3, 3,
     1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    (0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 3, 0, 1, 2, 2, 5, 12, 11, 29, 52, 185, 543, 1218, 1335, 649, 159, 72, 47, 35, 18,
     25, 14, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    (4, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 3, 3, 2, 2, 4, 4, 12, 16, 36, 55, 164, 611, 1762, 2159, 631, 216, 117, 80, 48,
     25, 18, 23, 4, 13, 8, 12, 14, 10, 13, 6, 4, 3, 0, 0, 0, 1, 1, 1),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 2, 4, 16, 19, 31, 56, 90, 159, 280, 308, 223, 177, 142, 92, 69, 60,
     39, 15, 8, 7, 6, 2, 2, 1, 1, 1, 2, 1, 0, 0, 1, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 0, 2, 3, 2, 10, 15, 30, 41, 97, 144, 179, 150, 97, 70, 103, 88, 72, 76,
     65, 50, 47, 39, 33, 22, 14, 10, 9, 6, 4, 2, 3, 1, 0, 0, 1, 3),
    (209, 0, 4, 0, 4, 3, 9, 6, 3, 6, 9, 14, 12, 29, 24, 17, 20, 34, 41, 43, 42, 58, 51, 80, 90, 121, 56, 24, 14, 10,
     5, 5, 4, 4, 2, 0, 3, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0),
    (0, 0, 0, 0, 5, 0, 0, 1, 0, 0, 0, 0, 2, 2, 3, 9, 8, 15, 19, 40, 71, 153, 281, 1083, 2426, 936, 279, 194, 122, 68,
     49, 20, 19, 6, 6, 4, 2, 0, 0, 0, 3, 1, 0, 0, 1, 0, 0, 0, 0),
    (23, 1, 0, 0, 0, 0, 1, 1, 0, 0, 2, 1, 2, 3, 4, 7, 4, 12, 12, 26, 40, 83, 373, 2385, 20416, 5135, 1179, 461, 292,
     160, 113, 67, 33, 34, 25, 17, 19, 14, 22, 5, 9, 4, 1, 0, 0, 1, 0, 0, 2),
    (2, 0, 0, 0, 0, 0, 0, 5, 0, 0, 2, 0, 0, 0, 1, 1, 3, 7, 22, 22, 28, 49, 136, 412, 824, 1182, 869, 575, 425, 241,
     166, 113, 67, 50, 30, 9, 12, 7, 5, 2, 3, 3, 0, 2, 0, 0, 0, 0, 1),
    (2, 0, 0, 0, 0, 0, 0, 0, 1, 4, 1, 0, 1, 3, 1, 2, 3, 6, 12, 29, 17, 26, 72, 199, 495, 349, 259, 264, 312, 293, 296,
     258, 211, 178, 125, 71, 61, 51, 37, 22, 22, 15, 16, 8, 3, 10, 6, 6, 14),
    (136, 1, 1, 2, 2, 0, 4, 2, 2, 4, 8, 6, 15, 13, 13, 10, 24, 19, 23, 31, 39, 34, 31, 32, 33, 42, 65, 32, 30, 18, 9,
     10, 5, 2, 3, 1, 0, 2, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0),
    (1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 5, 2, 13, 15, 14, 40, 58, 94, 173, 279, 254, 262, 204, 199, 80, 41,
     21, 10, 7, 4, 8, 0, 3, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 1, 6, 0, 0, 0, 2, 1, 1, 2, 3, 4, 7, 8, 15, 16, 41, 105, 323, 1001, 1222, 1039, 651, 487, 286,
     134, 78, 56, 33, 21, 10, 6, 7, 1, 3, 4, 1, 1, 0, 1, 0, 1, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 3, 1, 0, 0, 0, 2, 5, 8, 12, 12, 16, 39, 78, 155, 324, 752, 1167, 1133, 692, 424,
     291, 172, 99, 68, 31, 26, 14, 4, 5, 2, 1, 1, 0, 0, 1, 0, 0, 0, 1),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 0, 2, 3, 1, 0, 3, 4, 8, 5, 20, 20, 43, 84, 153, 285, 397, 533, 550, 536, 459,
     349, 306, 202, 149, 90, 75, 53, 27, 19, 20, 9, 13, 5, 2, 3, 0, 2, 10),
    (213, 1, 3, 1, 3, 3, 6, 9, 4, 4, 5, 9, 9, 9, 10, 25, 27, 32, 20, 48, 45, 39, 28, 21, 43, 27, 32, 34, 25, 28, 35,
     20, 17, 16, 19, 12, 9, 14, 5, 2, 4, 1, 0, 3, 0, 0, 0, 0, 3),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 5, 3, 6, 2, 2, 7, 7, 14, 9, 17, 18, 39, 70, 87, 107, 116, 90, 109, 110, 69, 65, 59,
     72, 82, 38, 13, 21, 8, 8, 7, 3, 3, 1, 3, 2, 0, 0, 2, 4),
    (4, 0, 0, 2, 0, 0, 3, 1, 1, 1, 3, 0, 1, 6, 7, 8, 5, 2, 7, 13, 21, 33, 85, 150, 359, 366, 306, 266, 297, 304, 236,
     194, 188, 200, 136, 115, 160, 160, 89, 83, 48, 22, 9, 9, 6, 3, 4, 3, 2),
    (0, 0, 0, 1, 0, 1, 0, 4, 2, 1, 0, 0, 1, 1, 2, 0, 3, 2, 5, 11, 14, 19, 45, 76, 174, 303, 451, 577, 603, 536, 490,
     399, 318, 386, 220, 109, 49, 50, 17, 15, 18, 5, 9, 9, 3, 1, 1, 2, 8),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 5, 5, 9, 5, 4, 9, 6, 8, 15, 22, 47, 75, 148, 189, 315, 482, 729, 957, 1128,
     1323, 1120, 1060, 873, 768, 783, 555, 486, 267, 182, 154, 106, 80, 55, 32, 31, 37, 95),
)


def group_of_rank(f: int) -> int:
    """The group of the band of frequency rank ``f`` (0 = lowest): half-octaves, exact."""
    return max(0, (f * f).bit_length() - 4)


def mel_group_of_rank(f: int, bands: int = 256) -> int:
    """Scheme 2's group of the band of frequency rank ``f`` of ``bands`` (before empty groups
    are dropped): the last entry of :data:`MEL_STARTS` at or below ``f * 256 // bands``."""
    return bisect.bisect_right(MEL_STARTS, f * 256 // bands) - 1


#: scheme 2's contexts: a neighbour's index falls in one of CLASSES classes, split at CLASS_EDGES
#: (``x <= -4``, ``<= -1``, ``<= 1``, ``<= 4``, above); two neighbours make CONTEXTS table rows
CLASS_EDGES = (-4, -1, 1, 4)
CLASSES = len(CLASS_EDGES) + 1
CONTEXTS = CLASSES * CLASSES
#: scheme 2: the weight of the pooled distribution in each row (in samples)
PRIOR = 8.0

#: scheme -> (largest index R, probabilities of -R..R (scheme 1) or counts per context (2))
SCHEMES = {1: (R, PMF), 2: (24, COUNTS2)}


class BandEnergy:
    """The correction (scheme ``scheme``, :data:`SCHEMES`) for a transform whose channel ``c``
    has frequency rank ``ranks[c]``."""

    def __init__(self, ranks, scheme: int = 1):
        if scheme not in SCHEMES:
            raise ValueError(f"unknown band-energy scheme {scheme} (known: {', '.join(map(str, SCHEMES))})")
        self.scheme = scheme
        self.R, self.pmf = SCHEMES[scheme]
        ranks = [int(f) for f in ranks]
        raw = [group_of_rank(f) if scheme == 1 else mel_group_of_rank(f, len(ranks)) for f in ranks]
        used = sorted(set(raw))  # the groups that hold a band, renumbered in order
        groups = torch.tensor([used.index(g) for g in raw])
        self.groups = len(used)
        #: the lowest frequency rank of each group
        self.starts = [min(f for f, g in zip(ranks, raw) if g == u) for u in used]
        self.onehot = torch.nn.functional.one_hot(groups, self.groups).double()  # [bands, groups]
        self.tables: entropy.CDFTables | None = None

    def cells(self, frames: int) -> int:
        return -(-frames // FRAMES)

    def _energy(self, c):
        """``[C, bands, T]`` -> float64 ``[C, groups, cells]`` (sums of squares)."""
        C, _, T = c.shape
        pad = self.cells(T) * FRAMES - T
        e = torch.nn.functional.pad(c.double().square(), (0, pad))
        e = e.reshape(C, e.shape[1], -1, FRAMES).sum(-1)  # [C, bands, cells]
        return torch.einsum("cbt,bg->cgt", e, self.onehot.to(e.device))

    def indexes(self, c, c_hat):
        """The encoder's choice: the input's coefficients ``c`` and the decoder's ``c_hat``,
        ``[C, bands, T]`` -> int64 ``[C, groups, cells]``."""
        e, e_hat = self._energy(c), self._energy(c_hat)
        r = torch.round(2 * torch.log2(e / e_hat.clamp_min(1e-300)))
        r = torch.nan_to_num(r, nan=0.0, posinf=self.R, neginf=-self.R).clamp(-self.R, self.R)
        return torch.where(e_hat > 0, r, torch.zeros_like(r)).long()

    def apply(self, c_hat, r):
        """``c_hat`` ``[C, bands, T]`` times each cell's ``2^(r/4)``."""
        T = c_hat.shape[-1]
        g = torch.pow(2.0, r.to(c_hat.device, torch.float64) / 4)  # [C, groups, cells]
        g = torch.einsum("cgt,bg->cbt", g, self.onehot.to(c_hat.device))
        return c_hat * g.repeat_interleave(FRAMES, -1)[..., :T].to(c_hat.dtype)

    # -- the section ----------------------------------------------------------------------
    def freeze(self):
        R = self.R
        if self.scheme == 1:
            pmf = np.zeros((1, 2 * R + 2))
            pmf[0, :2 * R + 1] = self.pmf  # the escape (last column) gets the least frequency
        else:
            pmf = np.zeros((CONTEXTS, 2 * R + 2))
            pmf[:, :2 * R + 1] = context_pmf(self.pmf)
        self.tables = entropy.tables_from_pmf(pmf, [2 * R + 1] * len(pmf), [-R] * len(pmf))

    def _tables(self):
        if self.tables is None:
            from codec.models.latent_codecs import NotFrozenError

            raise NotFrozenError("call freeze() (or load frozen weights) before coding")
        return self.tables

    @staticmethod
    def order(C: int, G: int, T: int) -> np.ndarray:
        """Scheme 2's coding order of ``[C, G, T]`` indexes (positions in C order): by
        anti-diagonal ``g + t``, then channel, then group; each index comes after its
        neighbours below (``g - 1``) and before (``t - 1``)."""
        c, g, t = np.meshgrid(np.arange(C), np.arange(G), np.arange(T), indexing="ij")
        return np.lexsort((g.ravel(), c.ravel(), (g + t).ravel()))

    def encode(self, r, coded: int | None = None) -> bytes:
        """The section of indexes ``r`` ``[C, groups, cells]``.  Scheme 2: only the lowest
        ``coded`` groups (default all), their count first (one byte), each index under the
        row of its context (:func:`contexts`); the decoder takes the others' indexes as 0."""
        r = r.cpu().long()
        if self.scheme == 1:
            v = r.reshape(-1).to(torch.int32).numpy()
            return entropy.encode_sequential(v, np.zeros(v.size, dtype=np.int64), self._tables())
        coded = self.groups if coded is None else int(coded)
        if not 1 <= coded <= self.groups:
            raise ValueError(f"1..{self.groups} groups coded, not {coded}")
        r = r[:, :coded].contiguous()
        o = self.order(*r.shape)
        v, rows = r.reshape(-1).numpy()[o], contexts(r).reshape(-1).numpy()[o]
        return bytes([coded]) + entropy.encode_sequential(v.astype(np.int32), rows, self._tables())

    def decode(self, data: bytes, shape) -> torch.Tensor:
        """The indexes ``shape`` = ``[C, groups, cells]`` of a section, checked."""
        C, G, T = shape
        if self.scheme == 1:
            v = entropy.decode_sequential(data, np.zeros(C * G * T, dtype=np.int64), self._tables())
            r = torch.from_numpy(np.asarray(v, dtype=np.int64)).reshape(C, G, T)
        else:
            if not data or not 1 <= data[0] <= G:
                raise PayloadError(f"corrupt energy section: {data[0] if data else 'no'} groups coded (1..{G})")
            coded = data[0]
            dec = entropy.SequentialDecoder(data[1:], self._tables(), C * coded * T)
            flat = np.zeros(C * coded * T, dtype=np.int64)  # C order over [C, coded, T]
            o = self.order(C, coded, T)
            c, g, t = np.unravel_index(o, (C, coded, T))
            edges = np.cumsum(np.bincount(g + t, minlength=coded + T - 1))
            start = 0
            for stop in edges:  # one anti-diagonal at a time: its contexts are decoded
                pos, gg, tt = o[start:stop], g[start:stop], t[start:stop]
                before = np.where(tt > 0, flat[pos - 1], 0)
                below = np.where(gg > 0, flat[pos - T], 0)
                rows = CLASSES * context_class(before) + context_class(below)
                flat[pos] = dec.decode(rows)
                start = stop
            dec.finish()
            r = torch.zeros(C, G, T, dtype=torch.int64)
            r[:, :coded] = torch.from_numpy(flat).reshape(C, coded, T)
        if bool((r.abs() > self.R).any()):
            raise PayloadError("corrupt energy section: a correction index out of range")
        return r

    def state_dict(self, prefix: str) -> dict:
        return self._tables().state_dict(prefix)

    def load(self, state: dict, prefix: str):
        self.tables = entropy.CDFTables.from_state_dict(state, prefix)
        t, rows = self.tables, 1 if self.scheme == 1 else CONTEXTS
        if (t.num_rows != rows or (np.asarray(t.offsets) != -self.R).any()
                or (np.asarray(t.lengths) != 2 * self.R + 1).any()):
            raise ValueError(f"the energy table has {rows} row(s) over -{self.R}..{self.R}")


def context_class(v) -> np.ndarray:
    """The class of a neighbour's index (numpy ints): 0 up to -4, 1 up to -1, 2 up to 1, 3 up to 4, 4 above."""
    return np.searchsorted(np.asarray(CLASS_EDGES), np.asarray(v), side="left")


def contexts(r) -> torch.Tensor:
    """Scheme 2's table row of each index of ``r`` ``[C, G, T]``: ``CLASSES * class(before) +
    class(below)``, ``before`` the index of the cell before (same channel and group), ``below``
    that of the group below (same channel and cell), 0 where there is none."""
    r = r.cpu().long()
    before = torch.nn.functional.pad(r, (1, 0))[..., :-1]
    below = torch.nn.functional.pad(r, (0, 0, 1, 0))[:, :-1]
    return torch.from_numpy(CLASSES * context_class(before.numpy()) + context_class(below.numpy()))


def context_pmf(counts) -> np.ndarray:
    """Scheme 2's rows of probabilities from the fitted counts ``[CONTEXTS, 2R + 1]``: each
    row's counts plus :data:`PRIOR` samples shaped as all rows' counts together (plus one)."""
    counts = np.asarray(counts, dtype=np.float64)
    pooled = counts.sum(0) + 1
    rows = counts + PRIOR * pooled / pooled.sum()
    return rows / rows.sum(1, keepdims=True)
