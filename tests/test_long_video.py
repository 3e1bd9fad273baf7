"""Long-video sampler: clip plan, continuity, prompt switching, anchoring, colour matching."""

from types import SimpleNamespace

import numpy as np
import pytest

from dynamictrl.data.io import read_video
from dynamictrl.models.tiny import build_tiny_components
from dynamictrl.pipelines import DynamiCtrlPipeline
from dynamictrl.pipelines.long_video import (
    PromptSchedule,
    lab_stats,
    lab_to_rgb,
    match_color,
    plan_clips,
    rgb_to_lab,
    sample_long_video,
)

H = W = 16


class FakePipe:
    """Records every call; returns frames that depend on the reference and the pose (so chaining is visible)."""

    vae_scale_factor_temporal = 4

    def __init__(self):
        self.calls = []

    def __call__(self, image, pose_video, prompt, num_frames, **kwargs):
        self.calls.append(dict(image=np.array(image), pose=np.array(pose_video), prompt=prompt, num_frames=num_frames))
        assert len(pose_video) == num_frames
        tint = np.asarray(image, dtype=np.float32).mean() / 255.0
        frames = (np.asarray(pose_video, dtype=np.float32) / 255.0 + tint) / 2  # (F, H, W, 3) in [0, 1]
        return SimpleNamespace(frames=frames[None])


def pose_video(frames):
    ramp = np.linspace(0, 255, frames).astype(np.uint8)
    return np.broadcast_to(ramp[:, None, None, None], (frames, H, W, 3)).copy()


REFERENCE = np.full((H, W, 3), 200, np.uint8)


def test_clip_plan_for_three_and_a_half_clips():
    clips = plan_clips(27, 9, overlap=1)
    assert [(c.start, c.end, c.length) for c in clips] == [(0, 9, 9), (8, 17, 9), (16, 25, 9), (24, 27, 5)]
    clips = plan_clips(27, 9, overlap=3)
    assert [(c.start, c.end) for c in clips] == [(0, 9), (6, 15), (12, 21), (18, 27)]
    with pytest.raises(ValueError, match="clip_frames=10"):
        plan_clips(27, 10)
    with pytest.raises(ValueError, match="overlap=9"):
        plan_clips(27, 9, overlap=9)


def test_chaining_prompts_and_frame_count():
    pipe = FakePipe()
    schedule = PromptSchedule.from_lines(["0\ta sunny beach", "16\ta snowy street"])
    result = sample_long_video(
        pipe, REFERENCE, pose_video(27), schedule, clip_frames=9, color_match=False, progress=False
    )
    assert result.frames.shape == (27, H, W, 3)
    assert len(pipe.calls) == 4
    # continuity: clip k+1's reference is clip k's last generated frame; its pose starts at that frame's pose
    assert np.array_equal(pipe.calls[0]["image"], REFERENCE)
    for k in range(1, 4):
        start = result.clips[k].span.start
        assert np.array_equal(pipe.calls[k]["image"], result.frames[start])
        assert np.array_equal(pipe.calls[k]["pose"][0], pose_video(27)[start])
    # prompt switches with the clip that starts at frame 16
    assert [c["prompt"] for c in pipe.calls] == ["a sunny beach"] * 2 + ["a snowy street"] * 2
    # short last clip: 3 new frames padded to a valid 5 with the last pose, trimmed afterwards
    assert pipe.calls[3]["num_frames"] == 5
    assert np.array_equal(pipe.calls[3]["pose"][-1], pose_video(27)[-1])


def test_overlap_blends_across_the_seam():
    pipe = FakePipe()
    result = sample_long_video(
        pipe, REFERENCE, pose_video(15), "x", clip_frames=9, overlap=3, color_match=False, progress=False
    )
    second = result.clips[1].span
    assert second.start == 6
    assert np.array_equal(pipe.calls[1]["image"], result.frames[6])  # reference = first shared frame
    # the shared frames move from the first clip's values to the second clip's
    first_out = FakePipe()(REFERENCE, pose_video(15)[:9], "x", 9).frames[0]
    second_out = FakePipe()(result.frames[6], pose_video(15)[6:15], "x", 9).frames[0]
    first8 = np.round(first_out[8] * 255)
    second8 = np.round(second_out[2] * 255)
    assert np.abs(result.frames[8].astype(float) - (first8 / 3 + 2 * second8 / 3)).max() <= 2


def test_re_anchoring_uses_the_original_reference():
    pipe = FakePipe()
    result = sample_long_video(
        pipe, REFERENCE, pose_video(27), ["a", "b"], clip_frames=9, anchor_every=2, color_match=False, progress=False
    )
    assert [c.anchored for c in result.clips] == [True, False, True, False]
    assert np.array_equal(pipe.calls[2]["image"], REFERENCE)
    assert np.array_equal(pipe.calls[2]["pose"][0], pose_video(27)[0])  # frame 0 = the reference's own pose
    assert not np.array_equal(pipe.calls[1]["image"], REFERENCE)
    assert [c.prompt for c in result.clips] == ["a", "b", "b", "b"]  # a list: one per clip, the last repeats


