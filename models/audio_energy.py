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
  12 in scheme 1, 24 in scheme 2: 18 or 36 dB);
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
below, both decoded before it; 25 rows; 3.3 bits an index on training files where one row
costs 4.1).  Any indexes decode (the encoder's rule is a choice); one outside ``-R..R`` is a
corrupt stream.

Scheme 2 against scheme 1 with the same weights (those of 1d76c92; ``codec eval`` of the
held-out files at qualities 1..8, ``codec bdrate --method pchip``): mel distance -14.9% on
speech, -32.0% on music, -70.4% on environment, ViSQOL -40.5/-63.5/-48.7%, SI-SDR
+25.2/+27.2/+66.6% (-2.2, -2.1, -4.4 dB): it costs 0.6-1.4 kbps more on speech (mostly
16 kHz mono), 1.7-3.8 on music and 2.0-4.6 on environment (stereo, 44.1/48 kHz), and pays
in mel distance and ViSQOL, not in SI-SDR.  With the same groups and contexts, cells of 32
frames gave mel -6.7/-19.6/-63.6% for 0.05 kbps less to 0.75 more; of 16, -13.0/-28.3/-68.5%;
of 8 at every quality, -14.3/-32.9/-68.7% with the lowest rates 3.2, 8.1 and 7.1 kbps (16
below quality 3 brings them to 2.2, 5.6 and 4.4); of 4, 5.1, 13.0 and 12.5 kbps at the
lowest quality.
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
#: its table is built (:func:`context_pmf`): fitted with the shipped weights of 1d76c92 on the
#: groups an encoder codes (``python -m codec.tools.fit_energy_pmf ../shared/data/audio
#: --scheme 2 --holdout training/configs/wavelet-audio-cpu-7.json``: 394 094 indexes of 32 files,
#: 3.26 bits each under these rows, 4.11 under one row for all)
COUNTS2 = (
    (1053, 75, 87, 81, 121, 156, 223, 269, 310, 341, 359, 456, 543, 653, 753, 854, 968, 1440, 1253, 1011, 926, 350,
     200, 110, 88, 48, 50, 32, 22, 18, 14, 9, 6, 3, 1, 1, 1, 2, 2, 1, 2, 0, 3, 1, 0, 0, 0, 0, 0),
    (7, 1, 1, 3, 5, 5, 6, 8, 10, 20, 28, 25, 30, 68, 89, 200, 323, 403, 530, 897, 1153, 835, 450, 320, 243, 148, 84,
     67, 28, 29, 22, 11, 14, 1, 7, 4, 1, 3, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0),
    (50, 8, 0, 5, 7, 8, 10, 14, 16, 26, 22, 34, 49, 43, 73, 95, 122, 190, 278, 337, 346, 361, 385, 411, 736, 364, 199,
     129, 66, 49, 41, 28, 11, 14, 6, 7, 5, 5, 6, 2, 2, 3, 5, 1, 0, 0, 0, 0, 0),
    (5, 3, 2, 8, 7, 4, 4, 3, 11, 20, 24, 15, 25, 42, 34, 63, 74, 130, 161, 217, 225, 254, 186, 232, 218, 199, 180,
     181, 133, 109, 77, 44, 30, 20, 9, 9, 9, 3, 2, 2, 2, 0, 0, 1, 1, 0, 0, 0, 0),
    (9, 0, 0, 5, 6, 13, 13, 12, 16, 34, 38, 45, 43, 66, 66, 65, 76, 104, 135, 141, 159, 160, 163, 148, 156, 152, 153,
     136, 126, 131, 115, 121, 103, 80, 63, 56, 31, 40, 21, 13, 19, 10, 9, 9, 3, 2, 5, 0, 8),
    (357, 4, 10, 17, 6, 8, 8, 8, 7, 21, 23, 42, 39, 55, 85, 92, 139, 166, 242, 266, 394, 550, 1212, 992, 302, 135, 78,
     53, 33, 24, 18, 7, 11, 2, 6, 5, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    (0, 0, 3, 0, 1, 2, 2, 0, 3, 0, 4, 1, 2, 4, 14, 30, 40, 71, 167, 395, 939, 3057, 5401, 5276, 3439, 1126, 498, 328,
     264, 190, 117, 87, 50, 33, 10, 14, 4, 2, 3, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0),
    (25, 0, 1, 1, 1, 0, 2, 1, 2, 4, 3, 2, 8, 11, 10, 17, 28, 52, 103, 180, 423, 1067, 3271, 6805, 8400, 2788, 916,
     562, 396, 268, 180, 143, 109, 61, 43, 44, 56, 46, 62, 57, 55, 27, 18, 22, 6, 2, 1, 0, 4),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 4, 6, 8, 11, 33, 35, 72, 131, 251, 511, 919, 1392, 1485, 1013, 823, 572, 379,
     284, 191, 111, 61, 40, 25, 9, 11, 8, 4, 5, 3, 1, 0, 3, 1, 0, 1, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 3, 5, 7, 13, 16, 23, 56, 82, 139, 264, 594, 902, 818, 517, 434, 398, 363,
     333, 275, 252, 161, 135, 106, 82, 53, 42, 32, 24, 19, 14, 7, 8, 4, 0, 3, 3, 5),
    (792, 8, 8, 15, 14, 20, 14, 13, 13, 12, 26, 26, 20, 42, 52, 77, 95, 126, 165, 169, 156, 190, 258, 354, 519, 482,
     246, 90, 62, 42, 40, 16, 12, 8, 3, 3, 4, 3, 0, 1, 2, 1, 2, 0, 1, 0, 0, 0, 0),
    (3, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4, 12, 13, 29, 39, 79, 124, 273, 486, 1424, 4206, 8750, 3693, 1143, 708,
     418, 307, 151, 127, 81, 35, 25, 16, 10, 6, 5, 1, 5, 2, 2, 0, 0, 1, 1, 1, 0),
    (71, 1, 0, 0, 1, 0, 0, 1, 2, 0, 2, 2, 1, 3, 6, 12, 18, 24, 50, 96, 224, 505, 1940, 8605, 55580, 13514, 3221, 1362,
     759, 454, 377, 197, 156, 84, 59, 55, 32, 31, 30, 18, 17, 18, 11, 4, 3, 3, 1, 0, 3),
    (2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 3, 2, 7, 7, 10, 19, 32, 61, 121, 262, 579, 1598, 3219, 3751, 2460, 1584,
     1078, 673, 394, 258, 161, 101, 46, 41, 24, 13, 14, 3, 3, 2, 0, 2, 1, 1, 0, 0, 2),
    (0, 0, 0, 0, 0, 3, 0, 0, 1, 1, 1, 3, 0, 2, 4, 8, 7, 11, 20, 31, 74, 164, 375, 975, 1901, 1436, 1002, 856, 806,
     731, 618, 532, 402, 291, 231, 166, 142, 86, 72, 50, 25, 29, 24, 20, 24, 19, 12, 9, 45),
    (536, 5, 1, 5, 8, 6, 7, 20, 11, 8, 44, 28, 28, 38, 32, 38, 39, 66, 79, 99, 119, 132, 137, 165, 201, 354, 295, 230,
     137, 67, 66, 40, 24, 16, 9, 6, 6, 1, 0, 0, 1, 3, 0, 1, 0, 0, 1, 0, 0),
    (1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 5, 6, 8, 23, 31, 43, 97, 150, 247, 510, 871, 1210, 1365, 1279, 1199, 915,
     556, 254, 154, 80, 43, 23, 9, 9, 5, 6, 3, 2, 1, 0, 0, 1, 0, 0, 0, 0),
    (1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 3, 2, 5, 11, 11, 11, 27, 42, 106, 199, 491, 1257, 3044, 3782, 3563, 2521,
     1808, 1065, 588, 293, 168, 100, 71, 30, 33, 18, 7, 9, 2, 3, 2, 1, 0, 1, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 9, 11, 14, 34, 46, 80, 151, 327, 687, 1428, 2718, 3981, 4093, 2960,
     1528, 891, 477, 292, 158, 103, 58, 49, 23, 16, 10, 6, 4, 1, 2, 3, 0, 0, 1, 0),
    (0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 2, 4, 4, 0, 4, 10, 20, 31, 56, 106, 237, 380, 741, 1171, 1758, 2030, 2037,
     1854, 1477, 1093, 743, 515, 373, 252, 167, 130, 91, 62, 45, 31, 32, 24, 14, 13, 8, 7, 21),
    (931, 5, 4, 0, 7, 7, 9, 6, 10, 7, 24, 18, 18, 24, 36, 55, 58, 53, 59, 99, 104, 99, 104, 108, 119, 131, 143, 129,
     165, 159, 156, 133, 120, 106, 71, 69, 50, 46, 43, 14, 16, 12, 8, 6, 6, 1, 0, 2, 18),
    (0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 4, 2, 5, 13, 13, 24, 31, 34, 83, 128, 251, 443, 552, 427, 455, 527, 722, 653,
     556, 456, 387, 319, 223, 120, 106, 71, 59, 59, 18, 17, 16, 11, 5, 6, 0, 2, 12),
    (30, 2, 0, 2, 0, 4, 2, 2, 2, 3, 7, 5, 4, 5, 7, 7, 5, 11, 26, 32, 57, 181, 439, 710, 1184, 1068, 962, 932, 1192,
     1371, 1128, 950, 775, 766, 602, 606, 510, 508, 442, 342, 234, 169, 102, 52, 45, 29, 24, 11, 37),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0, 2, 3, 1, 5, 10, 18, 32, 36, 80, 129, 303, 563, 858, 1290, 1691, 1976,
     1887, 1795, 1573, 1278, 1428, 858, 474, 265, 176, 140, 107, 92, 47, 35, 20, 16, 6, 9, 4, 22),
    (0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 4, 4, 6, 7, 6, 18, 14, 20, 44, 43, 84, 186, 282, 443, 641, 1046, 1547, 2433,
     3291, 3644, 4377, 3770, 3361, 2980, 2857, 3651, 2641, 1827, 1450, 960, 664, 524, 352, 257, 215, 146, 139, 580),
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

    def indexes(self, c, c_hat, audible: int | None = None, cell: int = FRAMES):
        """The encoder's choice: the input's coefficients ``c`` and the decoder's ``c_hat``,
        ``[C, bands, T]`` -> int64 ``[C, groups, cells]`` (cells of ``cell`` frames).
        ``audible``: compare only the bands of rank below it (those below the Nyquist
        frequency of the signal's own rate: decoding resamples the rest away), or all."""
        e, e_hat = self._energy(c, audible, cell), self._energy(c_hat, audible, cell)
        r = torch.round(2 * torch.log2(e / e_hat.clamp_min(1e-300)))
        r = torch.nan_to_num(r, nan=0.0, posinf=self.R, neginf=-self.R).clamp(-self.R, self.R)
        return torch.where(e_hat > 0, r, torch.zeros_like(r)).long()

    def apply(self, c_hat, r, cell: int = FRAMES):
        """``c_hat`` ``[C, bands, T]`` times each cell's (of ``cell`` frames) ``2^(r/4)``."""
        T = c_hat.shape[-1]
        g = torch.pow(2.0, r.to(c_hat.device, torch.float64) / 4)  # [C, groups, cells]
        g = torch.einsum("cgt,bg->cbt", g, self.onehot.to(c_hat.device))
        return c_hat * g.repeat_interleave(cell, -1)[..., :T].to(c_hat.dtype)

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
