"""Training (codec.training): configs, data, the loop with the image-rd task and its real-coding
validation, exact resume, 2-process gloo DDP, a per-item fitting task through the same loop,
export to registry weights, the CLI, the benchmark.

Tiny models (N=8, M=12), 64x64 crops (32x32 for the factorized model), a few steps, on
generated images; one CPU thread per process (2 shared cores).
"""
from __future__ import annotations

import json
import os
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from codec.cli import main as codec_main
from codec.models import registry
from codec.training import config as C
from codec.training import data as D
from codec.training.checkpoint import load_checkpoint
from codec.training.models import build_model
from codec.training.optim import lr_factor
from codec.training.tasks.image_rd import rd_loss, train

from pictures import smooth_image

warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
TINY = {"N": 8, "M": 12}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def picture(h, w, seed=0) -> np.ndarray:
    return smooth_image(h, w, seed)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    (root / "train" / "sub").mkdir(parents=True)
    (root / "val").mkdir()
    Image.fromarray(picture(96, 80, 1)).save(root / "train" / "a.png")
    Image.fromarray(picture(72, 100, 2)).save(root / "train" / "sub" / "b.png")
    Image.fromarray(picture(40, 90, 3)).save(root / "train" / "c.jpg", quality=95)  # smaller than a crop
    (root / "train" / "notes.txt").write_text("not an image")
    Image.fromarray(picture(64, 48, 4)).save(root / "val" / "v1.png")  # padded to 64x64 for coding
    Image.fromarray(picture(70, 90, 5)).save(root / "val" / "v2.png")
    return root


def tiny_config(images, out, **sections) -> dict:
    d = {
        "model": {"name": "mean-scale", "quality": 3, "arch_kwargs": dict(TINY)},
        "data": {"train": [str(images / "train")], "val": str(images / "val"), "crop": 64, "batch_size": 2,
                 "workers": 0, "resident": "memory"},
        "optim": {"lr": 1e-3, "schedule": "multistep", "decay_at": [0.5]},
        "run": {"steps": 6, "out": str(out), "device": "cpu", "threads": 1, "log_every": 2, "val_every": 3,
                "ckpt_every": 100, "progress": False, "tensorboard": False},
    }
    for sec, body in sections.items():
        d.setdefault(sec, {}).update(body)
    return d


