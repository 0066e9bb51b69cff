"""Band-energy correction of an audio model's decoded transform coefficients (arch kwarg
``energy`` 1 or 2 of :class:`codec.models.audio.AudioModel`: the scheme, :data:`SCHEMES`).

A waveform coder's decoded bands drift from the input's energy where the log-mel distance
looks hardest: quiet bands that quantise to zero and get noise-filled too loudly or not at
all, loud ones a little off.  Opus (CELT) codes every band's energy explicitly; this codes
only a coarse correction of what the decoder would give:

- the bands (transform channels, in frequency order ``f``) fall into groups, and the frames
  into cells (scheme 1: of :data:`FRAMES`; scheme 2: of any of :data:`CELLS`, the encoder's
  choice, written in the section).  Scheme 1: half-octave groups,
  ``group(f) = max(0, bit_length(f^2) - 4)`` (exact integers: bands 0..3 are group 0, then
  two groups an octave, ``f`` in ``[2^((g+3)/2), 2^((g+4)/2))``; 13 groups of 256 bands).
  Scheme 2: 24 groups of equal width on the mel scale (as the log-mel distance sees the
  spectrum: a half-octave at the top spans 7 kHz, a tenth of the mel bands), the first
  band of each listed in :data:`MEL_STARTS` (of 256 bands; a model with fewer bands takes
  band ``f`` as band ``f * 256 // bands`` of 256, and the groups left empty are dropped);
- per coded channel, group and cell the encoder compares the energy ``E`` of the input's
  coefficients with the energy ``Ê`` of the decoder's (it runs the decoder's synthesis) and
  codes ``r = clamp(round(2 log2(E / Ê)), -R, R)`` (1.5 dB steps; 0 where ``Ê`` is 0; ``R``
  12 in scheme 1, 24 in scheme 2: 18 or 36 dB), in scheme 2 then moved by up to 2 where
  that saves more bits than it costs in level error (:meth:`BandEnergy.rd_choice`);
- the decoder multiplies the cell's coefficients by ``2^(r/4)`` before the inverse transform.

The indexes of a chunk are one section (``energy``), coded in one sequential rANS stream
under the scheme's table, stored with the weights.  Scheme 1: one table row, in C order over
``[channels, groups, cells]``.  Scheme 2: the section starts with the number of groups coded
(one byte, 1..groups) and the frames a cell (one byte, one of :data:`CELLS`): the encoder
codes only the groups that start below the Nyquist frequency of the signal's own rate
(decoding resamples back to it, so a correction above it would not be heard; the decoder
takes 0 for the others), compares only the bands below it, and takes cells of 16 frames (85
ms) below quality 3, of 8 (43 ms) from there; then the indexes in the order of
:meth:`BandEnergy.order` (anti-diagonals of group and cell), each under the table row of its
context (:func:`contexts`: the classes of the indexes of the cell before and of the group
below, both decoded before it; 25 rows; 3.5 bits an index on training files with the shipped weights where one row
costs 4.4).  Any indexes decode (the encoder's rule is a choice); one outside ``-R..R`` is a
corrupt stream.

Scheme 2 against scheme 1 with the same weights (those of 1d76c92, its table fitted to them;
``codec eval`` of the held-out files at qualities 1..8, ``codec bdrate --method pchip``):
mel distance -14.9% on speech, -32.0% on music, -70.4% on environment, ViSQOL
-40.5/-63.5/-48.7%, SI-SDR +25.2/+27.2/+66.6% (-2.2, -2.1, -4.4 dB): it costs 0.6-1.4
kbps more on speech (mostly 16 kHz mono), 1.7-3.8 on music and 2.0-4.6 on environment (stereo, 44.1/48 kHz), and pays
in mel distance and ViSQOL, not in SI-SDR.  With the same groups and contexts, cells of 32
frames gave mel -6.7/-19.6/-63.6% for 0.05 kbps less to 0.75 more; of 16, -13.0/-28.3/-68.5%;
of 8 at every quality, -14.3/-32.9/-68.7% with the lowest rates 3.2, 8.1 and 7.1 kbps (16
below quality 3 brings them to 2.2, 5.6 and 4.4); of 4, 5.1, 13.0 and 12.5 kbps at the
lowest quality (one-off measurements: the cell size changed in the code, the table refitted).
"""
from __future__ import annotations

