"""Person masks: pose fallback against the synthetic world's exact masks, SAM plumbing on a tiny random SAM,
and tools/make_masks.py outputs."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dynamictrl.data.io import read_image, read_video, write_video
from dynamictrl.pose.keypoints import PoseSequence
from dynamictrl.preprocess.masks import SamMasker, iou, mask_to_uint8, pose_mask, pose_masks, temporal_vote

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("make_masks_tool", ROOT / "tools" / "make_masks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fallback_matches_synthetic_puppet():
    from dynamictrl.puppet.world import make_sample

    ious, coverage = [], []
    for seed in range(4):
        sample = make_sample(seed, size=128, frames=6, render_pose=False)
        masks = pose_masks(sample.keypoints)
        assert masks.shape == sample.masks.shape and masks.dtype == bool
        for pred, true in zip(masks, sample.masks):
            ious.append(iou(pred, true))
            coverage.append((pred & true).sum() / true.sum())
    # Measured 0.79 mean IoU (min 0.68) and 94.5 % coverage at these settings.
    assert np.mean(ious) > 0.7 and min(ious) > 0.55
    assert np.mean(coverage) > 0.88


def test_fallback_on_hand_made_skeleton():
    from test_pose_render import BODY

    mask = pose_mask(BODY, np.ones(18), 256, 256)
    for j in range(18):
        x, y = BODY[j].astype(int)
        assert mask[y, x], f"joint {j} not covered"
    assert not mask[:, :40].any() and mask.mean() < 0.3  # an envelope, not the whole frame
    score = np.ones(18)
    score[[8, 9, 10, 11, 12, 13]] = 0  # no legs, no hips: half body still masked from shoulder width
    half = pose_mask(BODY, score, 256, 256)
    assert half.any() and not half[200:].any()
    assert not pose_mask(BODY, np.zeros(18), 256, 256).any()


def test_temporal_vote_removes_flicker():
    masks = np.zeros((5, 4, 4), bool)
    masks[:, 1:3, 1:3] = True
    masks[2] = False  # a one-frame dropout
    masks[4, 0, 0] = True  # a one-frame speck
    out = temporal_vote(masks, 3)
    assert out[2, 1:3, 1:3].all() and not out[3, 0, 0]
    assert mask_to_uint8(out).shape == (5, 4, 4, 3)


@pytest.fixture(scope="module")
def tiny_sam():
    pytest.importorskip("torch")
    from transformers import SamConfig, SamModel, SamProcessor
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    processor = SamProcessor(
        image_processor=SamImageProcessorPil(
            size={"longest_edge": 64},
            pad_size={"height": 64, "width": 64},
            mask_size={"longest_edge": 16},
            mask_pad_size={"height": 16, "width": 16},
        )
    )
    config = SamConfig(
        vision_config=dict(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=64, patch_size=16,
            output_channels=16, mlp_dim=32, global_attn_indexes=[0], window_size=0, num_pos_feats=8,
        ),
        prompt_encoder_config=dict(hidden_size=16, image_size=64, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, mlp_dim=32,
                                 iou_head_hidden_dim=16),
    )  # fmt: skip
    return SamModel(config).eval(), processor


def test_sam_prompts_and_tool(tiny_sam, tmp_path):
    from test_pose_render import BODY

    model, processor = tiny_sam
    model.save_pretrained(tmp_path / "sam")
    processor.save_pretrained(tmp_path / "sam")
    masker = SamMasker(tmp_path / "sam", device="cpu")
    body, score = BODY / 4, np.ones(18)
    score[0] = 0.1
    points, box = masker.prompts(body, score, 64, 64)
    assert len(points) == 8 and [body[0, 0], body[0, 1]] not in points
    assert box[0] <= body[1:, 0].min() and box[2] >= body[1:, 0].max() and box[3] <= 63
    frames = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), np.uint8)
    seq = PoseSequence(np.stack([body, body]), np.stack([score, score]), 64, 64)
    masks = masker.video_masks(frames, seq, progress=False)
    assert masks.shape == (2, 64, 64) and masks.dtype == bool
    video = write_video(tmp_path / "in.mp4", frames)
    kp = seq.save(tmp_path / "kp.npz")
    tool = _tool()
    assert (
        tool.main(
            [str(video), "--keypoints", str(kp), "--sam-dir", str(tmp_path / "sam"), "--out", str(tmp_path / "m.mp4")]
        )
        == 0
    )
    assert read_video(tmp_path / "m.mp4")[0].shape == (2, 64, 64, 3)
    with pytest.raises(FileNotFoundError, match="sam-vit-base"):
        SamMasker(tmp_path / "nowhere")


def test_tool_fallback_outputs(tmp_path, capsys):
    from dynamictrl.puppet.world import make_sample

    sample = make_sample(0, size=64, frames=3, render_pose=False)
    video = write_video(tmp_path / "in.mp4", sample.video, lossless=True)
    kp = sample.keypoints.save(tmp_path / "kp.json")
    tool = _tool()
    assert tool.main([str(video), "--keypoints", str(kp), "--out", str(tmp_path / "masks.mp4")]) == 0
    frames, _ = read_video(tmp_path / "masks.mp4")
    np.testing.assert_array_equal(frames[..., 0] > 127, pose_masks(sample.keypoints))
    assert tool.main([str(video), "--keypoints", str(kp), "--out", str(tmp_path / "pngs")]) == 0
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert read_image(tmp_path / "pngs" / "00001.png", mode="L").shape == (64, 64)
    assert tool.main([str(video), "--keypoints", str(kp), "--out", str(tmp_path / "one.png")]) == 2
    short = sample.keypoints[:2].save(tmp_path / "short.npz")
    assert tool.main([str(video), "--keypoints", str(short), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "3 frames but the keypoints have 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main(["--help"])
