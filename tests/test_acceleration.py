"""The analytic FLOP count is right; the condition cache keys on content. (The runtime options' equality tests are
in tests/test_runtime.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from dynamictrl.acceleration import ConditionCache
from dynamictrl.acceleration.flops import transformer_flops
from dynamictrl.models.presets import build_transformer


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


def test_condition_cache_drops_the_oldest_entries_beyond_max_bytes_but_keeps_the_newest():
    cache = ConditionCache(max_entries=10, max_bytes=3 * 400)
    for i in range(4):  # 100 float32 = 400 bytes each
        cache.get("pose", torch.tensor([float(i)]), lambda: torch.zeros(100))
    assert len(cache) == 3 and cache.nbytes == 1200
    cache.get("pose", torch.tensor([0.0]), lambda: torch.zeros(100))  # entry 0 was dropped: a miss
    assert cache.misses == 5 and cache.hits == 0
    cache.get("pose", torch.tensor([9.0]), lambda: torch.zeros(1000))  # larger than the bound: kept alone
    assert len(cache) == 1 and cache.nbytes == 4000
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
