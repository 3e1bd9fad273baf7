"""The DynamiCtrl denoiser and its pose-control structures."""

from .pose_control import POSE_CONTROLS, check_pose_control
from .presets import PRESETS, build_transformer, preset_config
from .transformer import DynamiCtrlTransformer3DModel, is_pose_branch_key

__all__ = [
    "POSE_CONTROLS",
    "PRESETS",
    "DynamiCtrlTransformer3DModel",
    "build_transformer",
    "check_pose_control",
    "is_pose_branch_key",
    "preset_config",
]
