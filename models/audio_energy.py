"""Band-energy correction of an audio model's decoded transform coefficients (arch kwarg
``energy`` 1 of :class:`codec.models.audio.AudioModel`).

A waveform coder's decoded bands drift from the input's energy where the log-mel distance
looks hardest: quiet bands that quantise to zero and get noise-filled too loudly or not at
all, loud ones a little off.  Opus (CELT) codes every band's energy explicitly; this codes
only a coarse correction of what the decoder would give:

- the bands (transform channels, in frequency order ``f``) fall into half-octave groups,
  ``group(f) = max(0, bit_length(f^2) - 4)`` (exact integers: bands 0..3 are group 0, then
  two groups an octave, ``f`` in ``[2^((g+3)/2), 2^((g+4)/2))``; 13 groups of 256 bands),
  and the frames into cells of :data:`FRAMES`;
- per coded channel, group and cell the encoder compares the energy ``E`` of the input's
  coefficients with the energy ``Ê`` of the decoder's (it runs the decoder's synthesis) and
  codes ``r = clamp(round(2 log2(E / Ê)), -R, R)`` (1.5 dB steps; 0 where ``Ê`` is 0);
- the decoder multiplies the cell's coefficients by ``2^(r/4)`` before the inverse transform.

The indexes of a chunk are one section (``energy``), coded in one sequential rANS stream
under one table row (:data:`PMF`), the table stored with the weights.  Any
indexes decode (the encoder's rule is a choice); one outside ``-R..R`` is a corrupt stream.
"""
from __future__ import annotations

import numpy as np
import torch

from codec import entropy
from codec.models.payload import PayloadError

#: latent frames per cell (32 frames: 171 ms at 48 kHz with 256 bands; 16 and 8 frames cost
#: 2x and 4x the bits for little more, 64 loses more than it saves: a one-off measurement)
FRAMES = 32
#: the largest correction index (a gain of 2^(R/4): 18 dB)
R = 12
#: the probabilities of the indexes -R..R that the coding table is built from: their frequencies
#: (plus one) with the weights of wavelet-audio-cpu-6's step 4000, on every sixth training file
#: (first 10 s, qualities 2, 3.5, 5, 6.5 and 8; 64 870 indexes, 3.84 bits each; one-off script).
#: Heavy tails and the clamp's ends: a Laplace row of diversity 1 costs 5.6 bits an index.
PMF = (0.0576, 0.0062, 0.0103, 0.0077, 0.012, 0.018, 0.0113, 0.0115, 0.0137, 0.0153, 0.0212, 0.0575, 0.2891,
       0.1112, 0.0689, 0.0464, 0.0372, 0.0355, 0.034, 0.0295, 0.0238, 0.0187, 0.0147, 0.0099, 0.0388)


def group_of_rank(f: int) -> int:
    """The group of the band of frequency rank ``f`` (0 = lowest): half-octaves, exact."""
    return max(0, (f * f).bit_length() - 4)


class BandEnergy:
    """The correction for a transform whose channel ``c`` has frequency rank ``ranks[c]``."""

    def __init__(self, ranks):
        groups = torch.tensor([group_of_rank(int(f)) for f in ranks])
        self.groups = int(groups.max()) + 1
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
        r = torch.nan_to_num(r, nan=0.0, posinf=R, neginf=-R).clamp(-R, R)
        return torch.where(e_hat > 0, r, torch.zeros_like(r)).long()

    def apply(self, c_hat, r):
        """``c_hat`` ``[C, bands, T]`` times each cell's ``2^(r/4)``."""
        T = c_hat.shape[-1]
        g = torch.pow(2.0, r.to(c_hat.device, torch.float64) / 4)  # [C, groups, cells]
        g = torch.einsum("cgt,bg->cbt", g, self.onehot.to(c_hat.device))
        return c_hat * g.repeat_interleave(FRAMES, -1)[..., :T].to(c_hat.dtype)

    # -- the section ----------------------------------------------------------------------
    def freeze(self):
        pmf = np.zeros((1, 2 * R + 2))
        pmf[0, :2 * R + 1] = PMF  # the escape (last column) gets the least frequency
        self.tables = entropy.tables_from_pmf(pmf, [2 * R + 1], [-R])

    def _tables(self):
        if self.tables is None:
            from codec.models.latent_codecs import NotFrozenError

            raise NotFrozenError("call freeze() (or load frozen weights) before coding")
        return self.tables

    def encode(self, r) -> bytes:
        v = r.reshape(-1).cpu().to(torch.int32).numpy()
        return entropy.encode_sequential(v, np.zeros(v.size, dtype=np.int64), self._tables())

    def decode(self, data: bytes, shape) -> torch.Tensor:
        n = int(np.prod(shape))
        v = entropy.decode_sequential(data, np.zeros(n, dtype=np.int64), self._tables())
        r = torch.from_numpy(np.asarray(v, dtype=np.int64)).reshape(shape)
        if bool((r.abs() > R).any()):
            raise PayloadError("corrupt energy section: a correction index out of range")
        return r

    def state_dict(self, prefix: str) -> dict:
        return self._tables().state_dict(prefix)

    def load(self, state: dict, prefix: str):
        self.tables = entropy.CDFTables.from_state_dict(state, prefix)
        if self.tables.num_rows != 1:
            raise ValueError("the energy table has one row")
