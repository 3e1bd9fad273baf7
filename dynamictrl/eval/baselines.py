"""Sanity baselines built from the ground-truth folder itself, so every table shows what a model must beat.

- ``repeat-reference``: the reference image ``references/NAME.png`` shown for every frame (no motion at all).
- ``repeat-first-frame``: the ground truth's first frame shown for every frame — the right "no motion" baseline when
  the model's reference is that frame (the TikTok protocol's reference, and how ``tools/animate_dataset.py`` animates).
- ``gt-background``: the clean background video ``backgrounds/NAME.mp4`` (no person at all; perfect background).

:func:`pose_strokes` is an adversary rather than a folder baseline: a hand-written rule that draws the target
keypoints as thick strokes in the reference's colours (no model), used by the embedded model's quality gate.
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


# Parts of the pose-stroke rule, drawn in this order (later parts cover earlier ones): the torso quad, capsules
# between body keypoints, the head disc. Names index BODY_INDEX.
_TORSO = ("right_shoulder", "left_shoulder", "left_hip", "right_hip")
_CAPSULES = (
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("neck", "right_shoulder"), ("neck", "left_shoulder"), ("neck", "nose"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
)  # fmt: skip
_FACE = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")


def _pose_part_masks(
    body: np.ndarray, score: np.ndarray, height: int, width: int, half_width: float, head_scale: float
) -> list[np.ndarray]:
    """Boolean (H, W) masks of the torso, every capsule and the head of one frame (empty where joints are unseen)."""
    from dynamictrl.pose.keypoints import BODY_INDEX

    gy, gx = np.mgrid[0:height, 0:width].astype(np.float64)
    point = {name: body[i].astype(np.float64) for name, i in BODY_INDEX.items() if score[i] > 0}  # seen joints
    empty = np.zeros((height, width), dtype=bool)
    parts = [empty]
    if all(n in point for n in _TORSO):  # convex quad: inside = on the same side of every edge (either winding)
        quad = np.stack([point[n] for n in _TORSO])[:, :, None, None]  # (4, 2, 1, 1)
        edge = np.roll(quad, -1, axis=0) - quad
        cross = edge[:, 0] * (gy - quad[:, 1]) - edge[:, 1] * (gx - quad[:, 0])  # (4, H, W)
        parts[0] = (cross >= 0).all(0) | (cross <= 0).all(0)
    for a, b in _CAPSULES:
        if a not in point or b not in point:
            parts.append(empty)
            continue
        pa, ab = point[a], point[b] - point[a]
        t = np.clip(((gx - pa[0]) * ab[0] + (gy - pa[1]) * ab[1]) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
        parts.append((gx - pa[0] - t * ab[0]) ** 2 + (gy - pa[1] - t * ab[1]) ** 2 <= half_width**2)
    face = [point[n] for n in _FACE if n in point]
    head = empty
    if face and "neck" in point:  # a disc around the face points, its radius a multiple of their distance to the neck
        centre = np.mean(face, axis=0)
        radius = head_scale * float(np.linalg.norm(centre - point["neck"]))
        head = (gx - centre[0]) ** 2 + (gy - centre[1]) ** 2 <= radius**2
    parts.append(head)
    return parts


def pose_strokes(reference: np.ndarray, reference_pose, pose, threshold: float = 32.0) -> np.ndarray:
    """A hand-written rule with no learned model: the pose's strokes, thickened and painted in the reference's colours.

    What a model that only copied pose geometry and reference colours would draw, so a quality gate can check that
    a model beats it. From the reference alone: the wall is the median colour of the image border; the person is
    every pixel farther than ``threshold`` levels from it; the stroke half-width and head size are the ones (on a
    grid) whose drawing of the reference's own pose best overlaps that person (IoU); each part (torso quad, limb
    capsules, head disc) takes the median reference colour of the pixels it covers there. Every frame of ``pose``
    is then drawn with those parts and colours over the reference with its person painted out in the wall colour.

    Args:
        reference: (H, W, 3) uint8 image.
        reference_pose, pose: :class:`~dynamictrl.pose.keypoints.PoseSequence` of the reference (1 frame) and of
            the frames to draw (T frames), in the reference's pixel coordinates.

    Returns:
        (T, H, W, 3) uint8 video.
    """
    height, width = reference.shape[:2]
    ref = reference.astype(np.float64)
    border = np.concatenate([ref[0], ref[-1], ref[:, 0], ref[:, -1]])
    wall = np.median(border, axis=0)
    person = np.abs(ref - wall).max(axis=-1) > threshold
    body, score = reference_pose.body[0], reference_pose.body_score[0]

    best = None
    for half_width in np.arange(0.5, 0.1 * max(height, width) + 1e-9, 0.25):
        for head_scale in np.arange(0.3, 1.31, 0.1):
            drawn = np.any(_pose_part_masks(body, score, height, width, half_width, head_scale), axis=0)
            iou = (drawn & person).sum() / max((drawn | person).sum(), 1)
            if best is None or iou > best[0]:
                best = (iou, half_width, head_scale)
    _, half_width, head_scale = best

    fallback = np.median(ref[person], axis=0) if person.any() else wall
    parts = _pose_part_masks(body, score, height, width, half_width, head_scale)
    colours, covered = [], np.zeros((height, width), dtype=bool)
    for part in reversed(parts):  # a part's colour comes from where it is visible (not under a later part)
        visible = part & ~covered & person
        colours.append(np.median(ref[visible], axis=0) if visible.sum() >= 2 else fallback)
        covered |= part
    colours.reverse()

    background = np.where(person[..., None], wall, ref)
    out = np.repeat(background[None], len(pose), axis=0)
    for t in range(len(pose)):
        masks = _pose_part_masks(pose.body[t], pose.body_score[t], height, width, half_width, head_scale)
        for part, colour in zip(masks, colours):
            out[t][part] = colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
