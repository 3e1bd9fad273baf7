"""Reading diffusers-layout transformer folders (safetensors, single file or sharded)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from .trained import transformer_folder

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"


def resolve_transformer_dir(path: str | Path) -> Path:
    """Accept a transformer folder or a pipeline folder with a ``transformer/`` subfolder."""
    path = transformer_folder(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no config.json; expected a diffusers transformer folder")
    return path


def load_base_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a diffusers transformer folder. Pickled ``.bin`` checkpoints are refused (safetensors only)."""
    path = resolve_transformer_dir(path)
    if (path / WEIGHTS_NAME).is_file():
        return load_file(path / WEIGHTS_NAME)
    if (path / INDEX_NAME).is_file():
        shards = sorted(set(json.loads((path / INDEX_NAME).read_text())["weight_map"].values()))
        state_dict: dict[str, torch.Tensor] = {}
        for shard in shards:
            state_dict.update(load_file(path / shard))
        return state_dict
    found = sorted(p.name for p in path.iterdir())
    raise FileNotFoundError(
        f"{path}: expected {WEIGHTS_NAME} or {INDEX_NAME} (safetensors only; pickled .bin files are not loaded), "
        f"found {found}"
    )
