"""Rate-distortion training of a registry audio model (``codec train`` with an audio model).

The objective of one step, on random excerpts of ``data.crop`` samples at the model's
rate (mono: every channel of every file is an item; stereo files give their mid and
side, as the codec codes them):

- loss ``lambda * (log-mel distance + loss.mse_weight * MSE) + bits per sample``, the
  bits from the likelihoods, the log-mel distance the multi-resolution one of
  :func:`codec.media.audio_metrics.mel_distance` (differentiable here, on torch.stft);
  plus the auxiliary loss of the factorized densities' quantiles;
- every excerpt gets a random quality, uniform over the model's range, and the lambda
  interpolated log-linearly between its levels' lambdas (gain units);
- a random gain of -20..0 dB per excerpt (what is coded does not depend on loudness);
- with ``loss.mel_source_band`` the log-mel distance of an excerpt counts only the mel bands
  whose centre lies below its file's own Nyquist frequency (a 16 kHz file: below 8 kHz), as
  ``codec eval`` measures at the file's own rate: the model's output above that is
  resampled away on decoding, so it need not match the resampler's residue there;
- with ``loss.mel_source_rate`` it is measured as ``codec eval`` measures it, at the file's
  own rate (:class:`MelDistance` with ``source``: that rate's window lengths and mel bands;
  a 16 kHz file's FFT of 512 samples is 32 ms, 10.7 ms at 48 kHz), which implies the above;
- with ``loss.energy_correction`` ``w`` > 0 (models with band-energy correction, scheme 2)
  the distortion is ``w`` times that of the output corrected as the decoder corrects it
  (the indexes the encoder would choose, every band compared) plus ``1 - w`` times that of
  the output before the correction, and the indexes' bits under the stored table join the
  rate (they have no gradient).  With ``w`` = 1 nothing holds the synthesis' band energies
  (the correction re-levels them whatever they are): they drift, the indexes grow and
  clip, and the coded result got worse; the uncorrected share anchors them.

Files are decoded and resampled once (:mod:`codec.media.audio`) and held in memory;
``data.holdout`` files are left out of training.  Every excerpt is a pure function of
``(seed, step, rank, item)``, so a resumed run sees the same batches.

Validation codes the first :data:`VAL_SECONDS` of every held-out file for real at each
level (``model.compress -> Payload``): kbps from the payload's bytes, the log-mel
distance and SI-SDR of the decoded signal.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from codec.training.config import Config
from codec.training.logs import log
from codec.training.models import build_model, init_weights
from codec.training.tasks import Context, RegistryModelTask, sample_qualities

VAL_SECONDS = 15.0
MIN_ITEM_SECONDS = 0.25


def list_audio(folders, what="data.train") -> list[Path]:
    """Audio files (by extension, :data:`codec.media.AUDIO_EXTENSIONS`) under ``folders``, sorted."""
    from codec.media import AUDIO_EXTENSIONS

    files = []
    for folder in folders:
        p = Path(folder)
        if p.is_file():
            files.append(p)
            continue
        if not p.is_dir():
            raise ValueError(f"{what}: no such folder: {folder}")
        files += [f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file()]
    if not files:
        raise ValueError(f"{what}: no audio files in {', '.join(map(str, folders))}")
    return sorted(files)


def load_items(path, rate: int) -> tuple[list[np.ndarray], int]:
    """The mono items of one file at ``rate`` (its channel, or mid and side of a stereo
    file) and the file's own sample rate."""
    from codec.media import audio as A

    src = A.read(path)
    x = A.resample(src, rate).samples
    if x.shape[0] == 2:
        return [(x[0] + x[1]) / 2, (x[0] - x[1]) / 2], src.sample_rate
    return [c for c in x], src.sample_rate


