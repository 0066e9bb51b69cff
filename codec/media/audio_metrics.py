"""Audio metrics: distortion of a decoded :class:`~codec.media.audio.Audio` against its
reference (the one SNR, SI-SDR and mel distance of the project).

Each takes ``(reference, estimate)``, two :class:`~codec.media.audio.Audio` of the same
sample rate and shape (``[channels, n]``); anything else is an
:class:`~codec.errors.InputError`.  Sums are in float64, over blocks of the signal, so
memory does not grow with its length.  Values in dB are capped to
[-:data:`DB_MAX`, :data:`DB_MAX`] instead of infinities (identical signals give
:data:`DB_MAX`), so that JSON stays valid, as :data:`codec.media.image_metrics.PSNR_MAX`.

- **SNR** (dB): ``10*log10(sum(r^2) / sum((r - e)^2))``, the sums over every channel and
  sample together.  Not invariant to gain or offset.
- **SI-SDR** (dB; Le Roux et al., "SDR - half-baked or well done?", 2019): per channel,
  both signals made zero-mean, ``a = <e, r> / <r, r>``, ``10*log10(|a r|^2 / |e - a r|^2)``;
  each channel capped, then the mean over channels.  Invariant to the estimate's gain
  (and to DC offsets).  A silent reference channel gives :data:`DB_MAX` when the
  estimate's channel is silent too (after mean removal), -:data:`DB_MAX` otherwise.
- **Mel distance** (log10 units, lower is better; 0 for identical signals): the mean over
  FFT sizes 512, 1024 and 2048 (:data:`MEL_FFT_SIZES`) of the mean absolute difference of
  log-mel spectrograms, per channel, every band and frame weighted alike.  At FFT size N:
  ``torch.stft`` with a periodic Hann window of N samples, hop N/4, frames centred (the
  signal zero-padded by N/2 at both ends: ``1 + n // hop`` frames), magnitudes divided
  by the window's sum (a full-scale sine peaks near 0.5); :func:`mel_filterbank` with
  N/16 bands (32, 64, 128) from 0 Hz to half the sample rate; ``log10(max(mel, 1e-5))``
  (:data:`MEL_EPS`, about -100 dB of full scale).  Scaling a signal by g (with
  everything above the floor) gives a distance of exactly ``|log10 g|``.
"""
from __future__ import annotations

import math

import numpy as np

from codec.errors import InputError

__all__ = ["DB_MAX", "MEL_FFT_SIZES", "MEL_EPS", "snr", "si_sdr", "mel_distance", "mel_filterbank", "db"]

DB_MAX = 100.0
MEL_FFT_SIZES = (512, 1024, 2048)
MEL_EPS = 1e-5
_BLOCK = 1 << 20  # samples a block, for the sums
_FRAMES = 2048  # STFT frames a block


def _pair(ref, est):
    from codec.media.audio import Audio

    for name, x in (("reference", ref), ("estimate", est)):
        if not isinstance(x, Audio):
            raise InputError(f"audio metrics take codec.media.audio.Audio objects; the {name} is a "
                             f"{type(x).__name__} (make one with codec.media.audio.from_user(x, sample_rate))")
    if ref.sample_rate != est.sample_rate:
        raise InputError(f"the reference is at {ref.sample_rate} Hz and the estimate at {est.sample_rate} Hz: "
                         "resample one first (codec.media.audio.resample)")
    if ref.samples.shape != est.samples.shape:
        raise InputError(f"the reference is {ref.samples.shape[0]} channels x {ref.samples.shape[1]} samples "
                         f"and the estimate {est.samples.shape[0]} x {est.samples.shape[1]}: they must match")
    if ref.samples.ndim != 2 or ref.samples.shape[1] < 1:
        raise InputError(f"audio metrics need [channels, n] samples with n >= 1, not {ref.samples.shape}")
    return ref.samples, est.samples


def _blocks(n: int):
    for i in range(0, n, _BLOCK):
        yield slice(i, min(n, i + _BLOCK))


def db(num: float, den: float) -> float:
    """``10*log10(num / den)`` of two energies, capped to [-DB_MAX, DB_MAX] (``den = 0``: DB_MAX)."""
    if den <= 0:
        return DB_MAX
    if num <= 0:
        return -DB_MAX
    return max(-DB_MAX, min(DB_MAX, 10.0 * math.log10(num / den)))


def snr(ref, est) -> float:
    """SNR in dB over all channels (see the module docstring)."""
    r, e = _pair(ref, est)
    sig = err = 0.0
    for b in _blocks(r.shape[1]):
        rb = r[:, b].astype(np.float64)
        d = rb - e[:, b]
        sig += float(np.sum(rb * rb))
        err += float(np.sum(d * d))
    return db(sig, err)


