"""Training: structured config, the model spec (conditions + loss), the accelerate loop, checkpoints, validation.

Names are imported on first use (:mod:`dynamictrl._lazy`), so scripts parse their arguments before torch loads.
"""

from typing import TYPE_CHECKING

from dynamictrl._lazy import lazy_getattr

_EXPORTS = {
    **dict.fromkeys(["Config", "load_config", "save_config", "to_yaml"], ".config"),
    "diffusion_loss": ".losses",
    **dict.fromkeys(["Components", "DynamiCtrlSpec", "load_components"], ".spec"),
    **dict.fromkeys(["NonFiniteLossError", "Trainer"], ".trainer"),
}
__all__ = [
    "Components",
    "Config",
    "DynamiCtrlSpec",
    "NonFiniteLossError",
    "Trainer",
    "diffusion_loss",
    "load_components",
    "load_config",
    "save_config",
    "to_yaml",
]
__getattr__ = lazy_getattr(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .config import Config, load_config, save_config, to_yaml
    from .losses import diffusion_loss
    from .spec import Components, DynamiCtrlSpec, load_components
    from .trainer import NonFiniteLossError, Trainer