import bisect

import numpy as np
import torch

from codec import entropy
from codec.models.payload import PayloadError

#: scheme 1's latent frames per cell (32 frames: 171 ms at 48 kHz with 256 bands; with its
#: half-octave groups and one table row 16 and 8 frames cost 2x and 4x the bits for little
#: more, 64 loses more than it saves: a one-off measurement)
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
#: its table is built (:func:`context_pmf`): fitted with the shipped weights (step 8 000 of
#: wavelet-audio-cpu-8) on the groups an encoder codes (``python -m codec.tools.fit_energy_pmf
#: ../shared/data/audio --scheme 2 --holdout training/configs/wavelet-audio-cpu-7.json``:
#: 394 094 indexes of 32 files, 3.46 bits each under these rows, 4.35 under one row for all)
COUNTS2 = (
    (4797, 379, 379, 496, 654, 751, 801, 695, 685, 698, 783, 834, 905, 950, 952, 1053, 1222, 1420, 1871, 1881, 1172,
     615, 281, 148, 95, 71, 59, 34, 24, 16, 13, 12, 7, 9, 5, 5, 2, 7, 2, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0),
    (235, 17, 17, 23, 17, 13, 26, 23, 28, 31, 31, 116, 188, 186, 136, 141, 176, 268, 522, 834, 747, 677, 455, 378,
     232, 179, 87, 52, 61, 32, 19, 8, 6, 7, 10, 4, 3, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0),
    (229, 57, 70, 94, 106, 77, 86, 86, 121, 123, 109, 99, 127, 157, 148, 170, 233, 302, 316, 341, 396, 351, 344, 394,
     611, 383, 191, 113, 80, 59, 41, 26, 23, 19, 9, 6, 7, 9, 4, 6, 2, 9, 0, 1, 2, 0, 0, 0, 1),
    (44, 12, 16, 25, 18, 26, 25, 32, 38, 29, 32, 35, 32, 49, 52, 80, 117, 168, 256, 279, 299, 288, 255, 242, 241, 212,
     204, 166, 149, 114, 79, 46, 34, 21, 18, 10, 9, 2, 0, 3, 1, 3, 1, 0, 2, 1, 0, 0, 0),
    (9, 5, 12, 9, 8, 19, 20, 22, 54, 41, 54, 52, 60, 82, 71, 92, 108, 141, 169, 231, 237, 257, 221, 190, 164, 193,
     167, 172, 187, 154, 152, 127, 116, 119, 74, 52, 31, 47, 24, 22, 13, 11, 6, 11, 10, 8, 6, 3, 20),
    (408, 6, 3, 8, 10, 8, 13, 7, 13, 14, 25, 34, 37, 58, 66, 98, 155, 180, 243, 434, 668, 921, 722, 632, 419, 205,
     113, 69, 27, 17, 13, 14, 11, 7, 2, 3, 3, 2, 1, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0),
    (0, 1, 0, 2, 0, 0, 1, 0, 1, 0, 0, 1, 2, 8, 14, 23, 37, 72, 161, 338, 728, 3042, 3338, 3729, 2761, 1102, 494, 312,
     256, 140, 97, 61, 37, 20, 15, 8, 5, 6, 3, 2, 1, 0, 0, 1, 0, 0, 0, 0, 0),
    (23, 1, 1, 1, 1, 0, 1, 2, 0, 3, 5, 4, 8, 6, 14, 13, 31, 73, 107, 180, 392, 982, 2598, 5373, 6930, 2872, 1046, 498,
     341, 247, 194, 104, 81, 68, 46, 49, 69, 52, 62, 51, 44, 40, 17, 11, 6, 3, 2, 1, 2),
    (0, 0, 1, 0, 2, 1, 0, 1, 0, 1, 1, 6, 6, 9, 4, 10, 25, 58, 79, 162, 292, 859, 1480, 1331, 1383, 1069, 802, 573,
     431, 275, 187, 107, 70, 48, 24, 17, 18, 8, 4, 5, 2, 3, 2, 2, 0, 0, 0, 0, 1),
    (0, 0, 1, 0, 0, 0, 0, 0, 1, 3, 1, 2, 6, 5, 6, 17, 29, 46, 63, 113, 216, 405, 656, 818, 793, 602, 493, 446, 394,
     346, 309, 279, 209, 161, 110, 66, 53, 39, 32, 24, 14, 16, 11, 5, 5, 8, 3, 2, 20),
    (775, 9, 9, 18, 17, 18, 22, 17, 28, 19, 23, 29, 36, 51, 52, 62, 100, 120, 158, 165, 226, 221, 330, 506, 635, 507,
     261, 154, 72, 49, 32, 25, 17, 13, 4, 5, 5, 4, 4, 2, 1, 0, 2, 1, 1, 1, 1, 0, 0),
    (2, 1, 1, 1, 0, 0, 1, 0, 0, 0, 2, 0, 3, 4, 9, 13, 29, 50, 80, 145, 222, 506, 1356, 3482, 6920, 3285, 1329, 766,
     396, 259, 186, 102, 68, 36, 31, 16, 8, 12, 5, 0, 4, 0, 1, 0, 0, 0, 0, 0, 1),
    (70, 0, 0, 1, 5, 3, 2, 3, 1, 3, 4, 2, 2, 7, 13, 13, 21, 30, 47, 84, 174, 499, 1718, 7248, 43089, 13658, 3320,
     1439, 779, 474, 311, 197, 120, 79, 61, 44, 34, 37, 26, 36, 23, 16, 8, 6, 0, 3, 2, 0, 2),
    (0, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1, 2, 2, 5, 3, 11, 11, 34, 43, 72, 139, 285, 653, 1496, 2863, 3507, 2617, 1712,
     1039, 658, 439, 249, 139, 102, 61, 30, 17, 20, 9, 7, 6, 5, 2, 2, 3, 1, 0, 1, 1),
    (1, 0, 0, 0, 1, 1, 0, 5, 1, 2, 0, 0, 3, 9, 5, 7, 11, 15, 30, 56, 98, 191, 390, 806, 1567, 1524, 1083, 911, 823,
     724, 669, 531, 448, 314, 213, 173, 127, 83, 74, 66, 37, 33, 19, 25, 31, 15, 20, 13, 41),
    (527, 5, 4, 3, 2, 1, 5, 6, 12, 19, 20, 18, 24, 36, 31, 41, 65, 72, 88, 133, 124, 155, 199, 213, 291, 350, 471,
     502, 275, 140, 85, 39, 31, 13, 12, 5, 6, 4, 3, 1, 0, 2, 0, 0, 0, 0, 0, 2, 0),
    (0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 1, 1, 3, 1, 5, 6, 15, 31, 60, 97, 147, 265, 526, 852, 1243, 1524, 1580, 1285, 968,
     543, 298, 166, 89, 48, 37, 19, 11, 11, 7, 1, 6, 2, 3, 1, 1, 0, 1, 0, 1),
    (4, 0, 0, 1, 0, 1, 1, 1, 5, 1, 3, 4, 4, 4, 7, 8, 13, 23, 22, 53, 109, 205, 501, 1291, 3015, 3883, 3304, 2371,
     1617, 936, 562, 308, 149, 104, 68, 44, 18, 27, 12, 9, 6, 8, 6, 1, 0, 0, 0, 0, 2),
    (0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 2, 2, 1, 4, 2, 8, 16, 27, 50, 88, 202, 374, 739, 1557, 2776, 3935, 4537, 3236,
     1718, 931, 519, 299, 159, 118, 72, 36, 26, 18, 15, 11, 4, 5, 1, 3, 1, 0, 0, 6),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 2, 3, 4, 5, 15, 14, 17, 45, 75, 116, 250, 428, 776, 1303, 1964, 2516, 2438,
     1893, 1437, 1052, 764, 536, 354, 225, 164, 132, 98, 66, 57, 36, 34, 29, 19, 22, 27, 15, 46),
    (916, 2, 6, 2, 5, 8, 6, 11, 10, 15, 12, 19, 12, 36, 36, 43, 60, 56, 91, 102, 101, 134, 126, 111, 167, 131, 160,
     182, 171, 249, 259, 240, 237, 152, 128, 110, 92, 58, 44, 29, 18, 14, 9, 6, 4, 6, 1, 6, 38),
    (0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 2, 1, 1, 2, 3, 15, 15, 35, 31, 65, 104, 141, 255, 362, 519, 486, 503, 591, 671,
     747, 698, 556, 396, 310, 208, 212, 151, 113, 65, 57, 44, 22, 12, 10, 11, 8, 3, 4, 18),
    (33, 0, 2, 0, 5, 1, 3, 3, 1, 4, 5, 2, 10, 7, 6, 10, 8, 16, 22, 44, 62, 172, 422, 693, 1058, 1071, 968, 1039, 1131,
     1230, 1256, 1155, 835, 711, 608, 589, 549, 501, 435, 332, 256, 161, 120, 75, 50, 28, 22, 17, 50),
    (0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 3, 2, 1, 2, 4, 4, 13, 12, 13, 41, 70, 107, 167, 298, 601, 888, 1315, 1732, 2061,
     2529, 2192, 1557, 1659, 1170, 541, 344, 246, 201, 115, 77, 77, 55, 47, 39, 32, 16, 8, 8, 26),
    (0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 4, 2, 3, 5, 7, 4, 9, 13, 22, 41, 53, 108, 183, 315, 444, 690, 1006, 1641, 2434,
     3201, 4003, 4353, 4352, 4260, 3260, 3515, 3325, 1946, 1523, 1166, 806, 581, 508, 349, 318, 231, 191, 152, 680),
)


