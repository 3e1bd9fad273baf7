"""Turn whatever the user passes as ``--pose`` into rendered pose frames.

Accepted inputs:

- a **keypoints file** (``.npz`` / ``.json``, see :class:`~dynamictrl.pose.keypoints.PoseSequence`);
- a **rendered pose video** (OpenPose-style skeletons on black), used as is after resize + centre crop;
- a **raw motion video** of a person: DWPose extraction runs (needs the ONNX models, see :mod:`.dwpose`), then
  One-Euro smoothing.

``kind="auto"`` decides by suffix, then by looking at up to 8 frames: a rendered pose video is *mostly black*
(at least 70 % of pixels have every channel below 16) and its lit pixels are *saturated palette colours* (at
least half of them have ``(max - min) / max >= 0.6``, as every OpenPose limb/joint colour does: one channel 0,
another 255 or 153). A natural video almost never passes both. Force the choice with ``kind``.

With ``retarget=True`` the keypoints are fitted to the reference person (:func:`.retarget.retarget`); the
reference pose comes from ``reference_pose`` or is extracted from ``reference_image``. A rendered pose video
cannot be retargeted (its keypoints are gone).

Keypoints (from a file or extracted) are drawn in ``pose_style`` (:data:`.render.STYLES`): ``"dwpose"`` for
models trained on standard DWPose renders (ours), ``"dynamictrl"`` for the official release's checkpoints. A
rendered pose video is used as it is, whatever ``pose_style`` says, so it must already be in the right style.
Official-style renders pass the auto-detection too (their colours keep the palette's saturation; only the face
dots are grey).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dynamictrl.pose.keypoints import PoseSequence
from dynamictrl.pose.render import check_style, render_pose_sequence

logger = logging.getLogger(__name__)

KINDS = ("auto", "rendered", "keypoints", "raw")
KEYPOINT_SUFFIXES = (".npz", ".json")
BLACK_LEVEL = 16
MIN_BLACK_FRACTION = 0.7
MIN_SATURATED_FRACTION = 0.5


def looks_like_rendered_pose(frames: np.ndarray, max_frames: int = 8) -> bool:
    """Heuristic from the module docstring on ``frames`` (T, H, W, 3) uint8."""
    frames = np.asarray(frames)
    idx = np.linspace(0, len(frames) - 1, min(len(frames), max_frames)).round().astype(int)
    sample = frames[idx].reshape(-1, 3).astype(np.int16)  # (N, 3)
    hi, lo = sample.max(1), sample.min(1)
    black = hi < BLACK_LEVEL
    if black.mean() < MIN_BLACK_FRACTION:
        return False
    lit = ~black
    if not lit.any():
        return False
    saturation = (hi[lit] - lo[lit]) / hi[lit]
    return bool((saturation >= 0.6).mean() >= MIN_SATURATED_FRACTION)


def fit_to_frame(seq: PoseSequence, height: int, width: int) -> PoseSequence:
    """Keypoints as they land after scaling the image to cover ``height x width`` and cropping the centre.

    Matches :func:`dynamictrl.data.io.resize_and_center_crop`, so poses stay aligned with a reference image
    resized the same way.
    """
    s = max(height / seq.height, width / seq.width)
    offset = np.array([(seq.width * s - width) / 2, (seq.height * s - height) / 2], dtype=np.float32)
    out = {}
    for f in ("body", "hands", "face"):
        pts = getattr(seq, f)
        out[f] = None if pts is None else pts * np.float32(s) - offset
    return PoseSequence(
        **out,
        body_score=seq.body_score,
        hands_score=seq.hands_score,
        face_score=seq.face_score,
        width=width,
        height=height,
    )


def _reference_pose(reference_pose, reference_image, models_dir) -> PoseSequence:
    if reference_pose is not None:
        return reference_pose if isinstance(reference_pose, PoseSequence) else PoseSequence.load(reference_pose)
    if reference_image is None:
        raise ValueError("retarget=True needs reference_pose (keypoints) or reference_image (extraction runs on it)")
    from dynamictrl.pose.retarget import reference_pose_from_image

    return reference_pose_from_image(reference_image, models_dir=models_dir)


def load_pose_input(
    path: str | Path,
    height: int,
    width: int,
    reference_image: np.ndarray | str | Path | None = None,
    retarget: bool = False,
    models_dir: str | Path | None = None,
    kind: str = "auto",
    reference_pose: PoseSequence | str | Path | None = None,
    retarget_mode: str = "bones",
    smooth: bool = True,
    threshold: float = 0.3,
    pose_style: str = "dwpose",
) -> np.ndarray:
    """Rendered pose frames ``(T, height, width, 3)`` uint8 from a pose video, keypoints file or raw video.

    ``pose_style`` is the drawing style for keypoints: ``"dwpose"`` or ``"dynamictrl"`` (official checkpoints).
    """
    from dynamictrl.data.io import read_video, resize_and_center_crop

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    check_style(pose_style)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pose input not found: {path}")
    if kind == "auto" and path.suffix.lower() in KEYPOINT_SUFFIXES:
        kind = "keypoints"
    if kind == "keypoints":
        seq = PoseSequence.load(path)
    else:
        frames, fps = read_video(path)
        if kind == "auto":
            kind = "rendered" if looks_like_rendered_pose(frames) else "raw"
            logger.info("%s looks like a %s video", path, "rendered pose" if kind == "rendered" else "raw motion")
        if kind == "rendered":
            if retarget:
                raise ValueError(
                    f"{path} is a rendered pose video, which cannot be retargeted; pass its keypoints file or "
                    "the raw motion video instead (or kind='raw' if the guess was wrong)"
                )
            if pose_style != "dwpose":
                logger.info("%s is already rendered: used as is, pose_style=%r does not apply", path, pose_style)
            return resize_and_center_crop(frames, height, width)
        from dynamictrl.pose.dwpose import DWPoseExtractor

        seq = DWPoseExtractor(models_dir).extract_video(frames)
        if smooth:
            from dynamictrl.pose.smoothing import smooth_pose_sequence

            seq = smooth_pose_sequence(seq, fps=fps, threshold=threshold)
    if retarget:
        from dynamictrl.pose.retarget import retarget as retarget_fn

        ref = _reference_pose(reference_pose, reference_image, models_dir)
        seq = retarget_fn(seq, ref, mode=retarget_mode, threshold=threshold)
    return render_pose_sequence(fit_to_frame(seq, height, width), threshold=threshold, style=pose_style)
