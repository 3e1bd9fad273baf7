"""Training: structured config, the model spec (conditions + loss), the accelerate loop, checkpoints, validation."""

from .config import Config, load_config, save_config, to_yaml
from .losses import diffusion_loss
from .spec import Components, DynamiCtrlSpec, load_components
from .trainer import NonFiniteLossError, Trainer

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
