"""Model sizes by name (a registry, not if-chains). The 5B entries are the real CogVideoX I2V transformer shapes."""

from __future__ import annotations

from typing import Any

_COMMON_5B = dict(
    num_attention_heads=48,
    attention_head_dim=64,
    in_channels=32,
    out_channels=16,
    time_embed_dim=512,
    text_embed_dim=4096,
    num_layers=42,
    attention_bias=True,
    max_text_seq_length=226,
    temporal_compression_ratio=4,
    use_rotary_positional_embeddings=True,
)

_COMMON_TINY = dict(
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=8,
    out_channels=4,
    time_embed_dim=16,
    text_embed_dim=16,
    num_layers=2,
    sample_width=8,
    sample_height=8,
    sample_frames=9,
    patch_size=2,
    max_text_seq_length=8,
    use_rotary_positional_embeddings=True,
)

PRESETS: dict[str, dict[str, Any]] = {
    # CPU tests: CogVideoX 1.0 layout (rotary + learned positions, Conv2d patch embedding)
    "tiny": dict(_COMMON_TINY, use_learned_positional_embeddings=True),
    # CPU tests: CogVideoX 1.5 layout (temporal patches, ofs embedding, rotary only, Linear patch embedding)
    "tiny-1.5": dict(_COMMON_TINY, ofs_embed_dim=16, patch_size_t=2, patch_bias=False),
    # THUDM/CogVideoX-5b-I2V transformer
    "cogvideox-5b-i2v": dict(
        _COMMON_5B,
        sample_width=90,
        sample_height=60,
        sample_frames=49,
        patch_size=2,
        use_learned_positional_embeddings=True,
    ),
    # THUDM/CogVideoX1.5-5B-I2V transformer
    "cogvideox1.5-5b-i2v": dict(
        _COMMON_5B,
        ofs_embed_dim=512,
        sample_width=300,
        sample_height=300,
        sample_frames=81,
        patch_size=2,
        patch_size_t=2,
        patch_bias=False,
        use_learned_positional_embeddings=False,
    ),
}


def preset_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The transformer config of a named preset, with overrides (e.g. ``pose_control="uvt"``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; available presets are {', '.join(PRESETS)}")
    return {**PRESETS[name], **overrides}


def build_transformer(name: str, **overrides: Any):
    """A randomly initialised ``DynamiCtrlTransformer3DModel`` of a named preset."""
    from .transformer import DynamiCtrlTransformer3DModel

    return DynamiCtrlTransformer3DModel(**preset_config(name, **overrides))
