"""Structured training configuration (OmegaConf dataclasses, strict).

A run is described by one YAML file under ``configs/train/`` plus optional ``key=value`` overrides on the command
line (``train.max_steps=10 data.root=/data``). A file may start from another with a top-level ``base: FILE`` (a path
relative to its own folder; bases may chain): it is then only its differences, merged over the base (the ablation
configs are such deltas over ``padaln.yaml``). Unknown keys are errors that name the key; string switches are
checked against their allowed values at load time. The resolved config is printed at start and saved beside every
checkpoint (``config.yaml``), so a checkpoint folder says exactly how it was trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from ..models.pose_control import POSE_CONTROLS
from ..models.presets import PRESETS

MODEL_SOURCES = ("tiny", "base", "pretrained")
TRAINABLE = ("full", "pose_branch_only", "lora")
MIXED_PRECISION = ("no", "fp16", "bf16")
LR_SCHEDULERS = (
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
)
TRACKERS = ("tensorboard", "wandb")


@dataclass
class ModelConfig:
    """What to train. ``source`` picks where the components come from:

    - ``tiny``: random tiny components (``preset`` is ``tiny`` or ``tiny-1.5``), nothing read from disk;
    - ``base``: a CogVideoX I2V pipeline folder (``base_path`` with ``transformer/ vae/ text_encoder/ tokenizer/
      scheduler/``); the transformer gets a fresh pose branch via ``DynamiCtrlTransformer3DModel.from_base``.
      ``preset`` names the shape ``base_path/transformer`` must have (checked before loading; null: any shape);
    - ``pretrained``: like ``base`` for the VAE/text encoder/scheduler, but the transformer is one of our (or the
      official) DynamiCtrl checkpoints at ``transformer_path`` (its own config gives the shape; ``preset`` unused).
    """

    source: str = "tiny"
    preset: str | None = "tiny"
    base_path: str | None = None
    transformer_path: str | None = None
    pose_control: str = "padaln"
    use_text: bool = True
    seed: int = 0  # initialisation seed of the tiny components
    # Reference latent x VAE scaling factor. null = the official release's (and the pipeline's) rule: scaled, except
    # for VAEs with invert_scale_latents (CogVideoX 1.5), where the official code uses 1.0.
    scale_reference_latents: bool | None = None
    ofs: float = 2.0  # CogVideoX 1.5's ofs condition; unused by models without an ofs embedding
    max_text_seq_length: int | None = None  # default: the transformer's max_text_seq_length


@dataclass
class DataConfig:
    """The training set: the official layout (``videos/ poses/ [masks/] prompts.txt``) and/or a latent cache."""

    root: str = MISSING
    # Folder written by tools/prepare_dataset.py; when set, training reads latents and skips the encoders.
    latents: str | None = None
    num_frames: int = 13
    height: int = 64
    width: int = 64
    frame_stride: int = 1
    random_start: bool = True  # random clip start inside the video (else the first frames)
    reference_mask_prob: float = 0.0  # probability of masking the reference to the person (needs masks/)
    text_dropout_prob: float = 0.1  # prompt replaced by "" (classifier-free guidance on text)
    image_dropout_prob: float = 0.05  # reference latent zeroed (CogVideoX I2V's noised_image_dropout)
    image_noise: bool = True  # CogVideoX I2V pixel noise on the reference, sigma = exp(N(-3, 0.5))
    num_workers: int = 0
    max_bad_fraction: float = 0.5  # stop when more than this fraction of the clips read so far were unreadable


@dataclass
class OptimizerConfig:
    """AdamW with the paper's recipe by default (official fine-tuning script)."""

    lr: float = 5e-6
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 1e-3
    eps: float = 1e-8
    max_grad_norm: float = 1.0
    lr_scheduler: str = "cosine_with_restarts"
    lr_warmup_steps: int = 1000
    lr_num_cycles: int = 1


@dataclass
class LoraConfig:
    rank: int = 64
    alpha: int = 64
    target_modules: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])


@dataclass
class EmaConfig:
    enabled: bool = False
    # diffusers' EMAModel: update n >= 2 uses decay min(decay, n / (n + 9)); update 1 copies the weights
    decay: float = 0.9999
    update_every: int = 1


