"""Training configuration: dataclasses, JSON/TOML loading, ``section.field=value`` overrides.

A config file has up to five sections; every field has a default, and unknown or
mistyped fields are errors (``ValueError`` with the field's name)::

    {
      "model": {"name": "mean-scale", "quality": 4, "arch_kwargs": {}},
      "loss":  {"metric": "mse", "lmbda": null},
      "data":  {"train": ["../shared/data/train-images"], "val": "../shared/data/kodak",
                "crop": 256, "batch_size": 16},
      "optim": {"lr": 1e-4, "aux_lr": 1e-3, "clip_norm": 1.0, "schedule": "multistep"},
      "run":   {"steps": 300000, "out": "runs/mean-scale-q4"}
    }

Relative paths (``data.train``, ``data.val``, ``run.out``) are taken from the current
directory (run from the repository root for the configs in ``training/configs``).
``loss.lmbda = null`` means CompressAI's lambda for ``model.quality``.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from codec.models import rd

# CompressAI's rate-distortion trade-offs per quality (q1..q8).
# MSE:     loss = lmbda * 255**2 * MSE + bpp
# MS-SSIM: loss = lmbda * (1 - MS-SSIM) + bpp
LAMBDAS = {
    "mse": rd.LAMBDAS,
    "ms-ssim": (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00),
    # audio models: lambda * (log-mel distance + loss.mse_weight * MSE) + bits per sample
    "mel": (0.5, 0.85, 1.45, 2.46, 4.18, 7.1, 12.1, 20.5),
}
#: the metrics of each medium's models (the first is the default)
METRICS = {"image": ("mse", "ms-ssim"), "audio": ("mel",)}
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class ModelConfig:
    name: str = "mean-scale"  # a name of codec.models.registry.MODELS
    quality: int = 4  # 1..8: the lambda (when loss.lmbda is null) and the exported file name; for a
    # variable-rate model, the level whose gains start at 1 (the others at sqrt(lambda ratio))
    arch_kwargs: dict = field(default_factory=dict)  # overrides of the registry spec's kwargs (N, M)
    init: typing.Optional[str] = None  # start from these weights: a training checkpoint (.pt, its "model")
    # or a weights file (.safetensors); parameters it lacks (e.g. the gains of a variable-rate
    # model started from a fixed-rate one) keep their initialisation
    synthesis_input: str = "noisy"  # image models: what g_s sees in training: "noisy" (the latent plus
    # uniform noise, as the rate sees it) or "rounded" (the decoder's rounded latent, straight-through;
    # with optim.frozen = ["g_a", "latent_codec"] that is decoder fine-tuning on the coded latent,
    # Guo et al. 2021's "soft then hard")


@dataclass
class LossConfig:
    metric: str = "mse"  # "mse" or "ms-ssim"
    lmbda: typing.Optional[float] = None  # null: LAMBDAS[metric][quality - 1] (fixed-rate models)
    lambdas: typing.Optional[list] = None  # variable-rate models: one lambda per level (null: LAMBDAS[metric]);
    # each training crop gets a random quality in [1, levels] and the log-interpolated lambda
    aux_weight: float = 1.0  # weight of the quantile (auxiliary) loss of factorized densities
    mse_weight: float = 1000.0  # audio ("mel"): weight of the waveform MSE beside the log-mel distance;
    # VQ models: the loss is mse_weight * MSE + ssim_weight * (1 - MS-SSIM) + commit_weight * commitment
    ssim_weight: float = 0.0
    commit_weight: float = 1.0
    # audio: the log-mel distance counts only the bands below each excerpt's file's own Nyquist
    # frequency (as codec eval measures it, at the file's rate); false: every band to 24 kHz
    mel_source_band: bool = False
    # audio: each excerpt's log-mel distance measured as codec eval measures its file, at the
    # file's own sample rate (its window lengths and mel bands; implies mel_source_band)
    mel_source_rate: bool = False
    # audio models with band-energy correction (scheme 2): the share (0..1) of the distortion
    # measured on the output corrected as the decoder corrects it, the rest on the output before
    # the correction (which keeps the synthesis' band energies anchored); the rate then counts
    # the correction's indexes (under the stored table).  0: off
    energy_correction: float = 0.0


@dataclass
class DataConfig:
    train: list = field(default_factory=lambda: ["../shared/data/train-images"])  # folders, searched recursively
    val: typing.Optional[str] = "../shared/data/kodak"  # folder of validation images (null: no validation)
    val_limit: typing.Optional[int] = None  # use only the first N validation images (sorted by path)
    holdout: typing.Optional[list] = None  # audio: files left out of data.train and used for validation
    crop: int = 256  # square random crops; a multiple of the model's stride (16, or 64 with a hyperprior);
    # audio: samples (at the model's rate) per random excerpt, a multiple of the model's `multiple`
    batch_size: int = 16  # per process (the global batch is batch_size * processes)
    workers: int = 4  # data-loader worker processes (0: load in the training process)
    resident: str = "disk"  # "disk": decode per crop; "memory": decode once, hold in RAM;
    # "device": hold the decoded images on the training device (GPU) and crop there


@dataclass
class OptimConfig:
    lr: float = 1e-4  # Adam, main parameters
    aux_lr: float = 1e-3  # Adam, quantiles of the factorized densities
    weight_decay: float = 0.0
    clip_norm: float = 1.0  # max gradient norm of the main parameters (0: no clipping)
    schedule: str = "multistep"  # "constant", "multistep" or "cosine"
    warmup_steps: int = 0  # linear warm-up from lr / warmup_steps
    decay_at: list = field(default_factory=lambda: [0.8, 0.95])  # multistep: fractions of run.steps
    gamma: float = 0.1  # multistep: factor at each decay_at
    min_lr_factor: float = 0.01  # cosine: final lr = lr * min_lr_factor
    frozen: list = field(default_factory=list)  # parameter-name prefixes kept as they are (e.g. "g_a",
    # "g_s": train only a context model over fixed transforms); each must name some parameter


@dataclass
class RunConfig:
    steps: int = 300_000  # total optimisation steps
    out: typing.Optional[str] = None  # run folder (null: runs/NAME-qQUALITY)
    seed: int = 0
    device: str = "auto"  # "auto" (cuda:LOCAL_RANK if available, else cpu), "cpu", "cuda"
    amp: str = "auto"  # "bf16" autocast of the transforms (entropy models stay fp32), "off", "auto" (bf16 on CUDA)
    channels_last: str = "auto"  # "on", "off", "auto" (on with CUDA)
    compile: bool = False  # torch.compile the training step
    threads: int = 0  # CPU threads per process (0: torch's default; cpu_count / processes under DDP on CPU)
    log_every: int = 100  # steps between log rows (CSV, TensorBoard, progress bar)
    val_every: int = 5000  # steps between validations with real coding (and at the last step)
    ckpt_every: int = 1000  # steps between writes of last.pt (also at every validation and at the end)
    progress: bool = True  # tqdm progress bar (rank 0)
    tensorboard: bool = True  # also log to OUT/tb when the tensorboard package is installed


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    # -- derived values -----------------------------------------------------------
    @property
    def spec(self):
        """The registry spec of ``model.name`` (its quality knob: ``spec.quality``)."""
        from codec.models.registry import get_spec

        return get_spec(self.model.name)

    @property
    def lambdas(self) -> tuple:
        """A model with a continuous quality (variable rate): the lambda of each level."""
        if self.loss.lambdas is not None:
            return tuple(float(v) for v in self.loss.lambdas)
        return LAMBDAS[self.loss.metric]

    @property
    def lmbda(self) -> float:
        """The lambda of a fixed-rate model (of level ``model.quality`` for a variable-rate one)."""
        if self.spec.quality.continuous:
            return self.lambdas[self.model.quality - 1]
        if self.loss.lmbda is not None:
            return float(self.loss.lmbda)
        return LAMBDAS[self.loss.metric][self.model.quality - 1]

    @property
    def out_dir(self) -> Path:
        return Path(self.run.out or f"runs/{self.model.name}-q{self.model.quality}")

    def to_dict(self) -> dict:
        return asdict(self)

    def resolved(self) -> dict:
        """The config as it runs: defaults filled in, lambda and output folder explicit,
        paths absolute.  Loading it again gives the same run."""
        d = self.to_dict()
        if self.spec.quality.continuous:
            d["loss"]["lambdas"] = list(self.lambdas)
        else:
            d["loss"]["lmbda"] = self.lmbda
        if self.model.init is not None:
            d["model"]["init"] = str(Path(self.model.init).resolve())
        d["run"]["out"] = str(self.out_dir.resolve())
        d["data"]["train"] = [str(Path(p).resolve()) for p in self.data.train]
        if self.data.val is not None:
            d["data"]["val"] = str(Path(self.data.val).resolve())
        if self.data.holdout is not None:
            d["data"]["holdout"] = [str(Path(p).resolve()) for p in self.data.holdout]
        return d

    # -- checks --------------------------------------------------------------------
    def validate(self) -> "Config":
        """Check values (not the data folders: see :mod:`codec.training.data`)."""
        from codec.models.registry import MODELS

        m, lo, d, o, r = self.model, self.loss, self.data, self.optim, self.run
        if m.name not in MODELS:
            raise ValueError(f"model.name: unknown model '{m.name}' (known: {', '.join(sorted(MODELS))})")
        spec = MODELS[m.name]
        if not spec.quality.lo <= m.quality <= spec.quality.hi:
            raise ValueError(f"model.quality: {m.quality} is not one of "
                             f"{list(range(spec.quality.lo, spec.quality.hi + 1))}")
        for k, v in m.arch_kwargs.items():
            if k not in spec.kwargs:
                raise ValueError(f"model.arch_kwargs: '{k}' is not a parameter of model '{m.name}' "
                                 f"(known: {', '.join(sorted(spec.kwargs))})")
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"model.arch_kwargs.{k}: must be a positive integer, got {v!r}")
        _choice("loss.metric", lo.metric, METRICS[spec.modality])
        if spec.quality.continuous:
            levels = spec.kwargs["levels"]
            if m.arch_kwargs.get("levels", levels) != levels:
                raise ValueError(f"model.arch_kwargs.levels: model '{m.name}' has {levels} levels "
                                 "(a stream's quality range is part of the model's name)")
            if lo.lmbda is not None:
                raise ValueError(f"loss.lmbda: model '{m.name}' has variable rate: give loss.lambdas "
                                 "(one per level) or leave both null")
            lam = self.lambdas
            if len(lam) != levels or not all(v > 0 for v in lam) or any(a >= b for a, b in zip(lam, lam[1:])):
                raise ValueError(f"loss.lambdas: model '{m.name}' needs {levels} positive, increasing lambdas, "
                                 f"got {list(lam)}")
        elif lo.lambdas is not None:
            raise ValueError(f"loss.lambdas: only for variable-rate models ('{m.name}' has a fixed rate: "
                             "use loss.lmbda)")
        if lo.lmbda is not None and not lo.lmbda > 0:
            raise ValueError(f"loss.lmbda: must be > 0, got {lo.lmbda}")
        for key in ("mel_source_band", "mel_source_rate"):
            if not isinstance(getattr(lo, key), bool):
                raise ValueError(f"loss.{key}: must be true or false, got {getattr(lo, key)!r}")
        if isinstance(lo.energy_correction, bool) or not isinstance(lo.energy_correction, (int, float)) \
                or not 0 <= lo.energy_correction <= 1:
            raise ValueError(f"loss.energy_correction: a number from 0 to 1, got {lo.energy_correction!r}")
        if lo.energy_correction and not (spec.modality == "audio"
                                          and {**spec.kwargs, **m.arch_kwargs}.get("energy") == 2):
            raise ValueError("loss.energy_correction: only for audio models with band-energy correction "
                             "scheme 2 (model.arch_kwargs.energy = 2)")
        if lo.aux_weight < 0 or lo.mse_weight < 0:
            raise ValueError("loss.aux_weight and loss.mse_weight: must be >= 0")
        if d.holdout is not None and (spec.modality != "audio" or not all(isinstance(p, str) and p
                                                                           for p in d.holdout)):
            raise ValueError("data.holdout: a list of audio files (audio models only)")
        if not d.train or not all(isinstance(p, str) and p for p in d.train):
            raise ValueError("data.train: give one or more folders of images")
        cls = spec.arch_class()
        # a model whose crop multiple depends on its kwargs (audio: the packet's depth) says so
        multiple = cls.multiple_for(**{**spec.kwargs, **m.arch_kwargs}) if hasattr(cls, "multiple_for") \
            else cls.multiple
        if d.crop < multiple or d.crop % multiple:
            raise ValueError(f"data.crop: model '{m.name}' needs crops that are a multiple of {multiple}, "
                             f"got {d.crop}")
        if spec.modality == "audio" and d.crop < 4096:
            raise ValueError(f"data.crop: audio excerpts of at least 4096 samples, got {d.crop}")
        if lo.metric == "ms-ssim" and d.crop <= 160:
            raise ValueError(f"data.crop: MS-SSIM needs crops larger than 160 pixels, got {d.crop}")
        _positive("data.batch_size", d.batch_size)
        if d.workers < 0:
            raise ValueError("data.workers: must be >= 0")
        if d.val_limit is not None:
            _positive("data.val_limit", d.val_limit)
        _choice("data.resident", d.resident, ("disk", "memory", "device"))
        _choice("model.synthesis_input", self.model.synthesis_input, ("noisy", "rounded"))
        if not o.lr > 0 or not o.aux_lr > 0:
            raise ValueError("optim.lr and optim.aux_lr: must be > 0")
        if o.clip_norm < 0 or o.weight_decay < 0:
            raise ValueError("optim.clip_norm and optim.weight_decay: must be >= 0")
        _choice("optim.schedule", o.schedule, ("constant", "multistep", "cosine"))
        if o.warmup_steps < 0:
            raise ValueError("optim.warmup_steps: must be >= 0")
        if not all(isinstance(f, (int, float)) and 0 < f <= 1 for f in o.decay_at):
            raise ValueError(f"optim.decay_at: fractions of run.steps in (0, 1], got {o.decay_at}")
        if not 0 < o.gamma <= 1 or not 0 <= o.min_lr_factor <= 1:
            raise ValueError("optim.gamma must be in (0, 1] and optim.min_lr_factor in [0, 1]")
        if not all(isinstance(p, str) and p for p in o.frozen):
            raise ValueError(f"optim.frozen: a list of parameter-name prefixes, got {o.frozen!r}")
        _positive("run.steps", r.steps)
        for k in ("log_every", "val_every", "ckpt_every"):
            _positive(f"run.{k}", getattr(r, k))
        if r.threads < 0:
            raise ValueError("run.threads: must be >= 0")
        if not (r.device in ("auto", "cpu", "cuda") or r.device.startswith("cuda:")):
            raise ValueError(f"run.device: 'auto', 'cpu', 'cuda' or 'cuda:N', not '{r.device}'")
        _choice("run.amp", r.amp, ("auto", "bf16", "off"))
        _choice("run.channels_last", r.channels_last, ("auto", "on", "off"))
        return self


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}: '{value}' is not one of {', '.join(allowed)}")


def _positive(name, value):
    if value < 1:
        raise ValueError(f"{name}: must be >= 1, got {value}")


# ----------------------------------------------------------------------------- building
_SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}


def _section_types():
    hints = typing.get_type_hints(Config)
    return {name: hints[name] for name in _SECTIONS}


def _check_type(where: str, value, tp):
    """``value`` as type ``tp`` (ints accepted for floats), or ValueError."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _check_type(where, value, args[0])
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    if tp is list and isinstance(value, list):
        return list(value)
    if tp is list and isinstance(value, str):  # one folder
        return [value]
    if tp is dict and isinstance(value, dict):
        return dict(value)
    name = getattr(tp, "__name__", str(tp))
    raise ValueError(f"{where}: expected {name}, got {type(value).__name__} {value!r}")


