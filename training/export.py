"""Export: a training checkpoint -> frozen coding weights (safetensors) under a stable name.

``export(checkpoint)`` rebuilds the checkpoint's registry model, optionally rounds its
weights to fp16, freezes it (CDF tables of the factorized densities, the integer
hyper-synthesis that gives the exact index path) and writes the file the registry's
spec names (``NAME-qQ.safetensors``, or ``NAME.safetensors`` for a variable-rate model:
one file for every quality) with :func:`save_weights`: float weights + frozen coding
state + metadata (name, quality, ``arch_kwargs`` so that ``load_model`` rebuilds the
same architecture, lambda, step, validation results, dtype, source).  It then loads the
file back with :func:`codec.models.registry.load_model` and codes a test picture, twice,
to check that it works and that coding is repeatable.

``install=True`` writes the file where ``load_model(NAME, Q)`` finds it (the
package's ``models/weights``): that is what registers it under its stable name.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from codec.training.checkpoint import load_checkpoint
from codec.training.models import build_model


def save_weights(model, path, metadata: dict | None = None, half: bool = False, force: bool = True) -> bytes:
    """Write a frozen model as safetensors (atomically); returns its weights id.

    The file holds the float weights (parameters in fp16 with ``half``; buffers such as
    GDN pedestals and likelihood floors stay fp32) and the frozen coding state under
    ``frozen.`` (a frozen integer network's buffers are stored there once), and the
    metadata ``format = codec.weights/v1`` plus ``metadata`` (non-strings as JSON)."""
    from safetensors.torch import save_file

    from codec.fileio import atomic_path
    from codec.models.integer import IntegerNet
    from codec.models.registry import full_state, weights_id

    skip = tuple(n + "." for n, m in model.named_modules() if isinstance(m, IntegerNet))
    state = {k: v for k, v in full_state(model).items() if not k.startswith(skip)}
    if half:
        params = {k for k, _ in model.named_parameters()}
        state = {k: (v.half() if k in params and v.is_floating_point() else v) for k, v in state.items()}
    meta = {"format": "codec.weights/v1"}
    meta.update({k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()})
    with atomic_path(path, force=force) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata=meta)
    return weights_id(state)


def test_image(size: int) -> torch.Tensor:
    """A smooth colour test picture ``[1, 3, size, size]`` in [0, 1] (exactly 8-bit values)."""
    t = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    img = torch.stack([0.5 + 0.4 * torch.sin(6 * xx + 2 * yy), 0.5 + 0.4 * torch.cos(5 * yy - 3 * xx), xx * yy])
    return torch.round(img.clamp(0, 1)[None] * 255) / 255


def test_sound(rate: int) -> torch.Tensor:
    """A 2-second stereo test sound ``[2, n]``: a chord with vibrato and a noise burst."""
    t = torch.arange(2 * rate, dtype=torch.float64) / rate
    tone = sum(torch.sin(2 * torch.pi * f * t + 3 * torch.sin(2 * torch.pi * 5 * t)) for f in (220, 277, 330)) / 6
    burst = torch.sin(2 * torch.pi * 1000 * t) * torch.exp(-20 * (t - 1.2).abs()) / 3
    return torch.stack([tone + burst, tone - burst]).float().clamp(-1, 1)


def export(checkpoint, output=None, half: bool = False, quality=None, install: bool = False,
           force: bool = False, arch_kwargs: dict | None = None) -> dict:
    """Write the frozen model of ``checkpoint`` (a file or a run folder: its best.pt, else last.pt).

    ``output``: a file or folder (default: the checkpoint's folder); ``install``: into the
    package's weights (``load_model(name, quality)`` then finds it); ``arch_kwargs``:
    architecture kwargs to change that add or drop no weights (e.g. ``{"energy": 1}``: an
    audio model's band-energy correction, which is coding state only), checked by loading
    the checkpoint's weights strictly.  Returns a summary."""
    from codec.media.image import to_8bit
    from codec.media.image_metrics import psnr_rgb
    from codec.models import registry

    src = Path(checkpoint)
    if src.is_dir() and (src / "best.pt").is_file():
        src = src / "best.pt"
    ck = _weights_as_checkpoint(src) if src.suffix == ".safetensors" else load_checkpoint(src)
    task = ck.get("task", "image-rd")
    if task not in ("image-rd", "audio-rd", "vq"):
        raise ValueError(f"{ck['path']} is a checkpoint of task '{task}', not of a registry model")
    arch = ck["arch"]
    name = arch["name"]
    spec = registry.get_spec(name)
    qs = spec.quality
    if qs.continuous and quality is not None:
        raise ValueError(f"model '{name}' has variable rate: its weights cover every quality (no --quality)")
    q = spec.check_quality(arch["quality"] if quality is None else quality)
    filename = spec.weights_filename(q)
    if install:
        if output is not None:
            raise ValueError("give either an output path or --install, not both")
        dst = Path(str(registry.weights_path(name, q)))
    elif output is None:
        dst = Path(ck["path"]).parent / filename
    else:
        dst = Path(output)
        if dst.is_dir() or str(output).endswith(("/", "\\")):
            dst = dst / filename
    if dst.exists() and not force:
        raise ValueError(f"{dst} exists (use --force to replace it)")
    dst.parent.mkdir(parents=True, exist_ok=True)

    kwargs_in = dict(arch["arch_kwargs"])
    for k, v in (arch_kwargs or {}).items():
        if k not in spec.kwargs or not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"--arch {k}={v!r}: model '{name}' has integer kwargs "
                             f"{', '.join(sorted(spec.kwargs))}")
        kwargs_in[k] = v
    model, kwargs = build_model(name, kwargs_in)
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as exc:
        if not arch_kwargs:
            raise
        raise ValueError(f"--arch {arch_kwargs}: the checkpoint's weights do not fit that architecture "
                         f"({str(exc).splitlines()[0]})") from None
    model.eval()
    if half:  # freeze from the weights as they will be stored
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.half().float())
    cfg = ck.get("config", {})
    if task == "vq":  # the token prior is fitted on the training pictures (all of them)
        from codec.training.data import list_images
        from codec.training.tasks.vq import prior_pictures

        train = cfg.get("data", {}).get("train")
        if not train:
            raise ValueError(f"{ck['path']}: a VQ model's token prior is fitted on its training pictures; "
                             "export it from its training checkpoint (whose config names them)")
        model.fit_prior(prior_pictures(list_images(train)))
    model.freeze()

    val = ck.get("val") or {}
    loss_cfg = cfg.get("loss", {})
    # the resolved config holds either the levels' lambdas or the one lambda
    lam = {k: loss_cfg[k] for k in ("lambdas", "lmbda") if loss_cfg.get(k) is not None} or {"lmbda": _lmbda(cfg)}
    meta = {
        "name": name, "quality": f"{qs.lo}..{qs.hi}" if qs.weights_key(q) is None else str(q),
        "trained": "true", "arch_kwargs": json.dumps(kwargs, sort_keys=True),
        "dtype": "fp16" if half else "fp32", "step": str(ck["step"]),
        "loss": json.dumps({"metric": loss_cfg.get("metric", "mse"), **lam}),
        "config_sha256": hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest(),
        "source": Path(ck["path"]).name, "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": torch.__version__,
        "description": spec.description if kwargs == spec.kwargs else
        f"{spec.description.split(',')[0]}, trained at {', '.join(f'{k}={v}' for k, v in kwargs.items())}",
    }
    keys = ("step", "quality", "images", "bpp", "psnr", "ms_ssim", "utilisation") if task in ("image-rd", "vq") else \
        ("step", "quality", "seconds_audio", "kbps", "mel", "si_sdr", "snr")
    if val.get("per_quality"):
        meta["validation"] = json.dumps([{k: r.get(k) for k in keys if k in r} for r in val["per_quality"]])
    elif val:
        meta["validation"] = json.dumps({k: val.get(k) for k in keys if k in val})
    if "weights_metadata" in ck:  # a weights file exported again (e.g. at fp16): what it said of its training
        old = ck["weights_metadata"]
        meta.update({k: old[k] for k in ("loss", "validation", "config_sha256") if k in old})
        meta["source"] = f"{src.name} ({old.get('dtype', '?')}, from {old.get('source', '?')})"
    save_weights(model, dst, meta, half=half, force=True)

    # -- check: load it as a coder would, and code a picture (a sound) twice --------------
    m = registry.load_model(name, q, path=dst)
    summary = {"path": str(dst), "name": name, "quality": q, "arch_kwargs": kwargs, "dtype": meta["dtype"],
               "weights_id": m.weights_id.hex(), "file_bytes": dst.stat().st_size, "step": int(ck["step"]),
               "installed": install, "variable_rate": qs.continuous}
    if spec.modality == "audio":
        from codec.media.audio import Audio
        from codec.media.audio_metrics import mel_distance

        x = test_sound(m.sample_rate)
        p1 = m.compress(x, q)
        x_hat = m.decompress(p1, q).clamp(-1, 1)
        if registry.load_model(name, q, path=dst).compress(x, q) != p1:
            raise RuntimeError(f"exported weights {dst} do not code repeatably")
        secs = x.shape[1] / m.sample_rate
        return {**summary, "test": f"{8 * p1.nbytes / secs / 1000:.2f} kbps, mel distance "
                f"{mel_distance(Audio(x.numpy(), m.sample_rate), Audio(x_hat.numpy(), m.sample_rate)):.3f}"}
    size = max(2 * m.multiple, 128)
    x = test_image(size)
    p1 = m.compress(x, q, effort="fast")  # (the trained networks, no latent refinement)
    x_hat = m.decompress(p1, q)[..., :size, :size]
    m2 = registry.load_model(name, q, path=dst)
    if m2.compress(x, q, effort="fast") != p1 or m2.weights_id != m.weights_id:
        raise RuntimeError(f"exported weights {dst} do not code repeatably")
    return {**summary, "test": f"{8 * p1.nbytes / size ** 2:.3f} bpp, "
            f"{psnr_rgb(to_8bit(x_hat[0]), to_8bit(x[0])):.2f} dB"}


def _weights_as_checkpoint(path: Path) -> dict:
    """A weights file (``.safetensors`` of an image or audio model) as the checkpoint export
    reads: its float weights, architecture and step (so that ``codec export W.safetensors
    --half`` stores the same model at fp16, its coding state rebuilt from the rounded weights)."""
    from safetensors import safe_open

    from codec.models import registry

    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys() if not k.startswith("frozen.")}
    except Exception as exc:
        raise ValueError(f"cannot read weights {path}: {exc}") from None
    name = meta.get("name")
    try:
        spec = registry.get_spec(name)
    except KeyError:
        raise ValueError(f"{path}: its metadata names no known model ({name!r})") from None
    if spec.modality == "video" or spec.fitted:
        raise ValueError(f"{path}: model '{name}' is not exported from training weights this way")
    q = meta.get("quality", "")
    quality = int(q) if q.isdigit() else spec.quality.default
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    task = "audio-rd" if spec.modality == "audio" else getattr(spec.arch_class(), "training_task", None) or "image-rd"
    loss = json.loads(meta.get("loss", "{}") or "{}")
    return {"path": str(path), "task": task, "step": int(meta.get("step", 0)), "model": state,
            "arch": {"name": name, "quality": quality, "arch_kwargs": json.loads(meta.get("arch_kwargs", "{}"))},
            "config": {"model": {"name": name, "quality": quality}, "loss": loss}, "weights_metadata": meta}


