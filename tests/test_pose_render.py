"""Renderer: limb colours where the keypoints say, low-confidence joints skipped, sizes scale."""

import numpy as np
import pytest

from dynamictrl.pose.keypoints import BODY_INDEX, PoseSequence
from dynamictrl.pose.render import (
    HAND_EDGE_COLORS,
    HAND_EDGES,
    JOINT_COLORS,
    LIMB_ALPHA,
    LIMB_COLORS,
    LIMB_SEQ,
    draw_pose,
    render_pose_sequence,
)

# A standing figure in a 256x256 image with limbs long and apart enough not to overlap at their midpoints.
BODY = np.array(
    [
        [128, 40], [128, 80], [90, 80], [70, 120], [60, 170], [166, 80], [186, 120], [196, 170], [105, 150],
        [100, 200], [98, 245], [151, 150], [156, 200], [158, 245], [116, 28], [140, 28], [100, 22], [156, 22],
    ],
    dtype=np.float32,
)  # fmt: skip


def test_conventions():
    assert len(LIMB_SEQ) == 17 and LIMB_COLORS.shape == (17, 3) and JOINT_COLORS.shape == (18, 3)
    assert LIMB_SEQ[0] == (BODY_INDEX["neck"], BODY_INDEX["right_shoulder"])
    assert tuple(LIMB_COLORS[0]) == (255, 0, 0)  # neck-right shoulder is red in OpenPose renders
    assert tuple(JOINT_COLORS[BODY_INDEX["left_ear"]]) == (255, 0, 85)
    assert len(HAND_EDGES) == 20 and HAND_EDGES[4] == (0, 5)


def test_each_limb_colour_at_its_midpoint():
    img = draw_pose(BODY, np.ones(18), 256, 256)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    for k, (a, b) in enumerate(LIMB_SEQ):
        x, y = np.round((BODY[a] + BODY[b]) / 2).astype(int)
        expected = LIMB_ALPHA * LIMB_COLORS[k].astype(float)  # blended over black
        np.testing.assert_allclose(img[y, x], expected, atol=2, err_msg=f"limb {k} {LIMB_SEQ[k]}")
    # Background is black away from the figure.
    assert not img[:10].any() and not img[:, :40].any()


def test_joint_colour_and_low_confidence_skipped():
    score = np.ones(18)
    elbow = BODY_INDEX["right_elbow"]
    score[elbow] = 0.1
    img = draw_pose(BODY, score, 256, 256, threshold=0.3)
    for k, (a, b) in enumerate(LIMB_SEQ):
        x, y = np.round((BODY[a] + BODY[b]) / 2).astype(int)
        if elbow in (a, b):
            assert not img[y, x].any(), f"limb {LIMB_SEQ[k]} touching a low-confidence joint was drawn"
        else:
            assert img[y, x].any()
    x, y = BODY[elbow].astype(int)
    assert not img[y - 3 : y + 4, x - 3 : x + 4].any()
    # A lone confident joint is drawn in its colour and nothing else is drawn.
    only = np.zeros(18)
    only[BODY_INDEX["left_knee"]] = 1
    img = draw_pose(BODY, only, 256, 256)
    x, y = BODY[BODY_INDEX["left_knee"]].astype(int)
    assert tuple(img[y, x]) == tuple(JOINT_COLORS[BODY_INDEX["left_knee"]])
    ys, xs = np.nonzero(img.any(-1))
    assert np.abs(xs - x).max() <= 3 and np.abs(ys - y).max() <= 3


def test_nan_keypoints_not_drawn():
    body = BODY.copy()
    body[BODY_INDEX["nose"]] = np.nan
    img = draw_pose(body, np.ones(18), 256, 256)
    for k, (a, b) in enumerate(LIMB_SEQ):
        x, y = np.round((BODY[a] + BODY[b]) / 2).astype(int)
        assert img[y, x].any() == (BODY_INDEX["nose"] not in (a, b)), f"limb {LIMB_SEQ[k]}"


def test_hands_and_face_drawn():
    hands = np.zeros((2, 21, 2), np.float32)
    hands[0, 0], hands[0, 1], hands[0, 5] = (60, 150), (60, 190), (100, 150)
    hands[1] = hands[0] + [120, 0]
    score = np.zeros((2, 21))
    score[0, [0, 1, 5]] = 1  # left hand: thumb base bone (edge 0) and index base bone (edge 4)
    face = np.stack([np.linspace(110, 146, 68), np.full(68, 45)], -1)
    img = draw_pose(BODY, np.zeros(18), 256, 256, hands, score, face, np.ones(68))
    assert tuple(img[150, 60]) == (0, 0, 255)  # hand keypoint dots are blue
    assert tuple(img[170, 60]) == tuple(HAND_EDGE_COLORS[0])  # bones are hue-coded
    assert tuple(img[150, 80]) == tuple(HAND_EDGE_COLORS[4])
    assert not img[140:200, 170:230].any()  # the unconfident right hand is not drawn
    assert tuple(img[45, 128]) == (255, 255, 255)  # face dots are white
    assert not img[60:140].any()  # body scores are zero: no body drawn


def test_canvas_is_drawn_over_and_not_modified():
    canvas = np.full((256, 256, 3), 100, np.uint8)
    img = draw_pose(BODY, np.ones(18), 256, 256, canvas=canvas)
    assert (canvas == 100).all()
    assert tuple(img[0, 0]) == (100, 100, 100)
    x, y = np.round((BODY[1] + BODY[2]) / 2).astype(int)
    np.testing.assert_allclose(img[y, x], 0.4 * 100 + 0.6 * LIMB_COLORS[0], atol=2)
    with pytest.raises(ValueError, match="canvas"):
        draw_pose(BODY, np.ones(18), 128, 128, canvas=canvas)


def test_stick_width_scales_with_size():
    small = draw_pose(BODY / 4, np.ones(18), 64, 64)
    big = draw_pose(BODY * 2, np.ones(18), 512, 512)
    mid = draw_pose(BODY, np.ones(18), 256, 256)
    ratio = big.any(-1).sum() / mid.any(-1).sum()
    assert 3.0 < ratio < 5.0  # area ~ 4x when every length doubles
    assert small.any(-1).sum() > 0.5 * mid.any(-1).sum() / 16  # tiny renders keep a >= 1 px stick


def test_render_sequence_rescales():
    t = 3
    body = np.stack([BODY + [i * 5, 0] for i in range(t)])
    seq = PoseSequence(body, np.ones((t, 18)), width=256, height=256)
    frames = render_pose_sequence(seq)
    assert frames.shape == (t, 256, 256, 3)
    np.testing.assert_array_equal(frames[1], draw_pose(body[1], np.ones(18), 256, 256))
    half = render_pose_sequence(seq, height=128, width=128)
    assert half.shape == (t, 128, 128, 3)
    np.testing.assert_array_equal(half[2], draw_pose(body[2] / 2, np.ones(18), 128, 128))