def group_of_rank(f: int) -> int:
    """The group of the band of frequency rank ``f`` (0 = lowest): half-octaves, exact."""
    return max(0, (f * f).bit_length() - 4)


def mel_group_of_rank(f: int, bands: int = 256) -> int:
    """Scheme 2's group of the band of frequency rank ``f`` of ``bands`` (before empty groups
    are dropped): the last entry of :data:`MEL_STARTS` at or below ``f * 256 // bands``."""
    return bisect.bisect_right(MEL_STARTS, f * 256 // bands) - 1


#: scheme 2's cells may hold these numbers of frames (the encoder's choice, in the section;
#: :meth:`codec.models.audio.AudioModel.energy_cell`)
CELLS = (1, 2, 4, 8, 16, 32, 64)
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
        self.ranks = torch.tensor(ranks)
        self.tables: entropy.CDFTables | None = None

    @staticmethod
    def cells(frames: int, cell: int = FRAMES) -> int:
        """Cells of ``cell`` frames over ``frames`` (the last one may be shorter)."""
        return -(-frames // cell)

    def _energy(self, c, audible=None, cell: int = FRAMES):
        """``[C, bands, T]`` -> float64 ``[C, groups, cells]`` (sums of squares; only of the
        bands of rank below ``audible``, if given)."""
        C, _, T = c.shape
        pad = self.cells(T, cell) * cell - T
        e = torch.nn.functional.pad(c.double().square(), (0, pad))
        e = e.reshape(C, e.shape[1], -1, cell).sum(-1)  # [C, bands, cells]
        onehot = self.onehot if audible is None else self.onehot * (self.ranks < audible)[:, None]
        return torch.einsum("cbt,bg->cgt", e, onehot.to(e.device))

    def indexes(self, c, c_hat, audible: int | None = None, cell: int = FRAMES, rdo: float = 0.0):
        """The encoder's choice: the input's coefficients ``c`` and the decoder's ``c_hat``,
        ``[C, bands, T]`` -> int64 ``[C, groups, cells]`` (cells of ``cell`` frames).
        ``audible``: compare only the bands of rank below it (those below the Nyquist
        frequency of the signal's own rate: decoding resamples the rest away), or all.
        ``rdo`` > 0 (scheme 2): each index is chosen by :meth:`rd_choice` instead of rounded."""
        e, e_hat = self._energy(c, audible, cell), self._energy(c_hat, audible, cell)
        x = torch.nan_to_num(2 * torch.log2(e / e_hat.clamp_min(1e-300)), nan=0.0, posinf=self.R, neginf=-self.R)
        r = torch.round(x).clamp(-self.R, self.R)
        r = torch.where(e_hat > 0, r, torch.zeros_like(r)).long()
        if rdo > 0 and self.scheme == 2:
            share = e / e.sum(0, keepdim=True).clamp_min(1e-300)
            r = self.rd_choice(r, x.clamp(-self.R, self.R), rdo * share, e_hat > 0)
        return r

    def rd_choice(self, r, x, weight, coded) -> torch.Tensor:
        """Scheme 2's rate-distortion choice of the indexes: in coding order (:meth:`order`;
        an index's context is then known), each index is the one of ``r - 2 .. r + 2`` (in
        ``-R..R``) that minimises its bits under its context's row plus ``weight * (index -
        x)^2``, ``x`` the exact correction (``2 log2(E / Ê)``).  The encoder weighs a
        channel's level error by its share of the group-cell's input energy (a mid/side side
        channel far below its mid moves the left and right channels' levels little).  0 where
        ``coded`` is false.  ``r``, ``x``, ``weight``, ``coded``: ``[C, G, T]``."""
        C, G, T = r.shape
        bits = -np.log2(context_pmf(self.pmf))  # [rows, 2R + 1]
        r0, xs = r.cpu().numpy().reshape(-1), x.cpu().double().numpy().reshape(-1)
        w, ok = weight.cpu().double().numpy().reshape(-1), coded.cpu().numpy().reshape(-1)
        flat = np.zeros(C * G * T, dtype=np.int64)
        for pos, rows in self.wavefront(C, G, T):
            row = rows(flat)
            best, cost = r0[pos].copy(), np.full(len(pos), np.inf)
            for d in (0, -1, 1, -2, 2):
                cand = np.clip(r0[pos] + d, -self.R, self.R)
                j = bits[row, cand + self.R] + w[pos] * (cand - xs[pos]) ** 2
                better = j < cost
                best[better], cost[better] = cand[better], j[better]
            flat[pos] = np.where(ok[pos], best, 0)
        return torch.from_numpy(flat.reshape(C, G, T)).to(r.device)

    def apply(self, c_hat, r, cell: int = FRAMES):
        """``c_hat`` ``[C, bands, T]`` times each cell's (of ``cell`` frames) ``2^(r/4)``."""
        T = c_hat.shape[-1]
        g = torch.pow(2.0, r.to(c_hat.device, torch.float64) / 4)  # [C, groups, cells]
        g = torch.einsum("cgt,bg->cbt", g, self.onehot.to(c_hat.device))
        return c_hat * g.repeat_interleave(cell, -1)[..., :T].to(c_hat.dtype)

    def likelihoods(self, r) -> torch.Tensor:
        """Scheme 2: the probability of each index of ``r`` ``[C, G, T]`` under its table row
        (:func:`context_pmf` of the stored counts; float64, on ``r``'s device): what coding
        them costs, for training."""
        if self.scheme != 2:
            raise ValueError("likelihoods: scheme 2 only")
        pmf = torch.from_numpy(context_pmf(self.pmf))
        return pmf[contexts(r), r.cpu() + self.R].to(r.device)

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

    @classmethod
    def wavefront(cls, C: int, G: int, T: int):
        """:meth:`order` one anti-diagonal at a time, as the decoder goes: yields ``(pos,
        rows)``, ``pos`` the anti-diagonal's positions (C order over ``[C, G, T]``) and
        ``rows(flat)`` their table rows (:func:`context_row`) from the indexes ``flat`` (C
        order) already known, those of the diagonals before."""
        o = cls.order(C, G, T)
        _, g, t = np.unravel_index(o, (C, G, T))
        start = 0
        for stop in np.cumsum(np.bincount(g + t, minlength=G + T - 1)):
            pos, before, below = o[start:stop], t[start:stop] > 0, g[start:stop] > 0
            yield pos, (lambda flat, pos=pos, before=before, below=below: context_row(
                np.where(before, flat[pos - 1], 0), np.where(below, flat[pos - T], 0)))
            start = stop

    def encode(self, r, coded: int | None = None, cell: int = FRAMES) -> bytes:
        """The section of indexes ``r`` ``[C, groups, cells]`` (cells of ``cell`` frames).
        Scheme 2: only the lowest ``coded`` groups (default all), their count and ``cell``
        first (a byte each), each index under the row of its context (:func:`contexts`); the
        decoder takes the others' indexes as 0.  Scheme 1: cells of :data:`FRAMES`."""
        r = r.cpu().long()
        if self.scheme == 1:
            if cell != FRAMES:
                raise ValueError(f"scheme 1 has cells of {FRAMES} frames")
            v = r.reshape(-1).to(torch.int32).numpy()
            return entropy.encode_sequential(v, np.zeros(v.size, dtype=np.int64), self._tables())
        coded = self.groups if coded is None else int(coded)
        if not 1 <= coded <= self.groups:
            raise ValueError(f"1..{self.groups} groups coded, not {coded}")
        if cell not in CELLS:
            raise ValueError(f"cells of {', '.join(map(str, CELLS))} frames, not {cell}")
        r = r[:, :coded].contiguous()
        o = self.order(*r.shape)
        v, rows = r.reshape(-1).numpy()[o], contexts(r).reshape(-1).numpy()[o]
        return bytes([coded, cell]) + entropy.encode_sequential(v.astype(np.int32), rows, self._tables())

    def decode(self, data: bytes, channels: int, frames: int) -> tuple:
        """The indexes of a section of ``channels`` coded channels and ``frames`` latent
        frames, checked: ``(r, cell)``, ``r`` int64 ``[channels, groups, cells]``, cells of
        ``cell`` frames."""
        C, G = channels, self.groups
        if self.scheme == 1:
            cell = FRAMES
            T = self.cells(frames, cell)
            v = entropy.decode_sequential(data, np.zeros(C * G * T, dtype=np.int64), self._tables())
            r = torch.from_numpy(np.asarray(v, dtype=np.int64)).reshape(C, G, T)
        else:
            if len(data) < 2 or not 1 <= data[0] <= G or data[1] not in CELLS:
                raise PayloadError(f"corrupt energy section: {data[0] if data else 'no'} groups coded (1..{G}), "
                                   f"cells of {data[1] if len(data) > 1 else 'no'} frames")
            coded, cell = data[0], data[1]
            T = self.cells(frames, cell)
            dec = entropy.SequentialDecoder(data[2:], self._tables(), C * coded * T)
            flat = np.zeros(C * coded * T, dtype=np.int64)  # C order over [C, coded, T]
            for pos, rows in self.wavefront(C, coded, T):  # each anti-diagonal's contexts are decoded
                flat[pos] = dec.decode(rows(flat))
            dec.finish()
            r = torch.zeros(C, G, T, dtype=torch.int64)
            r[:, :coded] = torch.from_numpy(flat).reshape(C, coded, T)
        if bool((r.abs() > self.R).any()):
            raise PayloadError("corrupt energy section: a correction index out of range")
        return r, cell

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


def context_row(before, below) -> np.ndarray:
    """Scheme 2's table row of an index whose neighbours' indexes are ``before`` and ``below``."""
    return CLASSES * context_class(before) + context_class(below)


def contexts(r) -> torch.Tensor:
    """Scheme 2's table row of each index of ``r`` ``[C, G, T]``: ``CLASSES * class(before) +
    class(below)``, ``before`` the index of the cell before (same channel and group), ``below``
    that of the group below (same channel and cell), 0 where there is none."""
    r = r.cpu().long()
    before = torch.nn.functional.pad(r, (1, 0))[..., :-1]
    below = torch.nn.functional.pad(r, (0, 0, 1, 0))[:, :-1]
    return torch.from_numpy(context_row(before.numpy(), below.numpy()))


def context_pmf(counts) -> np.ndarray:
    """Scheme 2's rows of probabilities from the fitted counts ``[CONTEXTS, 2R + 1]``: each
    row's counts plus :data:`PRIOR` samples shaped as all rows' counts together (plus one)."""
    counts = np.asarray(counts, dtype=np.float64)
    pooled = counts.sum(0) + 1
    rows = counts + PRIOR * pooled / pooled.sum()
    return rows / rows.sum(1, keepdims=True)
