"""Models by stable name.  A stream names its model and the hash of the exact weights.

Weights ship inside the package (``models/weights/NAME-qQ.safetensors`` for a model
with a fixed rate per set of weights, ``models/weights/NAME.safetensors`` for a
variable-rate model whose one set of weights covers every quality; safetensors only,
never pickle).  A model without shipped weights loads randomly initialised
(seeded by name, and quality for a fixed-rate model, so encoder and decoder agree) and says so:
``model.trained`` is False.
"""
from __future__ import annotations

import hashlib
import json
import math
import zlib
from dataclasses import dataclass, field
from importlib import resources

import torch

from codec.models.image import (FactorizedPrior, ImageModel, MeanScaleHyperprior, ScaleHyperprior,
                                VariableRateMeanScale)
from codec.models.integer import IntegerNet


@dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: type
    kwargs: dict = field(default_factory=dict)
    qualities: tuple = tuple(range(1, 9))
    default_quality: int = 4
    description: str = ""

    @property
    def variable_rate(self) -> bool:
        return bool(getattr(self.arch, "variable_rate", False))

    def check_quality(self, quality):
        """The quality as this model takes it: an int of ``qualities`` for a fixed-rate model;
        for a variable-rate model a float in ``[first, last]`` in steps of 0.01 (what a
        stream can hold).  Raises ``ValueError`` with a message for users."""
        lo, hi = self.qualities[0], self.qualities[-1]
        if quality is None:
            return float(self.default_quality) if self.variable_rate else self.default_quality
        try:
            q = float(quality)
        except (TypeError, ValueError):
            raise ValueError(f"quality must be a number, not {quality!r}") from None
        if not math.isfinite(q):
            raise ValueError(f"quality must be a finite number, not {quality!r}")
        if self.variable_rate:
            if not lo <= q <= hi:
                raise ValueError(f"model '{self.name}' takes a quality from {lo} to {hi} "
                                 f"(any value in steps of 0.01), not {quality}")
            return round(q * 100) / 100
        if q != int(q) or int(q) not in self.qualities:
            raise ValueError(f"model '{self.name}' has qualities {lo}..{hi} (whole numbers), not {quality}")
        return int(q)

    def quality_code(self, quality) -> int:
        """The container's 16-bit quality field: the quality, or quality x 100 (variable rate)."""
        q = self.check_quality(quality)
        return round(q * 100) if self.variable_rate else q

    def quality_from_code(self, code: int):
        return self.check_quality(code / 100 if self.variable_rate else code)


MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec("factorized", FactorizedPrior, dict(N=128, M=192),
                  description="factorized prior (Balle 2018), N=128 M=192"),
        ModelSpec("hyperprior", ScaleHyperprior, dict(N=128, M=192),
                  description="scale hyperprior (Balle 2018), N=128 M=192, integer hyper-synthesis"),
        ModelSpec("mean-scale", MeanScaleHyperprior, dict(N=128, M=192),
                  description="mean-scale hyperprior (Minnen 2018, no context), N=128 M=192, "
                              "integer hyper-synthesis"),
        ModelSpec("mean-scale-small", MeanScaleHyperprior, dict(N=64, M=96),
                  description="mean-scale hyperprior, N=64 M=96: a quarter of the work, for CPUs"),
        ModelSpec("mean-scale-vr", VariableRateMeanScale, dict(N=64, M=96, levels=8),
                  description="variable-rate mean-scale hyperprior (gain units), N=64 M=96: one set of "
                              "weights, continuous quality 1..8"),
    ]
}
DEFAULT_MODEL = "mean-scale-vr"  # the best model with shipped weights


class UnknownModelError(KeyError):
    def __str__(self):
        return self.args[0]


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model '{name}' (known: {', '.join(sorted(MODELS))})") from None


def weights_filename(name: str, quality) -> str:
    """``NAME-qQ.safetensors``, or ``NAME.safetensors`` for a variable-rate model."""
    return f"{name}.safetensors" if get_spec(name).variable_rate else f"{name}-q{quality}.safetensors"


def weights_path(name: str, quality=None):
    return resources.files("codec.models").joinpath("weights", weights_filename(name, quality))


