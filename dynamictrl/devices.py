"""Device and dtype names, once. Torch-free at import (command lines list the names before parsing); torch is
imported by the functions that return torch objects."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# command-line / config name -> torch attribute
DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}
DTYPES = tuple(DTYPE_NAMES)


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a name in :data:`DTYPE_NAMES`; another name raises ``ValueError`` listing them."""
    import torch

    if name not in DTYPE_NAMES:
        raise ValueError(f"unknown dtype {name!r}; allowed: {sorted(DTYPE_NAMES)}")
    return getattr(torch, DTYPE_NAMES[name])


def default_device() -> str:
    """``cuda`` when a CUDA device is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
