"""Speed-ups leave outputs equal (within stated tolerances) on the tiny preset on CPU; the FLOP count is right."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from dynamictrl.acceleration import (
    AccelerationUnavailable,
    ConditionCache,
    SDPAKernelProcessor,
    accelerate_transformer,
    apply_offload,
    compile_blocks,
    enable_step_cache,
    fuse_qkv,
    quantize_fp8,
    reset_step_cache,
    set_attention_backend,
)
from dynamictrl.acceleration.flops import transformer_flops
from dynamictrl.models.presets import build_transformer

# fp32 on CPU: exact rewrites (fused QKV, kernel choice, compiled graphs) only reorder float sums.
ATOL = 1e-5


def _model(preset: str = "tiny", pose_control: str = "padaln"):
    torch.manual_seed(0)
    return build_transformer(preset, pose_control=pose_control, pose_zero_init=False).eval()


def _inputs(model, batch: int = 2, frames: int = 3, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    c = cfg.out_channels
    return dict(
        hidden_states=torch.randn(batch, frames, 2 * c, 8, 8, generator=g),
        encoder_hidden_states=torch.randn(batch, cfg.max_text_seq_length, cfg.text_embed_dim, generator=g),
        timestep=torch.full((batch,), 500),
        pose_latents=torch.randn(batch, frames, c, 8, 8, generator=g),
        image_rotary_emb=model.rotary_embedding(frames, 8, 8),
        ofs=None if cfg.ofs_embed_dim is None else torch.full((batch,), 2.0),
        return_dict=False,
    )


def _run(model, kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(**kwargs)[0]


# ---------------------------------------------------------------------------------------------- FLOP count


@pytest.mark.parametrize("preset,frames", [("tiny", 3), ("tiny-1.5", 4)])
@pytest.mark.parametrize("mode", ["padaln", "uvt", "cross_attn", "none"])
def test_matmul_flops_match_torch_flop_counter(preset, frames, mode):
    model = _model(preset, mode)
    kwargs = _inputs(model, frames=frames)
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
        model(**kwargs)  # the math kernel is plain matmuls, which the counter sees
    assert transformer_flops(model.config, 2, frames, 8, 8)["matmul"] == counter.get_total_flops()


def test_flop_count_by_hand_on_tiny():
    # tiny, padaln: B=2, L=8 text, N=3·4·4=48 video tokens, S=56, D=32, T=16, X=16, C=4, in=8, p=2, 2 blocks
    B, L, N, D, T, X = 2, 8, 48, 32, 16, 16
    S = L + N
    block_mm = 2 * (2 * B * T * 6 * D) + 4 * (2 * B * S * D * D) + 4 * B * S * S * D + 2 * (2 * B * S * D * 4 * D)
    padaln_mm = 2 * B * T * 3 * D
    embed_mm = 2 * (2 * B * N * 8 * 4 * D + 2 * B * L * X * D)  # video and pose streams, each with the text
    time_mm = 2 * B * D * T + 2 * B * T * T
    out_mm = 2 * B * T * 2 * D + 2 * B * N * D * 4 * 4
    block_norm = 2 * 9 * B * S * D + 2 * 7 * B * S * D  # norm1/norm2 (LN+affine+modulation), QK norms
    padaln_norm = 9 * B * N * D + B * N * D + 2 * B * N * D
    out_norm = 7 * B * N * D + 9 * B * N * D
    flops = transformer_flops(_model().config, B, 3, 8, 8)
    assert flops["matmul"] == 2 * (block_mm + padaln_mm) + embed_mm + time_mm + out_mm
    assert flops["norm"] == 2 * (block_norm + padaln_norm) + out_norm == 352256
    assert flops["pose_branch"] == 2 * (padaln_mm + padaln_norm) + embed_mm // 2
    assert (flops["text_tokens"], flops["video_tokens"]) == (L, N)


def test_flop_count_5b_step_is_hundreds_of_tflops():
    # CogVideoX-5B-I2V, 49×480×720: 13×60×90 latents -> 17 550 video tokens; CFG batch 2
    with torch.device("meta"):
        cfg = build_transformer("cogvideox-5b-i2v").config
    flops = transformer_flops(cfg, 2, 13, 60, 90)
    assert flops["video_tokens"] == 17550
    assert 5e14 < flops["total"] < 8e14
    assert flops["pose_branch"] / flops["total"] < 0.001  # PadaLN is cheap in FLOPs (it is memory-bound)


# ---------------------------------------------------------------------------------------------- exact speed-ups


def test_fused_qkv_equal():
    model = _model()
    kwargs = _inputs(model)
    reference = _run(model, kwargs)
    fuse_qkv(model)
    assert model.transformer_blocks[0].attn1.to_qkv is not None
    torch.testing.assert_close(_run(model, kwargs), reference, atol=ATOL, rtol=0)


def test_attention_backend_math_equal_and_reversible():
    model = _model("tiny", "cross_attn")
    kwargs = _inputs(model)
    reference = _run(model, kwargs)
    assert set_attention_backend(model, "math", "cpu") == 4  # 2 blocks x (full attention, pose cross-attention)
    assert isinstance(model.transformer_blocks[0].attn1.processor, SDPAKernelProcessor)
    torch.testing.assert_close(_run(model, kwargs), reference, atol=ATOL, rtol=0)
    set_attention_backend(model, "sdpa")
    assert not isinstance(model.transformer_blocks[0].attn1.processor, SDPAKernelProcessor)
    with pytest.raises(AccelerationUnavailable, match="CUDA"):
        set_attention_backend(model, "flash", "cpu")
    with pytest.raises(ValueError, match="allowed values"):
        set_attention_backend(model, "fast")


def test_regional_compile_equal():
    # aot_eager traces and runs the same graphs inductor would compile, without generating C++ (seconds, not minutes)
    model = _model()
    kwargs = _inputs(model)
    reference = _run(model, kwargs)
    assert compile_blocks(model, backend="aot_eager") == 2
    assert all(block._compiled_call_impl is not None for block in model.transformer_blocks)
    torch.testing.assert_close(_run(model, kwargs), reference, atol=ATOL, rtol=0)


def test_accelerate_transformer_skips_unavailable_with_reason():
    model = _model()
    kwargs = _inputs(model)
    reference = _run(model, kwargs)
    skipped = accelerate_transformer(model, "cpu", attention_backend="flash", fuse=True, fp8=True)
    assert [s.split(":")[0] for s in skipped] == ["fp8", "attention"]
    torch.testing.assert_close(_run(model, kwargs), reference, atol=ATOL, rtol=0)


def test_fp8_unavailable_on_cpu():
    with pytest.raises(AccelerationUnavailable, match="CUDA GPU"):
        quantize_fp8(_model(), "cpu")


# ---------------------------------------------------------------------------------------------- step cache


def test_pyramid_attention_broadcast_reuses_attention_inside_its_range():
    model = _model()
    kwargs, other = _inputs(model, seed=1), _inputs(model, seed=2)
    ref_first, ref_other = _run(model, kwargs), _run(model, other)
    timestep = {"t": 500}
    enable_step_cache(model, "pab", lambda: timestep["t"], skip_range=2, timestep_range=(100, 800))
    torch.testing.assert_close(_run(model, kwargs), ref_first, atol=ATOL, rtol=0)  # first call computes
    reused = _run(model, other)  # second call reuses the first call's attention outputs
    assert (reused - ref_other).abs().max() > 1e-3
    _run(model, kwargs)
    reset_step_cache(model)  # a new video starts from an empty cache: computed again
    torch.testing.assert_close(_run(model, other), ref_other, atol=ATOL, rtol=0)
    model.disable_cache()
    enable_step_cache(model, "pab", lambda: timestep["t"], skip_range=2, timestep_range=(100, 800))
    timestep["t"] = 900  # outside the range: always computed
    _run(model, kwargs)
    torch.testing.assert_close(_run(model, other), ref_other, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="allowed values"):
        enable_step_cache(model, "teacache", lambda: 0)


# ---------------------------------------------------------------------------------------------- offload


def _pipeline():
    from dynamictrl.models.tiny import build_tiny_components
    from dynamictrl.pipelines.pipeline_dynamictrl import DynamiCtrlPipeline

    parts = build_tiny_components("tiny", sample_height=4, sample_width=4)  # learned positions sized for 32×32
    pipe = DynamiCtrlPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=parts["vae"],
        transformer=parts["transformer"],
        scheduler=parts["scheduler"],
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _animate(pipe) -> np.ndarray:
    rng = np.random.default_rng(0)
    g = torch.Generator().manual_seed(3)
    embeds = torch.randn(2, 8, 16, generator=g)
    return pipe(
        image=rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        pose_video=rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8),
        prompt_embeds=embeds[1:],
        negative_prompt_embeds=embeds[:1],
        num_frames=5,
        height=32,
        width=32,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).frames


@pytest.fixture(scope="module")
def no_offload_video() -> np.ndarray:
    return _animate(_pipeline())


@pytest.mark.parametrize("mode", ["model", "group"])
def test_offload_gives_the_same_video(mode, no_offload_video):
    # on CPU the weights move CPU -> CPU, but the same hooks run as on a GPU (and must not change the result)
    pipe = _pipeline()
    apply_offload({"transformer": pipe.transformer, "vae": pipe.vae}, mode, "cpu")
    hooked = [m for m in pipe.transformer.modules() if hasattr(m, "_hf_hook") or hasattr(m, "_diffusers_hook")]
    assert hooked, f"{mode} offload installed no hooks"
    np.testing.assert_array_equal(_animate(pipe), no_offload_video)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="sequential offload needs a CUDA device")
def test_sequential_offload_gives_the_same_video_on_gpu():
    reference = _pipeline().to("cuda")
    expected = _animate(reference)
    pipe = _pipeline()
    apply_offload({"transformer": pipe.transformer, "vae": pipe.vae}, "sequential", "cuda")
    np.testing.assert_allclose(_animate(pipe), expected, atol=1e-5)


def test_sequential_offload_refused_on_cpu():
    pipe = _pipeline()
    with pytest.raises(AccelerationUnavailable, match="accelerator"):
        apply_offload({"transformer": pipe.transformer}, "sequential", "cpu")


def test_offload_rejects_unknown_mode():
    with pytest.raises(ValueError, match="allowed values"):
        apply_offload({}, "disk", "cpu")


# ---------------------------------------------------------------------------------------------- condition cache


def test_condition_cache_keys_on_content_and_evicts():
    cache = ConditionCache(max_entries=2)
    calls = []

    def encode(x):
        calls.append(1)
        return x * 2

    frames = torch.arange(12.0).reshape(3, 4)
    first = cache.get("pose", frames, lambda: encode(frames))
    again = cache.get("pose", frames.clone(), lambda: encode(frames))  # a copy with equal content hits
    assert again is first and len(calls) == 1 and cache.hits == 1
    cache.get("reference", frames, lambda: encode(frames))  # another kind misses
    cache.get("pose", frames + 1, lambda: encode(frames + 1))  # other content misses; evicts the oldest
    assert len(calls) == 3 and len(cache) == 2
    cache.get("pose", frames, lambda: encode(frames))
    assert len(calls) == 4
    assert cache.get("text", ("a prompt", np.zeros(3)), lambda: "emb") == "emb"
    with pytest.raises(TypeError, match="cannot key"):
        cache.get("text", object(), lambda: None)
