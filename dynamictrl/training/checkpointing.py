"""Checkpoints: accelerate's ``save_state`` with hooks that write the trained transformer in diffusers layout.

A checkpoint folder ``OUTPUT/checkpoints/checkpoint-<step>/`` holds::

    transformer/            diffusers layout, safetensors (full / pose_branch_only training), config.json inside
    trainable.safetensors   LoRA adapters + pose branch, by parameter name (lora training)
    optimizer.bin, scheduler.bin, random_states_<rank>.pkl, ...   accelerate's state; DeepSpeed's pytorch_model/ or
                            FSDP2's pytorch_model_fsdp_0/ + optimizer_0/ (sharded) instead of optimizer.bin
    trainer_state.json      global step, micro-batches consumed (the data position), skipped-clip counts
    config.yaml             the resolved training config

Crash safety: a checkpoint is written as ``checkpoint-<step>.tmp``, flushed to disk, and renamed when complete
(:func:`publish_checkpoint`), so a crash or a kill at any moment never leaves a half checkpoint that
``resume_from: latest`` would pick up: the previous one stays the latest. ``latest`` also only takes folders holding
``trainer_state.json`` (written last). Older checkpoints beyond ``total_limit`` and leftover ``.tmp`` folders of a
crashed save are deleted after the rename.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import UserError
from ..models.checkpoint import load_base_state_dict

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
TRAINABLE_WEIGHTS = "trainable.safetensors"


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (``.tmp`` folders and folders without ``trainer_state.json``,
    which is written last, are ignored)."""
    folder = checkpoint_dir(output_dir)
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in folder.iterdir()
        if p.is_dir() and (m := CHECKPOINT_RE.match(p.name)) and (p / TRAINER_STATE).is_file()
    ]
    return [p for _, p in sorted(found)]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_checkpoint(tmp: str | Path, final: str | Path) -> Path:
    """Make the complete checkpoint folder ``tmp`` appear as ``final`` atomically (main process only).

    Every file is flushed to disk before the rename and the rename itself after, so even a power cut leaves either
    the old state or the whole new checkpoint. An existing ``final`` (a resumed run saving the same step again) is
    moved aside first and deleted only once the new one is in place."""
    tmp, final = Path(tmp), Path(final)
    for path in sorted(tmp.rglob("*")):
        if path.is_file():
            _fsync(path)
    old = final.with_name(final.name + ".old.tmp")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    _fsync(final.parent)
    if old.exists():
        shutil.rmtree(old)
    return final


def resolve_resume(resume_from: str | None, output_dir: str | Path) -> Path | None:
    """``None`` -> no resume; ``latest`` -> newest complete checkpoint of ``output_dir`` (None if there is none);
    a path -> that checkpoint, which must exist."""
    if not resume_from:
        return None
    if resume_from == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume_from)
    if not (path / TRAINER_STATE).is_file():
        raise FileNotFoundError(f"checkpoint.resume_from={resume_from}: not a checkpoint folder (no {TRAINER_STATE})")
    return path


def prune_checkpoints(output_dir: str | Path, total_limit: int | None) -> list[Path]:
    """Delete the oldest checkpoints so at most ``total_limit`` remain, and the ``.tmp`` folders a crashed save left
    behind (call it right after :func:`publish_checkpoint`); returns the deleted folders."""
    folder = checkpoint_dir(output_dir)
    removed = sorted(folder.glob("checkpoint-*.tmp")) if folder.is_dir() else []
    for path in removed:
        shutil.rmtree(path)
        logger.info("removed the incomplete checkpoint %s (an interrupted save)", path)
    if total_limit is None:
        return removed
    found = list_checkpoints(output_dir)
    old = found[: max(0, len(found) - total_limit)]
    removed += old
    for path in old:
        shutil.rmtree(path)
        logger.info("removed old checkpoint %s", path)
    return removed


def read_trainer_state(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / TRAINER_STATE).read_text())


