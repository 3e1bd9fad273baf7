"""Inference speed and memory for DynamiCtrl.

- :mod:`.runtime`: :class:`RuntimeConfig` and :func:`apply_runtime`, the one set of options (compile, attention
  backend, fused QKV, fp8, offload, step cache, VAE tiling, ``--memory`` presets) that ``scripts/infer.py``,
  ``sample_long.py``, ``app.py`` and ``benchmark.py`` all run; docs/inference.md lists them.
- :mod:`.condition_cache`: :class:`ConditionCache`, condition encodings reused across steps and long-video clips.
- :mod:`.vae_tiling`: VAE tiles that add up for any frame size; :mod:`.flops`: the analytic FLOP count.

No torch import here: the scripts parse their flags first.
"""

from .condition_cache import ConditionCache
from .runtime import (
    ATTENTION_BACKENDS,
    CACHE_MODES,
    FP8_MODES,
    MEMORY_PRESETS,
    OFFLOAD_MODES,
    RuntimeConfig,
    add_runtime_args,
    apply_runtime,
    check_runtime,
    reset_runtime_state,
    runtime_from_args,
)

__all__ = [
    "ATTENTION_BACKENDS",
    "CACHE_MODES",
    "FP8_MODES",
    "MEMORY_PRESETS",
    "OFFLOAD_MODES",
    "ConditionCache",
    "RuntimeConfig",
    "add_runtime_args",
    "apply_runtime",
    "check_runtime",
    "reset_runtime_state",
    "runtime_from_args",
]
