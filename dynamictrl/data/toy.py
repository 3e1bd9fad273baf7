"""A tiny toy dataset in the official layout (for trainer tests and smoke runs; no pose estimator needed).

Each clip shows a coloured square moving over a plain background; its pose video shows a white dot on black at the
square's centre, so the pose really determines the target. Masks are the square (white on black).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import write_video

_WORDS = ("red", "blue", "green", "pink", "gold", "teal", "grey", "plum")


def write_toy_dataset(
    root: str | Path, num_clips: int = 4, num_frames: int = 13, size: int = 64, seed: int = 0, masks: bool = True
) -> Path:
    """Write ``videos/ poses/ [masks/] prompts.txt videos.txt`` under ``root`` and return it."""
    root = Path(root)
    for sub in ("videos", "poses") + (("masks",) if masks else ()):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines, names = [], []
    half = size // 8
    for i in range(num_clips):
        name = f"clip{i:03d}.mp4"
        background = rng.integers(0, 256, 3)
        colour = rng.integers(0, 256, 3)
        start = rng.uniform(half, size - half, 2)
        velocity = rng.uniform(-2.0, 2.0, 2)
        video = np.empty((num_frames, size, size, 3), np.uint8)  # (T, H, W, 3)
        pose = np.zeros_like(video)
        mask = np.zeros_like(video)
        for t in range(num_frames):
            cy, cx = np.clip(start + velocity * t, half, size - half - 1).astype(int)
            video[t] = background
            video[t, cy - half : cy + half, cx - half : cx + half] = colour
            mask[t, cy - half : cy + half, cx - half : cx + half] = 255
            pose[t, cy - 2 : cy + 2, cx - 2 : cx + 2] = 255
        write_video(root / "videos" / name, video, lossless=True)
        write_video(root / "poses" / name, pose, lossless=True)
        if masks:
            write_video(root / "masks" / name, mask, lossless=True)
        lines.append(f"{name}#####{_WORDS[i % len(_WORDS)]}")  # short: the tiny text encoder reads 8 bytes
        names.append(f"videos/{name}")
    (root / "prompts.txt").write_text("\n".join(lines) + "\n")
    (root / "videos.txt").write_text("\n".join(names) + "\n")
    return root
