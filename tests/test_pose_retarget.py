"""Retargeting: the global fit recovers a known similarity; bone retargeting keeps angles and gives the
reference's bone lengths exactly; feet stay on the ground line; hands follow the wrists."""

import numpy as np
import pytest

from dynamictrl.pose.keypoints import BODY_INDEX, PoseSequence
from dynamictrl.pose.retarget import BONES, apply_transform, bone_lengths, fit_global_transform, retarget

# Standing-pose bone directions (unit vectors, y down) per BONES entry, and two body shapes.
_DIRS = {
    ("neck", "right_shoulder"): (-1, 0), ("neck", "left_shoulder"): (1, 0), ("neck", "right_hip"): (-0.3, 1),
    ("neck", "left_hip"): (0.3, 1), ("neck", "nose"): (0, -1), ("right_shoulder", "right_elbow"): (-0.2, 1),
    ("right_elbow", "right_wrist"): (-0.1, 1), ("left_shoulder", "left_elbow"): (0.2, 1),
    ("left_elbow", "left_wrist"): (0.1, 1), ("right_hip", "right_knee"): (0, 1), ("right_knee", "right_ankle"): (0, 1),
    ("left_hip", "left_knee"): (0, 1), ("left_knee", "left_ankle"): (0, 1), ("nose", "right_eye"): (-1, -1),
    ("nose", "left_eye"): (1, -1), ("right_eye", "right_ear"): (-1, 0.2), ("left_eye", "left_ear"): (1, 0.2),
}  # fmt: skip
NAMES = {v: k for k, v in BODY_INDEX.items()}


def _skeleton(root, lengths, angle_offsets=None):
    """Body (18, 2) from the neck position, per-bone lengths and per-bone rotations (radians) of the directions."""
    body = np.zeros((18, 2))
    body[BODY_INDEX["neck"]] = root
    for k, (p, c) in enumerate(BONES):
        d = np.array(_DIRS[(NAMES[p], NAMES[c])], float)
        d /= np.linalg.norm(d)
        if angle_offsets is not None:
            a = angle_offsets[k]
            d = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ d
        body[c] = body[p] + lengths[k] * d
    return body


DRIVER_LEN = np.array([30, 30, 60, 60, 20, 35, 30, 35, 30, 50, 50, 50, 50, 8, 8, 7, 7], float)
REF_LEN = np.array([40, 40, 90, 90, 25, 45, 40, 45, 40, 80, 75, 80, 75, 10, 10, 9, 9], float)


def _driving(t=6, seed=0, root=(200, 120)):
    rng = np.random.default_rng(seed)
    frames = [_skeleton(root, DRIVER_LEN, rng.uniform(-0.4, 0.4, len(BONES)) * (i > 0)) for i in range(t)]
    return PoseSequence(np.stack(frames), np.ones((t, 18)), width=400, height=300)


def _reference():
    body = _skeleton((256, 100), REF_LEN)
    return PoseSequence(body[None], np.ones((1, 18)), width=512, height=512)


def _angles(body):
    return np.array([np.arctan2(*(body[c] - body[p])[::-1]) for p, c in BONES])


def test_bones_form_tree_from_neck():
    assert len(BONES) == 17 and BONES[0][0] == BODY_INDEX["neck"]
    assert {c for _, c in BONES} == set(range(18)) - {BODY_INDEX["neck"]}


def test_global_fit_recovers_similarity():
    ref = _reference()
    s, off = 0.7, np.array([13.0, -21.0])
    drv_body = (ref.body - off) / s  # driving = reference seen at another scale and place
    drv = PoseSequence(np.repeat(drv_body, 3, 0), np.ones((3, 18)), width=700, height=700)
    scale, offset = fit_global_transform(drv, ref.body[0], ref.body_score[0])
    assert scale == pytest.approx(s, rel=1e-6)
    np.testing.assert_allclose(offset, off, atol=1e-3)
    out = retarget(drv, ref, mode="global")
    assert (out.width, out.height) == (512, 512)
    np.testing.assert_allclose(out.body, np.repeat(ref.body, 3, 0), atol=1e-3)


def test_bone_retarget_exact_lengths_and_angles():
    drv, ref = _driving(), _reference()
    out = retarget(drv, ref, mode="bones", feet_on_ground=False)
    for t in range(len(drv)):
        np.testing.assert_allclose(bone_lengths(out.body[t], out.body_score[t]), REF_LEN, rtol=1e-5)
        np.testing.assert_allclose(_angles(out.body[t]), _angles(drv.body[t]), atol=1e-5)
    np.testing.assert_array_equal(out.body_score, drv.body_score)


def test_feet_on_ground_line():
    drv, ref = _driving(t=4), _reference()
    drv.body[:, :, 1] += np.array([0, 0, -10, 0])[:, None]  # frame 2: a 10 px jump
    out = retarget(drv, ref, mode="bones")
    ankles = [BODY_INDEX["right_ankle"], BODY_INDEX["left_ankle"]]
    ref_ground = ref.body[0, ankles, 1].max()
    lowest = out.body[:, ankles, 1].max(1)
    scale, _ = fit_global_transform(drv, ref.body[0], ref.body_score[0])
    drv_lowest = drv.body[:, ankles, 1].max(1)
    expected = ref_ground - scale * (drv_lowest[0] - drv_lowest)  # driver's lift above its frame-0 ground, scaled
    np.testing.assert_allclose(lowest, expected, atol=1e-3)
    for t in range(len(drv)):  # the vertical shift keeps lengths and angles
        np.testing.assert_allclose(bone_lengths(out.body[t], out.body_score[t]), REF_LEN, rtol=1e-5)


def test_missing_joints_and_hands_follow_wrists():
    drv, ref = _driving(t=3), _reference()
    drv.body_score[1, BODY_INDEX["right_elbow"]] = 0  # the wrist below it keeps its globally fitted position
    hands = np.zeros((3, 2, 21, 2), np.float32)
    hands[:, 0] = drv.body[:, [BODY_INDEX["left_wrist"]]] + np.arange(21)[None, :, None]
    hands[:, 1] = drv.body[:, [BODY_INDEX["right_wrist"]]] + 1.0
    drv = PoseSequence(drv.body, drv.body_score, 400, 300, hands=hands, hands_score=np.ones((3, 2, 21)))
    out = retarget(drv, ref, mode="bones", feet_on_ground=False)
    scale, offset = fit_global_transform(drv, ref.body[0], ref.body_score[0])
    fitted = apply_transform(drv, scale, offset, 512, 512)
    rw = BODY_INDEX["right_wrist"]
    np.testing.assert_allclose(out.body[1, rw], fitted.body[1, rw], atol=1e-4)
    assert out.body_score[1, BODY_INDEX["right_elbow"]] == 0
    lw = BODY_INDEX["left_wrist"]
    np.testing.assert_allclose(out.hands[:, 0, 0], out.body[:, lw], atol=1e-4)
    np.testing.assert_allclose(out.hands[:, 0, 5] - out.hands[:, 0, 0], np.full((3, 2), 5 * scale), atol=1e-4)
    np.testing.assert_allclose(out.hands[0, 1, 3], out.body[0, rw] + scale, atol=1e-4)


def test_bad_inputs():
    drv, ref = _driving(), _reference()
    with pytest.raises(ValueError, match="'global' or 'bones'"):
        retarget(drv, ref, mode="ik")
    empty = PoseSequence(ref.body, np.zeros((1, 18)), 512, 512)
    with pytest.raises(ValueError, match="no confident"):
        retarget(drv, empty)
