"""What a run writes so that its models can be used for inference (read back by
:func:`dynamictrl.pipelines.trained.load_trained_pipeline`).

- ``OUTPUT/base/`` (``model.source: tiny`` only): the run's own frozen components and its initial transformer, as a
  pipeline folder — the base that checkpoints refer to, and what ``final/`` is completed with;
- ``dynamictrl_model.json`` in ``final/`` and in every checkpoint: what the folder holds and where its base is (see
  :mod:`dynamictrl.models.trained`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..models.trained import relative_path, write_model_info
from .checkpointing import TRAINABLE_WEIGHTS
from .config import Config
from .spec import Components

BASE_PARTS = ("vae", "text_encoder", "tokenizer", "scheduler")


def save_tiny_base(components: Components, folder: Path, scale_reference_latents: bool | None) -> Path:
    """Write the components a tiny run built in memory (before training changes the transformer)."""
    from ..pipelines import DynamiCtrlPipeline

    pipe = DynamiCtrlPipeline(
        vae=components.vae,
        text_encoder=components.text_encoder,
        tokenizer=components.tokenizer,
        transformer=components.transformer,
        scheduler=components.scheduler,
        scale_reference_latents=scale_reference_latents,
    )
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def _base(cfg: Config, folder: Path, base_dir: Path) -> str:
    """The base folder as stored in ``folder``'s JSON: the run's own (relative), else the configured one."""
    if cfg.model.source == "tiny":
        return relative_path(base_dir, folder)
    return str(Path(cfg.model.base_path).expanduser().resolve())


def _common(cfg: Config, global_step: int) -> dict[str, Any]:
    return dict(
        pose_control=cfg.model.pose_control,
        use_text=cfg.model.use_text,
        scale_reference_latents=cfg.model.scale_reference_latents,  # None: the pipeline's rule for this VAE
        global_step=global_step,
        trainable=cfg.train.trainable,
    )


def write_checkpoint_info(cfg: Config, folder: Path, base_dir: Path, global_step: int) -> Path:
    """``dynamictrl_model.json`` of a checkpoint: a full ``transformer/``, or LoRA adapters over a frozen one."""
    info = dict(_common(cfg, global_step), base=_base(cfg, folder, base_dir))
    if cfg.train.trainable != "lora":
        return write_model_info(folder, dict(info, weights="transformer"))
    source = cfg.model.source
    if source == "tiny":
        frozen = dict(kind="dynamictrl", path=relative_path(base_dir / "transformer", folder))
    elif source == "base":
        frozen = dict(kind="cogvideox", path=str(Path(info["base"]) / "transformer"))
    else:
        frozen = dict(kind="dynamictrl", path=str(Path(cfg.model.transformer_path).expanduser().resolve()))
    lora = cfg.train.lora
    return write_model_info(
        folder,
        dict(
            info,
            weights="lora",
            adapter=TRAINABLE_WEIGHTS,
            frozen_transformer=frozen,
            lora=dict(rank=lora.rank, alpha=lora.alpha, target_modules=list(lora.target_modules)),
        ),
    )


def write_final_info(cfg: Config, folder: Path, base_dir: Path, global_step: int) -> Path:
    """Complete ``final/`` (holding ``transformer/``): a pipeline folder for a tiny run, else a recorded base."""
    if cfg.model.source != "tiny":
        return write_model_info(
            folder, dict(_common(cfg, global_step), weights="transformer", base=_base(cfg, folder, base_dir))
        )
    for part in BASE_PARTS:
        shutil.copytree(base_dir / part, folder / part, dirs_exist_ok=True)
    shutil.copy2(base_dir / "model_index.json", folder / "model_index.json")
    return write_model_info(folder, dict(_common(cfg, global_step), weights="pipeline"))