def si_sdr(ref, est) -> float:
    """Scale-invariant SDR in dB, per channel (zero-mean), averaged (see the module docstring)."""
    r, e = _pair(ref, est)
    ch, n = r.shape
    # first pass: means, then <r, r> and <e, r> of the zero-mean signals; second: the residual
    mr = np.zeros(ch)
    me = np.zeros(ch)
    for b in _blocks(n):
        mr += r[:, b].sum(axis=1, dtype=np.float64)
        me += e[:, b].sum(axis=1, dtype=np.float64)
    mr /= n
    me /= n
    rr = np.zeros(ch)
    er = np.zeros(ch)
    ee = np.zeros(ch)
    for b in _blocks(n):
        rb = r[:, b] - mr[:, None]
        eb = e[:, b] - me[:, None]
        rr += np.sum(rb * rb, axis=1)
        er += np.sum(eb * rb, axis=1)
        ee += np.sum(eb * eb, axis=1)
    values = []
    for c in range(ch):
        if rr[c] <= 0:
            values.append(DB_MAX if ee[c] <= 0 else -DB_MAX)
            continue
        a = er[c] / rr[c]
        noise = 0.0
        for b in _blocks(n):
            d = (e[c, b] - me[c]) - a * (r[c, b] - mr[c])
            noise += float(np.sum(d * d))
        values.append(db(a * a * rr[c], noise))
    return float(np.mean(values))


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, freqs=None):
    """``[bands, n_fft // 2 + 1]`` float32 tensor of triangular mel filters.

    The HTK mel scale (``2595 * log10(1 + f / 700)``); ``n_mels + 2`` edges equally spaced
    on it from 0 Hz to ``sample_rate / 2``; filter i rises linearly from edge i to 1 at
    edge i+1 and falls to 0 at edge i+2, evaluated at the FFT bins' frequencies
    ``k * sample_rate / n_fft`` (peak 1, not area-normalised).  Filters that cover no bin
    (narrower than a bin at low frequencies and small FFTs) are left out, so ``bands`` can
    be below ``n_mels``.  ``freqs`` (Hz, 1-D): the same filters (those kept by that rule)
    evaluated at these frequencies instead, ``[bands, len(freqs)]`` (training measures the
    distance of a signal at another rate: :class:`codec.training.tasks.audio_rd.MelDistance`)."""
    import torch

    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate / 2), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]

    def at(f):
        f = np.asarray(f, np.float64)[None]
        return np.maximum(0.0, np.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)))

    fb = at(np.arange(n_fft // 2 + 1) * sample_rate / n_fft)
    keep = fb.sum(axis=1) > 0
    fb = fb[keep] if freqs is None else at(freqs)[keep]
    return torch.from_numpy(fb.astype(np.float32))


def _log_mels(x: np.ndarray, n_fft: int, fb, window):
    """Blocks of ``log10(max(mel, eps))`` ``[bands, frames]`` of one channel (centred frames)."""
    import torch

    hop = n_fft // 4
    pad = n_fft // 2
    n = x.shape[0]
    xp = torch.from_numpy(np.pad(np.asarray(x, np.float32), (pad, pad)))
    frames = 1 + n // hop
    norm = float(window.sum())
    for k0 in range(0, frames, _FRAMES):
        k1 = min(frames, k0 + _FRAMES)
        seg = xp[k0 * hop:(k1 - 1) * hop + n_fft]
        spec = torch.stft(seg, n_fft, hop_length=hop, win_length=n_fft, window=window, center=False,
                          return_complex=True)
        mel = fb @ (spec.abs() / norm)
        yield torch.log10(mel.clamp_min(MEL_EPS))


def mel_distance(ref, est) -> float:
    """Multi-resolution log-mel distance (see the module docstring); 0 for identical signals."""
    import torch

    r, e = _pair(ref, est)
    rate = ref.sample_rate
    dists = []
    with torch.no_grad():
        for n_fft in MEL_FFT_SIZES:
            fb = mel_filterbank(rate, n_fft, n_fft // 16)
            window = torch.hann_window(n_fft, periodic=True)
            total, count = 0.0, 0
            for c in range(r.shape[0]):
                for lr, le in zip(_log_mels(r[c], n_fft, fb, window), _log_mels(e[c], n_fft, fb, window)):
                    total += float((lr - le).abs().sum(dtype=torch.float64))
                    count += lr.numel()
            dists.append(total / count)
    return float(np.mean(dists))
