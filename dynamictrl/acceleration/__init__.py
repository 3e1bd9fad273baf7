"""Inference speed-ups and memory savers for ``DynamiCtrlTransformer3DModel``, each one opt-in and measurable.

| function | what it does | exactness |
| --- | --- | --- |
| :func:`compile_blocks` | regional ``torch.compile``: each transformer block is compiled on its own (all blocks share one graph shape, so warm-up compiles once, not 42 times) | same maths; float rounding may differ |
| :func:`set_attention_backend` | picks PyTorch's SDPA kernel (flash / cuDNN / memory-efficient / math) for the full attention | same maths, kernel-specific rounding |
| :func:`fuse_qkv` | one ``Linear(D, 3D)`` for Q, K and V (diffusers' ``fuse_qkv_projections``) | same maths |
| :func:`enable_step_cache` | diffusers' Pyramid Attention Broadcast hook: reuse attention outputs between nearby steps | approximate (changes the video) |
| :func:`quantize_fp8` | torchao float8 weights and activations for the transformer's linears (Hopper or newer) | approximate |
| :func:`apply_offload` | model / sequential / group CPU offload of pipeline components | exact |
| :class:`ConditionCache` | remembers VAE latents and text embeddings by input content, across steps and long-video clips | exact |

Every optional dependency is imported lazily; anything that cannot apply here raises :class:`AccelerationUnavailable`
with the reason (callers such as ``scripts/benchmark.py`` log it and carry on without that speed-up).

The model's own attention processors (``dynamictrl/models/attention.py``) call diffusers' ``dispatch_attention_fn``, so
``model.set_attention_backend("native" | "_native_math" | "flash" | ...)`` also works; :func:`set_attention_backend`
here wraps them in ``torch.nn.attention.sdpa_kernel`` instead (the benchmark's kernel names).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch loads with the first call: scripts/benchmark.py --help stays light
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

ATTENTION_BACKENDS = ("sdpa", "flash", "efficient", "cudnn", "math")
OFFLOAD_MODES = ("none", "model", "sequential", "group")
CACHE_MODES = ("none", "pab")


class AccelerationUnavailable(RuntimeError):
    """A speed-up cannot be applied in this environment; the message says why and what would enable it."""


# ---------------------------------------------------------------------------------------------- regional compile


def compile_blocks(
    model: nn.Module, backend: str = "inductor", mode: str | None = None, dynamic: bool | None = None
) -> int:
    """Compile every transformer block in place with ``torch.compile`` (regional compilation). Returns the count.

    The blocks are identical modules, so after the first block's graph is built the others reuse it (dynamo caches
    by code object), which keeps warm-up short compared with compiling the whole model. The patch embedding, time
    embedding and output head stay eager: they run once per step and cost little.

    Args:
        backend: a ``torch.compile`` backend; ``"inductor"`` (needs a C++ compiler on CPU, Triton on GPU) or
            ``"aot_eager"`` (no code generation; for tests).
        mode: e.g. ``"max-autotune-no-cudagraphs"``; None for the default.
    """
    import torch

    blocks = getattr(model, "transformer_blocks", None)
    if blocks is None or len(blocks) == 0:
        raise ValueError(f"{type(model).__name__} has no transformer_blocks to compile")
    # One graph per input layout: block 0's pose stream is a strided slice of the patch embedding, later blocks'
    # is contiguous, and CFG batch 2 / batch 1 differ; with the default limit (8) a sweep falls back to eager.
    limit = max(torch._dynamo.config.recompile_limit, 32)
    torch._dynamo.config.recompile_limit = limit
    for block in blocks:
        block.compile(backend=backend, mode=mode, dynamic=dynamic)
    logger.info("compiled %d transformer blocks (backend=%s, mode=%s)", len(blocks), backend, mode)
    return len(blocks)


# ---------------------------------------------------------------------------------------------- attention backend


def _sdpa_backends(name: str) -> list[Any]:
    from torch.nn.attention import SDPBackend

    table = {
        "flash": [SDPBackend.FLASH_ATTENTION],
        "efficient": [SDPBackend.EFFICIENT_ATTENTION],
        "cudnn": [SDPBackend.CUDNN_ATTENTION],
        "math": [SDPBackend.MATH],
    }
    return table[name]


class SDPAKernelProcessor:
    """Wraps an attention processor so its ``scaled_dot_product_attention`` calls use the chosen SDPA kernels."""

    def __init__(self, processor: Any, backend: str):
        if backend not in ATTENTION_BACKENDS[1:]:
            raise ValueError(f"unknown SDPA kernel {backend!r}; allowed values are {', '.join(ATTENTION_BACKENDS[1:])}")
        self.processor = processor
        self.backend = backend
        self._kernels = _sdpa_backends(backend)

    # Explicit arguments: diffusers' Attention.forward passes only the keywords named in the processor's signature.
    def __call__(
        self,
        attn: nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Any:
        from torch.nn.attention import sdpa_kernel

        with sdpa_kernel(self._kernels):
            return self.processor(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)


def check_attention_backend(backend: str, device: torch.device | str) -> None:
    """Raise :class:`AccelerationUnavailable` if ``backend`` cannot run on ``device`` (ValueError if unknown)."""
    import torch

    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; allowed values are {', '.join(ATTENTION_BACKENDS)}")
    device = torch.device(device)
    if backend in ("flash", "efficient", "cudnn") and device.type != "cuda":
        raise AccelerationUnavailable(
            f"attention backend {backend!r} needs a CUDA device (got {device}); use sdpa or math"
        )
    if backend == "cudnn" and not torch.backends.cudnn.is_available():
        raise AccelerationUnavailable("attention backend 'cudnn' needs cuDNN, which this torch build lacks")


def set_attention_backend(model: nn.Module, backend: str, device: torch.device | str | None = None) -> int:
    """Route the model's diffusers attention modules through one SDPA kernel. Returns how many were changed.

    ``"sdpa"`` restores PyTorch's automatic choice (removes any earlier wrapper). Call after :func:`fuse_qkv`, which
    replaces the processors. ``device`` (optional) is checked with :func:`check_attention_backend` first.
    """
    from diffusers.models.attention_processor import Attention

    if device is not None:
        check_attention_backend(backend, device)
    elif backend not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; allowed values are {', '.join(ATTENTION_BACKENDS)}")
    changed = 0
    for module in model.modules():
        if not isinstance(module, Attention):
            continue
        inner = module.processor
        while isinstance(inner, SDPAKernelProcessor):
            inner = inner.processor
        module.set_processor(inner if backend == "sdpa" else SDPAKernelProcessor(inner, backend))
        changed += 1
    logger.info("attention backend %s on %d attention modules", backend, changed)
    return changed


# ---------------------------------------------------------------------------------------------- fused QKV


def fuse_qkv(model: nn.Module) -> None:
    """Fuse Q, K, V of every full-attention module into one projection (diffusers' ``fuse_qkv_projections``).

    The pose cross-attention of ``pose_control="cross_attn"`` fuses its key and value projections.
    """
    if not hasattr(model, "fuse_qkv_projections"):
        raise AccelerationUnavailable(f"{type(model).__name__} has no fuse_qkv_projections")
    model.fuse_qkv_projections()


# ---------------------------------------------------------------------------------------------- step caching


def enable_step_cache(
    model: nn.Module,
    mode: str,
    current_timestep: Callable[[], int],
    skip_range: int = 2,
    timestep_range: tuple[int, int] = (100, 800),
) -> None:
    """Turn on a diffusers cache hook on the transformer (approximate: the video changes; measure it).

    Args:
        mode: ``"pab"`` (Pyramid Attention Broadcast: every ``skip_range``-th step inside ``timestep_range``
            recomputes the full attention, the others reuse its output) or ``"none"``.
        current_timestep: returns the scheduler's current timestep (the hook needs it to know where it is).

    First-Block Cache and FasterCache do not apply as-is: the first skips whole blocks and returns only
    ``(hidden_states, encoder_hidden_states)``, but a DynamiCtrl block also carries the PadaLN pose stream;
    FasterCache splits the CFG batch by input name and does not know ``pose_latents``.
    """
    if mode not in CACHE_MODES:
        raise ValueError(f"unknown cache mode {mode!r}; allowed values are {', '.join(CACHE_MODES)}")
    if mode == "none":
        return
    from diffusers import PyramidAttentionBroadcastConfig

    config = PyramidAttentionBroadcastConfig(
        spatial_attention_block_skip_range=skip_range,
        spatial_attention_timestep_skip_range=timestep_range,
        current_timestep_callback=current_timestep,
    )
    model.enable_cache(config)
    logger.info("step cache %s (skip every %d steps in timesteps %s)", mode, skip_range, timestep_range)


def reset_step_cache(model: nn.Module) -> None:
    """Clear cached attention outputs before a new video (no-op when no cache is enabled)."""
    if getattr(model, "is_cache_enabled", False):
        from diffusers.hooks import HookRegistry

        for module in model.modules():
            registry = getattr(module, "_diffusers_hook", None)
            if isinstance(registry, HookRegistry):
                registry.reset_stateful_hooks()


# ---------------------------------------------------------------------------------------------- fp8


def quantize_fp8(model: nn.Module, device: torch.device | str) -> None:
    """Float8 dynamic-activation, float8-weight linears through torchao (Hopper, compute capability >= 8.9).

    Raises :class:`AccelerationUnavailable` when torchao is missing or the device cannot run float8 matmuls.
    """
    import torch

    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        raise AccelerationUnavailable(f"fp8 needs a CUDA GPU with compute capability >= 8.9 (got {device})")
    capability = torch.cuda.get_device_capability(device)
    if capability < (8, 9):
        raise AccelerationUnavailable(f"fp8 needs compute capability >= 8.9 (Ada/Hopper); this GPU has {capability}")
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, quantize_
    except ImportError as err:
        raise AccelerationUnavailable(
            "fp8 needs torchao: pip install torchao (a build matching your torch version)"
        ) from err
    quantize_(model.transformer_blocks, Float8DynamicActivationFloat8WeightConfig())
    logger.info("fp8 (torchao Float8DynamicActivationFloat8Weight) on the transformer blocks")


# ---------------------------------------------------------------------------------------------- offload


def apply_offload(components: dict[str, nn.Module], mode: str, device: torch.device | str) -> None:
    """Keep ``components`` (in run order, e.g. transformer then vae) in CPU memory and move weights to ``device``
    only when needed. Call instead of ``.to(device)``; inputs must be on ``device``.

    - ``none``: everything on ``device``.
    - ``model``: one whole component on ``device`` at a time (accelerate ``cpu_offload_with_hook``, chained).
    - ``sequential``: each submodule's weights are copied in just before it runs (accelerate ``cpu_offload``):
      least memory, slowest.
    - ``group``: diffusers group offloading, one transformer block at a time, with a CUDA stream to prefetch the
      next block where available.
    """
    import torch

    if mode not in OFFLOAD_MODES:
        raise ValueError(f"unknown offload mode {mode!r}; allowed values are {', '.join(OFFLOAD_MODES)}")
    device = torch.device(device)
    if mode == "none":
        for module in components.values():
            module.to(device)
        return
    if mode == "model":
        from accelerate import cpu_offload_with_hook

        hook = None
        for module in components.values():
            module.to("cpu")
            _, hook = cpu_offload_with_hook(module, device, prev_module_hook=hook)
        return
    if mode == "sequential":
        from accelerate import cpu_offload

        if device.type == "cpu":  # accelerate's per-module hooks fail when the execution device is the CPU itself
            raise AccelerationUnavailable("sequential offload needs an accelerator device; the CPU has nothing to save")

        for module in components.values():
            module.to("cpu")
            cpu_offload(module, execution_device=device)
        return
    from diffusers.hooks import apply_group_offloading

    use_stream = device.type == "cuda"
    for module in components.values():
        module.to("cpu")
        apply_group_offloading(
            module,
            onload_device=device,
            offload_device=torch.device("cpu"),
            offload_type="block_level",
            num_blocks_per_group=1,
            use_stream=use_stream,
        )


# ---------------------------------------------------------------------------------------------- condition cache


def _fingerprint(value: Any) -> Any:
    """A hashable key for tensors / arrays (by dtype, shape and content), strings and tuples of those."""
    import torch

    if isinstance(value, torch.Tensor):
        data = value.detach().to("cpu").contiguous()
        raw = data.view(torch.uint8).numpy().tobytes() if data.numel() else b""
        return ("tensor", str(data.dtype), tuple(data.shape), hashlib.sha1(raw).hexdigest())
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return ("array", str(data.dtype), data.shape, hashlib.sha1(data.tobytes()).hexdigest())
    if isinstance(value, (list, tuple)):
        return tuple(_fingerprint(v) for v in value)
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    raise TypeError(f"cannot key a condition cache on {type(value).__name__}; use tensors, arrays or strings")


class ConditionCache:
    """Memoises condition encodings (reference / pose VAE latents, text embeddings) by input content.

    Within one video the pipeline encodes each condition once and reuses it at every step; across the clips of a
    long video the reference latent and the prompt embeddings repeat, and so does the pose latent of an overlap
    that is re-encoded. ``get(kind, inputs, compute)`` returns the cached value for equal inputs of the same kind
    (compared by content hash, so a copy of the same frames hits), else calls ``compute()`` and keeps the result.
    At most ``max_entries`` results are kept (least recently used dropped).
    """

    def __init__(self, max_entries: int = 32):
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._store: OrderedDict[Any, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, kind: str, inputs: Any, compute: Callable[[], Any]) -> Any:
        key = (kind, _fingerprint(inputs))
        if key in self._store:
            self.hits += 1
            self._store.move_to_end(key)
            return self._store[key]
        self.misses += 1
        value = compute()
        self._store[key] = value
        if len(self._store) > self.max_entries:
            self._store.popitem(last=False)
        return value

    def clear(self) -> None:
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)


# ---------------------------------------------------------------------------------------------- apply by name


def accelerate_transformer(
    model: nn.Module,
    device: torch.device | str,
    attention_backend: str = "sdpa",
    fuse: bool = False,
    compile_backend: str | None = None,
    fp8: bool = False,
) -> list[str]:
    """Apply the requested exact speed-ups in the right order (fp8, fuse QKV, attention backend, compile).

    Returns the reasons for any speed-up that could not be applied (also logged); those are skipped, not errors.
    """
    skipped: list[str] = []
    steps: Iterable[tuple[bool, str, Callable[[], Any]]] = (
        (fp8, "fp8", lambda: quantize_fp8(model, device)),
        (fuse, "fuse_qkv", lambda: fuse_qkv(model)),
        (attention_backend != "sdpa", "attention", lambda: set_attention_backend(model, attention_backend, device)),
        (compile_backend is not None, "compile", lambda: compile_blocks(model, backend=compile_backend or "inductor")),
    )
    for wanted, name, apply in steps:
        if not wanted:
            continue
        try:
            apply()
        except AccelerationUnavailable as err:
            logger.warning("skipping %s: %s", name, err)
            skipped.append(f"{name}: {err}")
    return skipped
