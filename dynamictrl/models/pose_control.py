"""The pose-control structures: the registry of modes and the modules each one adds to a block.

| mode         | where the pose enters                                              | new parameters per block      |
|--------------|--------------------------------------------------------------------|-------------------------------|
| `padaln`     | pose tokens, adaptive LayerNorm from the timestep, added after norm1 | `control_norm1` (Linear + LN) |
| `uvt`        | pose latent concatenated on channels before the patch embedding    | none (patch embed widened)    |
| `cross_attn` | video tokens attend to pose tokens after the full attention        | `pose_attn`, `pose_attn_norm` |
| `none`       | not at all: plain image-to-video                                   | none                          |
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import apply_rotary_emb
from torch import nn

POSE_CONTROLS = ("padaln", "uvt", "cross_attn", "none")
# Modes whose pose latent goes through the shared patch embedding as a separate token stream.
POSE_TOKEN_MODES = ("padaln", "cross_attn")


def check_pose_control(value: str) -> str:
    """Return ``value`` if it names a pose-control structure, else raise a ValueError listing the allowed ones."""
    if value not in POSE_CONTROLS:
        raise ValueError(f"unknown pose_control {value!r}; allowed values are {', '.join(POSE_CONTROLS)}")
    return value


class PoseAdaptiveLayerNorm(nn.Module):
    """PadaLN: ``p = LN(y) * (1 + scale) + shift`` with ``shift, scale, gate = Linear(SiLU(temb))``.

    Chunk order (shift, scale, gate) and the submodule names ``linear`` / ``norm`` are the official checkpoint
    contract (``transformer_blocks.{i}.control_norm1.{linear,norm}``).
    """

    def __init__(self, time_embed_dim: int, dim: int, elementwise_affine: bool = True, eps: float = 1e-5):
        super().__init__()
        self.silu = nn.SiLU()
        self.linear = nn.Linear(time_embed_dim, 3 * dim, bias=True)
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=elementwise_affine)

    def zero_init(self) -> None:
        """Make ``p`` exactly zero for any input, so the pretrained path is unchanged at step 0.

        Weights zero, and the scale bias -1 so that ``(1 + scale) = 0``; unlike zeroing the LayerNorm's affine
        weight this also works when ``elementwise_affine`` is off, and the scale still receives gradient.
        """
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        dim = self.linear.out_features // 3
        nn.init.constant_(self.linear.bias[dim : 2 * dim], -1.0)

    def forward(self, pose_tokens: torch.Tensor, temb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # pose_tokens: (B, N, D), temb: (B, T_emb)
        shift, scale, gate = self.linear(self.silu(temb)).chunk(3, dim=1)  # each (B, D)
        modulated = self.norm(pose_tokens) * (1 + scale)[:, None, :] + shift[:, None, :]
        return modulated, gate[:, None, :]


class PoseCrossAttention(nn.Module):
    """Video tokens (queries) attend to pose tokens (keys/values); QK LayerNorm as in CogVideoX attention.

    Video and pose tokens share one grid, so with rotary positions the same rotary embedding is applied to both
    queries and keys, which lets a video token find the pose token at its own place. The output projection is
    zero-initialised (``zero_init``) so a new branch adds nothing at step 0.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, bias: bool = True, eps: float = 1e-6):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.to_q = nn.Linear(dim, inner, bias=bias)
        self.to_k = nn.Linear(dim, inner, bias=bias)
        self.to_v = nn.Linear(dim, inner, bias=bias)
        self.norm_q = nn.LayerNorm(head_dim, eps=eps)
        self.norm_k = nn.LayerNorm(head_dim, eps=eps)
        self.to_out = nn.Linear(inner, dim, bias=True)

    def zero_init(self) -> None:
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)  # (B, heads, N, head_dim)

    def forward(
        self,
        video_tokens: torch.Tensor,
        pose_tokens: torch.Tensor,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        query = self.norm_q(self._heads(self.to_q(video_tokens)))
        key = self.norm_k(self._heads(self.to_k(pose_tokens)))
        value = self._heads(self.to_v(pose_tokens))
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb)
            key = apply_rotary_emb(key, image_rotary_emb)
        out = F.scaled_dot_product_attention(query, key, value)  # (B, heads, N, head_dim)
        return self.to_out(out.transpose(1, 2).flatten(2))
