"""The one model spec: clip encoding, the transformer call, the latent cache (writer + reader), and the pipeline's
diffusers-style methods (encode_prompt, prepare_latents, check_inputs before any work, current_timestep)."""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from dynamictrl.data.latent_cache import LatentCacheWriter, LatentDataset
from dynamictrl.models.tiny import build_tiny_components
from dynamictrl.pipelines import DynamiCtrlPipeline
from dynamictrl.pipelines.conditioning import (
    TransformerCall,
    encode_clip,
    encode_pose,
    encode_reference,
    encode_video,
)

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
POSE = RNG.integers(0, 256, (9, SIZE, SIZE, 3), dtype=np.uint8)


def make_pipe(variant="tiny", **kwargs):
    pipe = DynamiCtrlPipeline(**build_tiny_components(variant, **kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def clip(frames=9, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(batch, 3, frames, SIZE, SIZE, generator=g) * 2 - 1
    pose = torch.rand(batch, 3, frames, SIZE, SIZE, generator=g) * 2 - 1
    return video, pose, video[:, :, 0]


# ---------------------------------------------------------------------------------------------------- encoding


def test_encode_clip_draws_target_pose_reference_in_that_order_from_one_generator():
    vae = build_tiny_components()["vae"]
    video, pose, reference = clip()
    got = encode_clip(vae, video, pose, reference, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    want_latents = encode_video(vae, video, generator=g)
    want_pose = encode_video(vae, pose, generator=g)
    want_reference = encode_reference(vae, reference, want_latents.shape[1], generator=g)
    assert torch.equal(got["latents"], want_latents)
    assert torch.equal(got["pose_latents"], want_pose)
    assert torch.equal(got["reference_latents"], want_reference)
    assert "masked_reference_latents" not in got


def test_encode_pose_pads_at_the_front_to_a_multiple_of_patch_size_t():
    vae = build_tiny_components()["vae"]
    _, pose, _ = clip(frames=9, batch=1)  # 3 latent frames
    plain = encode_pose(vae, pose, sample=False)
    padded = encode_pose(vae, pose, sample=False, patch_size_t=2)
    assert plain.shape[1] == 3 and padded.shape[1] == 4
    assert torch.equal(padded[:, 0], plain[:, 0]) and torch.equal(padded[:, 1:], plain)


# ---------------------------------------------------------------------------------------------------- transformer call


@pytest.mark.parametrize("variant", ["tiny", "tiny-1.5"])
def test_transformer_call_is_the_channel_concatenated_call_with_rotary_and_ofs(variant):
    transformer = build_tiny_components(variant)["transformer"].eval()
    cfg = transformer.config
    g = torch.Generator().manual_seed(0)
    frames = 4 if cfg.patch_size_t else 3
    shape = (2, frames, cfg.out_channels, SIZE // 8, SIZE // 8)
    noisy, image, pose = (torch.randn(shape, generator=g) for _ in range(3))
    text = torch.randn(2, cfg.max_text_seq_length, cfg.text_embed_dim, generator=g)
    timestep = torch.tensor([10, 500])
    call = TransformerCall.build(transformer, image, pose, text, ofs=2.0, ofs_batch_size=2)
    assert (call.ofs is None) == (cfg.ofs_embed_dim is None)
    with torch.no_grad():
        got = call(transformer, noisy, timestep)
        want = transformer(
            hidden_states=torch.cat([noisy, image], dim=2),
            encoder_hidden_states=text,
            timestep=timestep,
            pose_latents=pose,
            image_rotary_emb=transformer.rotary_embedding(frames, SIZE // 8, SIZE // 8),
            ofs=None if cfg.ofs_embed_dim is None else torch.full((2,), 2.0),
            return_dict=False,
        )[0]
    assert torch.equal(got, want)


# ---------------------------------------------------------------------------------------------------- latent cache


def test_latent_cache_round_trip_gives_back_every_tensor_entry_and_the_empty_prompt(tmp_path):
    g = torch.Generator().manual_seed(0)
    clips = []
    for i in range(5):
        tensors = {
            "latents": torch.randn(3, 4, 8, 8, generator=g),
            "pose_latents": torch.randn(3, 4, 8, 8, generator=g),
            "reference_latents": torch.randn(3, 4, 8, 8, generator=g),
            "prompt_embeds": torch.randn(7, 16, generator=g).to(torch.bfloat16),  # stored as float32
        }
        if i % 2:
            tensors["masked_reference_latents"] = torch.randn(3, 4, 8, 8, generator=g)
        clips.append((f"clip{i}.mp4", 4 * i, f"prompt {i}", tensors))
    writer = LatentCacheWriter(tmp_path, shard_size=2)
    for name, start, prompt, tensors in clips:
        writer.add(name, start, prompt, tensors)
    empty = torch.randn(7, 16, generator=g)
    writer.write_empty_prompt(empty)
    writer.finish(dict(has_prompt_embeds=True))
    assert writer.num_shards == 3 and len(list(tmp_path.glob("shard-*.safetensors"))) == 3

    plain = LatentDataset(tmp_path, reference_mask_prob=0.0)
    masked = LatentDataset(tmp_path, reference_mask_prob=1.0)
    assert len(plain) == 5 and plain.meta == dict(has_prompt_embeds=True)
    assert torch.equal(plain.empty_prompt_embeds(), empty)
    for index, (name, _, prompt, tensors) in enumerate(clips):
        sample = plain[index]
        assert sample["name"] == name and sample["prompt"] == prompt
        for key in ("latents", "pose_latents", "reference_latents"):
            assert torch.equal(sample[key], tensors[key])
        assert torch.equal(sample["prompt_embeds"], tensors["prompt_embeds"].float())
        want_reference = tensors.get("masked_reference_latents", tensors["reference_latents"])
        assert torch.equal(masked[index]["reference_latents"], want_reference)


def test_latent_cache_writer_refuses_an_unknown_tensor_name(tmp_path):
    with pytest.raises(ValueError, match="unknown cache tensors"):
        LatentCacheWriter(tmp_path).add("a.mp4", 0, "", {"latent": torch.zeros(1)})


# ---------------------------------------------------------------------------------------------------- the callers


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_trainer_imports_no_model_or_dataset_class_only_the_spec():
    imports = imported_modules(ROOT / "dynamictrl/training/trainer.py")
    assert not {name for name in imports if "models" in name or "latent_cache" in name}, imports
    text = (ROOT / "dynamictrl/training/trainer.py").read_text()
    for name in ("DynamiCtrlTransformer3DModel", "LatentDataset", "VideoPoseDataset", "torch.cat(", "rotary_embedding"):
        assert name not in text, name


def test_prepare_dataset_encodes_with_encode_clip_and_writes_with_the_cache_writer():
    text = (ROOT / "dynamictrl/cli/prepare_dataset.py").read_text()
    assert "encode_clip(" in text and "LatentCacheWriter(" in text
    for own in ("encode_video", "encode_reference", "save_file", 'index.json"'):
        assert own not in text, own


@pytest.mark.parametrize("path", ["dynamictrl/training/spec.py", "dynamictrl/pipelines/pipeline_dynamictrl.py"])
def test_only_the_transformer_call_concatenates_the_reference_or_builds_rotary(path):
    text = (ROOT / path).read_text()
    assert "TransformerCall" in text
    assert "rotary_embedding(" not in text and "dim=2)" not in text


# ---------------------------------------------------------------------------------------------------- pipeline methods


def test_encode_prompt_returns_prompt_and_negative_embeddings_like_diffusers():
    pipe = make_pipe()
    length = pipe.transformer.config.max_text_seq_length
    with torch.no_grad():
        positive, negative = pipe.encode_prompt(["a dancer", "a cat"], "blurry", True, max_sequence_length=length)
        again, none = pipe.encode_prompt("a dancer", do_classifier_free_guidance=False)  # the model's length
    assert positive.shape[:2] == (2, length) and negative.shape == positive.shape
    assert torch.equal(negative[0], negative[1]) and not torch.equal(positive[0], positive[1])
    assert none is None and torch.allclose(again[0], positive[0], atol=1e-5)  # batch of 1 vs 2: float rounding
    given = torch.zeros(1, length, positive.shape[-1])
    assert pipe.encode_prompt(None, None, False, prompt_embeds=given)[0] is given
    assert make_pipe(use_text=False).encode_prompt("ignored") == (None, None)


def test_prepare_latents_encodes_reference_then_pose_then_draws_the_noise():
    pipe = make_pipe("tiny-1.5")
    image = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    pose = torch.rand(1, 3, 9, SIZE, SIZE) * 2 - 1
    args = (image, pose, 2, 4, 9, SIZE, SIZE, torch.float32, torch.device("cpu"))
    latents, image_latents, pose_latents = pipe.prepare_latents(*args, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    want_image = encode_reference(pipe.vae, image, 4, generator=g, scale_latents=False)  # 1.5 VAE: official rule
    want_pose = encode_pose(pipe.vae, pose, generator=g, patch_size_t=2)
    want_noise = torch.randn(2, 4, 4, SIZE // 8, SIZE // 8, generator=g) * pipe.scheduler.init_noise_sigma
    assert latents.shape == image_latents.shape == pose_latents.shape == (2, 4, 4, SIZE // 8, SIZE // 8)
    assert torch.equal(image_latents, want_image.expand(2, -1, -1, -1, -1))
    assert torch.equal(pose_latents, want_pose.expand(2, -1, -1, -1, -1))
    assert torch.equal(latents, want_noise)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(latents=torch.zeros(1, 2, 4, 8, 8)), "latents has shape"),
        (dict(image=torch.zeros(2, 2, SIZE, SIZE)), "a tensor image must be"),
        (dict(pose_video=torch.zeros(2, 9, SIZE, SIZE)), "a tensor pose_video must be"),
        (dict(prompt=["a", "b"], negative_prompt=["c"]), "negative_prompt has 1 entries"),
        (dict(negative_prompt=5), "negative_prompt must be a string"),
        (dict(image=np.zeros((SIZE, SIZE, 5), np.uint8)), "an image must be"),
        (dict(reference_mask=np.zeros((SIZE, SIZE, 2), np.uint8)), "reference_mask must be one"),
    ],
)
def test_check_inputs_refuses_bad_inputs_before_any_encoding(bad, message):
    pipe = make_pipe()

    def no_work(*args, **kwargs):
        raise AssertionError("encoded before the inputs were checked")

    pipe.vae.encode = no_work
    pipe.text_encoder.forward = no_work
    args = dict(image=IMAGE, pose_video=POSE, prompt="a dancer", num_frames=9, num_inference_steps=2)
    with pytest.raises(ValueError, match=message):
        pipe(**{**args, **bad})


def test_current_timestep_is_the_step_being_denoised_and_none_after():
    pipe = make_pipe()
    assert pipe.current_timestep is None
    seen = []

    def record(pipe, step, timestep, tensors):
        seen.append((pipe.current_timestep, timestep))
        return {}

    pipe(image=IMAGE, pose_video=POSE, prompt="a", num_frames=9, num_inference_steps=3, callback_on_step_end=record)
    assert len(seen) == 3 and all(current is t for current, t in seen)
    assert pipe.current_timestep is None
