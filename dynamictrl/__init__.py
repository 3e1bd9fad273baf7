"""DynamiCtrl: human image animation with a CogVideoX-style MM-DiT and PadaLN pose control."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Imported on first use, so ``import dynamictrl`` (and every script's --help) stays free of torch and diffusers.
_LAZY = {
    "DynamiCtrlPipeline": ("dynamictrl.pipelines", "DynamiCtrlPipeline"),
    "DynamiCtrlTransformer3DModel": ("dynamictrl.models", "DynamiCtrlTransformer3DModel"),
    # The official release's class names. Its package is also called ``dynamictrl``, so folders it saved name their
    # components ["dynamictrl", NAME]; diffusers resolves those as getattr(dynamictrl, NAME). Its VAE is a copy of
    # diffusers' (same config keys and weights), so the name maps to diffusers' class.
    "DynamiCtrlAnimationPipeline": ("dynamictrl.pipelines", "DynamiCtrlPipeline"),
    "DynamiCtrlTransformerModel": ("dynamictrl.models", "DynamiCtrlTransformer3DModel"),
    "AutoencoderKLCogVideoX": ("diffusers", "AutoencoderKLCogVideoX"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'dynamictrl' has no attribute {name!r}")
    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)