def _lmbda(cfg: dict):
    from codec.training.config import LAMBDAS

    lo = cfg.get("loss", {})
    return LAMBDAS[lo.get("metric", "mse")][int(cfg.get("model", {}).get("quality", 4)) - 1]


def test_clip(frames: int = 4, size: int = 96) -> list:
    """A short test clip: the test picture moving by a few pixels a frame (RGB uint8 frames)."""
    import numpy as np

    big = test_image(size + 4 * frames)[0].permute(1, 2, 0).numpy()
    return [np.round(big[2 * i:2 * i + size, 3 * i:3 * i + size] * 255).astype(np.uint8) for i in range(frames)]


def export_video(inter, intra=None, name: str = "video-ip", output=None, install: bool = False,
                 force: bool = False, half: bool = False) -> dict:
    """Write the weights of video model ``name``: its P-frame residual coder from ``inter``
    (a checkpoint or run folder of an image-RD training on residual pictures, see
    :mod:`codec.training.video_residuals`, or an image model's weights file) and its I-frame
    coder from ``intra`` (an image model's weights file; default: the installed weights of
    the image model of the same architecture, ``mean-scale-vr``).  Each part keeps its
    stored coding state; the integer synthesis transforms and the motion tables are frozen
    here.  ``half``: the float weights in fp16 (they serve only the encoder's analysis, and
    training; decoding runs on the stored integers, frozen from the full-precision weights).
    Checks the file as :func:`export`
    does, on a short moving clip."""
    from codec.models import registry

    spec = registry.get_spec(name)
    if spec.modality != "video":
        raise ValueError(f"model '{name}' is not a video model")
    dst = Path(str(registry.weights_path(name))) if install else \
        Path(output) if output is not None else Path(str(inter)).with_name(spec.weights_filename())
    if install and output is not None:
        raise ValueError("give either an output path or --install, not both")
    if dst.exists() and not force:
        raise ValueError(f"{dst} exists (use --force to replace it)")
    image_name = "mean-scale-vr"
    parts, sources = {}, {}
    for part, src in (("intra", intra), ("inter", inter)):
        if src is None:
            parts[part] = registry.load_model(image_name)
            sources[part] = f"installed {image_name} ({parts[part].weights_id.hex()})"
            continue
        p = Path(src)
        if p.is_dir() or p.suffix == ".pt":
            tmp = dst.with_name(f".{part}-{dst.name}")
            s = export(p, output=tmp, force=True)
            parts[part] = registry.load_model(s["name"], path=tmp)
            tmp.unlink()
            sources[part] = f"{p} step {s['step']}"
        else:
            parts[part] = registry.load_model(image_name, path=p)
            sources[part] = f"{p.name} ({parts[part].weights_id.hex()})"
    video = spec.arch_class()(**spec.kwargs)
    for part, m in parts.items():
        sub = getattr(video, part)
        sub.load_state_dict({k: v for k, v in m.state_dict().items() if ".h_s_int." not in k})
    video.eval()
    video.freeze()
    for part, m in parts.items():  # the stored tables and integer networks, not rebuilt ones
        getattr(video, part).latent_codec.load_frozen(m.frozen_state(), "frozen.")
    meta = {"name": name, "quality": f"{spec.quality.lo}..{spec.quality.hi}", "trained": "true",
            "arch_kwargs": json.dumps(spec.kwargs, sort_keys=True), "dtype": "fp16" if half else "fp32",
            "intra": sources["intra"], "inter": sources["inter"],
            "steps": json.dumps({k: m.metadata.get("step") for k, m in parts.items()}),
            "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
            "description": spec.description}
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_weights(video, dst, meta, half=half, force=True)

    m = registry.load_model(name, path=dst)
    clip = test_clip()
    q = float(spec.quality.default)
    enc = list(m.compress_frames(clip, q, gop=len(clip)))
    again = list(registry.load_model(name, path=dst).compress_frames(clip, q, gop=len(clip)))
    if [s.data for e in enc for s in e[0]] != [s.data for e in again for s in e[0]]:
        raise RuntimeError(f"exported weights {dst} do not code repeatably")
    nbytes = sum(len(s.data) for e in enc for s in e[0])
    import numpy as np

    mse = float(np.mean([((e[1].astype(float) - f) ** 2).mean() for e, f in zip(enc, clip)]))
    return {"path": str(dst), "name": name, "quality": q, "arch_kwargs": spec.kwargs, "dtype": meta["dtype"],
            "weights_id": m.weights_id.hex(), "file_bytes": dst.stat().st_size, "step": sources["inter"],
            "installed": install, "variable_rate": True,
            "test": f"{len(clip)} frames {8 * nbytes / (len(clip) * clip[0].shape[0] * clip[0].shape[1]):.3f} bpp, "
                    f"{10 * np.log10(255 ** 2 / max(mse, 1e-9)):.2f} dB"}


