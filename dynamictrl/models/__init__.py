"""The DynamiCtrl denoiser and its pose-control structures.

Names are imported on first use (:mod:`dynamictrl._lazy`), so e.g. ``dynamictrl.models.presets`` loads without
torch or diffusers.
"""

from typing import TYPE_CHECKING

from dynamictrl._lazy import lazy_getattr

_EXPORTS = {
    "POSE_CONTROLS": ".pose_control",
    "check_pose_control": ".pose_control",
    "PRESETS": ".presets",
    "build_transformer": ".presets",
    "preset_config": ".presets",
    "DynamiCtrlTransformer3DModel": ".transformer",
    "is_pose_branch_key": ".transformer",
}
__all__ = [
    "DynamiCtrlTransformer3DModel",
    "POSE_CONTROLS",
    "PRESETS",
    "build_transformer",
    "check_pose_control",
    "is_pose_branch_key",
    "preset_config",
]
__getattr__ = lazy_getattr(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .pose_control import POSE_CONTROLS, check_pose_control
    from .presets import PRESETS, build_transformer, preset_config
    from .transformer import DynamiCtrlTransformer3DModel, is_pose_branch_key
