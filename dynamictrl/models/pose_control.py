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
from diffusers.models.attention_processor import Attention
from torch import nn

from .attention import PoseCrossAttnProcessor

POSE_CONTROLS = ("padaln", "uvt", "cross_attn", "none")
# Modes whose pose latent goes through the shared patch embedding as a separate token stream.
POSE_TOKEN_MODES = ("padaln", "cross_attn")


def check_pose_control(value: str) -> str:
    """Return ``value`` if it names a pose-control structure, else raise a ValueError listing the allowed ones."""
    if value not in POSE_CONTROLS:
        raise ValueError(f"unknown pose_control {value!r}; allowed values are {', '.join(POSE_CONTROLS)}")
    return value


class PoseAdaptiveLayerNorm(nn.Module):
    """PadaLN: ``p = LN(y) * (1 + scale) + shift`` with ``shift, scale, gate = Linear(SiLU(temb))``; the pose stream
    handed to the next block is ``p + gate * p``. All of PadaLN's maths lives here: the block hands over its
    normalised video tokens and gets them back with ``p`` added.

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

    def forward(
        self, pose_tokens: torch.Tensor, temb: torch.Tensor, hidden_states: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(hidden_states + p, p + gate * p)``: the video tokens with the pose added (after norm1), and the
        next block's pose stream ``y``. (The order of the two sums is the official one, which keeps even the
        gradients bit-identical.)"""
        # pose_tokens, hidden_states: (B, N, D); temb: (B, T_emb)
        shift, scale, gate = self.linear(self.silu(temb)).chunk(3, dim=1)  # each (B, D)
        modulated = self.norm(pose_tokens) * (1 + scale)[:, None, :] + shift[:, None, :]
        hidden_states = hidden_states + modulated
        return hidden_states, modulated + gate[:, None, :] * modulated


class PoseCrossAttention(Attention):
    """Video tokens (queries) attend to pose tokens (keys/values); QK LayerNorm as in CogVideoX attention.

    diffusers' ``Attention`` with :class:`PoseCrossAttnProcessor`, so fused K/V projections
    (``fuse_qkv_projections``) and attention backends (``set_attention_backend``) reach it like the full attention.
    Weight names: ``to_q``, ``to_k``, ``to_v``, ``norm_q``, ``norm_k``, ``to_out.0`` (checkpoints saved before this
    was an ``Attention`` name the output projection ``to_out``; the transformer renames it on load). The output
    projection is zero-initialised (``zero_init``) so a new branch adds nothing at step 0.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, bias: bool = True, eps: float = 1e-6):
        super().__init__(
            query_dim=dim,
            cross_attention_dim=dim,
            heads=heads,
            dim_head=head_dim,
            qk_norm="layer_norm",
            eps=eps,
            bias=bias,
            out_bias=True,
            processor=PoseCrossAttnProcessor(),
        )

    def zero_init(self) -> None:
        nn.init.zeros_(self.to_out[0].weight)
        nn.init.zeros_(self.to_out[0].bias)