def has_weights(name: str, quality=None) -> bool:
    return weights_path(name, quality).is_file()


def weights_id(state: dict) -> bytes:
    """8-byte content hash of a state dict (names, dtypes, shapes and values)."""
    h = hashlib.sha256(b"codec.models.weights/v1")
    for k in sorted(state):
        t = state[k].detach().to("cpu").contiguous()
        h.update(k.encode() + b"\0" + str(t.dtype).encode() + b"\0" + str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()[:8]


def _split(state: dict):
    params = {k: v for k, v in state.items() if not k.startswith("frozen.")}
    frozen = {k: v for k, v in state.items() if k.startswith("frozen.")}
    return params, frozen


def full_state(model: ImageModel) -> dict:
    """Everything a coder needs: float weights + frozen coding state (tables, integer nets)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state.update(model.frozen_state())
    return state


def save_weights(model: ImageModel, path, metadata: dict | None = None, half: bool = False) -> bytes:
    """Write a frozen model as safetensors (atomic); returns its weights id."""
    import os
    import tempfile

    from safetensors.torch import save_file

    # a frozen integer network is a module too: its buffers are stored once, under "frozen."
    skip = tuple(n + "." for n, m in model.named_modules() if isinstance(m, IntegerNet))
    state = {k: v for k, v in full_state(model).items() if not k.startswith(skip)}
    if half:  # parameters only: buffers (GDN pedestals, likelihood floors) underflow in fp16
        params = {k for k, _ in model.named_parameters()}
        state = {k: (v.half() if k in params and v.is_floating_point() else v) for k, v in state.items()}
    meta = {"format": "codec.weights/v1"}
    meta.update({k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()})
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata=meta)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return weights_id(state)


def _arch_kwargs(spec: ModelSpec, meta: dict) -> dict:
    """The spec's kwargs, overridden by the weights' ``arch_kwargs`` metadata (JSON, e.g.
    ``{"N": 192, "M": 320}``: a model trained at another size, see ``codec export``)."""
    kwargs = dict(spec.kwargs)
    if "arch_kwargs" in meta:
        try:
            extra = json.loads(meta["arch_kwargs"])
        except json.JSONDecodeError:
            extra = None
        if not isinstance(extra, dict) or any(k not in spec.kwargs or not isinstance(v, int) or v < 1
                                              or (k == "levels" and v != spec.kwargs[k])
                                              for k, v in extra.items()):
            raise ValueError(f"weights for model '{spec.name}' have invalid arch_kwargs metadata: "
                             f"{meta['arch_kwargs']!r}")
        kwargs.update(extra)
    return kwargs


def load_model(name: str, quality=None, device="cpu", path=None) -> ImageModel:
    """A frozen, eval-mode model.  Attributes: ``name``, ``quality`` (None for a
    variable-rate model: the quality is an argument of ``compress``/``decompress``),
    ``weights_id``, ``trained`` and ``metadata``."""
    spec = get_spec(name)
    q = None if spec.variable_rate else spec.check_quality(quality)
    src = path if path is not None else (weights_path(name, q) if has_weights(name, q) else None)
    meta, state = {}, None
    if src is not None:
        from safetensors import safe_open

        with safe_open(str(src), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32((name if q is None else f"{name}-q{q}").encode()))
        model = spec.arch(**_arch_kwargs(spec, meta))
    if src is not None:
        params, frozen = _split(state)
        ref = model.state_dict()
        params = {k: v.to(ref[k].dtype) if k in ref else v for k, v in params.items()}
        missing, unexpected = model.load_state_dict(params, strict=False)
        if missing or unexpected:
            raise ValueError(f"weights do not fit model '{name}': missing {missing[:3]}, unexpected {unexpected[:3]}")
        model.load_frozen(frozen)
        trained = meta.get("trained", "true") == "true"
    else:
        model.freeze()
        trained = False
    model.eval()
    model.name, model.quality, model.trained, model.metadata = name, q, trained, meta
    model.weights_id = weights_id(full_state(model))
    return model.to(device)


def list_models() -> list[str]:
    return sorted(MODELS)
