"""Inference: the one-clip DynamiCtrl pipeline, the long-video sampler, and the shared conditioning helpers.

Names are imported on first use (:mod:`dynamictrl._lazy`), so ``dynamictrl.cli.animation`` parses arguments without
importing torch or diffusers.
"""

from typing import TYPE_CHECKING

from dynamictrl._lazy import lazy_getattr

_EXPORTS = {
    "DynamiCtrlPipeline": ".pipeline_dynamictrl",
    "DynamiCtrlPipelineOutput": ".pipeline_dynamictrl",
    "apply_reference_mask": ".conditioning",
    "encode_prompt": ".conditioning",
    "encode_reference": ".conditioning",
    "encode_video": ".conditioning",
    "frames_to_tensor": ".conditioning",
    "num_latent_frames": ".conditioning",
    "tensor_to_frames": ".conditioning",
}
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
__getattr__ = lazy_getattr(__name__, _EXPORTS)

if TYPE_CHECKING:
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
