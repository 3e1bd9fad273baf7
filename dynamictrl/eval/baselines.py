"""Sanity baselines built from the ground-truth folder itself, so every table shows what a model must beat.

- ``repeat-reference``: the reference image ``references/NAME.png`` shown for every frame (no motion at all).
- ``repeat-first-frame``: the ground truth's first frame shown for every frame — the right "no motion" baseline when
  the model's reference is that frame (the TikTok protocol's reference, and how ``tools/animate_dataset.py`` animates).
- ``gt-background``: the clean background video ``backgrounds/NAME.mp4`` (no person at all; perfect background).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dynamictrl.data.io import read_image, read_video, resize_and_center_crop

BASELINES = ("repeat-reference", "repeat-first-frame", "gt-background")


def check_baseline(name: str) -> str:
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; allowed: {list(BASELINES)}")
    return name


def repeat_reference(gt_dir: str | Path, name: str, num_frames: int, height: int, width: int) -> np.ndarray:
    """``references/NAME.png`` repeated ``num_frames`` times, fitted to (height, width): (T, H, W, 3) uint8."""
    path = Path(gt_dir) / "references" / f"{name}.png"
    if not path.is_file():
        raise FileNotFoundError(f"baseline repeat-reference needs the reference image {path}, which does not exist")
    image = read_image(path)  # (H, W, 3)
    if image.shape[:2] != (height, width):
        image = resize_and_center_crop(image, height, width)
    return np.repeat(image[None], num_frames, axis=0)


def repeat_first_frame(gt_dir: str | Path, name: str, num_frames: int, height: int, width: int) -> np.ndarray:
    """Frame 0 of ``videos/NAME.mp4`` repeated ``num_frames`` times: (T, H, W, 3) uint8."""
    frames, _ = read_video(Path(gt_dir) / "videos" / f"{name}.mp4")
    first = frames[0] if frames.shape[1:3] == (height, width) else resize_and_center_crop(frames[0], height, width)
    return np.repeat(first[None], num_frames, axis=0)


def gt_background(gt_dir: str | Path, name: str, num_frames: int, height: int, width: int) -> np.ndarray:
    """The clean background video ``backgrounds/NAME.mp4``: (T, H, W, 3) uint8 with the GT's frame count."""
    path = Path(gt_dir) / "backgrounds" / f"{name}.mp4"
    if not path.is_file():
        raise FileNotFoundError(f"baseline gt-background needs the background video {path}, which does not exist")
    frames, _ = read_video(path)
    if len(frames) != num_frames:
        raise ValueError(f"{path}: {len(frames)} frames, but the ground-truth video has {num_frames}")
    if frames.shape[1:3] != (height, width):
        frames = resize_and_center_crop(frames, height, width)
    return frames


def make_baseline(kind: str, gt_dir: str | Path, name: str, num_frames: int, height: int, width: int) -> np.ndarray:
    """Build the baseline ``kind`` (one of :data:`BASELINES`) for video ``name``."""
    builders = {
        "repeat-reference": repeat_reference,
        "repeat-first-frame": repeat_first_frame,
        "gt-background": gt_background,
    }
    builder = builders[check_baseline(kind)]
    return builder(gt_dir, name, num_frames, height, width)
