"""DynamiCtrlPipeline on tiny random components (CPU, seconds)."""

import numpy as np
import PIL.Image
import pytest
import torch

import dynamictrl.pipelines.pipeline_dynamictrl as pipeline_module
from dynamictrl.models.tiny import build_tiny_components
from dynamictrl.pipelines import DynamiCtrlPipeline

SIZE = 64  # the tiny 1.0 preset has learned positions: 64x64 only
RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
POSE = RNG.integers(0, 256, (13, SIZE, SIZE, 3), dtype=np.uint8)


def make_pipe(variant="tiny", **kwargs):
    pipe = DynamiCtrlPipeline(**build_tiny_components(variant, **kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


class TransformerSpy:
    """Records what the transformer receives at every step."""

    def __init__(self, pipe):
        self.calls = []
        self.forward = pipe.transformer.forward

        def spy(*args, **kwargs):
            self.calls.append({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()})
            return self.forward(*args, **kwargs)

        pipe.transformer.forward = spy


def run(pipe, **kwargs):
    args = dict(image=IMAGE, pose_video=POSE, prompt="a dancer on a beach", num_frames=9, num_inference_steps=2)
    args.update(kwargs)
    args.setdefault("generator", torch.Generator().manual_seed(0))
    return pipe(**args).frames


@pytest.mark.parametrize(
    ("mode", "output_type"), [("padaln", "pil"), ("uvt", "np"), ("cross_attn", "pt"), ("none", "latent")]
)
def test_one_clip_per_pose_control_and_output_type(mode, output_type):
    pipe = make_pipe(pose_control=mode)
    spy = TransformerSpy(pipe)
    frames = run(pipe, output_type=output_type)
    if output_type == "pil":
        assert len(frames) == 1 and len(frames[0]) == 9
        assert isinstance(frames[0][0], PIL.Image.Image) and frames[0][0].size == (SIZE, SIZE)
    elif output_type == "np":
        assert frames.shape == (1, 9, SIZE, SIZE, 3) and 0 <= frames.min() and frames.max() <= 1
    elif output_type == "pt":
        assert frames.shape == (1, 9, 3, SIZE, SIZE)
    else:
        assert frames.shape == (1, 3, 4, SIZE // 8, SIZE // 8)
    assert len(spy.calls) == 2
    call = spy.calls[0]
    assert call["hidden_states"].shape == (2, 3, 8, SIZE // 8, SIZE // 8)  # CFG batch, noise ‖ reference
    assert (call["pose_latents"] is None) == (mode == "none")
    assert torch.isfinite(torch.as_tensor(np.asarray(frames[0]) if output_type == "pil" else frames)).all()


def test_output_types_agree_and_seed_reproduces():
    pipe = make_pipe()
    as_np = run(pipe, output_type="np")
    as_pt = run(pipe, output_type="pt")
    np.testing.assert_allclose(as_np, as_pt.permute(0, 1, 3, 4, 2).numpy(), atol=1e-6)
    other = run(pipe, output_type="np", generator=torch.Generator().manual_seed(1))
    assert not np.allclose(as_np, other)


def test_cfg_is_on_text_only_and_can_be_turned_off():
    pipe = make_pipe()
    spy = TransformerSpy(pipe)
    run(pipe, guidance_scale=3.0, negative_prompt="blurry")
    call = spy.calls[0]
    uncond, cond = call["hidden_states"].chunk(2)
    c = pipe.vae.config.latent_channels
    assert torch.equal(uncond, cond)  # same noise and the same reference latent in both branches
    assert torch.equal(*call["pose_latents"].chunk(2))  # the unconditional branch keeps the pose
    assert not torch.equal(*call["encoder_hidden_states"].chunk(2))  # negative prompt vs prompt
    assert call["hidden_states"][:, 1:, c:].abs().max() == 0  # reference latent only in frame 0

    spy.calls.clear()
    run(pipe, guidance_scale=1.0)
    assert spy.calls[0]["hidden_states"].shape[0] == 1
    assert spy.calls[0]["pose_latents"].shape[0] == 1


def test_guidance_changes_the_result():
    pipe = make_pipe()
    off = run(pipe, output_type="latent", guidance_scale=1.0)
    on = run(pipe, output_type="latent", guidance_scale=5.0)
    assert not torch.allclose(off, on)


def test_model_without_text_skips_the_text_encoder():
    pipe = make_pipe(use_text=False)
    spy = TransformerSpy(pipe)

    def forbidden(*args, **kwargs):
        raise AssertionError("text encoder called for a use_text=False model")

    pipe.text_encoder.forward = forbidden
    frames = run(pipe, output_type="np", guidance_scale=3.0)
    assert frames.shape == (1, 9, SIZE, SIZE, 3)
    assert spy.calls[0]["encoder_hidden_states"] is None
    assert spy.calls[0]["hidden_states"].shape[0] == 1  # no text, so no guidance batch


def test_masked_reference_greys_the_background(monkeypatch):
    seen = []
    original = pipeline_module.encode_reference

    def spy(vae, image, *args, **kwargs):
        seen.append(image.clone())
        return original(vae, image, *args, **kwargs)

    monkeypatch.setattr(pipeline_module, "encode_reference", spy)
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[16:48, 20:40] = 255
    pipe = make_pipe()
    run(pipe, reference_mask=mask, output_type="latent")
    run(pipe, reference_mask=None, output_type="latent")
    masked, plain = seen
    inside = torch.from_numpy(mask > 0)
    assert masked[0, :, ~inside].abs().max() == 0  # background: 0 = mid-grey in [-1, 1]
    torch.testing.assert_close(masked[0, :, inside], plain[0, :, inside])
    # RGBA / RGB masks are converted, not rejected
    rgba = np.repeat(mask[..., None], 4, axis=-1)
    run(pipe, reference_mask=rgba, output_type="latent")
    torch.testing.assert_close(seen[-1], masked)


def test_cogvideox_15_pads_latent_frames_and_passes_ofs():
    pipe = make_pipe("tiny-1.5")
    spy = TransformerSpy(pipe)
    frames = run(pipe, output_type="np", num_frames=9, height=32, width=32)
    assert frames.shape == (1, 9, 32, 32, 3)
    call = spy.calls[0]
    assert call["hidden_states"].shape[1] == 4  # 3 latent frames padded to a multiple of patch_size_t=2
    assert call["pose_latents"].shape[1] == 4
    assert float(call["ofs"][0]) == 2.0
    assert run(pipe, output_type="latent", num_frames=9, height=32, width=32).shape[1] == 3  # padding dropped
    assert run(pipe, output_type="np", num_frames=13, height=32, width=32).shape[1] == 13  # 4 latents, no padding


def test_reference_latent_scaling_option(monkeypatch):
    scales = []
    original = pipeline_module.encode_reference

    def spy(*args, scale_latents=True, **kwargs):
        scales.append(scale_latents)
        return original(*args, scale_latents=scale_latents, **kwargs)

    monkeypatch.setattr(pipeline_module, "encode_reference", spy)
    pipe = make_pipe()
    run(pipe, output_type="latent")
    pipe.vae.register_to_config(invert_scale_latents=True)  # CogVideoX 1.5's VAE: the official code uses 1.0
    run(pipe, output_type="latent")
    run(pipe, output_type="latent", scale_reference_latents=True)
    assert scales == [True, False, True]


def test_callback_on_step_end_sees_and_replaces_latents():
    pipe = make_pipe()
    steps = []

    def callback(pipeline, step, timestep, tensors):
        steps.append(step)
        return {"latents": torch.zeros_like(tensors["latents"])}

    out = run(pipe, output_type="latent", callback_on_step_end=callback, num_inference_steps=3)
    assert steps == [0, 1, 2]
    assert out.abs().max() == 0


def test_rgba_and_grey_inputs_are_converted():
    pipe = make_pipe()
    rgba = np.concatenate([IMAGE, np.full((SIZE, SIZE, 1), 255, np.uint8)], axis=-1)
    base = run(pipe, output_type="latent")
    torch.testing.assert_close(run(pipe, image=rgba, output_type="latent"), base)
    grey = PIL.Image.fromarray(IMAGE[..., 0])
    assert run(pipe, image=grey, output_type="latent").shape == base.shape
    big = np.asarray(PIL.Image.fromarray(IMAGE).resize((96, 128)))  # other sizes are resized and centre-cropped
    assert run(pipe, image=big, output_type="latent").shape == base.shape


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(image=None), "image is required"),
        (dict(pose_video=POSE[:5], num_frames=9), "has 5 frames.*long-video sampler"),
        (dict(pose_video=POSE[:0]), "empty"),
        (dict(height=60), "height=60 must be a positive multiple of 16"),
        (dict(width=40), "width=40"),
        (dict(reference_mask=np.ones((32, 32), np.uint8)), r"reference_mask has size \(32, 32\)"),
        (dict(num_frames=10), "num_frames=10 is not k\\*4\\+1"),
        (dict(output_type="gif"), "output_type='gif'"),
        (dict(prompt=None), "prompt"),
        (dict(pose_video=None), "pose_video is required"),
    ],
)
def test_bad_inputs_name_the_problem(kwargs, message):
    pipe = make_pipe()
    with pytest.raises(ValueError, match=message):
        run(pipe, **kwargs)


def test_fixed_resolution_of_learned_positions_is_explained():
    with pytest.raises(ValueError, match="learned positional embeddings"):
        run(make_pipe(), height=32, width=32)


def test_save_and_load_round_trip(tmp_path):
    pipe = make_pipe(pose_control="cross_attn")
    pipe.save_pretrained(tmp_path / "model")
    loaded = DynamiCtrlPipeline.from_pretrained(tmp_path / "model")
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.transformer) is type(pipe.transformer)
    assert loaded.transformer.config.pose_control == "cross_attn"
    torch.testing.assert_close(run(loaded, output_type="latent"), run(pipe, output_type="latent"))
