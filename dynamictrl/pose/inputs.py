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

**Official preprocessing** (what the official DynamiCtrl inference does to keypoints and raw videos; on by default
with ``pose_style="dynamictrl"``, off with ``"dwpose"``, each part switchable with ``reference_pose_first`` and
``retarget``):

- *reference pose first*: frame 0 of the pose video is the reference person's own pose, so the output's frame 0
  is the reference image itself; the driving poses follow. A pose video of ``T`` driving frames becomes ``T + 1``
  frames, and ``max_frames`` counts that frame (``max_frames=81`` keeps 80 driving frames, like the official
  ``--num_frames 81``);
- *retargeting*: the driving keypoints are fitted to the reference person (:func:`.retarget.retarget`, mode
  ``"global"`` with the official style, ``"bones"`` otherwise).

The reference pose comes from ``reference_pose`` or is extracted from ``reference_image`` with ``extractor``
(default: DWPose, which needs the ONNX models). A rendered pose video cannot be retargeted (its keypoints are
gone) and gets no reference frame unless ``reference_pose_first=True`` is asked for explicitly.

Keypoints (from a file or extracted) are drawn in ``pose_style`` (:data:`.render.STYLES`): ``"dwpose"`` for
models trained on standard DWPose renders (ours), ``"dynamictrl"`` for the official release's checkpoints. A
rendered pose video is used as it is, whatever ``pose_style`` says, so it must already be in the right style.
Official-style renders pass the auto-detection too (their colours keep the palette's saturation; only the face
dots are grey).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

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


class PoseExtractor(Protocol):
    """What extracts keypoints from images: :class:`~dynamictrl.pose.dwpose.DWPoseExtractor` or a stand-in."""

    def extract_video(self, frames: np.ndarray) -> PoseSequence:
        """Keypoints of one person in every frame of ``frames`` (T, H, W, 3) uint8 RGB."""
        ...


def official_preprocessing(pose_style: str) -> bool:
    """Whether ``pose_style`` implies the official preprocessing (reference pose first, retargeting) by default."""
    return check_style(pose_style) == "dynamictrl"


def _needs_reference(path, retarget, reference_pose_first, pose_style) -> str:
    if retarget and reference_pose_first:
        what = "the reference's own pose as frame 0 and retargeting"
    else:
        what = "retargeting" if retarget else "the reference's own pose as frame 0"
    default = f" (the default with pose_style={pose_style!r})" if official_preprocessing(pose_style) else ""
    return (
        f"{path}: {what}{default} need the reference person: pass reference_image (its pose is extracted) or "
        "reference_pose (keypoints), or turn them off with reference_pose_first=False, retarget=False"
    )


