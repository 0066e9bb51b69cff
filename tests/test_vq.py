"""The VQ tokenizer codec (``vq-f16``): FSQ codebook, k-means codebooks per quality, the
checkerboard token prior (exact integer ranks), streams through files, training with
utilisation logged."""
from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import codec
from codec import entropy
from codec.models import registry
from codec.models.payload import Payload, PayloadError, Section
from codec.models.vq import FSQ, SIZES, VQModel, ranks, schedule, token_symbols, unrank, weighted_kmeans

from pictures import smooth_image

warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
pytestmark = pytest.mark.filterwarnings("ignore::codec.api.UntrainedModelWarning")


def picture(h=80, w=112, seed=0):
    return torch.from_numpy(smooth_image(h, w, seed)).permute(2, 0, 1)[None].float() / 255


def tiny(seed=0, skew=True):
    """A small vq model, its prior fitted on a few smooth pictures, frozen; with ``skew`` its
    usage is uneven (as a trained one's is)."""
    torch.manual_seed(seed)
    m = VQModel(N=16)
    if skew:
        m.quantizer.usage.copy_(torch.softmax(3 * torch.randn(m.K), 0))
    m.eval()
    m.fit_prior([picture(96, 128, seed=s) for s in (20, 21)])
    m.freeze()
    return m


@pytest.mark.parametrize("h,w", [(1, 1), (1, 6), (5, 1), (2, 2), (4, 4), (5, 7), (9, 8), (16, 3)])
def test_schedule_visits_every_token_once_after_its_neighbours(h, w):
    seen = np.zeros(h * w, dtype=bool)
    phases = schedule(h, w)
    assert phases[0][1] is None and 0 in phases[0][0]
    for pos, nb in phases:
        assert not seen[pos].any()
        if nb is not None:
            assert nb.shape == (pos.size, 4)
            assert ((nb >= 0).sum(1) >= 1).all()  # every predicted token has a decoded neighbour
            assert seen[nb[nb >= 0]].all()
        seen[pos] = True
    assert seen.all()


def test_ranks_and_unrank_are_inverse_with_ties():
    rng = np.random.default_rng(0)
    points = rng.integers(-4, 5, size=(300, 4))
    points[10] = points[11] = points[12]  # equal points: ties go to the lower index
    for _ in range(3):
        tot = rng.integers(-12, 13, size=(2500, 4))
        cnt = rng.integers(1, 5, size=2500)
        tokens = rng.integers(0, 300, size=2500)
        tokens[:3] = (10, 11, 12)
        r = ranks(points, tot, cnt, tokens)
        assert r.min() >= 0 and r.max() < 300
        assert np.array_equal(unrank(points, tot, cnt, r), tokens)
    # rank 0 is the nearest entry to the prediction
    tot, cnt = points[[5, 7]] * 2, np.array([2, 2])
    assert list(unrank(points, tot, cnt, np.zeros(2, dtype=np.int64))) == [min(np.flatnonzero((points == points[i]).all(1))) for i in (5, 7)]


@pytest.mark.parametrize("quality", [1, 2, 3, 4])
def test_any_token_grid_round_trips_through_the_token_stream(quality):
    m = tiny()
    k = SIZES[quality - 1]
    rng = np.random.default_rng(quality)
    for h, w in ((1, 1), (3, 5), (8, 9)):
        grid = torch.from_numpy(rng.integers(0, k, size=(h, w)))
        data = m.encode_tokens(grid, quality)
        assert torch.equal(m.decode_tokens_stream(data, quality, h, w), grid)


def test_fsq_indexes_name_grid_entries_and_every_entry_is_reachable():
    q = FSQ((8, 8, 8, 8))
    assert q.K == 4096 and q.D == 4
    grid = q.grid()
    assert grid.shape == (4096, 4) and len({tuple(r) for r in grid.tolist()}) == 4096
    z = torch.randn(2, 4, 5, 6) * 2
    qs, idx, commit, stats = q(z)
    assert torch.allclose(grid[idx.reshape(-1)], qs.permute(0, 2, 3, 1).reshape(-1, 4), atol=1e-6)
    # the grid's own points (pre-bound) come back as their own index
    z_all = torch.atanh(grid.clamp(-0.999, 0.999)).T.reshape(1, 4, 64, 64)
    _, idx_all, _, _ = q(z_all)
    assert torch.equal(idx_all.reshape(-1), torch.arange(4096))
    assert 0 < float(stats["utilisation"]) <= 1 and float(stats["perplexity"]) >= 1
    # straight-through: the gradient reaches the input
    z.requires_grad_(True)
    q(z)[0].sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_kmeans_is_deterministic_and_weighted():
    x = torch.randn(500, 4, generator=torch.Generator().manual_seed(0))
    w = torch.rand(500, generator=torch.Generator().manual_seed(1))
    a, b = weighted_kmeans(x, w, 16), weighted_kmeans(x, w, 16)
    assert torch.equal(a, b) and a.shape == (16, 4)
    heavy = torch.zeros(500)
    heavy[:3] = 1000.0  # three heavy points each get a centre on them
    c = weighted_kmeans(x, heavy, 8)
    assert (torch.cdist(x[:3].double(), c).min(dim=1).values < 1e-3).all()


