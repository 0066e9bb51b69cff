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
import importlib
import json
import math
import zlib
from dataclasses import dataclass, field
from importlib import resources


@dataclass(frozen=True)
class QualitySpec:
    """A model's quality knob: whole levels ``lo..hi`` with one set of weights each
    (``step = None``), or a continuous range ``[lo, hi]`` in steps of ``step`` served by
    one set of weights (variable rate).  Higher means more bits."""

    lo: int = 1
    hi: int = 8
    default: int = 4
    step: float | None = None
    shared: bool = False  # whole levels served by one set of weights (a VQ model's codebook sizes)

    @property
    def continuous(self) -> bool:
        return self.step is not None

    @property
    def scale(self) -> int:
        """Steps per unit of a continuous quality (100 for steps of 0.01)."""
        return round(1 / self.step)

    def check(self, quality):
        """The quality as the model takes it (an int level, or a float on the step grid);
        ``ValueError`` with a message for users."""
        if quality is None:
            return float(self.default) if self.continuous else self.default
        if isinstance(quality, bool):
            raise ValueError(f"quality must be a number, not {quality!r}")
        try:
            q = float(quality)
        except (TypeError, ValueError):
            raise ValueError(f"quality must be a number, not {quality!r}") from None
        if not math.isfinite(q):
            raise ValueError(f"quality must be a finite number, not {quality!r}")
        if self.continuous:
            if not self.lo <= q <= self.hi:
                raise ValueError(f"quality must lie in {self.lo}..{self.hi} (any value in steps of {self.step:g}), "
                                 f"not {quality}")
            return round(q * self.scale) / self.scale
        if q != int(q) or not self.lo <= int(q) <= self.hi:
            raise ValueError(f"quality must be a whole number in {self.lo}..{self.hi}, not {quality}")
        return int(q)

    def code(self, quality) -> int:
        """The container's 16-bit quality field: the level, or the quality / step."""
        q = self.check(quality)
        return round(q * self.scale) if self.continuous else q

    def from_code(self, code: int):
        return self.check(code / self.scale if self.continuous else code)

    def weights_key(self, quality):
        """Which weights serve ``quality``: its level, or None (one set for the whole range)."""
        return None if self.continuous or self.shared else self.check(quality)

    def describe(self) -> str:
        if self.continuous:
            return f"quality {self.lo}..{self.hi}, any value (steps of {self.step:g}) (default {self.default})"
        return f"qualities {self.lo}..{self.hi} (default {self.default})"


LEVELS = QualitySpec()
CONTINUOUS = QualitySpec(step=0.01)


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its name (written into every stream), the medium it codes, its
    architecture as ``"module:Class"`` (imported on first use, so listing models is cheap),
    the architecture's keyword arguments, its quality knob and a line for ``codec models``."""

    name: str
    modality: str
    arch: str
    kwargs: dict = field(default_factory=dict)
    quality: QualitySpec = LEVELS
    description: str = ""
    fitted: bool = False  # the encoder fits the model to each item (an INR): no trained weights, an effort knob

    @property
    def variable_rate(self) -> bool:
        return self.quality.continuous

    @property
    def effort(self) -> bool:
        """Whether its encoder takes an effort (``--effort``): the iterations of an INR's fit, or
        of an image transform codec's latent refinement (its class has ``iterations(effort)``)."""
        return callable(getattr(self.arch_class(), "iterations", None))

    def label(self, quality=None) -> str:
        """``model 'NAME'``, with `` quality Q`` when the quality picks the weights (for messages)."""
        key = self.quality.weights_key(quality) if quality is not None else None
        return f"model '{self.name}'" + ("" if key is None else f" quality {key}")

    def arch_class(self):
        module, _, cls = self.arch.partition(":")
        return getattr(importlib.import_module(module), cls)

    def check_quality(self, quality):
        """The quality as this model takes it (see :meth:`QualitySpec.check`), naming the model in errors."""
        try:
            return self.quality.check(quality)
        except ValueError as exc:
            raise ValueError(f"model '{self.name}': {exc}") from None

    def quality_code(self, quality) -> int:
        return self.quality.code(self.check_quality(quality))

    def quality_from_code(self, code: int):
        try:
            return self.quality.from_code(code)
        except ValueError as exc:
            raise ValueError(f"model '{self.name}': {exc}") from None

    def weights_filename(self, quality=None) -> str:
        """``NAME-qQ.safetensors`` (one file per level), or ``NAME.safetensors`` (one for the range)."""
        key = self.quality.weights_key(quality)
        return f"{self.name}.safetensors" if key is None else f"{self.name}-q{key}.safetensors"


