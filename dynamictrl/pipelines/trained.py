"""A trained run as a pipeline: ``load_trained_pipeline("runs/X/final")`` (or a checkpoint, or the run folder).

Reads the ``dynamictrl_model.json`` the trainer writes (see :mod:`dynamictrl.models.trained`): a complete pipeline
folder is loaded as it is; a transformer or a LoRA checkpoint is joined to the VAE, text encoder, tokenizer and
scheduler of its recorded base, after checking that they fit. Everything is read from local folders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dynamictrl.errors import UserError
from dynamictrl.models.trained import (
    MODEL_INFO,
    RUN_FOLDERS,
    check_base_fit,
    frozen_transformer_config,
    load_trained_transformer,
    read_model_info,
    resolve,
)

if TYPE_CHECKING:  # this module imports no torch/diffusers until a model is loaded (fast checks before loading)
    import torch

    from .pipeline_dynamictrl import DynamiCtrlPipeline

CHECKPOINT_PREFIX = "checkpoint-"
BASE_PARTS = ("vae", "text_encoder", "tokenizer", "scheduler")


def is_trained_output(path: str | Path) -> bool:
    """True for a folder written by the trainer: ``runs/X``, ``runs/X/final`` or ``runs/X/checkpoints/checkpoint-N``."""
    path = Path(path)
    return (path / MODEL_INFO).is_file() or (path / "final" / MODEL_INFO).is_file() or bool(_checkpoints(path))


def _checkpoints(run: Path) -> list[Path]:
    folder = run / "checkpoints"
    if not folder.is_dir():
        return []
    found = [
        (int(p.name[len(CHECKPOINT_PREFIX) :]), p)
        for p in folder.iterdir()
        if p.name.startswith(CHECKPOINT_PREFIX)
        and p.name[len(CHECKPOINT_PREFIX) :].isdigit()
        and (p / MODEL_INFO).is_file()
    ]
    return [p for _, p in sorted(found)]


def resolve_trained_folder(path: str | Path) -> Path:
    """The folder to load: ``path`` itself, or for a run folder its ``final/`` (else its newest checkpoint)."""
    path = Path(path).expanduser()
    if (path / MODEL_INFO).is_file():
        return path
    if (path / "final" / MODEL_INFO).is_file():
        return path / "final"
    found = _checkpoints(path)
    if found:
        return found[-1]
    read_model_info(path)  # raises the one-line error that says what the folder is
    return path


@dataclass
class TrainedModel:
    """A checked training output: what :func:`load_trained_pipeline` will load, read from JSON files only."""

    folder: Path  # final/ or a checkpoint folder
    info: dict[str, Any]  # its dynamictrl_model.json
    base: Path  # where the VAE, text encoder, tokenizer and scheduler come from
    transformer_config: dict[str, Any]
    vae_config: dict[str, Any]


def inspect_trained(path: str | Path) -> TrainedModel:
    """Every check of :func:`load_trained_pipeline` without loading a weight: the folder is a training output, its
    base is present, and the transformer fits the base's VAE and text encoder (one-line :class:`UserError`)."""
    folder = resolve_trained_folder(path)
    info = read_model_info(folder)
    base = folder if info["weights"] == "pipeline" else resolve(folder, info["base"])
    missing = [sub for sub in BASE_PARTS if not (base / sub).is_dir()]
    if missing:
        raise UserError(
            f"{folder}: its recorded base {base} has no {', '.join(missing)}",
            "the base folder the run was trained on (model.base_path), at the same place",
        )
    if info["weights"] == "lora":
        transformer = frozen_transformer_config(folder, info)
    else:
        config = folder / "transformer" / "config.json"
        if not config.is_file():
            raise UserError(f"{folder} has no transformer/config.json", RUN_FOLDERS)
        transformer = json.loads(config.read_text())
    vae = check_base_fit(transformer, base, str(folder))
    return TrainedModel(folder, info, base, transformer, vae)


def load_trained_pipeline(path: str | Path, dtype: torch.dtype | None = None, ema: bool = False) -> DynamiCtrlPipeline:
    """A :class:`~dynamictrl.pipelines.DynamiCtrlPipeline` (on the CPU) from a training output.

    Args:
        path: ``runs/X/final``, ``runs/X/checkpoints/checkpoint-N`` or ``runs/X`` (its final model, else its newest
            checkpoint). LoRA checkpoints are merged into their frozen transformer on load.
        dtype: dtype of every component (default float32).
        ema: use the EMA weights (``final/transformer_ema``, runs with ``train.ema.enabled``).

    Raises :class:`~dynamictrl.errors.UserError` (one line) for a folder that is not a training output, a recorded
    base that is missing, or a transformer that does not fit the base's VAE and text encoder.
    """
    import torch

    from .pipeline_dynamictrl import DynamiCtrlPipeline

    trained = inspect_trained(path)
    folder, info = trained.folder, trained.info
    dtype = dtype or torch.float32
    if info["weights"] == "pipeline":
        kwargs = {"transformer": load_trained_transformer(folder, info, ema=True)} if ema else {}
        pipe = DynamiCtrlPipeline.from_pretrained(folder, **kwargs)
    else:
        pipe = DynamiCtrlPipeline(
            transformer=load_trained_transformer(folder, info, ema=ema),
            scale_reference_latents=info.get("scale_reference_latents"),
            **load_base_components(trained.base),
        )
    return pipe if pipe.transformer.dtype == dtype else pipe.to(dtype=dtype)


def load_base_components(base: Path) -> dict:
    """VAE, T5 encoder, tokenizer and scheduler of a CogVideoX-layout folder, as the trainer loads them."""
    import diffusers
    from transformers import AutoTokenizer, T5EncoderModel

    scheduler_config = json.loads((base / "scheduler" / "scheduler_config.json").read_text())
    scheduler_class = getattr(diffusers, scheduler_config.get("_class_name", ""), diffusers.CogVideoXDPMScheduler)
    return dict(
        vae=diffusers.AutoencoderKLCogVideoX.from_pretrained(base / "vae", local_files_only=True),
        text_encoder=T5EncoderModel.from_pretrained(base / "text_encoder", local_files_only=True),
        tokenizer=AutoTokenizer.from_pretrained(base / "tokenizer", local_files_only=True),
        scheduler=scheduler_class.from_pretrained(base / "scheduler", local_files_only=True),
    )
