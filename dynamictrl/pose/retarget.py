"""Retarget a driving pose sequence to the reference person's body.

Two stages, both in pixel coordinates; the result lives in the reference image's frame (its width and height):

1. **Global fit** (what the official release does): a uniform scale ``s`` and a translation ``(bx, by)``.
   ``s`` comes from a least-squares line ``y_ref = s * y_drv + by`` over the "stable" joints (head, neck,
   shoulders, hips, legs; arms excluded because they move) of every driving frame against the reference pose;
   ``by`` is then set so that frame 0's head anchor (nose, else neck) lands on the reference's, and ``bx`` is the
   mean horizontal offset after scaling. Body proportions stay the driving person's.
2. **Bone-length retargeting**: walking the kinematic tree from the neck (the 17 limbs of
   :data:`~dynamictrl.pose.render.LIMB_SEQ`), every bone keeps its direction from the (globally fitted) driving
   frame and takes its length from the reference pose, so joint angles come from the driving video and
   proportions from the reference. Hands and face move rigidly with their wrist / nose. The figure is then
   shifted vertically so the lowest ankle sits on the ground line: the reference's lowest ankle, raised by how
   far the driving person's lowest ankle is above its frame-0 height (jumps survive, standing feet do not float
   or sink when legs change length).

Joints below ``threshold`` confidence stay missing; a bone whose reference length is unknown keeps its globally
scaled driving length.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from dynamictrl.pose.keypoints import BODY_INDEX, NUM_BODY, PoseSequence
from dynamictrl.pose.render import LIMB_SEQ

logger = logging.getLogger(__name__)

#: Joints used by the global fit (the official release's choice: arms excluded).
STABLE_JOINTS: tuple[int, ...] = tuple(
    BODY_INDEX[n]
    for n in (
        "nose",
        "neck",
        "right_shoulder",
        "left_shoulder",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
        "right_eye",
        "left_eye",
        "right_ear",
        "left_ear",
    )
)
ROOT = BODY_INDEX["neck"]
ANKLES = (BODY_INDEX["right_ankle"], BODY_INDEX["left_ankle"])
WRISTS = (BODY_INDEX["left_wrist"], BODY_INDEX["right_wrist"])  # in HAND_SIDES order (left, right)


def _tree_order() -> list[tuple[int, int]]:
    """(parent, child) bones in breadth-first order from the neck."""
    children: dict[int, list[int]] = {}
    for a, b in LIMB_SEQ:
        children.setdefault(a, []).append(b)
        children.setdefault(b, []).append(a)
    order, seen, queue = [], {ROOT}, [ROOT]
    while queue:
        parent = queue.pop(0)
        for child in children.get(parent, []):
            if child not in seen:
                seen.add(child)
                order.append((parent, child))
                queue.append(child)
    if len(seen) != NUM_BODY:
        raise RuntimeError("LIMB_SEQ does not form a tree over the 18 body joints")
    return order


BONES: tuple[tuple[int, int], ...] = tuple(_tree_order())


def _as_reference(reference) -> tuple[np.ndarray, np.ndarray, int, int]:
    if isinstance(reference, PoseSequence):
        if len(reference) < 1:
            raise ValueError("the reference PoseSequence has no frames")
        return reference.body[0], reference.body_score[0], reference.width, reference.height
    raise ValueError(f"reference must be a PoseSequence (1 frame used), got {type(reference).__name__}")


def fit_global_transform(
    driving: PoseSequence, ref_body: np.ndarray, ref_score: np.ndarray, threshold: float = 0.3
) -> tuple[float, np.ndarray]:
    """Uniform scale ``s`` and offset ``(bx, by)`` with ``ref ~ s * driving + offset`` (see module doc)."""
    joints = [j for j in STABLE_JOINTS if ref_score[j] >= threshold]
    if not joints:
        raise ValueError("the reference pose has no confident head/torso/leg joints to fit the driving pose to")
    d = driving.body[:, joints]  # (T, J, 2)
    ok = driving.body_score[:, joints] >= threshold  # (T, J)
    if ok.sum() < 2:
        raise ValueError("the driving pose has fewer than 2 confident head/torso/leg joints; cannot fit a scale")
    r = np.broadcast_to(ref_body[joints], d.shape)
    dy, ry = d[..., 1][ok].astype(np.float64), r[..., 1][ok].astype(np.float64)
    if np.ptp(dy) < 1e-6:
        raise ValueError("the driving joints used for the fit all lie on one row; cannot fit a scale")
    s, by = np.polyfit(dy, ry, 1)
    if s <= 0:
        raise ValueError(f"fitted scale {s:.3g} is not positive: the driving and reference poses do not match up")
    # Anchor frame 0's head (nose, else neck) on the reference's.
    for anchor in (BODY_INDEX["nose"], ROOT):
        if ref_score[anchor] >= threshold and driving.body_score[0, anchor] >= threshold:
            by = ref_body[anchor, 1] - s * driving.body[0, anchor, 1]
            break
    bx = np.mean(r[..., 0][ok] - s * d[..., 0][ok])
    return float(s), np.array([bx, by], dtype=np.float32)


def apply_transform(seq: PoseSequence, scale: float, offset: np.ndarray, width: int, height: int) -> PoseSequence:
    """``scale * points + offset`` for body, hands and face, in an image of ``width x height``."""
    out = {}
    for f in ("body", "hands", "face"):
        pts = getattr(seq, f)
        out[f] = None if pts is None else pts * np.float32(scale) + np.asarray(offset, np.float32)
    return dataclasses.replace(seq, **out, width=width, height=height)


def bone_lengths(body: np.ndarray, score: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """(len(BONES),) lengths of the tree bones of one pose; NaN where a joint is unconfident."""
    out = np.full(len(BONES), np.nan, dtype=np.float64)
    for k, (p, c) in enumerate(BONES):
        if score[p] >= threshold and score[c] >= threshold:
            out[k] = np.linalg.norm(body[c].astype(np.float64) - body[p])
    return out


def retarget_bone_lengths(
    seq: PoseSequence, ref_body: np.ndarray, ref_score: np.ndarray, threshold: float = 0.3
) -> PoseSequence:
    """Per-frame: keep every bone's direction from ``seq``, take its length from the reference (tree walk from neck).

    ``seq`` should already be in the reference frame (:func:`apply_transform`). Hands follow their wrist, the face
    its nose, by translation.
    """
    ref_len = bone_lengths(ref_body, ref_score, threshold)
    body = seq.body.astype(np.float64)
    ok = seq.body_score >= threshold  # (T, 18)
    new = body.copy()
    for t in range(len(seq)):
        for k, (p, c) in enumerate(BONES):
            if not (ok[t, p] and ok[t, c]):
                continue  # keep the child's own (global) position, or leave it missing
            vec = body[t, c] - body[t, p]
            length = np.linalg.norm(vec)
            target = ref_len[k] if np.isfinite(ref_len[k]) else length
            direction = vec / length if length > 0 else np.zeros(2)
            new[t, c] = new[t, p] + target * direction
    out = {"body": new.astype(np.float32)}
    shift = (new - body).astype(np.float32)  # (T, 18, 2) per-joint displacement
    if seq.hands is not None:
        out["hands"] = seq.hands + shift[:, list(WRISTS)][:, :, None]
    if seq.face is not None:
        out["face"] = seq.face + shift[:, BODY_INDEX["nose"]][:, None]
    return dataclasses.replace(seq, **out)


def _lowest_ankle(body: np.ndarray, score: np.ndarray, threshold: float) -> np.ndarray:
    """(T,) largest confident ankle y per frame; NaN where no ankle is confident."""
    y = np.where(score[:, list(ANKLES)] >= threshold, body[:, list(ANKLES), 1], -np.inf).max(1)
    return np.where(np.isfinite(y), y, np.nan)


def keep_feet_on_ground(
    seq: PoseSequence, guide: PoseSequence, ground_y: float | None, threshold: float = 0.3
) -> PoseSequence:
    """Shift each frame of ``seq`` vertically so its lowest ankle sits at ``ground_y - lift_t``.

    ``lift_t`` is how far ``guide``'s (the globally fitted driving pose) lowest ankle is above its frame-0 height.
    Frames without confident ankles get a shift interpolated from their neighbours. ``ground_y=None`` uses
    ``guide``'s frame-0 ankle height.
    """
    guide_y = _lowest_ankle(guide.body, guide.body_score, threshold)
    seq_y = _lowest_ankle(seq.body, seq.body_score, threshold)
    base = guide_y[np.isfinite(guide_y)]
    if base.size == 0:
        logger.info("no confident ankles in the driving pose: feet not pinned to the ground line")
        return seq
    ground = base[0] if ground_y is None else ground_y
    target = ground - (base[0] - guide_y)  # (T,)
    dy = target - seq_y
    valid = np.isfinite(dy)
    if not valid.any():
        return seq
    t = np.arange(len(seq))
    dy = np.interp(t, t[valid], dy[valid]).astype(np.float32)  # (T,)
    out = {}
    for f, extra in (("body", 1), ("hands", 2), ("face", 1)):
        pts = getattr(seq, f)
        if pts is not None:
            pts = pts.copy()
            pts[..., 1] += dy.reshape(-1, *([1] * extra))
            out[f] = pts
    return dataclasses.replace(seq, **out)


def retarget(
    driving: PoseSequence,
    reference: PoseSequence,
    mode: str = "bones",
    feet_on_ground: bool = True,
    threshold: float = 0.3,
) -> PoseSequence:
    """Fit ``driving`` to the person in ``reference`` (its first frame); returns a sequence in the reference's size.

    ``mode="global"``: scale + translation only (the official release); ``mode="bones"``: also per-bone lengths
    and feet on the ground line.
    """
    if mode not in ("global", "bones"):
        raise ValueError(f"retarget mode must be 'global' or 'bones', got {mode!r}")
    ref_body, ref_score, width, height = _as_reference(reference)
    scale, offset = fit_global_transform(driving, ref_body, ref_score, threshold)
    logger.info("global fit: scale %.4f, offset (%.1f, %.1f)", scale, offset[0], offset[1])
    fitted = apply_transform(driving, scale, offset, width, height)
    if mode == "global":
        return fitted
    out = retarget_bone_lengths(fitted, ref_body, ref_score, threshold)
    if feet_on_ground:
        ref_ankles = _lowest_ankle(ref_body[None], ref_score[None], threshold)[0]
        out = keep_feet_on_ground(out, fitted, None if np.isnan(ref_ankles) else float(ref_ankles), threshold)
    return out


def reference_pose_from_image(image: np.ndarray | str | Path, models_dir: str | Path | None = None) -> PoseSequence:
    """DWPose keypoints of the person in a reference image (needs the ONNX models, see :mod:`.dwpose`)."""
    from dynamictrl.pose.dwpose import DWPoseExtractor

    if not isinstance(image, np.ndarray):
        from dynamictrl.data.io import read_image

        image = read_image(image)
    return DWPoseExtractor(models_dir).extract_video(image[None], progress=False)