_IMAGE = "codec.models.image:"
MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec("factorized", "image", _IMAGE + "FactorizedPrior", dict(N=128, M=192),
                  description="factorized prior (Balle 2018), N=128 M=192"),
        ModelSpec("hyperprior", "image", _IMAGE + "ScaleHyperprior", dict(N=128, M=192),
                  description="scale hyperprior (Balle 2018), N=128 M=192, integer hyper-synthesis"),
        ModelSpec("mean-scale", "image", _IMAGE + "MeanScaleHyperprior", dict(N=128, M=192),
                  description="mean-scale hyperprior (Minnen 2018, no context), N=128 M=192, "
                              "integer hyper-synthesis"),
        ModelSpec("mean-scale-small", "image", _IMAGE + "MeanScaleHyperprior", dict(N=64, M=96),
                  description="mean-scale hyperprior, N=64 M=96: a quarter of the work, for CPUs"),
        ModelSpec("mean-scale-vr", "image", _IMAGE + "VariableRateMeanScale", dict(N=64, M=96, levels=8),
                  quality=CONTINUOUS,
                  description="variable-rate mean-scale hyperprior (gain units), N=64 M=96: one set of "
                              "weights, continuous quality 1..8"),
        ModelSpec("context-vr", "image", _IMAGE + "ContextMeanScale", dict(N=64, M=96, levels=8, blocks=0),
                  quality=CONTINUOUS,
                  description="variable-rate mean-scale hyperprior with an ELIC-style context model (5 uneven "
                              "channel slices, checkerboard inside each), N=64 M=96; exact integer context path"),
        ModelSpec("vq-f16", "image", "codec.models.vq:VQModel", dict(N=64, levels=8, D=4),
                  quality=QualitySpec(lo=1, hi=4, default=2, shared=True),
                  description="VQ tokenizer at 1/16 of the picture's size: FSQ codebook of 8^4 = 4096 entries, "
                              "k-means codebooks of 64/256/1024/2048 entries for qualities 1..4, checkerboard context prior; "
                              "for very low rates"),
        ModelSpec("wavelet-audio", "audio", "codec.models.audio:AudioModel",
                  dict(N=192, E=128, levels=8, wavelet_levels=8, blocks=6, sample_rate=48000, hop=491_520,
                       context=1536, loudness=0, fill_levels=0, transform=0, energy=0),
                  # default 6: about 10 kbps on speech, 23 on music with the shipped weights (4 gave 5 and 11)
                  quality=QualitySpec(step=0.01, default=6),
                  description="WaLLoC-style audio codec at 48 kHz: a 256-band transform (the shipped weights: an MDCT; "
                              "an 8-level CDF 9/7 wavelet packet before) around a shallow autoencoder with skips "
                              "and a learned compander, scale hyperprior with noise fill and gain units, "
                              "loudness steps and band-energy correction; continuous quality 1..8"),
        ModelSpec("video-ip", "video", "codec.models.video:VideoModel", dict(N=64, M=96, levels=8),
                  quality=CONTINUOUS,
                  description="I/P-frame video codec: mean-scale I-frames; P-frames by overlapped half-pel block "
                              "motion and a learned residual coder; integer synthesis, so decoded frames are exact "
                              "on every device"),
        ModelSpec("inr-image", "image", "codec.models.inr.image:InrImageModel", {}, quality=CONTINUOUS, fitted=True,
                  description="Cool-chic/C3-style INR: fits latent grids, a tiny synthesis and an autoregressive "
                              "entropy model to each picture, then codes them (no trained weights; --effort sets "
                              "the fitting time); exact integer decoder, about 500 MACs per pixel"),
        ModelSpec("inr-video", "video", "codec.models.inr.video:InrVideoModel", {}, quality=CONTINUOUS, fitted=True,
                  description="NeRV/HNeRV-style INR: fits one small upsampling network and a tiny embedding per "
                              "frame to each group of --gop frames (no trained weights; --effort sets the "
                              "fitting time); exact integer decoder, any frame decodable alone"),
    ]
}
#: the best model with shipped weights, per medium (a medium missing here has no codec yet)
DEFAULT_MODELS = {"image": "context-vr", "audio": "wavelet-audio", "video": "video-ip"}


