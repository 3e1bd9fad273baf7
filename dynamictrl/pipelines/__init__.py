"""Inference: the one-clip DynamiCtrl pipeline, the long-video sampler, and the shared conditioning helpers."""

from .conditioning import (
    encode_prompt,
    encode_reference,
    encode_video,
    frames_to_tensor,
    num_latent_frames,
    tensor_to_frames,
)

__all__ = [
    "encode_prompt",
    "encode_reference",
    "encode_video",
    "frames_to_tensor",
    "num_latent_frames",
    "tensor_to_frames",
]
