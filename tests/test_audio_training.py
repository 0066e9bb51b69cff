"""Audio rate-distortion training: config, batches, a short run with real-coding validation, export."""
from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
import torch

from codec.media import audio as A
from codec.training.config import from_dict

TINY = {"wavelet_levels": 5, "N": 32, "E": 16}


def _files(tmp_path):
    g = np.random.default_rng(0)
    (tmp_path / "data" / "a").mkdir(parents=True)
    paths = []
    for i, (rate, ch) in enumerate([(16000, 1), (44100, 2), (22050, 1)]):
        n = int(rate * 0.6)
        t = np.arange(n) / rate
        x = np.stack([0.3 * np.sin(2 * np.pi * (300 + 100 * i + 50 * c) * t) + 0.01 * g.standard_normal(n)
                      for c in range(ch)]).astype(np.float32)
        p = tmp_path / "data" / "a" / f"f{i}.wav"
        A.write(p, A.Audio(np.clip(x, -1, 1), rate))
        paths.append(p)
    return paths


def _config(tmp_path, files, **run):
    return from_dict({
        "model": {"name": "wavelet-audio", "arch_kwargs": TINY},
        "loss": {"metric": "mel"},
        "data": {"train": [str(tmp_path / "data")], "val": None, "holdout": [str(files[1])], "crop": 4096,
                 "batch_size": 2, "workers": 0},
        "optim": {"lr": 1e-3, "schedule": "constant"},
        "run": {"steps": 4, "out": str(tmp_path / "run"), "device": "cpu", "val_every": 4, "ckpt_every": 2,
                "log_every": 2, "progress": False, "tensorboard": False, **run},
    })


def test_audio_config_checks():
    base = {"model": {"name": "wavelet-audio"}, "loss": {"metric": "mel"}, "data": {"crop": 16384}}
    from_dict(base)
    with pytest.raises(ValueError, match="loss.metric"):
        from_dict({**base, "loss": {"metric": "mse"}})
    with pytest.raises(ValueError, match="multiple of 1024"):
        from_dict({**base, "data": {"crop": 16001}})
    with pytest.raises(ValueError, match="holdout"):
        from_dict({"model": {"name": "mean-scale-vr"}, "data": {"holdout": ["x.wav"]}})
    with pytest.raises(ValueError, match="mel_source_band"):
        from_dict({**base, "loss": {"metric": "mel", "mel_source_band": 1}})
    with pytest.raises(ValueError, match="mel_source_rate"):
        from_dict({**base, "loss": {"metric": "mel", "mel_source_rate": "yes"}})
    assert from_dict({**base, "loss": {"metric": "mel", "mel_source_rate": True}}).loss.mel_source_rate is True
    assert from_dict({**base, "loss": {"metric": "mel", "mel_source_band": True}}).loss.mel_source_band is True
    for bad in (True, 1.5, -0.1, "half"):
        with pytest.raises(ValueError, match="energy_correction"):
            from_dict({**base, "loss": {"metric": "mel", "energy_correction": bad}})
    with pytest.raises(ValueError, match="scheme 2"):  # the registry's arch has no band-energy correction
        from_dict({**base, "loss": {"metric": "mel", "energy_correction": 0.5}})
    with_energy = {**base, "model": {"name": "wavelet-audio", "arch_kwargs": {"transform": 1, "energy": 2}}}
    assert from_dict({**with_energy, "loss": {"metric": "mel", "energy_correction": 0.5}}).loss.energy_correction == 0.5


def test_batches_are_a_pure_function_of_the_step(tmp_path):
    from codec.training.tasks import Context, task_for

    files = _files(tmp_path)
    task = task_for(_config(tmp_path, files))
    task.prepare(Context())
    assert len(task.val_items) == 1 and all(f != files[1] for f in task.files)
    a, b = task.batch(7, 0), task.batch(7, 0)
    assert a.shape == (2, 1, 4096) and torch.equal(a, b) and not torch.equal(a, task.batch(8, 0))
    assert float(a.abs().max()) <= 1
    # each excerpt comes with its file's Nyquist frequency (files 0 and 2 train: 16 and 22.05 kHz)
    x, nyquist = task._batch(7, 0)
    assert torch.equal(x, a) and set(nyquist.tolist()) <= {8000.0, 11025.0}
    assert sorted(set(task.nyquist)) == [8000.0, 11025.0]


