"""Tiny, randomly initialised pipeline components that need no downloaded files (tests, demos, benchmarks).

Same classes as the 5B model: ``AutoencoderKLCogVideoX`` (spatial x8, temporal x4), a T5 encoder, a
``DynamiCtrlTransformer3DModel`` and CogVideoX's DPM scheduler. The tokenizer is byte-level (ByT5), which has no
vocabulary file, so nothing is read from disk or a hub.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler
from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

from .presets import preset_config
from .transformer import DynamiCtrlTransformer3DModel

# CogVideoX-5B-I2V's scheduler config (v-prediction, zero-terminal-SNR, trailing timesteps).
COGVIDEOX_SCHEDULER_CONFIG = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    num_train_timesteps=1000,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    set_alpha_to_one=True,
    snr_shift_scale=1.0,
    steps_offset=0,
    timestep_spacing="trailing",
)


def tiny_vae(latent_channels: int = 4, seed: int = 0) -> AutoencoderKLCogVideoX:
    torch.manual_seed(seed)
    return AutoencoderKLCogVideoX(
        block_out_channels=(8, 8, 16, 16),  # four blocks: spatial x8, like the real VAE
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        temporal_compression_ratio=4,
        sample_height=64,
        sample_width=64,
        scaling_factor=1.0,
    )


def tiny_text_encoder(d_model: int = 16, seed: int = 0) -> tuple[T5EncoderModel, ByT5Tokenizer]:
    torch.manual_seed(seed)
    tokenizer = ByT5Tokenizer()
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
    )
    return T5EncoderModel(config).eval(), tokenizer


def build_tiny_components(
    variant: str = "tiny",
    pose_control: str = "padaln",
    use_text: bool = True,
    seed: int = 0,
    **transformer_overrides: Any,
) -> dict[str, Any]:
    """All components of a tiny DynamiCtrl pipeline: ``vae``, ``text_encoder``, ``tokenizer``, ``transformer``,
    ``scheduler``. ``variant`` is a transformer preset (``tiny`` for CogVideoX 1.0 layout, ``tiny-1.5``)."""
    config = preset_config(variant, pose_control=pose_control, use_text=use_text, **transformer_overrides)
    text_encoder, tokenizer = tiny_text_encoder(config["text_embed_dim"], seed)
    torch.manual_seed(seed)
    transformer = DynamiCtrlTransformer3DModel(**config)
    return dict(
        vae=tiny_vae(config["out_channels"], seed),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        scheduler=CogVideoXDPMScheduler(**COGVIDEOX_SCHEDULER_CONFIG),
    )