def _unwrap(accelerator, model):
    model = accelerator.unwrap_model(model)
    return getattr(model, "_orig_mod", model)  # torch.compile


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters that require grad, by name (LoRA adapters and the pose branch)."""
    return {name: p.detach().contiguous().cpu() for name, p in model.named_parameters() if p.requires_grad}


def save_transformer(model, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` in diffusers layout (config.json + safetensors, sharded at 5 GB). ``state_dict`` replaces the
    model's own tensors (ZeRO-3 and FSDP runs pass the gathered full state dict)."""
    path = Path(path)
    if state_dict is None:
        model.save_pretrained(path, safe_serialization=True, max_shard_size="5GB")
        return path
    from huggingface_hub import split_torch_state_dict_into_shards

    path.mkdir(parents=True, exist_ok=True)
    model.save_config(path)
    split = split_torch_state_dict_into_shards(
        state_dict, max_shard_size="5GB", filename_pattern="diffusion_pytorch_model{suffix}.safetensors"
    )
    for filename, names in split.filename_to_tensors.items():
        save_file({n: state_dict[n].contiguous() for n in names}, str(path / filename), metadata={"format": "pt"})
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        (path / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return path


def _zero3(accelerator) -> bool:
    plugin = accelerator.state.deepspeed_plugin
    return plugin is not None and plugin.zero_stage == 3


def _sharded(accelerator) -> bool:
    """The engine shards the weights themselves (ZeRO-3, FSDP): no rank holds the whole model."""
    from accelerate.utils import DistributedType

    return _zero3(accelerator) or accelerator.distributed_type == DistributedType.FSDP


def full_state_dict(accelerator, model) -> dict[str, torch.Tensor] | None:
    """The whole state dict of a prepared model whose parameters are sharded (ZeRO-3, FSDP), gathered on the main
    process (``None`` elsewhere); ``None`` when every rank already holds the full weights. A collective: call it on
    every rank."""
    if not _sharded(accelerator):
        return None
    state = accelerator.get_state_dict(model)  # ZeRO-3: layer by layer onto rank 0; FSDP2: full, offloaded to CPU
    return state if accelerator.is_main_process else None


def register_hooks(accelerator, transformer_type: type, lora: bool, ema: bool = False) -> None:
    """Make ``accelerator.save_state``/``load_state`` write and read the transformer in diffusers layout.

    Call it before ``accelerator.prepare``: under ZeRO-3 it turns on the gathering of the full weights at save time
    (``stage3_gather_16bit_weights_on_model_save``), without which the diffusers-layout copy cannot be written.
    LoRA and EMA with an engine that shards the weights are refused (adapters and EMA weights would be kept, merged
    and saved per shard)."""
    if lora and _sharded(accelerator):
        raise UserError(
            "train.trainable=lora with an engine that shards the weights (ZeRO-3 / FSDP) is not supported",
            "LoRA fits on every GPU: launch with configs/accelerate/ddp.yaml or deepspeed_zero2.yaml",
        )
    if ema and _sharded(accelerator):
        raise UserError(
            "train.ema.enabled with an engine that shards the weights (ZeRO-3 / FSDP) is not supported",
            "use configs/accelerate/deepspeed_zero2.yaml or ddp.yaml, or train.ema.enabled=false",
        )
    if _zero3(accelerator):
        zero = accelerator.state.deepspeed_plugin.deepspeed_config.setdefault("zero_optimization", {})
        if not zero.get("stage3_gather_16bit_weights_on_model_save"):
            logger.info("ZeRO-3: turning on stage3_gather_16bit_weights_on_model_save for the diffusers-layout copy")
            zero["stage3_gather_16bit_weights_on_model_save"] = True

    def save_hook(models: list, weights: list, output_dir: str) -> None:
        for model in models:
            unwrapped = _unwrap(accelerator, model)
            if not isinstance(unwrapped, transformer_type):
                continue
            if lora:  # never sharded (refused above)
                if accelerator.is_main_process:
                    save_file(trainable_state_dict(unwrapped), str(Path(output_dir) / TRAINABLE_WEIGHTS))
                continue
            state = full_state_dict(accelerator, model)  # collective: every rank takes part
            if accelerator.is_main_process:
                save_transformer(unwrapped, Path(output_dir) / "transformer", state)
        weights.clear()  # the transformer is the only prepared model: accelerate must not write model.safetensors

    def load_hook(models: list, input_dir: str) -> None:
        # DeepSpeed and FSDP restore their own (sharded) model states before this hook and leave ``models`` empty
        for model in list(models):
            unwrapped = _unwrap(accelerator, model)
            if not isinstance(unwrapped, transformer_type):
                continue
            if lora:
                state = load_file(str(Path(input_dir) / TRAINABLE_WEIGHTS))
                missing, unexpected = unwrapped.load_state_dict(state, strict=False)
                absent = sorted(set(trainable_state_dict(unwrapped)) - set(state))
                if unexpected or absent:
                    raise ValueError(
                        f"{input_dir}: trainable weights do not match: missing {absent[:8]}, unexpected {unexpected[:8]}"
                    )
            else:
                unwrapped.load_state_dict(load_base_state_dict(Path(input_dir) / "transformer"), strict=True)
            models.remove(model)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)
