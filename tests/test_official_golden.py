"""Golden test: our pipeline, loaded as a user would, reproduces the official DynamiCtrl inference pipeline.

The fixtures (tests/fixtures/official-pipeline/, README there) hold the official pipeline's outputs on tiny random
components, CogVideoX 1.0-like (v10) and 1.5-like (v15). Each folder is loaded with
``DynamiCtrlPipeline.from_pretrained(folder)`` and run with the documented call (the official inference script's
DPM scheduler with trailing timesteps, 3 steps, guidance 3, seed 42, no negative prompt). A refactor that changes
any convention (reference-latent scaling, the pose latents, the negative prompt, the seed, CogVideoX 1.5's ofs and
frame handling) moves the latents far above the tolerance (see ``perturbation_effects_on_official_latents`` in each
reference.json).
"""

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import CogVideoXDPMScheduler
from safetensors.torch import load_file

from dynamictrl.models import DynamiCtrlTransformer3DModel
from dynamictrl.pipelines import DynamiCtrlPipeline

FIXTURES = Path(__file__).parent / "fixtures" / "official-pipeline"
VARIANTS = ("v10", "v15")
TOLERANCE = 1e-4  # on latents, as the fixtures demand; traces are held to the same bound


class Golden:
    """One fixture variant: its folder, the documented call, its inputs and the official outputs."""

    def __init__(self, variant: str):
        self.folder = FIXTURES / variant
        reference = json.loads((self.folder / "reference.json").read_text())
        self.call = reference["inputs"]
        self.tolerance = reference["tolerance_latents"]
        self.inputs = load_file(self.folder / "inputs.safetensors")
        self.official = load_file(self.folder / "official.safetensors")

    def kwargs(self, **overrides):
        """The documented call: the official script's arguments in our pipeline's names."""
        call = self.call
        kwargs = dict(
            image=self.inputs["image"].numpy(),
            pose_video=self.inputs["pose"].numpy(),
            prompt=call["prompt"],
            num_frames=call["num_frames"],
            height=call["height"],
            width=call["width"],
            num_inference_steps=call["steps"],
            guidance_scale=call["guidance_scale"],
            generator=torch.Generator().manual_seed(call["seed"]),
            latents=self.inputs["latents"],
            output_type="latent",
        )
        kwargs.update(overrides)
        return kwargs


def load_as_user(folder) -> DynamiCtrlPipeline:
    """What a user of the official release does: load the folder, use the official script's scheduler."""
    pipe = DynamiCtrlPipeline.from_pretrained(folder)
    pipe.scheduler = CogVideoXDPMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module", params=VARIANTS)
def case(request):
    golden = Golden(request.param)
    return golden, load_as_user(golden.folder)


def assert_close(actual, expected, what, tolerance=TOLERANCE):
    actual, expected = torch.as_tensor(actual).float(), torch.as_tensor(expected).float()
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != official {tuple(expected.shape)}"
    diff = (actual - expected).abs().max().item()
    assert diff <= tolerance, f"{what}: max |ours - official| = {diff:.3g} > {tolerance}"


def test_folder_loads_with_our_classes(case):
    golden, pipe = case
    assert type(pipe.transformer) is DynamiCtrlTransformer3DModel
    assert pipe.transformer.config.pose_control == "padaln"


def test_final_latents_match_official(case):
    golden, pipe = case
    latents = pipe(**golden.kwargs()).frames
    assert_close(latents, golden.official["latents"], "final latents", golden.tolerance)


def test_latents_from_the_seed_alone_match_official(case):
    """No ``latents=``: the seed draws the initial noise (and the VAE samples) as in the official pipeline."""
    golden, pipe = case
    latents = pipe(**golden.kwargs(latents=None)).frames
    assert_close(latents, golden.official["latents_seed_only"], "seed-only latents", golden.tolerance)


def test_traces_match_official(case):
    """Every intermediate the official run recorded: prompt embeddings, condition latents, first transformer input
    and output, rotary tables, timesteps, each denoising step."""
    golden, pipe = case
    trace = {k.removeprefix("trace."): v for k, v in golden.official.items() if k.startswith("trace.")}
    calls, steps = [], []

    def record_call(module, args, kwargs, output):
        calls.append({**kwargs, "output": output[0]})

    def record_step(pipe, i, t, tensors):
        steps.append(tensors["latents"].clone())
        return {}

    handle = pipe.transformer.register_forward_hook(record_call, with_kwargs=True)
    try:
        pipe(**golden.kwargs(callback_on_step_end=record_step))
    finally:
        handle.remove()

    first = calls[0]
    channels = golden.inputs["latents"].shape[2]
    assert_close(first["encoder_hidden_states"], trace["prompt_embeds"], "prompt embeddings [negative; positive]")
    assert_close(first["hidden_states"][:, :, :channels], trace["noisy_input"], "first transformer input (noise)")
    assert_close(first["hidden_states"][:, :, channels:], trace["image_latents"], "reference latents as fed")
    assert_close(first["pose_latents"], trace["pose_latents"], "pose latents as fed")
    assert_close(first["timestep"], trace["timestep"], "first timestep")
    assert_close(first["output"], trace["transformer_out_0"], "first transformer output")
    cos, sin = first["image_rotary_emb"]
    assert_close(cos, trace["rotary_cos"], "rotary cos")
    assert_close(sin, trace["rotary_sin"], "rotary sin")
    if "ofs" in trace:
        assert_close(first["ofs"], trace["ofs"], "ofs")
    else:
        assert first["ofs"] is None
    assert_close(pipe.scheduler.timesteps, trace["timesteps"], "timesteps")
    assert len(steps) == golden.call["steps"]
    for i, latents in enumerate(steps):
        assert_close(latents, trace[f"step_out_{i}"], f"latents after step {i}")


def test_decoded_frames_match_official(case):
    """output_type="np": the clip's frames (the official v15 run returns all 16 decoded frames; ours the 13 asked)."""
    golden, pipe = case
    frames = pipe(**golden.kwargs(output_type="np")).frames[0]  # (F, H, W, 3) in [0, 1]
    assert frames.shape[0] == golden.call["num_frames"]
    assert_close(frames, golden.official["frames"][: golden.call["num_frames"]], "decoded frames")


def test_off_size_reference_stretched_like_official_matches(case):
    """The official code stretches a reference of another size to H×W with Lanczos; ours resizes to cover and
    centre-crops (the project's one resize policy), so a user who wants the official result stretches first."""
    golden, pipe = case
    height, width = golden.call["height"], golden.call["width"]
    stretched = PIL.Image.fromarray(golden.inputs["image_offsize"].numpy()).resize((width, height), PIL.Image.LANCZOS)
    latents = pipe(**golden.kwargs(image=np.asarray(stretched))).frames
    assert_close(latents, golden.official["latents_offsize"], "off-size latents", golden.tolerance)