def from_dict(d: dict) -> Config:
    """Build and validate a :class:`Config`; unknown sections or fields are errors."""
    if not isinstance(d, dict):
        raise ValueError("a training config must be a table/object of sections")
    types = _section_types()
    sections = {}
    for sec, body in d.items():
        if sec not in types:
            raise ValueError(f"unknown config section '{sec}' (known: {', '.join(types)})")
        if not isinstance(body, dict):
            raise ValueError(f"config section '{sec}' must be a table/object")
        cls = types[sec]
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for k, v in body.items():
            if k not in hints:
                raise ValueError(f"unknown field '{sec}.{k}' (known: {', '.join(hints)})")
            kwargs[k] = _check_type(f"{sec}.{k}", v, hints[k])
        sections[sec] = cls(**kwargs)
    return Config(**sections).validate()


def find_config(name_or_path) -> Path:
    """A config file path, or the name of one in ``training/configs`` (``mean-scale-q4``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.parent == Path(".") and not p.exists():
        for suffix in ("", ".json", ".toml"):
            q = CONFIG_DIR / (p.name + suffix)
            if q.is_file():
                return q
    if p.is_dir():
        raise ValueError(f"config {p} is a folder, not a file")
    known = ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.json"))) if CONFIG_DIR.is_dir() else ""
    raise ValueError(f"config file not found: {p}" + (f" (shipped configs: {known})" if known else ""))


def read_config_file(path) -> dict:
    path = find_config(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ImportError:  # pragma: no cover - Python 3.10
                try:
                    import tomli as tomllib
                except ImportError:
                    raise ValueError("TOML configs need Python 3.11+ or the tomli package") from None
            return tomllib.loads(text)
        return json.loads(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"cannot parse config {path}: {exc}") from None


def parse_override(text: str) -> tuple[list[str], object]:
    """``section.field=value`` (value as JSON, else a string) -> (keys, value)."""
    if "=" not in text:
        raise ValueError(f"override '{text}' is not of the form section.field=value")
    key, raw = text.split("=", 1)
    keys = key.strip().split(".")
    if len(keys) < 2 or not all(keys):
        raise ValueError(f"override '{text}': the key must be section.field (e.g. run.steps=1000)")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return keys, value


def apply_overrides(d: dict, overrides) -> dict:
    d = json.loads(json.dumps(d))  # deep copy
    for text in overrides or ():
        keys, value = parse_override(text)
        node = d
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"override '{text}': '{k}' is not a section")
        node[keys[-1]] = value
    return d


def load_config(path=None, overrides=(), base: dict | None = None) -> Config:
    """Config from a file (or ``base``, e.g. a checkpoint's) with ``--set`` overrides applied."""
    if path is not None:
        d = read_config_file(path)
    elif base is not None:
        d = base
    else:
        d = {}
    return from_dict(apply_overrides(d, overrides))


def write_json(d: dict, path) -> None:
    """Write a resolved config (``OUT/config.json``) atomically."""
    from codec.fileio import atomic_path

    with atomic_path(path, force=True) as tmp:
        Path(tmp).write_text(json.dumps(d, indent=2) + "\n", encoding="utf-8")