def export_tables(name: str, output=None, install: bool = False, force: bool = False) -> dict:
    """Write the coding tables of a model that fits itself to each item (``inr-image``): its
    only stored state, built once here so that every install codes with these integers."""
    from codec.models import registry

    spec = registry.get_spec(name)
    model = spec.arch_class()(**spec.kwargs)
    if not spec.fitted:
        raise ValueError(f"model '{name}' is trained, not fitted per item: export a checkpoint of it instead")
    dst = Path(str(registry.weights_path(name))) if install else Path(output or spec.weights_filename())
    if install and output is not None:
        raise ValueError("give either an output path or --install, not both")
    if dst.exists() and not force:
        raise ValueError(f"{dst} exists (use --force to replace it)")
    model.freeze()
    meta = {"name": name, "quality": f"{spec.quality.lo}..{spec.quality.hi}", "trained": "true",
            "arch_kwargs": json.dumps(spec.kwargs, sort_keys=True), "dtype": "int32", "step": "0",
            "note": "coding tables only: the networks are fitted to each item and coded in its stream",
            "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
            "description": spec.description}
    save_weights(model, dst, meta, force=True)
    import math

    import numpy as np

    q = float(spec.quality.default)
    if spec.modality == "video":
        clip = test_clip(4, 64)
        code = lambda m: [s.data for secs, _ in m.compress_frames(clip, q, gop=4, effort=10) for s in secs]
        a, b = code(registry.load_model(name, path=dst)), code(registry.load_model(name, path=dst))
        nbytes, px = sum(map(len, a)), 4 * 64 * 64
        enc = list(registry.load_model(name, path=dst).compress_frames(clip, q, gop=4, effort=10))
        mse = float(np.mean([((d.astype(float) - f) ** 2).mean() for (_, d), f in zip(enc, clip)])) / 255 ** 2
    else:
        x = test_image(32)
        code = lambda m: m.compress(x, q, effort=20)
        pa, pb = code(registry.load_model(name, path=dst)), code(registry.load_model(name, path=dst))
        a, b = (pa.header, [s.data for s in pa.sections]), (pb.header, [s.data for s in pb.sections])
        nbytes, px = pa.nbytes, x[0, 0].numel()
        mse = float(((registry.load_model(name, path=dst).decompress(pa) - x) ** 2).mean())
    if a != b:
        raise RuntimeError(f"exported tables {dst} do not code repeatably")
    m = registry.load_model(name, path=dst)

    return {"path": str(dst), "name": name, "quality": float(spec.quality.default), "arch_kwargs": spec.kwargs,
            "dtype": "int32", "weights_id": m.weights_id.hex(), "file_bytes": dst.stat().st_size, "step": 0,
            "installed": install, "variable_rate": True,
            "test": f"{8 * nbytes / px:.3f} bpp, {10 * math.log10(1 / max(mse, 1e-12)):.2f} dB (a short fit)"}
