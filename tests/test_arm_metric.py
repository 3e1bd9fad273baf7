"""Arm IoU and arm keypoint hits (dynamictrl.eval.synthetic_metrics) on real puppet-world clips.

The clips are demo-style validation clips whose arms move (64x64, 9 frames). Predictions are built from their exact
ground truth: the truth itself, the reference repeated, the truth blurred or fattened, and the truth with its arms
redrawn at the right or a wrong angle about the shoulders.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from dynamictrl.eval.synthetic_metrics import arm_iou, arm_keypoint_hits, arm_zone, silhouette_iou
from dynamictrl.pose.keypoints import BODY_INDEX
from dynamictrl.puppet import make_sample
from dynamictrl.puppet.draw import ARM_LABELS, PART_LABELS

SEEDS = (200001, 200003, 200005)  # val clips whose arms move by 0.7-0.9 of their area over 9 frames


@pytest.fixture(scope="module", params=SEEDS)
def clip(request):
    return make_sample(request.param, split="val", size=64, frames=9, style="demo")


def _paint(background: np.ndarray, silhouette: np.ndarray) -> np.ndarray:
    """A video that differs from ``background`` by 128 levels exactly on ``silhouette``."""
    out = background.copy()
    out[silhouette] ^= 0x80
    return out


def _capsule(height: int, width: int, a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    gy, gx = np.mgrid[0:height, 0:width].astype(np.float64)
    ab = b - a
    t = np.clip(((gx - a[0]) * ab[0] + (gy - a[1]) * ab[1]) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
    return (gx - a[0] - t * ab[0]) ** 2 + (gy - a[1] - t * ab[1]) ** 2 <= radius**2


def _arms_rotated(clip, degrees: float, radius: float = 2.0) -> np.ndarray:
    """The true silhouette with its arms replaced by capsules along the true arm, turned about the shoulder."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    turn = np.array([[c, -s], [s, c]])
    frames, height, width = clip.masks.shape
    sil = clip.masks & ~np.isin(clip.parts, ARM_LABELS)
    for t in range(frames):
        kp = clip.keypoints.body[t]
        for side in ("right", "left"):
            sh, el, wr = (kp[BODY_INDEX[f"{side}_{j}"]] for j in ("shoulder", "elbow", "wrist"))
            el, wr = sh + turn @ (el - sh), sh + turn @ (wr - sh)
            sil[t] |= _capsule(height, width, sh, el, radius) | _capsule(height, width, el, wr, radius)
    return sil


def _scores(clip, video: np.ndarray) -> tuple[float, float]:
    return arm_iou(video, clip.background, clip.parts), arm_keypoint_hits(
        video, clip.background, clip.parts, clip.keypoints.body
    )


def test_arm_labels_name_the_upper_arms_forearms_and_hands():
    assert sorted(PART_LABELS[i] for i in ARM_LABELS) == sorted(
        f"{s}_{p}" for s in ("left", "right") for p in ("upper_arm", "forearm", "hand")
    )


def test_ground_truth_scores_one(clip):
    assert _scores(clip, clip.video) == (1.0, 1.0)


def test_repeating_the_reference_scores_low_when_the_arms_move(clip):
    repeat = np.repeat(clip.reference[None], len(clip.video), axis=0)
    iou, hits = _scores(clip, repeat)
    assert iou < 0.35
    assert hits < 0.5


def test_blurred_truth_scores_between_repeating_the_reference_and_the_truth(clip):
    blurred = np.rint(ndimage.gaussian_filter(clip.video.astype(np.float64), (0, 1, 1, 0))).astype(np.uint8)
    repeat = np.repeat(clip.reference[None], len(clip.video), axis=0)
    assert arm_iou(repeat, clip.background, clip.parts) < arm_iou(blurred, clip.background, clip.parts) < 1.0


def test_fattened_truth_scores_between_repeating_the_reference_and_the_truth(clip):
    fat = _paint(clip.background, ndimage.binary_dilation(clip.masks, np.ones((1, 3, 3), dtype=bool)))
    repeat = np.repeat(clip.reference[None], len(clip.video), axis=0)
    assert arm_iou(repeat, clip.background, clip.parts) < arm_iou(fat, clip.background, clip.parts) < 1.0
    # recall only: every visible elbow and wrist is still covered
    assert arm_keypoint_hits(fat, clip.background, clip.parts, clip.keypoints.body) == 1.0


def test_arms_at_a_wrong_angle_score_lower_than_at_the_right_angle(clip):
    iou = {
        deg: arm_iou(_paint(clip.background, _arms_rotated(clip, deg)), clip.background, clip.parts)
        for deg in (0, 20, 45)
    }
    assert iou[0] > 0.75
    assert iou[0] > iou[20] > iou[45]


def test_a_fattened_torso_and_legs_barely_lower_arm_iou_unlike_silhouette_iou(clip):
    # the halo of the other parts lies nearer to them than to the arms, so it is outside the arm zone
    arms = np.isin(clip.parts, ARM_LABELS)
    body = clip.masks & ~arms
    sil = clip.masks | ndimage.binary_dilation(body, np.ones((1, 5, 5), dtype=bool))
    video = _paint(clip.background, sil)
    assert silhouette_iou(video, clip.background, clip.masks) < 0.75
    assert arm_iou(video, clip.background, clip.parts) > 0.75


def test_a_person_without_arms_scores_zero_although_its_silhouette_iou_stays_high(clip):
    video = _paint(clip.background, clip.masks & ~np.isin(clip.parts, ARM_LABELS))
    assert silhouette_iou(video, clip.background, clip.masks) > 0.7
    assert _scores(clip, video) == (0.0, 0.0)


def test_pixels_nearer_the_torso_than_the_arm_are_outside_the_arm_zone():
    torso, arm = PART_LABELS.index("torso"), PART_LABELS.index("right_forearm")
    parts = np.zeros((1, 3, 9), dtype=np.uint8)
    parts[:, :, 0:2], parts[:, :, 7:9] = torso, arm
    _, zone = arm_zone(parts)
    # columns 2-3 are nearer the torso, 4 is as near to both (given to the arm), 5-8 are the arm's
    np.testing.assert_array_equal(zone[0, 0], [False, False, False, False, True, True, True, True, True])
    background = np.zeros((1, 3, 9, 3), dtype=np.uint8)
    near_torso = _paint(background, np.isin(np.arange(9), [0, 1, 2, 3, 7, 8])[None, None].repeat(3, axis=1))
    near_arm = _paint(background, np.isin(np.arange(9), [0, 1, 5, 7, 8])[None, None].repeat(3, axis=1))
    assert arm_iou(near_torso, background, parts) == 1.0
    assert arm_iou(near_arm, background, parts) == pytest.approx(2 / 3)


def test_frames_without_a_visible_arm_are_skipped_and_none_gives_nan():
    parts = np.zeros((2, 4, 4), dtype=np.uint8)
    parts[0, 1:3, 1:3] = ARM_LABELS[0]
    background = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    wrong = _paint(background, np.ones((2, 4, 4), dtype=bool))  # person everywhere in both frames
    assert arm_iou(wrong, background, parts) == pytest.approx(4 / 16)  # frame 1 shows no arm: not counted
    assert math.isnan(arm_iou(wrong, background, np.zeros_like(parts)))
    keypoints = np.zeros((2, 18, 2), dtype=np.float32)
    assert math.isnan(arm_keypoint_hits(wrong, background, np.zeros_like(parts), keypoints))


def test_part_labels_of_another_shape_are_refused():
    video = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="part labels"):
        arm_iou(video, video, np.zeros((2, 4, 5), dtype=np.uint8))