def test_mel_loss_can_count_only_the_bands_below_the_source_nyquist():
    """With a limit, a difference far above it costs nothing; with the limit at 24 kHz the
    distance is the full one (codec.media.audio_metrics.mel_distance, which every band counts)."""
    from codec.media.audio_metrics import mel_distance
    from codec.training.tasks.audio_rd import MelDistance

    mel = MelDistance(48000)
    t = torch.arange(16384) / 48000
    x = (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.05 * torch.sin(2 * torch.pi * 3000 * t))[None, None]
    y = x + 0.05 * torch.sin(2 * torch.pi * 16000 * t)[None, None]  # only above 8 kHz
    both = torch.cat([y, y]), torch.cat([x, x])
    full = mel(*both)
    limited = mel(*both, limit=torch.tensor([8000.0, 24000.0]))
    assert float(full[0]) > 0.05 and float(limited[0]) < 0.05 * float(full[0])
    assert float(limited[1]) == pytest.approx(float(full[1]), rel=1e-6)
    ref = mel_distance(A.Audio(x[0].numpy(), 48000), A.Audio(y[0].numpy(), 48000))
    assert float(full[0]) == pytest.approx(ref, rel=1e-3)


@pytest.mark.parametrize("source", [16000, 22050, 44100])
def test_mel_loss_at_the_source_rate_is_what_eval_measures_there(source):
    """With ``source``, the distance of two 48 kHz signals is codec eval's mel distance of the
    same signals at the source rate (its windows and bands): exact bins at 16 kHz, within
    half a bin at 22.05 and 44.1 kHz; rows of different rates in one batch are measured
    each at its own; and it differs from the 48 kHz measure (what the option changes)."""
    from codec.media.audio_metrics import mel_distance
    from codec.training.tasks.audio_rd import MelDistance

    g = np.random.default_rng(1)
    n = int(source * 0.5)
    t = np.arange(n) / source
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * np.sin(2 * np.pi * 2500 * t)
         + 0.003 * g.standard_normal(n)).astype(np.float32)
    y = (x + 0.01 * g.standard_normal(n)).astype(np.float32)
    a, b = A.Audio(x[None], source), A.Audio(y[None], source)
    ref = mel_distance(a, b)
    up = [torch.from_numpy(np.ascontiguousarray(A.resample(v, 48000).samples))[None] for v in (a, b)]
    mel = MelDistance(48000)
    batch = torch.cat([up[1], up[1]]), torch.cat([up[0], up[0]])
    got = mel(*batch, source=torch.tensor([source, 48000]))
    assert float(got[0]) == pytest.approx(ref, rel=0.02 if source == 16000 else 0.05)
    at48 = mel_distance(A.Audio(up[0][0].numpy(), 48000), A.Audio(up[1][0].numpy(), 48000))
    assert float(got[1]) == pytest.approx(at48, rel=1e-3)
    assert abs(float(got[0]) - float(got[1])) > 0.02 * float(got[1])


def test_mel_filterbank_at_other_frequencies():
    """``freqs``: the same filters evaluated elsewhere; at the FFT's own bins, the filterbank."""
    from codec.media.audio_metrics import mel_filterbank

    own = mel_filterbank(16000, 512, 32)
    at48 = mel_filterbank(16000, 512, 32, freqs=np.arange(769) * 48000 / 1536)
    assert at48.shape == (own.shape[0], 769)
    assert torch.equal(at48[:, :257], own) and float(at48[:, 257:].abs().max()) == 0
    assert torch.equal(mel_filterbank(16000, 512, 32, freqs=np.arange(257) * 16000 / 512), own)


