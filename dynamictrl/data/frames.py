"""The clip-length rule, once: CogVideoX VAEs encode ``k*ratio+1`` frames (``ratio`` = the temporal compression, 4):
the first frame alone, then every ``ratio`` frames into one latent frame. Torch-free (command lines check it)."""

from __future__ import annotations


def is_frame_count(num_frames: int, ratio: int = 4, min_k: int = 0) -> bool:
    """Whether ``num_frames`` is ``k*ratio+1`` with ``k >= min_k``."""
    return num_frames >= min_k * ratio + 1 and (num_frames - 1) % ratio == 0


def latent_frame_count(num_frames: int, ratio: int = 4) -> int:
    """Latent frames of a valid clip of ``num_frames`` (``(num_frames - 1) / ratio + 1``)."""
    return (num_frames - 1) // ratio + 1
