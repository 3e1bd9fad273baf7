"""The small rules that live once (prompts.txt, pixel range, clip length, dtype names, default device) and callers
that apply exactly that rule."""

import numpy as np
import pytest
import torch

from dynamictrl import devices
from dynamictrl.data.frames import is_frame_count, latent_frame_count
from dynamictrl.data.pixels import signed_to_uint8, to_model_range, uint8_to_signed
from dynamictrl.data.prompts import read_clip_prompts, read_prompts, write_prompts


def test_clip_prompts_are_keyed_by_file_name_or_stem_with_text_stripped(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("videos/a.mp4##### a person \n\nb.mp4#####two words\n")
    assert read_prompts(path) == {"videos/a.mp4": " a person ", "b.mp4": "two words"}
    assert read_clip_prompts(path) == {"a.mp4": "a person", "b.mp4": "two words"}
    assert read_clip_prompts(path, stem=True) == {"a": "a person", "b": "two words"}
    write_prompts(path, {"c.mp4": "x", "d.mp4": "y"})
    assert read_clip_prompts(path, stem=True) == {"c": "x", "d": "y"}
    path.write_text("c.mp4#####x\nno separator\n")
    with pytest.raises(ValueError, match=r"prompts.txt:2: expected"):
        read_clip_prompts(path)


def test_every_uint8_level_maps_into_minus_one_one_and_back_unchanged():
    levels = np.arange(256, dtype=np.uint8)
    signed = uint8_to_signed(levels)
    assert signed.dtype == torch.float32 and signed[0] == -1 and signed[-1] == 1
    assert torch.all(signed[1:] > signed[:-1])
    assert torch.equal(signed_to_uint8(signed), torch.from_numpy(levels))


def test_signed_to_uint8_rounds_to_the_nearest_level_and_saturates():
    values = torch.tensor([-3.0, -1.0, -0.999, 0.0, 0.5, 1.0, 7.0])
    assert signed_to_uint8(values).tolist() == [0, 0, 0, 128, 191, 255, 255]  # 127.5 -> 128 (half to even)
    # the clamp-first form the VAE's PSNR used is the same function on any input
    noise = torch.randn(4, 3, 5, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.5
    assert torch.equal(signed_to_uint8(noise).float(), noise.clamp(-1, 1).add(1).mul(127.5).round())


def test_to_model_range_is_channels_first_in_minus_one_one():
    frames = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)  # (T, H, W, 3)
    video = to_model_range(frames)
    assert video.shape == (3, 3, 4, 5)
    assert torch.equal(signed_to_uint8(video).permute(1, 2, 3, 0), torch.from_numpy(frames))


def test_frame_count_rule_and_latent_frames():
    assert [n for n in range(20) if is_frame_count(n)] == [1, 5, 9, 13, 17]
    assert [n for n in range(20) if is_frame_count(n, min_k=1)] == [5, 9, 13, 17]
    assert [n for n in range(20) if is_frame_count(n, ratio=8)] == [1, 9, 17]
    assert not is_frame_count(-3)
    assert [latent_frame_count(n) for n in (1, 37, 49, 81)] == [1, 10, 13, 21]


def test_every_frame_count_check_applies_the_one_rule():
    from dynamictrl.cli import frame_count
    from dynamictrl.errors import UserError
    from dynamictrl.pipelines.conditioning import check_num_frames
    from dynamictrl.pipelines.long_video import plan_clips
    from dynamictrl.puppet.vae import VAETrainConfig

    def refuses(error, call, *args, **kwargs) -> bool:
        try:
            call(*args, **kwargs)
        except error:
            return True
        return False

    for n in range(1, 30):
        at_least_one_step = is_frame_count(n, 4, min_k=1)
        assert refuses(UserError, frame_count, "--frames", n) == (not at_least_one_step)
        assert refuses(ValueError, plan_clips, 40, n) == (not at_least_one_step)
        assert refuses(ValueError, check_num_frames, n, 4) == (not is_frame_count(n))
        assert refuses(ValueError, VAETrainConfig, frames=n) == (not is_frame_count(n))


def test_dtype_names_resolve_once_and_unknown_names_list_the_allowed_ones():
    from dynamictrl.cli import animation as cli

    assert [devices.torch_dtype(n) for n in ("fp32", "float32", "bf16", "bfloat16", "fp16", "float16")] == [
        torch.float32,
        torch.float32,
        torch.bfloat16,
        torch.bfloat16,
        torch.float16,
        torch.float16,
    ]
    assert cli.DTYPES is devices.DTYPES
    with pytest.raises(ValueError, match=r"unknown dtype 'half'; allowed: \['bf16', 'bfloat16'"):
        cli.parse_dtype("half", "cpu")
    assert cli.parse_dtype(None, "cuda:0") == torch.bfloat16 and cli.parse_dtype(None, "cpu") == torch.float32


def test_default_device_follows_cuda_availability_for_every_caller(monkeypatch):
    from dynamictrl.cli import animation as cli
    from dynamictrl.preprocess import captions, masks

    assert cli.default_device is masks.default_device is captions.default_device is devices.default_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.default_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.default_device() == "cpu"