def test_lab_round_trip_and_colour_matching_inside_the_mask():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    assert np.abs(lab_to_rgb(rgb_to_lab(frames)) * 255 - frames).max() < 0.6
    masks = np.zeros((4, 8, 8), bool)
    masks[:, 2:6, 2:6] = True
    target = lab_stats(frames, masks)
    shifted = np.clip(frames.astype(int) + 40, 0, 255).astype(np.uint8)
    matched = match_color(shifted, target, masks)
    mean, std = lab_stats(matched, masks)
    np.testing.assert_allclose(mean, target[0], atol=1.5)
    assert np.array_equal(matched[~masks], shifted[~masks])  # background untouched


def test_colour_matching_pulls_a_drifting_clip_back():
    class DriftingPipe(FakePipe):
        def __call__(self, *args, **kwargs):
            out = super().__call__(*args, **kwargs)
            out.frames = np.clip(out.frames + 0.1 * (len(self.calls) - 1), 0, 1)
            return out

    def drift(color_match):
        result = sample_long_video(
            DriftingPipe(), REFERENCE, pose_video(17), "x", clip_frames=9, color_match=color_match, progress=False
        )
        return abs(lab_stats(result.frames[9:])[0][0] - lab_stats(result.frames[:9])[0][0])

    assert drift(True) < drift(False) / 2


def test_prompt_files(tmp_path):
    timed = tmp_path / "timed.txt"
    timed.write_text("# background schedule\n0\tbeach\n8\tforest\n")
    schedule = PromptSchedule.from_file(timed)
    clips = plan_clips(17, 9)
    assert [schedule.prompt_for(c) for c in clips] == ["beach", "forest"]
    plain = tmp_path / "plain.txt"
    plain.write_text("beach\nforest\n")
    assert PromptSchedule.from_file(plain).per_clip == ["beach", "forest"]
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("0\tbeach\nforest\n")
    with pytest.raises(ValueError, match="mixes"):
        PromptSchedule.from_file(mixed)
    late = tmp_path / "late.txt"
    late.write_text("4\tbeach\n")
    with pytest.raises(ValueError, match="frame 0"):
        PromptSchedule.from_file(late)


def test_real_pipeline_long_video_with_clip_files(tmp_path):
    pipe = DynamiCtrlPipeline(**build_tiny_components("tiny-1.5"))
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    result = sample_long_video(
        pipe,
        rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        rng.integers(0, 256, (15, 32, 32, 3), dtype=np.uint8),
        ["a", "b"],
        clip_frames=9,
        num_inference_steps=1,
        save_clips_dir=tmp_path,
        progress=False,
    )
    assert result.frames.shape == (15, 32, 32, 3)
    clip_files = sorted(tmp_path.glob("clip_*.mp4"))
    assert [p.name for p in clip_files] == ["clip_000.mp4", "clip_001.mp4"]
    assert read_video(clip_files[1])[0].shape[0] == 7


def test_long_video_encodes_each_prompt_once(monkeypatch):
    """Across clips, prompt embeddings come from the pipeline's text cache: one T5 call per distinct text."""
    pipe = DynamiCtrlPipeline(**build_tiny_components("tiny-1.5"))
    pipe.set_progress_bar_config(disable=True)
    calls = []
    forward = pipe.text_encoder.forward

    def counting_forward(input_ids, *args, **kwargs):
        calls.append(input_ids.shape[0])
        return forward(input_ids, *args, **kwargs)

    monkeypatch.setattr(pipe.text_encoder, "forward", counting_forward)
    rng = np.random.default_rng(0)
    args = (rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), rng.integers(0, 256, (25, 32, 32, 3), dtype=np.uint8))
    kwargs = dict(clip_frames=9, num_inference_steps=1, progress=False, guidance_scale=2.0)
    cached = sample_long_video(pipe, *args, ["a", "a", "b"], **kwargs)
    assert len(calls) == 3  # "a", "b" and the empty negative prompt; 6 without the cache
    assert pipe.condition_cache is None  # the sampler's cache does not outlive the video
    calls.clear()
    uncached = sample_long_video(pipe, *args, ["a", "a", "b"], cache=False, **kwargs)
    assert len(calls) == 6
    np.testing.assert_array_equal(cached.frames, uncached.frames)


@pytest.mark.parametrize("layout", ["THW", "THW1"])
def test_person_masks_mask_chained_references_of_masked_reference_models(layout):
    class MaskPipe(FakePipe):
        def __call__(self, *args, reference_mask=None, **kwargs):
            out = super().__call__(*args, **kwargs)
            self.calls[-1]["mask"] = reference_mask
            return out

    masks = np.zeros((17, H, W), bool)  # 17 frames of 16 x 16: a (T, H, W) stack that is not an (H, W, C) image
    for t in range(17):
        masks[t, 2:10, t % 6 : t % 6 + 5] = True
    given = masks[..., None] if layout == "THW1" else masks
    first = masks[0].astype(np.uint8) * 255
    pipe = MaskPipe()
    sample_long_video(
        pipe, REFERENCE, pose_video(17), "x", clip_frames=9, person_masks=given, reference_mask=first, progress=False
    )
    assert np.array_equal(pipe.calls[0]["mask"], first)  # the original reference with its own mask
    assert np.array_equal(pipe.calls[1]["mask"], masks[8])  # clip 1 starts from output frame 8
    # a model without masked references: person masks only steer colour matching, references stay whole
    pipe = MaskPipe()
    sample_long_video(pipe, REFERENCE, pose_video(17), "x", clip_frames=9, person_masks=given, progress=False)
    assert [call["mask"] for call in pipe.calls] == [None, None]