@pytest.mark.parametrize("quality", [1, 2, 3, 4])
def test_roundtrip_decodes_the_tokenizers_own_tokens(quality):
    m = tiny()
    x = picture()
    p = m.compress(x, quality)
    assert p.kinds() == ("tokens",)
    tok = m.tokens(x, quality)
    assert tok.shape == (5, 7) and int(tok.max()) < SIZES[quality - 1]
    out = m.decompress(p, quality)
    assert out.shape == (1, 3, 80, 112)
    assert torch.equal(out, m.synthesize_tokens(tok, quality))
    # each token is the codebook entry nearest to the encoder's bounded output there
    u = m.quantizer.bound(m.encoder(x))[0].permute(1, 2, 0)  # [h, w, D]
    c = m.centres[quality - 1]
    d = (u[:, :, None, :].double() - c.double()).pow(2).sum(-1)
    best = d.min(-1).values
    assert torch.allclose(d.gather(-1, tok[..., None]).squeeze(-1), best, rtol=0, atol=1e-6)


def test_the_prior_earns_its_keep_over_fixed_length_indexes():
    """Fitted on pictures, the prior codes their tokens in fewer bytes than log2(K) bits a
    token at every quality; and the context is what pays: a grid of one repeated token
    costs almost nothing, the same tokens shuffled (the same histogram) cost much more."""
    m = tiny(skew=False)
    with torch.no_grad():  # spread the tokens over the codebook, as a trained encoder does
        m.encoder[-1].weight.mul_(20)
    pics = [picture(256, 256, seed=s) for s in (2, 3)]
    m.fit_prior(pics)
    m.freeze()
    fixed = [2 * 256 * np.log2(k) / 8 for k in SIZES]
    fitted = [sum(len(m.compress(x, q).sections[0].data) for x in pics) for q in range(1, 5)]
    for q in range(1, 5):
        assert fitted[q - 1] < fixed[q - 1], (q, fitted, fixed)
        tok = m.tokens(pics[0], q)
        assert tok.unique().numel() > 8
        flat = torch.full_like(tok, int(tok[0, 0]))
        shuffled = tok.reshape(-1)[torch.randperm(tok.numel(), generator=torch.Generator().manual_seed(0))]
        n_flat, n_tok = len(m.encode_tokens(flat, q)), len(m.encode_tokens(tok, q))
        n_shuffled = len(m.encode_tokens(shuffled.reshape(tok.shape), q))
        assert n_flat < n_tok < n_shuffled, (q, n_flat, n_tok, n_shuffled)


def test_fit_prior_and_freeze_need_pictures():
    m = VQModel(N=16).eval()
    with pytest.raises(RuntimeError, match="fit_prior"):
        m.freeze()
    with pytest.raises(ValueError, match="2x2 tokens"):
        m.fit_prior([picture(16, 16)])


def test_frozen_state_round_trips_through_weights_files(tmp_path):
    from codec.training.export import save_weights

    m = tiny()
    save_weights(m, tmp_path / "w.safetensors", {"name": "vq-f16", "arch_kwargs": '{"N": 16}'})
    m2 = registry.load_model("vq-f16", path=tmp_path / "w.safetensors")
    x = picture()
    for q in (1, 4):
        assert m2.compress(x, q).sections[0].data == m.compress(x, q).sections[0].data
        assert torch.equal(m2.decompress(m.compress(x, q), q), m.decompress(m.compress(x, q), q))
    for key, value in (("frozen.centres.0", torch.zeros(63, 4)), ("frozen.points.1", torch.zeros(256, 4)),
                       ("frozen.edges.2", torch.tensor([3, 2]))):
        with pytest.raises(ValueError, match="codebook"):
            VQModel(N=16).load_frozen({**m.frozen_state(), key: value})


def test_bad_payloads_and_qualities_are_clear_errors():
    m = tiny()
    x = picture()
    p = m.compress(x, 2)
    with pytest.raises(ValueError, match="whole number in 1..4"):
        m.compress(x, 2.5)
    with pytest.raises(ValueError, match="whole number in 1..4"):
        m.compress(x, 5)
    with pytest.raises(PayloadError, match="header"):
        m.decompress(Payload(p.sections, b"\x01"), 2)
    with pytest.raises(PayloadError):
        m.decompress(Payload([Section("latent", p.sections[0].data)], p.header), 2)
    with pytest.raises(entropy.CodecError):
        m.decompress(Payload([Section("tokens", p.sections[0].data[:-3])], p.header), 2)
    # the stream of another quality names other table rows: refused or decoded to valid indexes only
    try:
        out = m.decompress(p, 1)
        assert out.shape == (1, 3, 80, 112)
    except entropy.CodecError:
        pass


