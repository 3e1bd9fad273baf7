"""Attention processors of a DynamiCtrl block, both calling diffusers' ``dispatch_attention_fn``.

Going through the dispatcher (rather than ``F.scaled_dot_product_attention`` directly, as diffusers 0.42's
``CogVideoXAttnProcessor2_0`` does) is what lets ``model.set_attention_backend(...)`` pick the kernel and lets
diffusers' context parallelism hook in (``_parallel_config``). The maths up to the attention call are those of
``CogVideoXAttnProcessor2_0`` / ``FusedCogVideoXAttnProcessor2_0`` step for step, so the default ``native`` backend
gives the same numbers bit for bit: the dispatcher takes (B, N, heads, head_dim) and permutes back to the
(B, heads, N, head_dim) layout SDPA got before.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import apply_rotary_emb


def _heads(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """(B, N, heads·head_dim) -> (B, heads, N, head_dim), a view as in diffusers' CogVideoX processor."""
    return x.view(x.shape[0], -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)


def _attend(
    processor: DynamiCtrlJointAttnProcessor | PoseCrossAttnProcessor,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention over (B, heads, N, head_dim) tensors through the dispatcher; returns (B, N, heads·head_dim)."""
    out = dispatch_attention_fn(
        query.transpose(1, 2),
        key.transpose(1, 2),
        value.transpose(1, 2),
        attn_mask=attention_mask,
        backend=processor._attention_backend,
        parallel_config=processor._parallel_config,
    )  # (B, N, heads, head_dim)
    return out.flatten(2, 3)


class DynamiCtrlJointAttnProcessor:
    """The full attention of text and video tokens in one sequence (``attn1`` of every block).

    Rotary positions apply to the video part of queries and keys only; the output is split back into
    ``(video, text)``. Works on fused projections too (``attn.to_qkv`` after ``fuse_qkv_projections``).
    """

    _attention_backend = None  # set by ModelMixin.set_attention_backend
    _parallel_config = None  # set by diffusers' context parallelism

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,  # (B, N_video, D)
        encoder_hidden_states: torch.Tensor,  # (B, N_text, D)
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        text_seq_length = encoder_hidden_states.size(1)
        hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        batch_size, sequence_length, _ = hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])

        if attn.fused_projections:
            qkv = attn.to_qkv(hidden_states)
            query, key, value = torch.split(qkv, qkv.shape[-1] // 3, dim=-1)
        else:
            query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        query, key, value = _heads(attn, query), _heads(attn, key), _heads(attn, value)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if image_rotary_emb is not None:
            query[:, :, text_seq_length:] = apply_rotary_emb(query[:, :, text_seq_length:], image_rotary_emb)
            key[:, :, text_seq_length:] = apply_rotary_emb(key[:, :, text_seq_length:], image_rotary_emb)

        hidden_states = _attend(self, query, key, value, attention_mask)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))  # projection, dropout
        encoder_hidden_states, hidden_states = hidden_states.split(
            [text_seq_length, hidden_states.size(1) - text_seq_length], dim=1
        )
        return hidden_states, encoder_hidden_states


class PoseCrossAttnProcessor:
    """Video tokens (queries) attend to pose tokens (keys / values), the ``cross_attn`` pose branch.

    Video and pose tokens share one grid, so the same rotary embedding is applied to queries and keys, which lets a
    video token find the pose token at its own place. Works on fused projections too (``attn.to_kv``).
    """

    _attention_backend = None
    _parallel_config = None

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,  # (B, N_video, D) video tokens
        encoder_hidden_states: torch.Tensor,  # (B, N_video, D) pose tokens
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if attention_mask is not None:
            raise ValueError(
                "the pose cross-attention takes no attention_mask (every video token sees every pose token)"
            )
        query = attn.to_q(hidden_states)
        if attn.fused_projections:
            key, value = attn.to_kv(encoder_hidden_states).chunk(2, dim=-1)
        else:
            key, value = attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)
        query, key, value = attn.norm_q(_heads(attn, query)), attn.norm_k(_heads(attn, key)), _heads(attn, value)
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb)
            key = apply_rotary_emb(key, image_rotary_emb)
        hidden_states = _attend(self, query, key, value)
        return attn.to_out[1](attn.to_out[0](hidden_states))
