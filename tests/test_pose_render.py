"""Renderer: limb colours where the keypoints say, low-confidence joints skipped, sizes scale; both styles."""

import hashlib

import numpy as np
import pytest

from dynamictrl.pose.keypoints import BODY_INDEX, PoseSequence
from dynamictrl.pose.render import (
    DYNAMICTRL_HAND_EDGE_COLORS,
    DYNAMICTRL_JOINT_COLORS,
    DYNAMICTRL_LIMB_COLORS,
    HAND_EDGE_COLORS,
    HAND_EDGES,
    JOINT_COLORS,
    LIMB_ALPHA,
    LIMB_COLORS,
    LIMB_SEQ,
    STYLES,
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


# ---- default style frozen -------------------------------------------------------------------------------------


def _golden_case():
    rng = np.random.default_rng(7)
    score = np.linspace(0.2, 1.0, 18)
    hands = np.stack([BODY[4] + rng.uniform(-15, 15, (21, 2)), BODY[7] + rng.uniform(-15, 15, (21, 2))])
    hands_score = rng.uniform(0, 1, (2, 21))
    face = BODY[0] + rng.uniform(-10, 10, (68, 2))
    face_score = rng.uniform(0, 1, 68)
    return score, hands, hands_score, face, face_score


def test_default_style_output_unchanged():
    """Hashes recorded from the renderer before the ``style`` argument existed (Pillow 13 rasterisation)."""
    score, hands, hs, face, fs = _golden_case()
    img = draw_pose(BODY, score, 256, 256, hands, hs, face, fs)
    assert int(img.sum()) == 1002847
    assert hashlib.sha256(img.tobytes()).hexdigest() == (
        "9a8c1d1b341c151a4131bd74d227561b4bf6de2e84d03f0f29d2ded5f9e40191"
    )
    np.testing.assert_array_equal(draw_pose(BODY, score, 256, 256, hands, hs, face, fs, style="dwpose"), img)
    seq = PoseSequence(
        np.stack([BODY, BODY + 5]),
        np.stack([score, score[::-1]]),
        hands=np.stack([hands] * 2),
        hands_score=np.stack([hs] * 2),
        face=np.stack([face] * 2),
        face_score=np.stack([fs] * 2),
        width=256,
        height=256,
    )
    frames = render_pose_sequence(seq, 72, 120)
    assert int(frames.sum()) == 413474
    assert hashlib.sha256(frames.tobytes()).hexdigest() == (
        "1c62fd3482cadedd6c5cc3ae5cc347700664a96582bf13e9304b274250a5e413"
    )


# ---- official DynamiCtrl style --------------------------------------------------------------------------------


def _peak(img, x, y, r=2):
    """The brightest pixel in a (2r+1)^2 window around (x, y): a fully covered sample of the shape there."""
    x, y = int(round(x)), int(round(y))
    win = img[y - r : y + r + 1, x - r : x + r + 1].reshape(-1, 3).astype(int)
    return win[win.sum(1).argmax()]


def _mid(a, b, scale=1.0):
    return (BODY[a] + BODY[b]) / 2 * scale


def test_bad_style_rejected():
    with pytest.raises(ValueError, match="dwpose.*dynamictrl"):
        draw_pose(BODY, np.ones(18), 64, 64, style="openpose")
    seq = PoseSequence(BODY[None], np.ones((1, 18)), width=256, height=256)
    with pytest.raises(ValueError, match="'DWPose'"):
        render_pose_sequence(seq, style="DWPose")
    with pytest.raises(ValueError, match="canvas is only supported"):
        draw_pose(BODY, np.ones(18), 256, 256, canvas=np.zeros((256, 256, 3), np.uint8), style="dynamictrl")
    assert STYLES == ("dwpose", "dynamictrl")


def test_dynamictrl_swaps_red_and_blue():
    """Neck-right shoulder is red in DWPose renders and blue (0.6 x 255) in official ones; neck-nose the reverse."""
    assert tuple(DYNAMICTRL_LIMB_COLORS[0]) == (0, 0, 255) and tuple(DYNAMICTRL_LIMB_COLORS[12]) == (255, 0, 0)
    ours = draw_pose(BODY * 2, np.ones(18), 512, 512)
    official = draw_pose(BODY * 2, np.ones(18), 512, 512, style="dynamictrl")
    for k in (0, 12, 8):  # neck-right shoulder, neck-nose, right shin
        x, y = _mid(*LIMB_SEQ[k], scale=2)
        np.testing.assert_allclose(_peak(ours, x, y), 0.6 * LIMB_COLORS[k], atol=2, err_msg=f"limb {k}")
        assert tuple(_peak(official, x, y)) == tuple(int(c * 0.6) for c in LIMB_COLORS[k][::-1]), f"limb {k}"
    x, y = BODY[BODY_INDEX["left_ear"]] * 2
    assert tuple(_peak(official, x, y, 1)) == tuple(JOINT_COLORS[BODY_INDEX["left_ear"]][::-1])  # joints on top
    assert not official[:20].any() and not official[:, :80].any()  # nothing outside the figure


def test_dynamictrl_sticks_are_thinner():
    ours = draw_pose(BODY, np.ones(18), 256, 256)
    official = draw_pose(BODY, np.ones(18), 256, 256, style="dynamictrl")
    # Across the (nearly vertical) right shin at y = 222: DWPose ~5 px wide, official (4 px at 2160 px) ~1 px.
    assert ours[222, 85:115].any(-1).sum() >= 4
    assert 1 <= official[222, 85:115].any(-1).sum() <= 2
    assert official.any(-1).sum() < 0.4 * ours.any(-1).sum()
    # The stick keeps its canvas width, so at a bigger output it is wider in pixels.
    big = draw_pose(BODY * 3, np.ones(18), 768, 768, style="dynamictrl")
    assert 2 <= big[666, 255:345].any(-1).sum() <= 4


def test_dynamictrl_confidence_weighting():
    score = np.ones(18)
    knee, ankle, neck = BODY_INDEX["right_knee"], BODY_INDEX["right_ankle"], BODY_INDEX["neck"]
    score[[knee, ankle]] = 0.5
    score[neck] = 0.5  # passes the threshold: drawn at full strength like the official extractor's neck (score 1)
    img = draw_pose(BODY * 2, score, 512, 512, style="dynamictrl")
    shin = LIMB_SEQ.index((knee, ankle))
    expected_limb = [int(int(c * 0.25) * 0.6) for c in DYNAMICTRL_LIMB_COLORS[shin]]  # (170, 255, 0) -> (25, 37, 0)
    assert tuple(_peak(img, *_mid(knee, ankle, 2))) == tuple(expected_limb)
    assert tuple(_peak(img, *BODY[knee] * 2, 1)) == tuple(int(c * 0.5) for c in DYNAMICTRL_JOINT_COLORS[knee])
    assert tuple(_peak(img, *BODY[neck] * 2, 1)) == tuple(DYNAMICTRL_JOINT_COLORS[neck])
    # Below the threshold a body joint and its limbs vanish (body keeps the 0.3 rule; hands and face do not).
    score[knee] = 0.2
    img = draw_pose(BODY * 2, score, 512, 512, style="dynamictrl")
    assert not _peak(img, *_mid(knee, ankle, 2)).any() and not _peak(img, *BODY[knee] * 2, 1).any()


def test_dynamictrl_draws_hands_and_face_at_low_score():
    hands = np.zeros((2, 21, 2), np.float32)
    hands[0, 0], hands[0, 1], hands[0, 5] = (120, 300), (120, 380), (200, 300)
    hands[1] = hands[0] + [240, 0]
    hands_score = np.full((2, 21), 0.1)
    hands_score[1, [0, 1, 5]] = 1.0
    face = np.stack([np.linspace(220, 292, 68), np.full(68, 90)], -1)
    face_score = np.full(68, 0.2)
    args = (BODY * 2, np.zeros(18), 512, 512, hands, hands_score, face, face_score)
    ours = draw_pose(*args)  # DWPose style: only the confident right hand
    assert not ours[:, :250].any() and not ours[:200].any()
    img = draw_pose(*args, style="dynamictrl")
    assert tuple(_peak(img, 120, 300, 1)) == (25, 0, 0)  # hand dot: red, int(0.1 * 255)
    assert tuple(_peak(img, 360, 300, 1)) == (255, 0, 0)
    r, g, b = _peak(img, 360, 340, 1)  # hand bones are 2 canvas px wide, so at 512 px only partly sampled
    assert r == g == 0 and b > 0  # thumb base: hue 0 (red) drawn blue
    assert tuple(_peak(img, 256, 90, 1)) == (51, 51, 51)  # face dot: grey, int(0.2 * 255)
    # The other 18 points of each hand sit at (0, 0): the official code skips points left of / above pixel 1.
    assert not img[:20, :20].any()
    # Exact bone colours where the canvas is the output (short side 2160): hue x int(s_a * s_b * 255), R/B swapped.
    k = 2160 / 512
    img = draw_pose(BODY * k, np.zeros(18), 2160, 2160, hands * k, hands_score, style="dynamictrl")
    assert tuple(img[int(340 * k), int(360 * k)]) == (0, 0, 255)
    assert tuple(img[int(300 * k), int(400 * k)]) == tuple(np.rint(DYNAMICTRL_HAND_EDGE_COLORS[4] * 255).astype(int))
    assert tuple(img[int(340 * k), int(120 * k)]) == (0, 0, 2)  # 0.1 x 0.1 x 255 -> 2


def _bilinear_reference(img, height, width):
    """Float bilinear resize with pixel-centre alignment and edge clamping (OpenCV INTER_LINEAR)."""

    def taps(n_out, n_in):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0

    y0, y1, fy = taps(height, img.shape[0])
    x0, x1, fx = taps(width, img.shape[1])
    f = img.astype(float)
    fx, fy = fx[None, :, None], fy[:, None, None]
    top = f[y0][:, x0] * (1 - fx) + f[y0][:, x1] * fx
    bottom = f[y1][:, x0] * (1 - fx) + f[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def test_dynamictrl_equals_drawing_the_big_canvas_and_resizing():
    """Rasterising only the samples the resize reads gives the same image as the full 2160-px canvas."""
    score, hands, hs, face, fs = _golden_case()
    small = (BODY * [0.25, 0.3], hands * [0.25, 0.3], face * [0.25, 0.3])  # into a 80 x 64 (H x W) image
    out = draw_pose(small[0], score, 80, 64, small[1], hs, small[2], fs, style="dynamictrl")
    k = 2160 / 64  # 33.75, exact in float: the canvas is 2700 x 2160 and is drawn as is (no resize)
    canvas = draw_pose(small[0] * k, score, 2700, 2160, small[1] * k, hs, small[2] * k, fs, style="dynamictrl")
    assert canvas.any(-1).mean() > 0.002
    np.testing.assert_allclose(out, _bilinear_reference(canvas, 80, 64), atol=1.01)
    assert out.any(-1).sum() > 30


def test_dynamictrl_sequence_matches_frames():
    t = 2
    body = np.stack([BODY + [i * 5, 0] for i in range(t)])
    seq = PoseSequence(body, np.full((t, 18), 0.8), width=256, height=256)
    frames = render_pose_sequence(seq, 128, 192, style="dynamictrl")
    assert frames.shape == (t, 128, 192, 3)
    # Cover-resize to 128 x 192 is a 0.5 x / 0.75 x per-axis scale of the keypoints.
    np.testing.assert_array_equal(
        frames[1], draw_pose(body[1] * [0.75, 0.5], np.full(18, 0.8), 128, 192, style="dynamictrl")
    )
