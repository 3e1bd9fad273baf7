"""Inference: the one-clip DynamiCtrl pipeline, the long-video sampler, and the shared conditioning helpers."""

from .conditioning import (
    apply_reference_mask,
    encode_prompt,
    encode_reference,
    encode_video,
    frames_to_tensor,
    num_latent_frames,
    tensor_to_frames,
)
from .pipeline_dynamictrl import DynamiCtrlPipeline, DynamiCtrlPipelineOutput

__all__ = [
    "DynamiCtrlPipeline",
    "DynamiCtrlPipelineOutput",
    "apply_reference_mask",
    "encode_prompt",
    "encode_reference",
    "encode_video",
    "frames_to_tensor",
    "num_latent_frames",
    "tensor_to_frames",
]