# ----------------------------------------------------------------------------- config
def test_shipped_configs_load_and_keep_compressai_lambdas():
    names = sorted(p.stem for p in C.CONFIG_DIR.glob("*.json"))
    assert "cpu-smoke" in names and all(f"mean-scale-q{q}" in names for q in range(1, 9))
    for q in range(1, 9):
        cfg = C.load_config(f"mean-scale-q{q}")
        assert cfg.model.quality == q and cfg.lmbda == C.LAMBDAS["mse"][q - 1]
        assert cfg.data.crop % 64 == 0
    assert C.LAMBDAS["mse"] == (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
    smoke = C.load_config("training/configs/cpu-smoke.json")
    assert smoke.model.arch_kwargs == TINY and smoke.run.device == "cpu"


def test_config_toml_overrides_and_clear_errors(tmp_path, images):
    toml = tmp_path / "c.toml"
    toml.write_text('[model]\nname = "factorized"\nquality = 2\n[data]\ncrop = 32\ntrain = "x"\n'
                    '[run]\nsteps = 5\n')
    cfg = C.load_config(toml, ["optim.lr=0.0005", "data.val=null", 'run.out="o"'])
    assert (cfg.model.name, cfg.data.train, cfg.optim.lr, cfg.data.val, cfg.run.out) == \
        ("factorized", ["x"], 0.0005, None, "o")
    assert cfg.lmbda == 0.0035  # CompressAI's q2
    bad = [({"model": {"nme": "x"}}, "unknown field 'model.nme'"),
           ({"modle": {}}, "unknown config section 'modle'"),
           ({"run": {"steps": "many"}}, "run.steps: expected int"),
           ({"model": {"name": "nope"}}, "unknown model 'nope'"),
           ({"data": {"crop": 96}}, "multiple of 64"),
           ({"model": {"arch_kwargs": {"K": 3}}}, "'K' is not a parameter"),
           ({"loss": {"metric": "ms-ssim"}, "data": {"crop": 128}}, "larger than 160"),
           ({"data": {"resident": "gpu"}}, "data.resident"),
           ({"optim": {"decay_at": [80]}}, "fractions")]
    for d, msg in bad:
        with pytest.raises(ValueError, match=msg):
            C.from_dict(d)
    with pytest.raises(ValueError, match="config file not found"):
        C.load_config(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="cannot parse"):
        C.load_config(tmp_path / "broken.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        train(C.from_dict(tiny_config(images, tmp_path / "r", data={"train": [str(empty)]})))
    with pytest.raises(ValueError, match="folder not found"):
        train(C.from_dict(tiny_config(images, tmp_path / "r", data={"val": str(tmp_path / "nope")})))


def test_lr_schedule():
    cfg = C.from_dict({"optim": {"schedule": "multistep", "decay_at": [0.5, 0.9], "gamma": 0.1, "warmup_steps": 10},
                       "run": {"steps": 100}})
    f = [lr_factor(s, cfg.optim, cfg.run.steps) for s in (0, 9, 10, 49, 50, 89, 90, 99)]
    assert f == pytest.approx([0.1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])
    o = C.from_dict({"optim": {"schedule": "cosine", "min_lr_factor": 0.0}}).optim
    assert lr_factor(0, o, 100) == pytest.approx(1) and lr_factor(50, o, 100) == pytest.approx(0.5)
    assert lr_factor(100, o, 100) == pytest.approx(0, abs=1e-12)


# ----------------------------------------------------------------------------- data
def test_crops_are_deterministic_and_identical_in_every_residency(images):
    files = D.list_images([images / "train"])
    assert [f.name for f in files] == ["a.png", "c.jpg", "b.png"]  # recursive, sorted by path
    batches = {}
    for resident, workers in (("disk", 0), ("memory", 0), ("device", 0), ("disk", 1)):
        it = D.make_batches(files, 64, 3, seed=7, start=2, stop=5, resident=resident, workers=workers)
        batches[(resident, workers)] = [b.clone() for b in it]
    ref = batches[("disk", 0)]
    assert len(ref) == 3 and ref[0].shape == (3, 3, 64, 64) and ref[0].dtype == torch.uint8
    for k, v in batches.items():
        assert all(torch.equal(a, b) for a, b in zip(ref, v)), k
    # a resumed loader (start=3) continues with the same batches
    again = list(D.make_batches(files, 64, 3, seed=7, start=3, stop=5))
    assert all(torch.equal(a, b) for a, b in zip(ref[1:], again))
    # the small image was scaled up; flips and positions vary; ranks get disjoint samples
    assert min(D.load_rgb(images / "train" / "c.jpg", 64).shape[:2]) == 64
    boxes = {D.crop_box(7, p, 96, 80, 64) for p in range(40)}
    assert len(boxes) > 20 and {b[2] for b in boxes} == {True, False} and {b[3] for b in boxes} == {True, False}
    r0, r1 = (set(D.sample_positions(5, r, 2, 4)) for r in (0, 1))
    assert not r0 & r1
    s = D.StepBatches(3, 0, 0, 3, batch=3)  # an epoch of 3 images is a permutation
    assert sorted(i for i, _ in s.plan(0)) == [0, 1, 2]


# ----------------------------------------------------------------------------- the loop
@pytest.fixture(scope="module")
def trained(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = C.from_dict(tiny_config(images, out))
    res = train(cfg, quiet=True)
    return cfg, res


def test_train_writes_logs_checkpoints_and_config(trained):
    cfg, res = trained
    out = res.out
    assert res.step == 6 and not res.stopped
    assert {"config.json", "last.pt", "best.pt", "train.csv", "val.csv"} <= {p.name for p in out.iterdir()}
    rows = (out / "train.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,loss,bpp,mse,psnr") and [r.split(",")[0] for r in rows[1:]] == ["2", "4", "6"]
    assert [r.split(",")[0] for r in (out / "val.csv").read_text().splitlines()[1:]] == ["3", "6"]
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["loss"]["lmbda"] == C.LAMBDAS["mse"][2] and Path(resolved["run"]["out"]).is_absolute()
    assert C.from_dict(resolved).model.arch_kwargs == TINY  # the resolved config loads again
    ck = load_checkpoint(out / "last.pt")
    assert ck["step"] == 6 and ck["arch"]["arch_kwargs"] == TINY and len(ck["processes"]) == 1
    assert ck["scheduler"]["last_epoch"] == 6 and ck["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    assert load_checkpoint(out / "best.pt")["step"] == ck["best"]["step"]
    assert np.isfinite(res.train["loss"]) and res.train["bpp"] > 0


def test_validation_counts_bytes_of_real_streams(trained, images):
    from codec.media.image import read, to_8bit
    from codec.media.image_metrics import psnr_rgb

    cfg, res = trained
    val = res.val
    # code the validation images independently with the checkpoint's weights
    model, _ = build_model("mean-scale", TINY)
    model.load_state_dict(load_checkpoint(res.out / "last.pt")["model"])
    model.eval().freeze()
    total, bpps, psnrs = 0, [], []
    for f in sorted((images / "val").iterdir()):
        ref = read(f).rgb
        x = torch.from_numpy(np.array(ref)).permute(2, 0, 1)[None].float() / 255
        H, W = x.shape[-2:]
        payload = model.compress(x, effort="fast")  # any size: the model pads; validation does not refine
        assert [s.kind for s in payload.sections] == ["hyper-latent", "latent"]
        assert all(isinstance(s.data, bytes) and s.data for s in payload.sections)
        total += payload.nbytes
        bpps.append(8 * payload.nbytes / (H * W))
        psnrs.append(psnr_rgb(to_8bit(model.decompress(payload)[0, :, :H, :W]), ref))
    assert val["step"] == 6 and val["images"] == 2
    assert val["bytes"] == total and val["bpp"] == pytest.approx(np.mean(bpps))
    assert val["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-9)  # the media layer's PSNR of the 8-bit pictures
    assert 0 < val["psnr"] < 60 and val["bpp_est"] > 0
    import csv

    with open(res.out / "val.csv", newline="") as f:
        row = list(csv.DictReader(f))[-1]
    assert int(row["bytes"]) == total and row["quality"] == ""


def test_resume_continues_exactly(images, tmp_path):
    straight = train(C.from_dict(tiny_config(images, tmp_path / "a")), quiet=True)
    cfg_b = C.from_dict(tiny_config(images, tmp_path / "b"))
    first = train(cfg_b, stop_at=3, quiet=True)  # stops inside a log interval (2..4) and at the lr decay
    assert first.step == 3 and first.stopped
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg_b, quiet=True)
    resumed = train(cfg_b, resume="auto", quiet=True)
    assert resumed.step == straight.step == 6
    assert resumed.train["loss"] == straight.train["loss"]  # the very same float
    sa, sb = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    strip = lambda p: [r.split(",")[:10] for r in p.read_text().splitlines()]  # noqa: E731 (no timings)
    assert strip(tmp_path / "a" / "train.csv") == strip(tmp_path / "b" / "train.csv")
    assert [r.split(",")[:7] for r in (tmp_path / "a" / "val.csv").read_text().splitlines()] == \
        [r.split(",")[:7] for r in (tmp_path / "b" / "val.csv").read_text().splitlines()]
    with pytest.raises(ValueError, match="nothing to do"):
        train(cfg_b, resume=tmp_path / "b" / "last.pt", quiet=True)
    # a checkpoint of a run begun before training had tasks (no "task" key) resumes exactly too
    cfg_c = C.from_dict(tiny_config(images, tmp_path / "c"))
    train(cfg_c, stop_at=3, quiet=True)
    ck = torch.load(tmp_path / "c" / "last.pt", weights_only=True)
    assert {"optimizer", "aux_optimizer", "scheduler"} <= set(ck) and ck.pop("task") == "image-rd"
    torch.save(ck, tmp_path / "c" / "last.pt")
    again = train(cfg_c, resume="auto", quiet=True)
    assert again.train["loss"] == straight.train["loss"]


def test_msssim_variant_trains(images, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(picture(180, 200, 9)).save(big / "p.png")
    x = torch.rand(1, 3, 176, 176)
    out = {"x_hat": (x + 0.05 * torch.randn_like(x)).requires_grad_(),
           "likelihoods": {"y": torch.full((1, 4, 11, 11), 0.5)}}
    r = rd_loss(out, x, "ms-ssim", 8.73)
    v = {k: float(t.detach()) for k, t in r.items()}
    assert 0 < v["ms_ssim"] < 1 and v["loss"] == pytest.approx(8.73 * (1 - v["ms_ssim"]) + v["bpp"])
    r["loss"].backward()
    assert out["x_hat"].grad.abs().sum() > 0
    d = tiny_config(images, tmp_path / "run", model={"name": "factorized", "quality": 2},
                    loss={"metric": "ms-ssim"},
                    data={"train": [str(big)], "val": str(big), "crop": 176, "batch_size": 1},
                    run={"steps": 2, "val_every": 2})
    res = train(C.from_dict(d), quiet=True)
    assert res.val["ms_ssim"] is not None and np.isfinite(res.val["loss"]) and res.train["ms_ssim"] > 0
    with pytest.raises(ValueError, match="larger than 160"):
        train(C.from_dict({**d, "data": {**d["data"], "val": str(images / "val")},
                           "run": {**d["run"], "out": str(tmp_path / "run2")}}), quiet=True)


def test_fast_paths_run_on_cpu(images, tmp_path):
    """bf16 autocast of the transforms (entropy models in fp32), channels-last, device-resident data."""
    from codec.training.tasks.image_rd import RDForward

    model, _ = build_model("mean-scale", TINY)
    x = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    out = RDForward(model.to(memory_format=torch.channels_last), torch.bfloat16)(x)
    assert out["x_hat"].dtype == torch.float32 and all(v.dtype == torch.float32 for v in out["likelihoods"].values())
    d = tiny_config(images, tmp_path / "run", data={"resident": "device", "val": None},
                    run={"steps": 2, "amp": "bf16", "channels_last": "on"})
    res = train(C.from_dict(d), quiet=True)
    assert res.step == 2 and np.isfinite(res.train["loss"]) and res.val is None
    assert not (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "last.pt").exists()


def test_frozen_parameters_stay_as_they_were(images, tmp_path):
    """optim.frozen: a context model trained over fixed transforms (and a prefix naming nothing is an error)."""
    frozen = ["g_a", "g_s", "latent_codec.inner.h_a", "latent_codec.inner.h_s", "latent_codec.inner.z",
              "latent_codec.log_gain", "latent_codec.log_inv_gain"]
    d = tiny_config(images, tmp_path / "run", model={"name": "context-vr", "quality": 4, "arch_kwargs": {"N": 8, "M": 12}},
                    optim={"frozen": frozen}, data={"val": None}, run={"steps": 3})
    torch.manual_seed(0)
    start, _ = build_model("context-vr", {"N": 8, "M": 12})
    start.latent_codec.init_gains(C.LAMBDAS["mse"], ref=4)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in start.state_dict().items()}, str(tmp_path / "init.safetensors"))
    d["model"]["init"] = str(tmp_path / "init.safetensors")
    res = train(C.from_dict(d), quiet=True)
    assert res.step == 3
    after = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    for k, v in start.state_dict().items():
        same = torch.equal(after[k], v)
        if any(k == p or k.startswith(p + ".") for p in frozen):
            assert same, k
    assert not torch.equal(after["latent_codec.inner.aggregate.0.4.weight"],
                           start.state_dict()["latent_codec.inner.aggregate.0.4.weight"])
    d["optim"]["frozen"] = ["g_x"]
    d["run"]["out"] = str(tmp_path / "run2")
    with pytest.raises(ValueError, match="optim.frozen: no parameter"):
        train(C.from_dict(d), quiet=True)


def test_decoder_fine_tuning_on_the_rounded_latent(images, tmp_path):
    """model.synthesis_input = "rounded" with g_a and the latent codec frozen: only the
    synthesis (and a residual block added to it) learns, from the decoder's rounded latent;
    the block starts as the identity, so the model starts as the weights it was given."""
    from codec.training.tasks.image_rd import RDForward

    torch.manual_seed(0)
    start, _ = build_model("context-vr", {"N": 8, "M": 12})
    start.latent_codec.init_gains(C.LAMBDAS["mse"], ref=4)
    with_block, _ = build_model("context-vr", {"N": 8, "M": 12, "blocks": 1})
    assert set(start.state_dict()) < set(with_block.state_dict())
    missing, unexpected = with_block.load_state_dict(start.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("g_s.res0.") for k in missing)
    x = torch.rand(1, 3, 64, 64)
    start.train(), with_block.train()
    q = torch.tensor([4.0])
    torch.manual_seed(1)
    a = RDForward(start, rounded=True)(x, q)
    torch.manual_seed(1)
    b = RDForward(with_block, rounded=True)(x, q)
    assert torch.equal(a["x_hat"], b["x_hat"])  # (the block's last convolution starts at zero)
    torch.manual_seed(1)
    lc = start.latent_codec(start.g_a(x), q)
    assert torch.allclose(a["x_hat"], start.g_s(lc["y_rounded"]))  # the decoder's latent, not the noisy one
    assert not torch.allclose(a["x_hat"], start.g_s(lc["y_hat"]))

    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in start.state_dict().items()}, str(tmp_path / "init.safetensors"))
    frozen = ["g_a", "latent_codec"]
    d = tiny_config(images, tmp_path / "run", model={"name": "context-vr", "quality": 4, "arch_kwargs": {"N": 8, "M": 12, "blocks": 1},
                                                     "init": str(tmp_path / "init.safetensors"), "synthesis_input": "rounded"},
                    optim={"frozen": frozen}, data={"val": None}, run={"steps": 3})
    train(C.from_dict(d), quiet=True)
    after = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    for k, v in start.state_dict().items():
        if k.startswith(("g_a.", "latent_codec.")):
            assert torch.equal(after[k], v), k
    assert not torch.equal(after["g_s.6.weight"], start.state_dict()["g_s.6.weight"])
    assert after["g_s.res0.conv2.weight"].abs().sum() > 0
    from codec.training.export import export
    w = export(tmp_path / "run", output=tmp_path / "w.safetensors")
    assert w["arch_kwargs"]["blocks"] == 1
    m = registry.load_model("context-vr", path=tmp_path / "w.safetensors")  # (the block from the metadata)
    assert isinstance(m.g_s.res0, torch.nn.Module)
    p = m.compress(x, 3.0, effort="fast")
    y_hat = m.latent_codec.compress(m.g_a(x), 3.0)[1]
    assert torch.equal(m.decompress(p, 3.0), m.synthesize(y_hat))
    # a weights file exported again: the same model at fp32, a half-size one at fp16
    again = export(tmp_path / "w.safetensors", output=tmp_path / "again.safetensors")
    assert again["weights_id"] == w["weights_id"] and again["step"] == w["step"]
    half = export(tmp_path / "w.safetensors", output=tmp_path / "half.safetensors", half=True)
    assert half["dtype"] == "fp16" and half["file_bytes"] < w["file_bytes"]
    meta = registry.load_model("context-vr", path=tmp_path / "half.safetensors").metadata
    assert "w.safetensors" in meta["source"] and meta["loss"] == m.metadata["loss"]
    d["model"]["synthesis_input"] = "rounding"
    with pytest.raises(ValueError, match="model.synthesis_input"):
        C.from_dict(d)


# ----------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, cfg_dict, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    from codec.training.config import from_dict
    from codec.training.tasks.image_rd import train as train_

    res = train_(from_dict(cfg_dict), quiet=True)
    torch.save({"state": res.model.state_dict(), "train": res.train, "val": res.val},
               os.path.join(out, f"rank{rank}.pt"))


def test_two_gloo_processes_stay_in_sync(images, tmp_path):
    import torch.multiprocessing as mp

    d = tiny_config(images, tmp_path / "run", run={"steps": 4, "val_every": 4, "log_every": 2})
    mp.spawn(_ddp_worker, args=(2, _free_port(), d, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["state"].keys() == r1["state"].keys()
    assert all(torch.equal(r0["state"][k], r1["state"][k]) for k in r0["state"])  # bit-identical
    assert r0["train"]["loss"] == r1["train"]["loss"]  # logged losses are all-reduced
    assert r0["val"]["bytes"] == r1["val"]["bytes"] and r0["val"]["images"] == 2
    torch.manual_seed(0)
    init = build_model("mean-scale", TINY)[0].state_dict()
    assert any(not torch.equal(init[k], r0["state"][k]) for k in init)  # it did train
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ck["world_size"] == 2 and len(ck["processes"]) == 2 and ck["step"] == 4
    # the two processes drew different quantisation noise (per-process RNG)
    assert not torch.equal(ck["processes"][0]["rng"]["torch"], ck["processes"][1]["rng"]["torch"])


# ----------------------------------------------------------------------------- a per-item fitting task
def test_fitting_one_picture_runs_through_the_same_loop(tmp_path, capsys):
    """An INR-style task (overfit one picture) on the loop: optimiser, schedule, logs, checkpoints, resume."""
    import time

    from codec.media.image import read
    from codec.media.image_metrics import psnr_rgb
    from codec.training.tasks.fit_picture import fit_picture

    pic = tmp_path / "p.png"
    Image.fromarray(picture(32, 40, 3)).save(pic)
    t0 = time.perf_counter()
    res = fit_picture(pic, steps=150, lr=1e-2)  # in memory: no run folder
    assert time.perf_counter() - t0 < 20
    assert res.out is None and res.step == 150 and not res.stopped
    assert res.task.start_psnr < 15 and res.val["psnr"] > res.task.start_psnr + 15 and res.val["psnr"] > 25
    assert res.val["psnr"] == psnr_rgb(res.task.reconstruction(), read(pic).rgb)  # the media layer's PSNR
    assert res.train["lr"] < 1e-2 and res.train["psnr"] > 25  # the cosine schedule ran; logged per interval

    def run(out, **kw):  # random batches of 300 of the 1280 pixels; validation and checkpoints at 20 and 40
        return fit_picture(pic, out=out, steps=40, lr=1e-2, batch_pixels=300, **kw)

    straight = run(tmp_path / "a")
    first = run(tmp_path / "b", stop_at=15)  # inside a log interval (12..16)
    assert first.step == 15 and first.stopped
    resumed = run(tmp_path / "b", resume="auto")
    assert resumed.train["loss"] == straight.train["loss"] and resumed.val["psnr"] == straight.val["psnr"]
    sa, sb = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    rows = (tmp_path / "b" / "train.csv").read_text().splitlines()
    assert rows[0] == "step,loss,psnr,lr,grad_norm,skipped,it_per_s,elapsed_s"
    assert [r.split(",")[0] for r in rows[1:]] == [str(s) for s in range(4, 41, 4)]
    strip = lambda p: [r.split(",")[:5] for r in p.read_text().splitlines()]  # noqa: E731 (no timings)
    assert strip(tmp_path / "a" / "train.csv") == strip(tmp_path / "b" / "train.csv")
    assert (tmp_path / "b" / "val.csv").read_text().splitlines()[0] == "step,loss,psnr,params,seconds"
    ck = load_checkpoint(tmp_path / "b")
    assert ck["task"] == "fit-picture" and ck["step"] == 40 and ck["best"]["step"] == 40
    assert json.loads((tmp_path / "b" / "config.json").read_text())["fit"]["batch_pixels"] == 300
    # the image-rd commands refuse it clearly
    assert codec_main(["train", "--resume", str(tmp_path / "b" / "last.pt")]) == 2
    assert "task 'fit-picture'" in capsys.readouterr().err
    from codec.training.export import export

    with pytest.raises(ValueError, match="task 'fit-picture'"):
        export(tmp_path / "b")


# ----------------------------------------------------------------------------- export
def test_export_loads_in_the_registry_and_codes(trained, tmp_path, monkeypatch):
    from codec.training.export import export, test_image

    _, res = trained
    s32 = export(res.out / "last.pt", output=tmp_path)
    s16 = export(res.out, output=tmp_path / "half.safetensors", half=True)  # a run folder: its best.pt
    assert Path(s32["path"]).name == "mean-scale-q3.safetensors"
    assert s16["file_bytes"] < s32["file_bytes"]
    for s in (s32, s16):
        m = registry.load_model("mean-scale", 3, path=s["path"])
        assert (m.N, m.M) == (8, 12) and m.trained and m.weights_id.hex() == s["weights_id"]
        assert json.loads(m.metadata["arch_kwargs"]) == TINY and m.metadata["dtype"] == s["dtype"]
        x = test_image(128)[..., :40, :]  # 40 x 128: padded by the model
        payload = m.compress(x)
        x_hat = m.decompress(payload)
        assert x_hat.shape == (1, 3, 64, 128) and torch.isfinite(x_hat).all()
        assert m.grid(40, 128) == (4, 8) and payload.nbytes > len(payload.header)
    with pytest.raises(ValueError, match="exists"):
        export(res.out / "last.pt", output=tmp_path)
    # --install: written where load_model(name, quality) looks, under its stable name
    target = tmp_path / "pkg" / "mean-scale-q3.safetensors"
    pkg = lambda name, q: tmp_path / "pkg" / f"{name}-q{q}.safetensors"  # noqa: E731
    monkeypatch.setattr(registry, "weights_path", pkg)
    monkeypatch.setattr(registry, "has_weights", lambda name, q: pkg(name, q).is_file())
    export(res.out / "last.pt", install=True)
    assert target.is_file()
    m = registry.load_model("mean-scale", 3)
    assert m.trained and (m.N, m.M) == (8, 12)


# ----------------------------------------------------------------------------- CLI
def test_cli_train_resume_export(images, tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(tiny_config(images, tmp_path / "run", model={"name": "factorized"},
                                          data={"crop": 32}, run={"steps": 4, "val_every": 4})))
    assert codec_main(["train", "--config", str(cfg), "--stop-at", "2", "-q"]) == 0
    assert codec_main(["train", "--resume", str(tmp_path / "run" / "last.pt")]) == 0  # its own config
    assert "step 4: loss" in capsys.readouterr().out
    assert codec_main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "w.safetensors"), "--half"]) == 0
    out = capsys.readouterr().out
    assert "model 'factorized' quality 3" in out and "repeatably" in out
    assert codec_main(["train", "--config", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("codec: error: config file not found") and err.count("\n") == 1
    assert codec_main(["train"]) == 2 and "give --config" in capsys.readouterr().err
    from codec.training.cli import main as module_main  # python -m codec.training

    assert module_main(["--config", "cpu-smoke", "--set", "run.steps=7", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["run"]["steps"] == 7 and printed["model"]["arch_kwargs"] == TINY
    assert module_main(["--config", "cpu-smoke", "--set", "run.stepz=7"]) == 2


# ----------------------------------------------------------------------------- benchmark
def test_bench_runs_the_loop_step():
    from codec.training.bench import bench, format_rows

    rows = bench(["channels-last"], model_name="factorized", arch_kwargs=TINY, batch=2, crop=32,
                 steps=2, warmup=1, device="cpu", rounds=2)  # fp32 (the baseline) is added
    assert [r["variant"] for r in rows] == ["fp32", "channels-last"]
    assert all(r["ok"] and r["it_per_s"] > 0 for r in rows) and rows[0]["speedup"] == 1.0
    assert "vs fp32" in format_rows(rows)
