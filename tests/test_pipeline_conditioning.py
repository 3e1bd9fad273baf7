import numpy as np
import pytest
import torch
from PIL import Image

from dynamictrl.models.tiny import tiny_text_encoder, tiny_vae
from dynamictrl.pipelines.conditioning import (
    encode_prompt,
    encode_reference,
    encode_video,
    frames_to_tensor,
    latent_frame_padding,
    num_latent_frames,
    pad_latent_frames,
    tensor_to_frames,
)


@pytest.mark.parametrize(
    ("frames", "patch_t", "expected"),
    [(49, None, 13), (37, None, 10), (13, None, 4), (1, None, 1), (37, 2, 10), (49, 2, 14), (81, 2, 22), (9, 2, 4)],
)
def test_latent_frame_arithmetic(frames, patch_t, expected):
    assert num_latent_frames(frames, 4, patch_t) == expected


@pytest.mark.parametrize("frames", [48, 50, 0, 10])
def test_invalid_frame_counts_name_the_valid_ones(frames):
    with pytest.raises(ValueError, match="num_frames"):
        num_latent_frames(frames, 4)


def test_latent_padding_prepends_first_frame():
    latents = torch.arange(3.0).view(1, 3, 1, 1, 1).expand(1, 3, 2, 2, 2)
    padded, pad = pad_latent_frames(latents, 2)
    assert pad == 1 == latent_frame_padding(3, 2)
    assert padded.shape[1] == 4
    assert padded[0, :, 0, 0, 0].tolist() == [0.0, 0.0, 1.0, 2.0]
    assert pad_latent_frames(latents, None)[1] == 0


def test_encode_video_and_reference_shapes_and_scaling():
    vae = tiny_vae()
    vae.register_to_config(scaling_factor=0.5)
    video = torch.rand(2, 3, 9, 16, 24) * 2 - 1
    latents = encode_video(vae, video, sample=False)
    assert latents.shape == (2, 3, 4, 2, 3)
    raw = vae.encode(video).latent_dist.mode().permute(0, 2, 1, 3, 4)
    torch.testing.assert_close(latents, raw * 0.5)

    image = video[:, :, 0]
    ref = encode_reference(vae, image, 3, sample=False)
    assert ref.shape == (2, 3, 4, 2, 3)
    assert torch.all(ref[:, 1:] == 0)
    unscaled = encode_reference(vae, image, 3, sample=False, scale_latents=False)
    torch.testing.assert_close(ref[:, 0], unscaled[:, 0] * 0.5)


def test_encode_prompt_shape_and_distinct_prompts():
    encoder, tokenizer = tiny_text_encoder(16)
    out = encode_prompt(tokenizer, encoder, ["a red room", "a beach"], 8, "cpu", torch.float32)
    assert out.shape == (2, 8, 16)
    assert not torch.allclose(out[0], out[1])


def test_frames_tensor_round_trip_and_conversions():
    frames = np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    tensor = frames_to_tensor(frames)
    assert tensor.shape == (1, 3, 3, 5, 7)
    assert tensor.min() >= -1 and tensor.max() <= 1
    assert np.array_equal(tensor_to_frames(tensor)[0], frames)
    assert np.array_equal(tensor_to_frames(tensor[0]), frames)
    grey = Image.fromarray(frames[0, ..., 0])
    assert frames_to_tensor([grey, grey]).shape == (1, 3, 2, 5, 7)
    rgba = np.concatenate([frames[0], np.full((5, 7, 1), 255, np.uint8)], axis=-1)
    assert np.array_equal(tensor_to_frames(frames_to_tensor(rgba))[0, 0], frames[0])
