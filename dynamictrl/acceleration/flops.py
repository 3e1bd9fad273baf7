"""Analytic FLOP count of one ``DynamiCtrlTransformer3DModel`` forward (the MM-DiT plus its pose branch).

Conventions: a multiply-add is 2 FLOPs; ``Linear(i, o)`` on n tokens is ``2·n·i·o`` (bias adds are not counted);
attention over S tokens of width D (all heads together) is ``2·S²·D`` for Q·Kᵀ plus ``2·S²·D`` for the weighted sum
of V. Softmax, rotary embedding, GELU and residual adds are not counted. Normalisation work *is* counted because
the PadaLN branch is mostly that: LayerNorm ``5`` FLOPs per element (mean, centre, square, variance, scale), its
elementwise affine ``2``, an adaptive modulation ``x·(1+scale)+shift`` ``2``.

Symbols: B batch, L text tokens, N video tokens (= latent frames / p_t × H'/p × W'/p), S = L + N, D = heads ×
head_dim, T time-embedding width, X T5 width, L_b blocks; the feed-forward hidden width is 4D (diffusers'
``FeedForward`` default). Per block:

    matmul = norm1/norm2 linears 2·(2B·T·6D) + QKV 3·2B·S·D² + out 2B·S·D² + attention 4B·S²·D + FF 2·2B·S·D·4D
    norm   = norm1/norm2 2·(7+2)·B·S·D + QK norm 2·7·B·S·D
    padaln: matmul 2B·T·3D; norm (7+2)·B·N·D (LN, modulation) + 1·B·N·D (add to the video stream) + 2·B·N·D (p+δ·p)
    cross_attn: matmul 4·2B·N·D² + 4B·N²·D; norm 7·B·N·D (pre-norm) + 2·7·B·N·D (QK norm)

plus, once per forward: patch embedding of the video (and of the pose stream for padaln / cross_attn, which also
re-projects the text), the text projection, the time embedding, the final norms and the output projection.
"""

from __future__ import annotations

from typing import Any

LAYERNORM = 5
AFFINE = 2
MODULATE = 2


def token_counts(config: Any, latent_frames: int, latent_height: int, latent_width: int) -> tuple[int, int]:
    """(text tokens L, video tokens N) of one sample for a latent video of this size."""
    p, p_t = config.patch_size, config.patch_size_t
    frames = latent_frames if p_t is None else (latent_frames + p_t - 1) // p_t
    return config.max_text_seq_length, frames * (latent_height // p) * (latent_width // p)


def transformer_flops(
    config: Any, batch: int, latent_frames: int, latent_height: int, latent_width: int
) -> dict[str, int]:
    """FLOPs of one forward, by part: ``matmul``, ``norm``, ``padaln`` / ``cross_attn`` (the pose branch's share,
    included in the first two), ``total``, and the token counts ``text_tokens`` / ``video_tokens`` per sample.

    ``config`` is a transformer config (``model.config``, or any object with the same attributes).
    """
    B = batch
    L, N = token_counts(config, latent_frames, latent_height, latent_width)
    S = L + N
    D = config.num_attention_heads * config.attention_head_dim
    T = config.time_embed_dim
    X = config.text_embed_dim
    C = config.out_channels
    mode = getattr(config, "pose_control", "none")
    affine = AFFINE if config.norm_elementwise_affine else 0
    p, p_t = config.patch_size, config.patch_size_t
    patch_volume = p * p * (p_t or 1)

    def linear(tokens: int, fan_in: int, fan_out: int) -> int:
        return 2 * tokens * fan_in * fan_out

    # per block, the CogVideoX part
    block_mm = (
        2 * linear(B, T, 6 * D)  # norm1, norm2 modulation linears
        + 3 * linear(B * S, D, D)  # Q, K, V
        + linear(B * S, D, D)  # output projection
        + 4 * B * S * S * D  # Q·Kᵀ and attention·V
        + linear(B * S, D, 4 * D)
        + linear(B * S, 4 * D, D)  # feed-forward
    )
    block_norm = 2 * (LAYERNORM + affine + MODULATE) * B * S * D + 2 * (LAYERNORM + AFFINE) * B * S * D
    # per block, the pose branch
    pose_mm = pose_norm = 0
    if mode == "padaln":
        pose_mm = linear(B, T, 3 * D)
        pose_norm = (LAYERNORM + affine + MODULATE) * B * N * D + B * N * D + 2 * B * N * D
    elif mode == "cross_attn":
        pose_mm = 4 * linear(B * N, D, D) + 4 * B * N * N * D
        pose_norm = (LAYERNORM + affine) * B * N * D + 2 * (LAYERNORM + AFFINE) * B * N * D

    # once per forward
    in_channels = config.in_channels + (C if mode == "uvt" else 0)
    embed_mm = linear(B * N, in_channels * patch_volume, D) + linear(B * L, X, D)
    if mode in ("padaln", "cross_attn"):  # the pose stream through the same patch embedding, text re-projected
        embed_mm += linear(B * N, config.in_channels * patch_volume, D) + linear(B * L, X, D)
    time_mm = linear(B, D, T) + linear(B, T, T)  # time_proj has D channels (inner_dim)
    if getattr(config, "ofs_embed_dim", None):
        time_mm += linear(B, config.ofs_embed_dim, T) + linear(B, T, T)
    out_mm = linear(B, T, 2 * D) + linear(B * N, D, patch_volume * C)
    out_norm = (LAYERNORM + affine) * B * N * D + (LAYERNORM + affine + MODULATE) * B * N * D

    layers = config.num_layers
    matmul = layers * (block_mm + pose_mm) + embed_mm + time_mm + out_mm
    norm = layers * (block_norm + pose_norm) + out_norm
    pose_branch = layers * (pose_mm + pose_norm)
    if mode in ("padaln", "cross_attn"):
        pose_branch += linear(B * N, config.in_channels * patch_volume, D) + linear(B * L, X, D)
    return {
        "matmul": matmul,
        "norm": norm,
        "pose_branch": pose_branch,
        "total": matmul + norm,
        "text_tokens": L,
        "video_tokens": N,
    }