def test_cli_round_trip_through_files(tmp_path):
    from PIL import Image

    src = tmp_path / "p.png"
    Image.fromarray(smooth_image(70, 90, 1)).save(src)
    run = lambda *a: subprocess.run([sys.executable, "-m", "codec.cli", *a], capture_output=True, text=True,
                                    timeout=300)
    r = run("encode", str(src), "-o", str(tmp_path / "p.nmc"), "--model", "vq-f16", "--quality", "1")
    assert r.returncode == 0, r.stderr
    r = run("info", str(tmp_path / "p.nmc"))
    assert r.returncode == 0 and "vq-f16" in r.stdout and "tokens" in r.stdout, r.stdout
    r = run("decode", str(tmp_path / "p.nmc"), "-o", str(tmp_path / "d.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "d.png").size == (90, 70)
    r = run("encode", str(src), "-o", str(tmp_path / "q.nmc"), "--model", "vq-f16", "--quality", "7")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "1..4" in r.stderr
    assert not (tmp_path / "q.nmc").exists()


def test_the_api_decodes_what_the_tokenizer_decodes():
    img = smooth_image(64, 96, 3)
    data = codec.encode(img, model="vq-f16", quality=3, device="cpu")
    m = codec.load_model("vq-f16")
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    ref = m.synthesize_tokens(m.tokens(x, 3), 3)
    want = (ref[0, :, :64, :96].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(codec.decode(data, output="numpy")), want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_streams_written_on_a_gpu_decode_on_the_cpu():
    img = smooth_image(128, 192, 4)
    for q in (1, 4):
        data_gpu = codec.encode(img, model="vq-f16", quality=q, device="cuda")
        data_cpu = codec.encode(img, model="vq-f16", quality=q, device="cpu")
        a = np.asarray(codec.decode(data_gpu, device="cpu", output="numpy"), dtype=np.int16)
        b = np.asarray(codec.decode(data_gpu, device="cuda", output="numpy"), dtype=np.int16)
        assert np.abs(a - b).max() <= 1  # the same tokens; the float decoder within a level
        assert len(data_gpu) == len(data_cpu) or abs(len(data_gpu) - len(data_cpu)) < 16


def test_training_logs_utilisation_and_exports(tmp_path):
    import csv

    from PIL import Image

    from codec.training import config as C
    from codec.training.export import export
    from codec.training.tasks import train

    for d, n in (("train", 3), ("val", 1)):
        (tmp_path / d).mkdir()
        for i in range(n):
            Image.fromarray(smooth_image(96, 96, 10 + i)).save(tmp_path / d / f"{i}.png")
    cfg = C.from_dict({
        "model": {"name": "vq-f16", "quality": 4, "arch_kwargs": {"N": 16}},
        "loss": {"ssim_weight": 0.0, "commit_weight": 1.0},
        "data": {"train": [str(tmp_path / "train")], "val": str(tmp_path / "val"), "crop": 64, "batch_size": 2,
                 "workers": 0, "resident": "memory"},
        "optim": {"lr": 1e-3},
        "run": {"steps": 3, "out": str(tmp_path / "run"), "device": "cpu", "threads": 1, "log_every": 1,
                "val_every": 3, "ckpt_every": 100, "progress": False, "tensorboard": False},
    })
    res = train(cfg, quiet=True)
    assert res.step == 3
    rows = list(csv.DictReader(open(tmp_path / "run" / "train.csv")))
    assert all(0 < float(r["utilisation"]) <= 1 and float(r["perplexity"]) >= 1 for r in rows)
    val = list(csv.DictReader(open(tmp_path / "run" / "val.csv")))
    assert [r["quality"] for r in val] == ["mean", "1", "2", "3", "4"]
    assert all(float(r["bytes"]) > 0 and 0 < float(r["utilisation"]) <= 1 for r in val)
    s = export(tmp_path / "run", output=tmp_path / "w.safetensors", half=True)
    m = registry.load_model("vq-f16", path=s["path"])
    assert m.trained and "bpp" in s["test"]


def test_usage_tool_counts_codebook_entries_and_the_priors_saving(tmp_path, capsys):
    from PIL import Image

    from codec.media import image
    from codec.tools import vq_usage

    m = tiny()
    pics = [image.Picture(smooth_image(64, 96, s)) for s in (5, 6)]
    rows = vq_usage.usage(m, pics)
    assert [r["size"] for r in rows] == list(SIZES) and all(r["tokens"] == 2 * 4 * 6 for r in rows)
    for r in rows:
        used = len({int(t) for p in pics for t in m.tokens(p.tensor("cpu"), r["quality"]).reshape(-1)})
        assert r["utilisation"] == pytest.approx(used / r["size"]) and 1 <= r["perplexity"] <= used
        assert r["fixed_bytes"] == pytest.approx(48 * np.log2(r["size"]) / 8) and r["no_context_bytes"] > 0
    for i, s in enumerate((5, 6)):
        Image.fromarray(smooth_image(64, 96, s)).save(tmp_path / f"{i}.png")
    assert vq_usage.main([str(tmp_path)]) == 0
    assert "fixed-length" in capsys.readouterr().out
    assert vq_usage.main([str(tmp_path / "none")]) == 2
