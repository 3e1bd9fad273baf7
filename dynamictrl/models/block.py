"""One MM-DiT block: diffusers' CogVideoXBlock plus the modules of the selected pose-control structure."""

from __future__ import annotations

from typing import Any

import torch
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock
from torch import nn

from .attention import DynamiCtrlJointAttnProcessor
from .pose_control import PoseAdaptiveLayerNorm, PoseCrossAttention


class DynamiCtrlBlock(CogVideoXBlock):
    """CogVideoXBlock (same submodules and weight names) with a pose stream.

    ``padaln``: after norm1, ``p = PadaLN(y, temb)`` is added to the normalised video tokens before the full
    attention, and ``p + gate * p`` is returned as the next block's pose stream ``y``.
    ``cross_attn``: after the full attention's residual, ``v += CrossAttn(LN(v), y)``; ``y`` passes unchanged.
    ``uvt`` / ``none``: the plain CogVideoX block; ``y`` is None.
    """

    def __init__(self, *args: Any, pose_control: str = "none", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.attn1.set_processor(DynamiCtrlJointAttnProcessor())  # CogVideoX's maths, through diffusers' dispatcher
        self.pose_control = pose_control
        dim = self.norm1.norm.normalized_shape[0]
        time_embed_dim = self.norm1.linear.in_features
        eps = self.norm1.norm.eps
        affine = self.norm1.norm.elementwise_affine
        if pose_control == "padaln":
            self.control_norm1 = PoseAdaptiveLayerNorm(time_embed_dim, dim, elementwise_affine=affine, eps=eps)
        elif pose_control == "cross_attn":
            self.pose_attn_norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)
            self.pose_attn = PoseCrossAttention(dim, self.attn1.heads, dim // self.attn1.heads)

    def zero_init_pose_branch(self) -> None:
        if self.pose_control == "padaln":
            self.control_norm1.zero_init()
        elif self.pose_control == "cross_attn":
            self.pose_attn.zero_init()

    def forward(
        self,
        hidden_states: torch.Tensor,  # (B, N_video, D)
        encoder_hidden_states: torch.Tensor,  # (B, N_text, D)
        temb: torch.Tensor,  # (B, T_emb)
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        pose_tokens: torch.Tensor | None = None,  # (B, N_video, D) for padaln / cross_attn
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        # CogVideoXBlock's arguments in its order, then ours (positional: gradient checkpointing passes no keywords)
        text_seq_length = encoder_hidden_states.size(1)
        attention_kwargs = attention_kwargs or {}

        norm_hidden_states, norm_encoder_hidden_states, gate_msa, enc_gate_msa = self.norm1(
            hidden_states, encoder_hidden_states, temb
        )
        if self.pose_control == "padaln":
            norm_hidden_states, pose_tokens = self.control_norm1(pose_tokens, temb, norm_hidden_states)

        attn_hidden_states, attn_encoder_hidden_states = self.attn1(
            hidden_states=norm_hidden_states,
            encoder_hidden_states=norm_encoder_hidden_states,
            image_rotary_emb=image_rotary_emb,
            **attention_kwargs,
        )
        hidden_states = hidden_states + gate_msa * attn_hidden_states
        encoder_hidden_states = encoder_hidden_states + enc_gate_msa * attn_encoder_hidden_states

        if self.pose_control == "cross_attn":
            hidden_states = hidden_states + self.pose_attn(
                hidden_states=self.pose_attn_norm(hidden_states),
                encoder_hidden_states=pose_tokens,
                image_rotary_emb=image_rotary_emb,
            )

        norm_hidden_states, norm_encoder_hidden_states, gate_ff, enc_gate_ff = self.norm2(
            hidden_states, encoder_hidden_states, temb
        )
        ff_output = self.ff(torch.cat([norm_encoder_hidden_states, norm_hidden_states], dim=1))
        hidden_states = hidden_states + gate_ff * ff_output[:, text_seq_length:]
        encoder_hidden_states = encoder_hidden_states + enc_gate_ff * ff_output[:, :text_seq_length]
        return hidden_states, encoder_hidden_states, pose_tokens
