"""Registry models for training: built from their spec, started from other weights."""
from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from codec.training.checkpoint import load_checkpoint


def build_model(name: str, arch_kwargs: dict | None = None):
    """A fresh (float, training) registry model with the spec's kwargs overridden; and the kwargs."""
    from codec.models.registry import get_spec

    spec = get_spec(name)
    kwargs = {**spec.kwargs, **(arch_kwargs or {})}
    return spec.arch_class()(**kwargs), kwargs


def init_weights(model: nn.Module, path) -> tuple[int, int]:
    """Load the parameters of ``path`` (a training checkpoint or a weights file) that fit
    ``model``; a fixed-rate model's latent codec maps onto a variable-rate model's inner
    codec and back.  Returns (tensors loaded, tensors of the model left as they were)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model.init: no such file: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        src = {k: v for k, v in load_file(str(path)).items() if not k.startswith("frozen.")}
    else:
        src = load_checkpoint(path)["model"]
    own = model.state_dict()
    params = {k for k, _ in model.named_parameters()}
    mapped = {}
    for k, v in src.items():
        for cand in (k, k.replace("latent_codec.", "latent_codec.inner.", 1),
                     k.replace("latent_codec.inner.", "latent_codec.", 1)):
            if cand in own:
                if own[cand].shape == v.shape:
                    mapped[cand] = v.to(own[cand].dtype)
                elif cand in params:
                    raise ValueError(f"model.init: {path}: '{k}' has shape {tuple(v.shape)}, "
                                     f"the model's has {tuple(own[cand].shape)}")
                break
    if not any(k in params for k in mapped):
        raise ValueError(f"model.init: {path} holds no parameter of this model")
    model.load_state_dict(mapped, strict=False)
    return len(mapped), len(own) - len(mapped)
