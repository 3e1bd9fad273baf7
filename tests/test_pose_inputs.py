"""load_pose_input: keypoints files, rendered pose videos and raw videos (tiny ONNX models), kind heuristic, and the
official preprocessing (reference pose as frame 0, retargeting) with a stand-in extractor."""

import numpy as np
import pytest
from test_pose_dwpose import make_tiny_dwpose_models
from test_pose_render import BODY

from dynamictrl.data.io import write_video
from dynamictrl.pose import (
    PoseSequence,
    draw_pose,
    fit_to_frame,
    load_pose_input,
    looks_like_rendered_pose,
    render_pose_sequence,
    retarget,
)


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
    frames = load_pose_input(path, 256, 256, pose_style="dynamictrl", reference_pose_first=False, retarget=False)
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


# ------------------------------------------------------------------ official preprocessing
REF_BODY = BODY * 0.75 + [40, 50]  # the reference person: smaller, elsewhere in a 256 x 320 (H x W) photo


class StandInExtractor:
    """Returns the reference pose for a 1-frame call (the reference photo), else a driver moving right."""

    def __init__(self):
        self.calls = []

    def extract_video(self, frames):
        self.calls.append(frames.shape)
        t, h, w = frames.shape[:3]
        if t == 1 and (h, w) == (256, 320):
            return PoseSequence(REF_BODY[None], np.ones((1, 18)), width=w, height=h)
        body = np.stack([BODY * 1.5 + [10 * i, 0] for i in range(t)])
        return PoseSequence(body, np.ones((t, 18)), width=w, height=h)


def _driver(t=3):
    return PoseSequence(np.stack([BODY * 1.5 + [10 * i, 0] for i in range(t)]), np.ones((t, 18)), width=400, height=400)


def _official_expected(driving, ref, height, width, mode="global", style="dynamictrl"):
    first = render_pose_sequence(fit_to_frame(ref, height, width), style=style)
    rest = render_pose_sequence(fit_to_frame(retarget(driving, ref, mode=mode), height, width), style=style)
    return np.concatenate([first, rest])


def test_official_style_puts_the_reference_pose_first_and_retargets_keypoints(tmp_path):
    path = _driver().save(tmp_path / "drive.npz")
    photo = np.zeros((256, 320, 3), np.uint8)
    ext = StandInExtractor()
    frames = load_pose_input(path, 128, 160, reference_image=photo, pose_style="dynamictrl", extractor=ext)
    ref = PoseSequence(REF_BODY[None], np.ones((1, 18)), width=320, height=256)
    assert frames.shape == (4, 128, 160, 3)  # 3 driving frames + the reference's own pose
    np.testing.assert_array_equal(frames, _official_expected(_driver(), ref, 128, 160))
    assert ext.calls == [(1, 256, 320, 3)]  # only the reference photo was extracted
    # frame 0 shows the reference's own pose; the first driving frame is fitted onto it, not left where it was
    plain = load_pose_input(path, 128, 160, pose_style="dynamictrl", reference_pose_first=False, retarget=False)
    assert not np.array_equal(frames[1], plain[0])


def test_dwpose_style_keeps_keypoints_as_they_are_by_default(tmp_path):
    path = _driver().save(tmp_path / "drive.npz")
    ext = StandInExtractor()
    frames = load_pose_input(path, 128, 160, reference_image=np.zeros((256, 320, 3), np.uint8), extractor=ext)
    np.testing.assert_array_equal(frames, render_pose_sequence(fit_to_frame(_driver(), 128, 160)))
    assert ext.calls == []


def test_official_preprocessing_parts_switch_either_way(tmp_path):
    path = _driver().save(tmp_path / "drive.npz")
    ref = PoseSequence(REF_BODY[None], np.ones((1, 18)), width=320, height=256)
    official = _official_expected(_driver(), ref, 128, 160)
    kw = dict(reference_pose=ref, pose_style="dynamictrl")
    np.testing.assert_array_equal(load_pose_input(path, 128, 160, reference_pose_first=False, **kw), official[1:])
    no_retarget = load_pose_input(path, 128, 160, retarget=False, **kw)
    np.testing.assert_array_equal(no_retarget[0], official[0])
    plain = render_pose_sequence(fit_to_frame(_driver(), 128, 160), style="dynamictrl")
    np.testing.assert_array_equal(no_retarget[1:], plain)
    # the dwpose style turns both on when asked, drawn in its own style with the bone-length retargeting
    ours = load_pose_input(path, 128, 160, reference_pose=ref, reference_pose_first=True, retarget=True)
    np.testing.assert_array_equal(ours, _official_expected(_driver(), ref, 128, 160, mode="bones", style="dwpose"))


def test_official_preprocessing_without_a_reference_says_what_to_pass(tmp_path):
    path = _driver().save(tmp_path / "drive.npz")
    with pytest.raises(ValueError, match="reference_image.*reference_pose.*reference_pose_first=False"):
        load_pose_input(path, 128, 160, pose_style="dynamictrl")


def test_reference_photo_without_a_person_is_an_error_not_an_empty_first_frame(tmp_path):
    path = _driver().save(tmp_path / "drive.npz")

    class NobodyExtractor:
        def extract_video(self, frames):
            return PoseSequence(np.zeros((len(frames), 18, 2)), np.zeros((len(frames), 18)), width=320, height=256)

    photo = np.zeros((256, 320, 3), np.uint8)
    with pytest.raises(ValueError, match="no person found in the reference image.*reference_pose"):
        load_pose_input(path, 128, 160, reference_image=photo, pose_style="dynamictrl", extractor=NobodyExtractor())


def test_max_frames_counts_the_reference_frame_and_limits_extraction(tmp_path):
    raw = np.random.default_rng(0).integers(0, 255, (5, 96, 96, 3), dtype=np.uint8)
    path = write_video(tmp_path / "raw.mp4", raw)
    photo = np.zeros((256, 320, 3), np.uint8)
    ext = StandInExtractor()
    frames = load_pose_input(
        path, 128, 160, reference_image=photo, pose_style="dynamictrl", max_frames=3, smooth=False, extractor=ext
    )
    assert frames.shape == (3, 128, 160, 3)
    assert ext.calls == [(1, 256, 320, 3), (2, 96, 96, 3)]  # the reference, then only the 2 driving frames kept
    ref = PoseSequence(REF_BODY[None], np.ones((1, 18)), width=320, height=256)
    driving = ext.extract_video(raw[:2])
    np.testing.assert_array_equal(frames, _official_expected(driving, ref, 128, 160))  # fitted on those 2 only
    assert len(load_pose_input(path, 128, 160, max_frames=3, smooth=False, extractor=ext)) == 3  # no extra frame


def test_rendered_video_gets_the_reference_frame_only_when_asked(tmp_path):
    video = np.stack([draw_pose(BODY, np.ones(18), 256, 256, style="dynamictrl")] * 2)
    path = write_video(tmp_path / "pose.mp4", video, lossless=True)
    ref = PoseSequence(REF_BODY[None], np.ones((1, 18)), width=320, height=256)
    as_is = load_pose_input(path, 256, 256, reference_pose=ref, pose_style="dynamictrl")
    np.testing.assert_array_equal(as_is, video)
    first = load_pose_input(path, 256, 256, reference_pose=ref, pose_style="dynamictrl", reference_pose_first=True)
    assert len(first) == 3
    np.testing.assert_array_equal(first[0], render_pose_sequence(fit_to_frame(ref, 256, 256), style="dynamictrl")[0])
    np.testing.assert_array_equal(first[1:], video)