def test_a_short_run_validates_by_real_coding_and_exports(tmp_path):
    from codec.models import registry
    from codec.training.export import export
    from codec.training.tasks import train

    files = _files(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train(_config(tmp_path, files), quiet=True)
    assert res.step == 4
    rows = list(csv.DictReader(open(tmp_path / "run" / "val.csv")))
    assert [r["quality"] for r in rows] == ["mean"] + [str(q) for q in range(1, 9)]
    assert all(float(r["kbps"]) > 0 and float(r["bytes"]) > 0 for r in rows)
    train_rows = list(csv.DictReader(open(tmp_path / "run" / "train.csv")))
    assert float(train_rows[-1]["kbps"]) > 0 and float(train_rows[-1]["mel"]) > 0
    s = export(tmp_path / "run", output=tmp_path / "w.safetensors")
    assert "kbps" in s["test"] and s["variable_rate"]
    m = registry.load_model("wavelet-audio", path=tmp_path / "w.safetensors")
    assert m.trained and m.M == 32  # one latent channel per subband of the 5-level packet
    x = torch.from_numpy(A.resample(A.read(files[0]), m.sample_rate).samples)
    assert m.decompress(m.compress(x, 2.5), 2.5).shape == x.shape
    # band-energy correction is coding state only: it can be added at export, not a kwarg that changes weights
    s = export(tmp_path / "run", output=tmp_path / "e.safetensors", arch_kwargs={"energy": 1})
    m = registry.load_model("wavelet-audio", path=tmp_path / "e.safetensors")
    assert s["arch_kwargs"]["energy"] == 1 and m.energy is not None
    assert m.compress(x, 2.5).kinds()[-1] == "energy" and m.decompress(m.compress(x, 2.5), 2.5).shape == x.shape
    with pytest.raises(ValueError, match="do not fit"):
        export(tmp_path / "run", output=tmp_path / "b.safetensors", arch_kwargs={"blocks": 1})
    # resuming continues from the checkpoint (the step count goes on)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res2 = train(_config(tmp_path, files, steps=6), resume="auto", quiet=True)
    assert res2.step == 6


def test_export_arch_overrides_are_key_integer_pairs():
    from codec.training.cli import _arch_overrides

    assert _arch_overrides(["energy=1", "loudness=0"]) == {"energy": 1, "loudness": 0}
    for bad in ("energy", "energy=on", "=1"):
        with pytest.raises(ValueError, match="KEY=INTEGER"):
            _arch_overrides([bad])


def test_training_through_the_energy_correction_counts_its_indexes(tmp_path):
    """``loss.energy_correction`` w: a step's rate includes the correction's indexes (so it is
    above the same step's without them), and its distortion is w times the corrected output's
    plus 1 - w times the uncorrected one's (the forward itself: test_audio_codec's test of
    ``forward(..., energy=True)``)."""
    from codec.training.tasks import Context, task_for

    files = _files(tmp_path)
    rows = {}
    for w in (0.0, 1.0, 0.5):
        cfg = _config(tmp_path, files)
        cfg.model.arch_kwargs = {**TINY, "transform": 1, "loudness": 1, "energy": 2}
        cfg.loss.energy_correction = w
        task = task_for(cfg)
        task.prepare(Context())
        torch.manual_seed(0)
        task.build(Context(), init=False)
        task.model.train()
        net = task.forward_module(Context())
        torch.manual_seed(3)
        rows[w] = task.step(net, task._batch(5, 0), Context())
    v = {w: {k: float(t.detach()) for k, t in r.items()} for w, r in rows.items()}
    assert v[1.0]["bps"] > v[0.0]["bps"] and v[0.5]["bps"] == v[1.0]["bps"]
    assert v[1.0]["mel"] != v[0.0]["mel"]  # measured on the corrected output
    # the loss of the mixture lies between the two (the same noise, qualities and rate in each)
    lo, hi = sorted([v[0.0]["loss"] + v[1.0]["bps"] - v[0.0]["bps"], v[1.0]["loss"]])
    assert lo - 1e-5 < v[0.5]["loss"] < hi + 1e-5
    rows[0.5]["total"].backward()


def test_a_step_measures_each_excerpt_at_its_files_rate(tmp_path):
    """``loss.mel_source_rate``: a step's log-mel distance is measured at each excerpt's
    file's rate (the rates its batch gives); the same rate term as without."""
    from codec.training.tasks import Context, task_for

    files = _files(tmp_path)
    rows, seen = {}, []
    for on in (False, True):
        cfg = _config(tmp_path, files)
        cfg.loss.mel_source_rate = on
        task = task_for(cfg)
        task.prepare(Context())
        torch.manual_seed(0)
        task.build(Context(), init=False)
        net = task.forward_module(Context())
        orig = task.mel.forward
        task.mel.forward = lambda *a, _orig=orig: seen.append(a[3]) or _orig(*a)
        torch.manual_seed(3)
        x, nyquist = batch = task._batch(5, 0)
        rows[on] = {k: float(v.detach()) for k, v in task.step(net, batch, Context()).items()}
    assert seen[0] is None and torch.equal(seen[1], (2 * nyquist).round().long())
    assert set(seen[1].tolist()) <= {16000, 22050}
    assert rows[True]["bps"] == pytest.approx(rows[False]["bps"])
    assert rows[True]["mel"] != pytest.approx(rows[False]["mel"], rel=1e-3)
