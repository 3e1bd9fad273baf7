"""load_pose_input: keypoints files, rendered pose videos and raw videos (tiny ONNX models), kind heuristic."""

import numpy as np
import pytest
from test_pose_dwpose import make_tiny_dwpose_models
from test_pose_render import BODY

from dynamictrl.data.io import write_video
from dynamictrl.pose import PoseSequence, draw_pose, fit_to_frame, load_pose_input, looks_like_rendered_pose


def _seq(t=3):
    body = np.stack([BODY + [3 * i, 0] for i in range(t)])
    return PoseSequence(body, np.ones((t, 18)), width=256, height=256)


def test_rendered_heuristic():
    rendered = np.stack([draw_pose(BODY, np.ones(18), 256, 256)] * 2)
    assert looks_like_rendered_pose(rendered)
    natural = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    assert not looks_like_rendered_pose(natural)
    dark_grey = np.zeros((2, 64, 64, 3), np.uint8)
    dark_grey[:, 20:30] = 120  # mostly black but grey content: not the OpenPose palette
    assert not looks_like_rendered_pose(dark_grey)


def test_fit_to_frame_cover_crop():
    seq = PoseSequence(np.full((1, 18, 2), [100.0, 50.0]), np.ones((1, 18)), width=200, height=100)
    out = fit_to_frame(seq, 64, 64)  # scale 0.64, crop 32 px from the left
    np.testing.assert_allclose(out.body[0, 0], [100 * 0.64 - 32, 50 * 0.64], rtol=1e-6)


def test_keypoints_file(tmp_path):
    path = _seq().save(tmp_path / "pose.npz")
    frames = load_pose_input(path, 128, 128)
    assert frames.shape == (3, 128, 128, 3)
    np.testing.assert_array_equal(frames[1], draw_pose((BODY + [3, 0]) / 2, np.ones(18), 128, 128))
    with pytest.raises(ValueError, match="kind must be one of"):
        load_pose_input(path, 64, 64, kind="video")
    with pytest.raises(ValueError, match="reference_pose"):
        load_pose_input(path, 64, 64, retarget=True)


def test_keypoints_retarget_to_reference_pose(tmp_path):
    seq = _seq()
    seq.body[:] = BODY  # a still driver: the global fit maps every frame exactly onto the reference
    path = seq.save(tmp_path / "pose.json")
    ref = PoseSequence((BODY * 0.5 + 64)[None], np.ones((1, 18)), width=256, height=256)
    frames = load_pose_input(path, 256, 256, retarget=True, reference_pose=ref, retarget_mode="global")
    np.testing.assert_array_equal(frames[2], draw_pose(ref.body[0], np.ones(18), 256, 256))


def test_rendered_video(tmp_path):
    video = np.stack([draw_pose(BODY, np.ones(18), 256, 256)] * 2)
    path = write_video(tmp_path / "pose.mp4", video, lossless=True)
    frames = load_pose_input(path, 128, 128)
    assert frames.shape == (2, 128, 128, 3)
    with pytest.raises(ValueError, match="cannot be retargeted"):
        load_pose_input(path, 128, 128, retarget=True)


def test_raw_video_runs_extraction(tmp_path):
    pytest.importorskip("onnxruntime")
    make_tiny_dwpose_models(tmp_path, {6: (200, 300, 0.8), 5: (380, 300, 0.7), 8: (200, 500, 0.9)})
    raw = np.random.default_rng(0).integers(0, 255, (2, 320, 480, 3), dtype=np.uint8)
    path = write_video(tmp_path / "raw.mp4", raw)
    frames = load_pose_input(path, 160, 240, models_dir=tmp_path)
    assert frames.shape == (2, 160, 240, 3) and frames.any()
    assert looks_like_rendered_pose(frames)
    with pytest.raises(FileNotFoundError, match="yolox_l.onnx"):
        load_pose_input(path, 160, 240, models_dir=tmp_path / "nowhere", kind="raw")


def test_pose_style_for_keypoints(tmp_path):
    path = _seq().save(tmp_path / "pose.npz")
    frames = load_pose_input(path, 256, 256, pose_style="dynamictrl")
    official = draw_pose(BODY + [3, 0], np.ones(18), 256, 256, style="dynamictrl")
    np.testing.assert_array_equal(frames[1], official)
    assert not np.array_equal(official, draw_pose(BODY + [3, 0], np.ones(18), 256, 256))
    with pytest.raises(ValueError, match="dwpose.*dynamictrl"):
        load_pose_input(path, 256, 256, pose_style="official")


def test_official_style_render_is_detected_as_rendered(tmp_path):
    rng = np.random.default_rng(0)
    face = BODY[0] + rng.uniform(-12, 12, (68, 2))
    hands = np.stack([BODY[4] + rng.uniform(-12, 12, (21, 2)), BODY[7] + rng.uniform(-12, 12, (21, 2))])
    img = draw_pose(BODY, np.ones(18), 256, 256, hands, np.full((2, 21), 0.5), face, np.ones(68), style="dynamictrl")
    assert looks_like_rendered_pose(np.stack([img] * 2))
    path = write_video(tmp_path / "pose.mp4", np.stack([img] * 2), lossless=True)
    frames = load_pose_input(path, 256, 256, pose_style="dynamictrl")  # used as is
    np.testing.assert_array_equal(frames[0], img)