class MelDistance(nn.Module):
    """Differentiable multi-resolution log-mel distance: the definition of
    :func:`codec.media.audio_metrics.mel_distance` on batches ``[B, 1, n]``; ``[B]``.

    With ``source`` (each row's file's own sample rate) a row is measured as ``codec eval``
    measures its file, at that rate (:meth:`forward`), on the signal at the model's rate:
    the same window durations (FFT sizes ``round(N * rate / source)``, hops a quarter of
    them) and the same mel bands (those of FFT size ``N`` at ``source``, up to its Nyquist
    frequency), evaluated at this FFT's bins.  Where the rates divide (16, 24, 48 kHz at
    48 kHz) the bins below the source's Nyquist frequency are exactly its own FFT's; else
    (44.1, 22.05 kHz) within half a bin of them."""

    def __init__(self, rate: int):
        super().__init__()
        from codec.media.audio_metrics import MEL_FFT_SIZES, mel_filterbank

        self.rate, self.sizes = int(rate), MEL_FFT_SIZES
        for n_fft in self.sizes:
            fb = mel_filterbank(rate, n_fft, n_fft // 16)
            self.register_buffer(f"fb{n_fft}", fb, persistent=False)
            self.register_buffer(f"win{n_fft}", torch.hann_window(n_fft, periodic=True), persistent=False)
            freqs = torch.arange(fb.shape[1], dtype=torch.float32) * rate / n_fft
            self.register_buffer(f"centre{n_fft}", (fb @ freqs) / fb.sum(1), persistent=False)  # Hz
        self._at = {}  # (source rate, N, device) -> (FFT size here, filters, window)

    def _source(self, source: int, n_fft: int, device):
        key = (int(source), n_fft, str(device))
        if key not in self._at:
            from codec.media.audio_metrics import mel_filterbank

            n = max(16, round(n_fft * self.rate / int(source)))
            freqs = np.arange(n // 2 + 1) * self.rate / n
            fb = mel_filterbank(int(source), n_fft, n_fft // 16, freqs=freqs)
            self._at[key] = (n, fb.to(device), torch.hann_window(n, periodic=True, device=device))
        return self._at[key]

    @staticmethod
    def _log_mel_of(x, n_fft, fb, win):
        from codec.media.audio_metrics import MEL_EPS

        spec = torch.stft(x, n_fft, hop_length=n_fft // 4, window=win, center=True, pad_mode="constant",
                          return_complex=True)
        mag = (spec.real.square() + spec.imag.square() + 1e-12).sqrt() / float(win.sum())
        return torch.log10((fb @ mag).clamp_min(MEL_EPS))

    def _log_mel(self, x, n_fft):
        return self._log_mel_of(x, n_fft, getattr(self, f"fb{n_fft}"), getattr(self, f"win{n_fft}"))

    def forward(self, x_hat, x, limit=None, source=None):
        """``limit``: None, or ``[B]`` frequencies (Hz): each row counts only the bands whose
        centre lies below its limit (the mean over those bands and every frame).  ``source``:
        None, or ``[B]`` sample rates: each row measured at its own (class docstring; ``limit``
        is then ignored: the bands stop at the source's Nyquist frequency)."""
        a, b = x_hat.flatten(1).float(), x.flatten(1).float()
        if source is not None:
            out = a.new_zeros(a.shape[0])
            rates = [int(r) for r in torch.as_tensor(source).reshape(-1).tolist()]
            for r in sorted(set(rates)):
                rows = torch.tensor([v == r for v in rates], device=a.device)
                total = 0
                for n in self.sizes:
                    size, fb, win = self._source(r, n, a.device)
                    d = self._log_mel_of(a[rows], size, fb, win) - self._log_mel_of(b[rows], size, fb, win)
                    total = total + d.abs().flatten(1).mean(1)
                out = out.index_put((rows.nonzero()[:, 0],), total / len(self.sizes))
            return out
        total = 0
        for n in self.sizes:
            d = (self._log_mel(a, n) - self._log_mel(b, n)).abs()  # [B, bands, frames]
            if limit is None:
                total = total + d.flatten(1).mean(1)
            else:
                keep = (getattr(self, f"centre{n}")[None] < limit[:, None]).to(d)  # [B, bands]
                total = total + (d.mean(2) * keep).sum(1) / keep.sum(1).clamp_min(1)
        return total / len(self.sizes)


class AudioRDForward(nn.Module):
    def __init__(self, model: nn.Module, mel: MelDistance, energy: float = 0.0):
        super().__init__()
        self.model, self.mel, self.energy = model, mel, float(energy)

    def forward(self, x, quality, limit=None, source=None):
        out = self.model(x, quality, energy=True) if self.energy else self.model(x, quality)
        res = {"x_hat": out["x_hat"], "likelihoods": out["likelihoods"], "aux": self.model.aux_loss(),
               "mel": self.mel(out["x_hat"], x, limit, source)}
        if 0 < self.energy < 1:  # the output before the band-energy correction, for the rest of the distortion
            res.update(x_plain=out["x_plain"], mel_plain=self.mel(out["x_plain"], x, limit, source))
        return res


class AudioRDTask(RegistryModelTask):
    """Rate-distortion training of an audio model (see the module docstring)."""

    name = "audio-rd"
    sums = ("loss", "bps", "mse", "mel", "aux")
    train_fields = ("epoch", "loss", "kbps", "bps", "mse", "mel", "aux")
    val_fields = ("quality", "loss", "kbps", "kbps_est", "mel", "si_sdr", "snr", "seconds_audio", "bytes")

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.points = tuple((float(q), lam) for q, lam in enumerate(cfg.lambdas, start=1))
        self.rate = int(self.arch_kwargs.get("sample_rate", self.spec.arch_class().sample_rate))
        self.items, self.val_items, self.files = [], [], []
        self.nyquist = []  # per item: its file's own sample rate / 2 (Hz)
        self.mel = None

    @property
    def has_validation(self) -> bool:
        return bool(self.val_items)

    # -- data -----------------------------------------------------------------------
    def prepare(self, ctx: Context) -> None:
        d = self.cfg.data
        held = [Path(p).resolve() for p in (d.holdout or [])]
        for p in held:
            if not p.is_file():
                raise ValueError(f"data.holdout: no such file: {p}")
        self.files = [f for f in list_audio(d.train) if f.resolve() not in held]
        if not self.files:
            raise ValueError("data.train: every file is held out")
        self.items, self.nyquist = [], []
        for f in self.files:
            items, rate = load_items(f, self.rate)
            for it in items:
                if it.shape[0] >= MIN_ITEM_SECONDS * self.rate:
                    self.items.append(it)
                    self.nyquist.append(rate / 2)
        from codec.media import audio as A

        n_val = int(VAL_SECONDS * self.rate)
        self.val_items = [(p.name, torch.from_numpy(np.ascontiguousarray(
            A.resample(A.read(p), self.rate).samples[:, :n_val]))) for p in held]
        lengths = np.array([len(it) for it in self.items], np.float64)
        self.weights = lengths / lengths.sum()
        self.seconds = float(lengths.sum()) / self.rate

    def batch(self, step: int, rank: int) -> torch.Tensor:
        """The excerpts of ``step`` on ``rank``: ``[B, 1, crop]`` (a pure function of the seed, step and rank)."""
        return self._batch(step, rank)[0]

    def _batch(self, step: int, rank: int) -> tuple:
        """:meth:`batch` and each excerpt's file's Nyquist frequency ``[B]`` (Hz)."""
        d = self.cfg.data
        g = np.random.default_rng([self.run.seed, 0xA0D10, step, rank])
        out = np.zeros((d.batch_size, 1, d.crop), np.float32)
        picks = g.choice(len(self.items), size=d.batch_size, p=self.weights)
        for b, i in enumerate(picks):
            it = self.items[i]
            n = len(it)
            if n >= d.crop:
                o = int(g.integers(0, n - d.crop + 1))
                seg = it[o:o + d.crop]
            else:
                o = int(g.integers(0, d.crop - n + 1))
                seg = np.zeros(d.crop, np.float32)
                seg[o:o + n] = it
            out[b, 0] = seg * np.float32(10 ** (-g.uniform(0, 20) / 20))
        return torch.from_numpy(out), torch.tensor([self.nyquist[i] for i in picks], dtype=torch.float32)

    def batches(self, start: int, stop: int, ctx: Context):
        for s in range(start, stop):
            yield self._batch(s, ctx.rank)

    # -- model ----------------------------------------------------------------------
    def build(self, ctx: Context, init: bool) -> nn.Module:
        cfg = self.cfg
        model, _ = build_model(cfg.model.name, cfg.model.arch_kwargs)
        model.latent_codec.init_gains([lam for _, lam in self.points], ref=cfg.model.quality)
        if cfg.model.init is not None and init:
            n_in, n_kept = init_weights(model, cfg.model.init)
            log(f"initialised {n_in} tensors from {cfg.model.init} ({n_kept} kept their initialisation)",
                ctx.rank, ctx.quiet)
        self.model = model
        self.mel = MelDistance(self.rate)
        return model

    def forward_module(self, ctx: Context) -> nn.Module:
        return AudioRDForward(self.model, self.mel.to(ctx.device), self.cfg.loss.energy_correction)

    # -- one step -------------------------------------------------------------------
    def step(self, net: nn.Module, batch, ctx: Context) -> dict:
        x, nyquist = batch
        x = x.to(ctx.device, non_blocking=True)
        lo = self.cfg.loss
        limit = nyquist.to(ctx.device) if lo.mel_source_band else None
        source = torch.round(2 * nyquist).long() if lo.mel_source_rate else None
        quality, lmbda = sample_qualities(x.shape[0], [lam for _, lam in self.points], x.device)
        out = net(x, quality, limit, source)
        n = x.shape[-1]
        bps = sum(torch.log(lik).flatten(1).sum(1) for lik in out["likelihoods"].values()) / (-math.log(2) * n)
        mse = (out["x_hat"] - x).pow(2).flatten(1).mean(1)
        dist = out["mel"] + self.cfg.loss.mse_weight * mse
        if "x_plain" in out:  # loss.energy_correction w: 1 - w of the distortion before the correction
            w = self.cfg.loss.energy_correction
            plain = out["mel_plain"] + self.cfg.loss.mse_weight * (out["x_plain"] - x).pow(2).flatten(1).mean(1)
            dist = w * dist + (1 - w) * plain
        loss = (lmbda * dist + bps).mean()
        return {"loss": loss, "bps": bps.mean(), "mse": mse.mean(), "mel": out["mel"].mean(), "aux": out["aux"],
                "total": loss + self.cfg.loss.aux_weight * out["aux"]}

    def train_row(self, means: dict, step: int, ctx: Context) -> dict:
        seen = step * self.cfg.data.batch_size * ctx.world * self.cfg.data.crop / self.rate
        return {"epoch": seen / self.seconds, "loss": means["loss"], "kbps": means["bps"] * self.rate / 1000,
                "bps": means["bps"], "mse": means["mse"], "mel": means["mel"], "aux": means["aux"]}

    # -- validation -----------------------------------------------------------------
    @torch.no_grad()
    def validate(self, ctx: Context) -> dict:
        from codec.media.audio import Audio
        from codec.media.audio_metrics import mel_distance, si_sdr, snr

        with torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else []):
            m = copy.deepcopy(self.model).eval()
            m.freeze()
            rows = []
            for q, lam in self.points:
                sums = np.zeros(8)
                for i in range(ctx.rank, len(self.val_items), ctx.world):
                    _, x = self.val_items[i]
                    payload = m.compress(x.to(ctx.device), q)
                    rec = m.decompress(payload, q, device=ctx.device).clamp(-1, 1).cpu().numpy()
                    ref = x.numpy()
                    seconds = ref.shape[1] / self.rate
                    c, _ = m._mix(x.to(ctx.device))
                    pad = (-c.shape[1]) % m.multiple
                    lik = m(torch.nn.functional.pad(c[:, None], (0, pad)), q)["likelihoods"]
                    bits = -float(sum(torch.log2(v).sum() for v in lik.values()))
                    a, b = Audio(ref, self.rate), Audio(np.ascontiguousarray(rec), self.rate)
                    mel = mel_distance(a, b)
                    mse = float(np.mean((rec - ref) ** 2))
                    sums += [1, seconds, 8 * payload.nbytes, bits, mel, si_sdr(a, b), snr(a, b), mse]
                if ctx.world > 1:
                    t = ctx.all_reduce(torch.tensor(sums, device=ctx.device))
                    sums = t.cpu().numpy()
                sums = [float(v) for v in sums]  # plain floats: checkpoints hold no numpy objects
                k = max(1.0, sums[0])
                kbps = sums[2] / sums[1] / 1000
                row = {"quality": int(q), "kbps": kbps, "kbps_est": sums[3] / sums[1] / 1000, "mel": sums[4] / k,
                       "si_sdr": sums[5] / k, "snr": sums[6] / k, "seconds_audio": sums[1], "bytes": int(sums[2] // 8)}
                # the training loss, with the real bits per sample
                row["loss"] = lam * (row["mel"] + self.cfg.loss.mse_weight * sums[7] / k) + kbps * 1000 / self.rate
                rows.append(row)
        res = {k: sum(r[k] for r in rows) / len(rows) for k in ("loss", "kbps", "kbps_est", "mel", "si_sdr", "snr")}
        res.update(quality="mean", seconds_audio=rows[0]["seconds_audio"], bytes=sum(r["bytes"] for r in rows),
                   per_quality=rows)
        return res

    # -- messages -------------------------------------------------------------------
    def label(self) -> str:
        return self.cfg.model.name

    def describe(self, ctx: Context) -> str:
        cfg = self.cfg
        n_params = sum(p.numel() for p in self.model.parameters()) if self.model is not None else 0
        return (f"{cfg.model.name} {self.arch_kwargs} ({n_params / 1e6:.2f} M parameters), lambdas "
                f"{', '.join(f'{lam:g}' for _, lam in self.points)} (mel + {cfg.loss.mse_weight:g} MSE), "
                f"{len(self.files)} files ({self.seconds / 60:.1f} min of mono items at {self.rate} Hz), "
                f"{len(self.val_items)} held-out files, batch {cfg.data.batch_size}x{ctx.world}, "
                f"excerpts of {cfg.data.crop} samples")

    def describe_validation(self, v: dict, best: bool) -> str:
        levels = "".join(f"\n  q{r['quality']}: {r['kbps']:.2f} kbps, mel {r['mel']:.3f}, SI-SDR {r['si_sdr']:.2f} dB"
                         for r in v.get("per_quality", []))
        return (f"validation {v['seconds_audio']:.0f} s of audio, {v['kbps']:.2f} kbps (estimated "
                f"{v['kbps_est']:.2f}), mel {v['mel']:.3f}, loss {v['loss']:.4f}" + (" (best)" if best else "")
                + levels)

    def postfix(self, row: dict) -> dict:
        return {"loss": f"{row['loss']:.4g}", "kbps": f"{row['kbps']:.2f}", "mel": f"{row['mel']:.3f}"}
