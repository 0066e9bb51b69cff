"""Export: a training checkpoint -> frozen coding weights (safetensors) under a stable name.

``export(checkpoint)`` rebuilds the checkpoint's registry model, optionally rounds its
weights to fp16, freezes it (CDF tables of the factorized densities, the integer
hyper-synthesis that gives the exact index path) and writes ``NAME-qQ.safetensors``
(``NAME.safetensors`` for a variable-rate model: one file for every quality)
with :func:`codec.models.registry.save_weights`: float weights + frozen coding state +
metadata (name, quality, ``arch_kwargs`` so that ``load_model`` rebuilds the same
architecture, lambda, step, validation results, dtype, source).  It then loads the
file back with :func:`codec.models.registry.load_model` and codes a test image, twice,
to check that it works and that coding is repeatable.

``install=True`` writes the file where ``load_model(NAME, Q)`` finds it (the
package's ``models/weights``): that is what registers it under its stable name.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import torch

from codec.training.loop import build_model, load_checkpoint


def test_image(size: int) -> torch.Tensor:
    """A smooth colour test picture ``[1, 3, size, size]`` in [0, 1]."""
    t = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    img = torch.stack([0.5 + 0.4 * torch.sin(6 * xx + 2 * yy), 0.5 + 0.4 * torch.cos(5 * yy - 3 * xx), xx * yy])
    return torch.round(img.clamp(0, 1)[None] * 255) / 255


def export(checkpoint, output=None, half: bool = False, quality=None, install: bool = False,
           force: bool = False) -> dict:
    """Write the frozen model of ``checkpoint`` (a file or a run folder: its best.pt, else last.pt).

    ``output``: a file or folder (default: the checkpoint's folder); ``install``: into the
    package's weights (``load_model(name, quality)`` then finds it).  Returns a summary."""
    from codec.models import registry

    src = Path(checkpoint)
    if src.is_dir() and (src / "best.pt").is_file():
        src = src / "best.pt"
    ck = load_checkpoint(src)
    arch = ck["arch"]
    name = arch["name"]
    spec = registry.get_spec(name)
    if spec.variable_rate and quality is not None:
        raise ValueError(f"model '{name}' has variable rate: its weights cover every quality (no --quality)")
    q = spec.check_quality(arch["quality"] if quality is None else quality)
    filename = registry.weights_filename(name, q)
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

    model, kwargs = build_model(name, arch["arch_kwargs"])
    model.load_state_dict(ck["model"])
    model.eval()
    if half:  # freeze from the weights as they will be stored
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.half().float())
    model.freeze()

    cfg = ck.get("config", {})
    val = ck.get("val") or {}
    meta = {
        "name": name, "quality": f"{spec.qualities[0]}..{spec.qualities[-1]}" if spec.variable_rate else str(q),
        "trained": "true", "arch_kwargs": json.dumps(kwargs, sort_keys=True),
        "dtype": "fp16" if half else "fp32", "step": str(ck["step"]),
        "loss": json.dumps({"metric": cfg.get("loss", {}).get("metric", "mse"),
                            **({"lambdas": cfg.get("loss", {}).get("lambdas")} if spec.variable_rate
                               else {"lmbda": _lmbda(cfg)})}),
        "config_sha256": hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest(),
        "source": Path(ck["path"]).name, "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": torch.__version__,
        "description": spec.description if kwargs == spec.kwargs else
        f"{spec.description.split(',')[0]}, trained at {', '.join(f'{k}={v}' for k, v in kwargs.items())}",
    }
    keys = ("step", "quality", "images", "bpp", "psnr", "ms_ssim")
    if val.get("per_quality"):
        meta["validation"] = json.dumps([{k: r.get(k) for k in keys if k in r} for r in val["per_quality"]])
    elif val:
        meta["validation"] = json.dumps({k: val.get(k) for k in keys if k in val})
    registry.save_weights(model, dst, meta, half=half)

    # -- check: load it as a coder would, and code a picture twice ----------------------
    m = registry.load_model(name, q, path=dst)
    size = max(2 * m.multiple, 128)
    x = test_image(size)
    qarg = q if spec.variable_rate else None
    s1, _ = m.compress(x, qarg)
    x_hat = m.decompress(s1, size, size, quality=qarg)
    m2 = registry.load_model(name, q, path=dst)
    s2, _ = m2.compress(x, qarg)
    if s1 != s2 or m2.weights_id != m.weights_id:
        raise RuntimeError(f"exported weights {dst} do not code repeatably")
    nbytes = sum(len(s) for s in s1)
    mse = float(((torch.round(x_hat.clamp(0, 1) * 255) - x * 255) ** 2).mean())
    return {"path": str(dst), "name": name, "quality": q, "arch_kwargs": kwargs, "dtype": meta["dtype"],
            "weights_id": m.weights_id.hex(), "file_bytes": dst.stat().st_size, "step": int(ck["step"]),
            "test_bpp": 8 * nbytes / size ** 2, "test_psnr": 10 * math.log10(255 ** 2 / mse) if mse else 100.0,
            "installed": install, "variable_rate": spec.variable_rate}


def _lmbda(cfg: dict):
    from codec.training.config import LAMBDAS

    lo = cfg.get("loss", {})
    if lo.get("lmbda") is not None:
        return lo["lmbda"]
    return LAMBDAS[lo.get("metric", "mse")][int(cfg.get("model", {}).get("quality", 4)) - 1]