@dataclass
class TrainConfig:
    output_dir: str = "runs/default"
    seed: int = 42
    batch_size: int = 1  # per process
    max_steps: int = 1000  # optimizer steps (the LR schedule spans these)
    max_steps_per_run: int | None = None  # stop this invocation early (job time limits); resume continues
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = None  # None: whatever `accelerate launch` was configured with
    gradient_checkpointing: bool = False
    trainable: str = "full"
    lora: LoraConfig = field(default_factory=LoraConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    # a NaN/inf loss or gradient on any micro-batch skips the whole optimizer step; stop after this many in a row
    max_nonfinite_steps: int = 5
    allow_tf32: bool = True
    # torch intra-op threads when training on CPU (null = torch's default). Tiny models run far faster with 1: their
    # ops are too small to split, and on a busy machine the threads wait on each other.
    cpu_threads: int | None = None


@dataclass
class CheckpointConfig:
    every_steps: int = 500
    total_limit: int | None = 3
    resume_from: str | None = None  # null | latest | PATH
    save_final: bool = True  # write output_dir/final/transformer at the end


@dataclass
class LoggingConfig:
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    project: str = "dynamictrl"
    every_steps: int = 1
    progress_bar: bool = True


@dataclass
class ValidationConfig:
    """Sampling with the pipeline every ``every_steps`` steps (0 = never); MP4s and metrics go to output_dir."""

    every_steps: int = 0
    reference: str | None = None  # image
    pose: str | None = None  # pose video (first frame = the reference's pose)
    target: str | None = None  # optional ground-truth video for metrics
    prompt: str = ""
    num_frames: int | None = None  # default: data.num_frames
    height: int | None = None
    width: int | None = None
    num_inference_steps: int = 25
    guidance_scale: float = 3.0
    seed: int = 0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def validate(cfg: Config) -> None:
    """Check switches and ranges that OmegaConf's types cannot express; raise ``ValueError`` naming the key."""
    _check_choice("model.source", cfg.model.source, MODEL_SOURCES)
    _check_choice("model.pose_control", cfg.model.pose_control, POSE_CONTROLS)
    _check_choice("train.trainable", cfg.train.trainable, TRAINABLE)
    _check_choice("optimizer.lr_scheduler", cfg.optimizer.lr_scheduler, LR_SCHEDULERS)
    if cfg.train.mixed_precision is not None:
        _check_choice("train.mixed_precision", cfg.train.mixed_precision, MIXED_PRECISION)
    for tracker in cfg.logging.report_to:
        _check_choice("logging.report_to[]", tracker, TRACKERS)
    if cfg.model.source == "base" and not cfg.model.base_path:
        raise ValueError("model.source=base needs model.base_path (a CogVideoX I2V pipeline folder)")
    if cfg.model.source == "pretrained" and not cfg.model.transformer_path:
        raise ValueError("model.source=pretrained needs model.transformer_path (a DynamiCtrl transformer folder)")
    if cfg.model.source == "tiny" and cfg.model.preset not in ("tiny", "tiny-1.5"):
        raise ValueError(f"model.preset={cfg.model.preset!r} is not allowed with source=tiny; choose tiny or tiny-1.5")
    if cfg.model.preset is not None:
        _check_choice("model.preset", cfg.model.preset, tuple(PRESETS))
    for key in ("reference_mask_prob", "text_dropout_prob", "image_dropout_prob", "max_bad_fraction"):
        value = getattr(cfg.data, key)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"data.{key}={value} must be a probability in [0, 1]")
    for section, key in (
        ("data", "num_frames"),
        ("data", "height"),
        ("data", "width"),
        ("data", "frame_stride"),
        ("train", "batch_size"),
        ("train", "max_steps"),
        ("train", "gradient_accumulation_steps"),
    ):
        value = getattr(getattr(cfg, section), key)
        if value < 1:
            raise ValueError(f"{section}.{key}={value} must be at least 1")
    if cfg.data.height % 8 or cfg.data.width % 8:
        raise ValueError(
            f"data.height={cfg.data.height} and data.width={cfg.data.width} must be multiples of 8 (VAE downsampling)"
        )
    if cfg.checkpoint.total_limit is not None and cfg.checkpoint.total_limit < 1:
        raise ValueError(f"checkpoint.total_limit={cfg.checkpoint.total_limit} must be null or at least 1")
    if cfg.train.ema.enabled and cfg.train.trainable == "lora":
        raise ValueError(
            "train.ema.enabled=true is not supported with train.trainable=lora; use full or pose_branch_only"
        )
    if len(cfg.optimizer.betas) != 2:
        raise ValueError(f"optimizer.betas={list(cfg.optimizer.betas)} must have two values")