class UnknownModelError(KeyError):
    def __str__(self):
        return self.args[0]


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise UnknownModelError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})") from None


def default_model(modality: str) -> str:
    """The default model of a medium; :class:`UnknownModelError` when none ships yet."""
    if modality not in DEFAULT_MODELS:
        raise UnknownModelError(f"no {modality} codec ships yet (models: "
                                f"{', '.join(f'{n} ({s.modality})' for n, s in sorted(MODELS.items()))})")
    return DEFAULT_MODELS[modality]


def weights_filename(name: str, quality=None) -> str:
    return get_spec(name).weights_filename(quality)


def weights_path(name: str, quality=None):
    return resources.files("codec.models").joinpath("weights", weights_filename(name, quality))


def has_weights(name: str, quality=None) -> bool:
    return weights_path(name, quality).is_file()


def weights_id(state: dict) -> bytes:
    """8-byte content hash of a state dict (names, dtypes, shapes and values)."""
    import torch

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


def full_state(model) -> dict:
    """Everything a coder needs: float weights + frozen coding state (tables, integer nets)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state.update(model.frozen_state())
    return state


def _arch_kwargs(spec: ModelSpec, meta: dict) -> dict:
    """The spec's kwargs, overridden by the weights' ``arch_kwargs`` metadata (JSON, e.g.
    ``{"N": 192, "M": 320}``: a model trained at another size, see ``codec export``)."""
    kwargs = dict(spec.kwargs)
    if "arch_kwargs" in meta:
        try:
            extra = json.loads(meta["arch_kwargs"])
        except json.JSONDecodeError:
            extra = None
        if not isinstance(extra, dict) or any(k not in spec.kwargs or not isinstance(v, int) or v < (0 if k in ("blocks", "loudness", "fill_levels", "transform", "energy") else 1)
                                              or (k == "levels" and v != spec.kwargs[k])
                                              for k, v in extra.items()):
            raise ValueError(f"weights for model '{spec.name}' have invalid arch_kwargs metadata: "
                             f"{meta['arch_kwargs']!r}")
        kwargs.update(extra)
    return kwargs


def load_model(name: str, quality=None, device="cpu", path=None):
    """A frozen, eval-mode model.  Attributes: ``name``, ``quality`` (the level of a
    fixed-rate model; None for a variable-rate one: the quality is an argument of
    ``compress``/``decompress``), ``weights_id``, ``trained`` and ``metadata``."""
    import torch

    spec = get_spec(name)
    q = spec.quality.weights_key(spec.check_quality(quality))
    src = path if path is not None else (weights_path(name, q) if has_weights(name, q) else None)
    meta, state = {}, None
    if src is not None:
        from safetensors import safe_open

        with safe_open(str(src), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32((name if q is None else f"{name}-q{q}").encode()))
        model = spec.arch_class()(**_arch_kwargs(spec, meta))
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
