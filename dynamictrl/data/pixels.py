"""The pixel range rule, once: uint8 [0, 255] <-> the models' float [-1, 1] (``x / 127.5 - 1`` and back).

The functions work element-wise and keep the layout; callers permute. The way back rounds to the nearest level and
saturates values outside [-1, 1], so ``signed_to_uint8(uint8_to_signed(x)) == x`` for every uint8 ``x``.
"""

from __future__ import annotations

import numpy as np
import torch


def uint8_to_signed(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [-1, 1], same shape (a NumPy array is wrapped, not copied)."""
    if isinstance(pixels, np.ndarray):
        pixels = torch.from_numpy(pixels)
    return pixels.float().div(127.5).sub(1.0)


def signed_to_uint8(values: torch.Tensor) -> torch.Tensor:
    """float values in [-1, 1] -> uint8 pixels, same shape and device (rounded, clamped to [0, 255])."""
    return values.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def to_model_range(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) -> float tensor (3, T, H, W) in [-1, 1]."""
    return uint8_to_signed(torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2))


def apply_reference_mask(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mask the reference to the person: image (B, 3, H, W) in [-1, 1] × mask (B or 1, 1, H, W) in [0, 1].

    The background becomes 0 (mid-grey), so only the prompt can draw it (DynamiCtrl's masked-reference mode).
    """
    if mask.ndim == 2:
        mask = mask[None, None]
    elif mask.ndim == 3:
        mask = mask[:, None]
    if mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"mask size {tuple(mask.shape[-2:])} does not match the image size {tuple(image.shape[-2:])}")
    return image * mask.to(device=image.device, dtype=image.dtype)