def load_pose_input(
    path: str | Path,
    height: int,
    width: int,
    reference_image: np.ndarray | str | Path | None = None,
    retarget: bool | None = None,
    models_dir: str | Path | None = None,
    kind: str = "auto",
    reference_pose: PoseSequence | str | Path | None = None,
    retarget_mode: str | None = None,
    smooth: bool = True,
    threshold: float = 0.3,
    pose_style: str = "dwpose",
    reference_pose_first: bool | None = None,
    max_frames: int | None = None,
    extractor: PoseExtractor | None = None,
) -> np.ndarray:
    """Rendered pose frames ``(T, height, width, 3)`` uint8 from a pose video, keypoints file or raw video.

    ``pose_style`` is the drawing style for keypoints: ``"dwpose"`` or ``"dynamictrl"`` (official checkpoints).
    ``retarget`` / ``reference_pose_first`` left at ``None`` follow ``pose_style`` for keypoints and raw videos
    (on for ``"dynamictrl"``) and are off for rendered videos; ``retarget_mode=None`` is ``"global"`` (the official
    fit) with ``"dynamictrl"`` and ``"bones"`` otherwise. ``max_frames`` caps the returned frames, the reference
    frame included; only the driving frames kept are extracted and used by the retargeting fit. ``extractor``
    replaces DWPose (built from ``models_dir`` when needed).
    """
    from dynamictrl.data.io import read_video, resize_and_center_crop

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    official = official_preprocessing(pose_style)
    if retarget_mode is None:
        retarget_mode = "global" if official else "bones"
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pose input not found: {path}")
    if kind == "auto" and path.suffix.lower() in KEYPOINT_SUFFIXES:
        kind = "keypoints"

    frames = fps = None
    if kind != "keypoints":
        frames, fps = read_video(path)
        if kind == "auto":
            kind = "rendered" if looks_like_rendered_pose(frames) else "raw"
            logger.info("%s looks like a %s video", path, "rendered pose" if kind == "rendered" else "raw motion")
    rendered = kind == "rendered"
    if retarget is None:
        retarget = official and not rendered
    if reference_pose_first is None:
        reference_pose_first = official and not rendered
    if rendered and retarget:
        raise ValueError(
            f"{path} is a rendered pose video, which cannot be retargeted; pass its keypoints file or "
            "the raw motion video instead (or kind='raw' if the guess was wrong)"
        )
    if (retarget or reference_pose_first) and reference_pose is None and reference_image is None:
        raise ValueError(_needs_reference(path, retarget, reference_pose_first, pose_style))
    driving_frames = None if max_frames is None else max_frames - int(reference_pose_first)

    def get_extractor() -> PoseExtractor:
        nonlocal extractor
        if extractor is None:
            from dynamictrl.pose.dwpose import DWPoseExtractor

            extractor = DWPoseExtractor(models_dir)
        return extractor

    ref = None
    if reference_pose_first or retarget:
        if reference_pose is not None:
            ref = reference_pose if isinstance(reference_pose, PoseSequence) else PoseSequence.load(reference_pose)
        else:
            ref = _extract_reference(reference_image, get_extractor(), threshold)

    if rendered:
        if pose_style != "dwpose":
            logger.info("%s is already rendered: used as is, pose_style=%r does not apply", path, pose_style)
        out = resize_and_center_crop(frames[:driving_frames], height, width)
    else:
        if kind == "keypoints":
            seq = PoseSequence.load(path)[:driving_frames]
        else:
            seq = get_extractor().extract_video(frames[:driving_frames])
            if smooth and len(seq):
                from dynamictrl.pose.smoothing import smooth_pose_sequence

                seq = smooth_pose_sequence(seq, fps=fps, threshold=threshold)
        if retarget and len(seq):
            from dynamictrl.pose.retarget import retarget as retarget_fn

            seq = retarget_fn(seq, ref, mode=retarget_mode, threshold=threshold)
        out = render_pose_sequence(fit_to_frame(seq, height, width), threshold=threshold, style=pose_style)
    if reference_pose_first:
        first = render_pose_sequence(fit_to_frame(ref[0], height, width), threshold=threshold, style=pose_style)
        out = np.concatenate([first, out])
    logger.info(
        "pose input %s (%s): %d frames%s%s",
        path,
        kind,
        len(out),
        ", frame 0 = the reference's pose" if reference_pose_first else "",
        f", retargeted ({retarget_mode})" if retarget else "",
    )
    return out


def _extract_reference(image: np.ndarray | str | Path, extractor: PoseExtractor, threshold: float) -> PoseSequence:
    """The reference person's keypoints (1 frame); raises when nobody is found (an empty frame 0 or a fit to
    nothing would silently give a wrong animation)."""
    if not isinstance(image, np.ndarray):
        from dynamictrl.data.io import read_image

        image = read_image(image)
    ref = extractor.extract_video(np.asarray(image)[None])[:1]
    if not (ref.body_score[0] >= threshold).any():
        raise ValueError(
            "no person found in the reference image, whose pose the official preprocessing needs: give its "
            "keypoints (reference_pose, --ref-pose) or turn it off (reference_pose_first=False, retarget=False)"
        )
    return ref
