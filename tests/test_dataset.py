"""Training data: the official layout, clip sampling, reference/pose convention, masks, bad files, the sampler."""

import numpy as np
import pytest
import torch

from dynamictrl.data.dataset import ResumableSampler, VideoPoseDataset, collate, list_clips
from dynamictrl.data.io import read_video
from dynamictrl.data.prompts import read_clip_prompts
from dynamictrl.data.toy import write_toy_dataset


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), num_clips=3, num_frames=13, size=32)


def test_missing_pose_files_fail_at_start_listing_them(toy, tmp_path):
    root = write_toy_dataset(tmp_path / "d", num_clips=3, num_frames=5, size=16, masks=False)
    (root / "poses" / "clip001.mp4").unlink()
    (root / "poses" / "clip002.mp4").unlink()
    with pytest.raises(ValueError, match=r"2 of 3 videos have no pose video: .*clip001\.mp4, .*clip002\.mp4"):
        list_clips(root)
    with pytest.raises(FileNotFoundError, match="videos/"):
        VideoPoseDataset(tmp_path / "nothing", 5, 16, 16)


def test_prompts_file_format(tmp_path):
    (tmp_path / "prompts.txt").write_text("a.mp4#####a person dancing\n\nb.mp4##### two words \n")
    assert read_clip_prompts(tmp_path / "prompts.txt") == {"a.mp4": "a person dancing", "b.mp4": "two words"}
    (tmp_path / "prompts.txt").write_text("a.mp4 no separator\n")
    with pytest.raises(ValueError, match="prompts.txt:1"):
        read_clip_prompts(tmp_path / "prompts.txt")


def test_clip_reference_and_pose_convention(toy):
    ds = VideoPoseDataset(toy, num_frames=5, height=32, width=32, frame_stride=2, random_start=True, seed=3)
    sample = ds[(1, 0)]
    assert sample["video"].shape == (3, 5, 32, 32) and sample["pose"].shape == (3, 5, 32, 32)
    assert sample["reference"].shape == (3, 32, 32)
    assert sample["video"].min() >= -1 and sample["video"].max() <= 1
    # the reference is the first sampled frame, and the pose clip covers the same frames with the same stride
    assert torch.equal(sample["reference"], sample["video"][:, 0])
    frames, _ = read_video(toy / "videos" / "clip001.mp4")
    poses, _ = read_video(toy / "poses" / "clip001.mp4")
    start = sample["start"]
    expected = torch.from_numpy(frames[start : start + 9 : 2]).permute(3, 0, 1, 2).float() / 127.5 - 1
    assert torch.allclose(sample["video"], expected, atol=1e-6)
    expected_pose = torch.from_numpy(poses[start : start + 9 : 2]).permute(3, 0, 1, 2).float() / 127.5 - 1
    assert torch.allclose(sample["pose"], expected_pose, atol=1e-6)
    # deterministic per (seed, epoch, index); another epoch may start elsewhere
    assert torch.equal(ds[(1, 0)]["video"], sample["video"])
    starts = {ds[(1, epoch)]["start"] for epoch in range(8)}
    assert len(starts) > 1 and all(0 <= s <= 13 - 9 for s in starts)


def test_reference_masked_to_the_person(toy):
    always = VideoPoseDataset(toy, 5, 32, 32, random_start=False, reference_mask_prob=1.0)
    never = VideoPoseDataset(toy, 5, 32, 32, random_start=False, reference_mask_prob=0.0)
    masked, plain = always[0]["reference"], never[0]["reference"]
    mask = read_video(toy / "masks" / "clip000.mp4")[0][0, ..., 0] > 127  # (H, W) person
    assert torch.all(masked[:, torch.from_numpy(~mask)] == 0.0)  # background mid-grey, as the pipeline does
    assert torch.equal(masked[:, torch.from_numpy(mask)], plain[:, torch.from_numpy(mask)])
    assert not torch.equal(masked, plain)


def test_corrupt_video_is_skipped_and_counted(toy, tmp_path, caplog):
    root = write_toy_dataset(tmp_path / "d", num_clips=3, num_frames=5, size=16, masks=False)
    (root / "videos" / "clip001.mp4").write_bytes(b"not a video at all")
    ds = VideoPoseDataset(root, 5, 16, 16, random_start=False)
    sample = ds[1]
    assert sample["name"] == "clip002" and sample["skipped"] == 1
    assert "clip001" in caplog.text
    assert ds[0]["skipped"] == 0
    batch = collate([ds[0], ds[1]])
    assert batch["skipped"] == 1 and batch["video"].shape == (2, 3, 5, 16, 16) and len(batch["prompt"]) == 2
    for name in ("clip000", "clip002"):
        (root / "videos" / f"{name}.mp4").write_bytes(b"broken")
    with pytest.raises(RuntimeError, match="no readable clip"):
        VideoPoseDataset(root, 5, 16, 16)[0]


def test_short_video_is_skipped(tmp_path):
    root = write_toy_dataset(tmp_path / "d", num_clips=2, num_frames=5, size=16, masks=False)
    write_toy_dataset(tmp_path / "short", num_clips=1, num_frames=3, size=16, masks=False)
    for sub in ("videos", "poses"):
        (root / sub / "clip000.mp4").write_bytes((tmp_path / "short" / sub / "clip000.mp4").read_bytes())
    sample = VideoPoseDataset(root, 5, 16, 16)[0]
    assert sample["name"] == "clip001" and sample["skipped"] == 1


def test_sampler_resumes_and_splits_ranks():
    full = ResumableSampler(10, batch_size=2, seed=1)
    stream = [x for _, x in zip(range(30), iter(full))]
    assert full.batches_per_epoch == 5
    assert sorted(i for i, e in stream[:10]) == list(range(10)) and {e for _, e in stream[:10]} == {0}
    assert [i for i, _ in stream[:10]] != list(range(10))  # shuffled
    resumed = ResumableSampler(10, batch_size=2, seed=1, start_batch=7)
    assert [x for _, x in zip(range(16), iter(resumed))] == stream[14:30]
    ranks = [ResumableSampler(10, batch_size=2, seed=1, rank=r, world_size=2) for r in range(2)]
    epoch0 = [r.epoch_order(0) for r in ranks]
    assert len(epoch0[0]) == len(epoch0[1]) == 4  # 2 batches each; the odd leftover pair is dropped
    assert not set(epoch0[0]) & set(epoch0[1])
    tiny = ResumableSampler(3, batch_size=2, seed=0, world_size=2)  # smaller than one global batch: repeated
    assert len(tiny.epoch_order(0)) == 2
    assert np.all(np.array(tiny.epoch_order(0)) < 3)