def check_preset(model: ModelConfig, transformer_config: Mapping[str, Any], where: str) -> None:
    """Refuse a transformer config (``config.json`` as a dict) that lacks the shape ``model.preset`` names.

    The keys compared are those any preset sets; a key the preset or the file omits takes diffusers'
    ``CogVideoXTransformer3DModel`` default (older configs omit the 1.5 keys). Raises a one-line ``ValueError``
    naming the differing keys; ``preset: null`` accepts any shape.
    """
    if model.preset is None:
        return
    import inspect

    from diffusers import CogVideoXTransformer3DModel

    defaults = inspect.signature(CogVideoXTransformer3DModel.__init__).parameters
    preset = PRESETS[model.preset]
    differ = []
    for key in sorted({key for shape in PRESETS.values() for key in shape}):
        want = preset.get(key, defaults[key].default)
        have = transformer_config.get(key, defaults[key].default)
        if have != want:
            differ.append(f"{key}={have!r} (preset: {want!r})")
    if differ:
        raise ValueError(
            f"{where} is not the model.preset={model.preset} shape: {', '.join(differ)} "
            f"(set model.preset to the base's shape, one of {', '.join(PRESETS)}, or null)"
        )


BASE_KEY = "base"  # top-level key of a config file: the file it is a delta over


def _file_layers(path: Path, chain: tuple[Path, ...] = ()) -> list:
    """The YAML layers of ``path``, its ``base:`` chain first (each base relative to the file naming it)."""
    if path.resolve() in chain:
        loop = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise ValueError(f"config bases form a cycle: {loop} (a base may not include the file itself)")
    layer = OmegaConf.load(path)
    base = layer.pop(BASE_KEY, None) if isinstance(layer, DictConfig) else None
    if base is None:
        return [layer]
    base_path = path.parent / str(base)
    if not isinstance(base, str) or not base_path.is_file():
        raise ValueError(f"{path}: base: {base!r} is not a config file (a YAML path relative to {path.parent})")
    return [*_file_layers(base_path, (*chain, path.resolve())), layer]


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config (after its ``base:`` chain) over the defaults, apply ``key=value`` overrides and validate.

    Returns the config as a typed, read-only ``Config`` (an OmegaConf structured config). Unknown keys raise
    ``ValueError`` naming the key, as do a missing base and bases that form a cycle.
    """
    schema = OmegaConf.structured(Config)
    try:
        layers = [schema]
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such config file (see configs/train/ for examples)")
            layers.extend(_file_layers(path))
        bad = [item for item in overrides if "=" not in item]
        if bad:
            raise ValueError(f"overrides must be key=value, got {bad}")
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        cfg = OmegaConf.merge(*layers)
    except ConfigKeyError as err:
        raise ValueError(f"unknown config key {err.full_key!r} ({err.msg.splitlines()[0]})") from err
    except OmegaConfBaseException as err:
        raise ValueError(f"bad config value for {getattr(err, 'full_key', '?')!r}: {err.msg.splitlines()[0]}") from err
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ValueError(f"config keys without a value: {', '.join(missing)} (set them in the YAML or as key=value)")
    if cfg.train.mixed_precision in ("False", "false"):  # YAML 1.1 reads a bare `no` as a boolean
        cfg.train.mixed_precision = "no"
    validate(cfg)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML (what is printed at start and saved beside checkpoints)."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def save_config(cfg: Config, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(cfg))
    return path
