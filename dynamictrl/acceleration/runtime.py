"""One inference runtime: the options a user runs (``scripts/infer.py``, ``sample_long.py``, ``app.py``) are the
options ``scripts/benchmark.py`` measures.

:class:`RuntimeConfig` holds the options, :func:`add_runtime_args` / :func:`runtime_from_args` give every script the
same flags, :func:`check_runtime` refuses what cannot apply here before any weights load, and :func:`apply_runtime`
applies a configuration to a loaded ``DynamiCtrlPipeline`` with diffusers' own features:

| option | diffusers feature | exactness |
| --- | --- | --- |
| ``compile`` | ``ModelMixin.compile_repeated_blocks`` (regional: the blocks share a few graphs, one per input layout) | exact (float rounding) |
| ``attention`` | ``ModelMixin.set_attention_backend`` (the model's processors call ``dispatch_attention_fn``) | exact (kernel rounding) |
| ``fuse_qkv`` | ``fuse_qkv_projections`` | exact |
| ``fp8="storage"`` | ``enable_layerwise_casting`` (fp8 weights, compute in the load dtype) | approximate |
| ``fp8="compute"`` | torchao ``Float8DynamicActivationFloat8WeightConfig`` (Ada/Hopper) | approximate |
| ``offload`` | ``enable_model_cpu_offload`` / ``enable_sequential_cpu_offload`` / ``enable_group_offload`` | exact |
| ``cache="pab"`` | ``PyramidAttentionBroadcastConfig`` | approximate |
| ``vae_tiling`` / ``vae_slicing`` | the pipeline's ``enable_vae_tiling`` / ``enable_vae_slicing`` | tiling: approximate at tile seams |

No torch import at module level: the scripts parse and check their flags before the heavy imports.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from dynamictrl.errors import UserError

from .parallel import PARALLEL_HELP, PARALLEL_MODES, apply_parallel, check_parallel

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: ``--attention`` name -> diffusers ``AttentionBackendName``. The first five are PyTorch SDPA (no extra package).
ATTENTION_BACKENDS: dict[str, str] = {
    "sdpa": "native",  # PyTorch picks the kernel
    "flash": "_native_flash",
    "efficient": "_native_efficient",
    "cudnn": "_native_cudnn",
    "math": "_native_math",
    "flash-attn": "flash",  # the flash-attn package (2.x)
    "flash3": "_flash_3",  # flash-attn 3 (Hopper)
    "sage": "sage",  # sageattention
    "xformers": "xformers",
    "flex": "flex",
}
#: SDPA kernels that only exist on CUDA.
CUDA_ONLY_ATTENTION = ("flash", "efficient", "cudnn", "flash-attn", "flash3", "sage", "xformers")
FP8_MODES = ("off", "storage", "compute")
OFFLOAD_MODES = ("none", "model", "sequential", "group")
CACHE_MODES = ("none", "pab", "first-block")
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")

#: ``--memory`` presets: the fields they set; an explicit flag wins over its preset.
MEMORY_PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"offload": "none", "fp8": "off", "vae_tiling": False, "vae_slicing": True},
    "24gb": {"offload": "model", "fp8": "off", "vae_tiling": True, "vae_slicing": True},
    "16gb": {"offload": "model", "fp8": "storage", "vae_tiling": True, "vae_slicing": True},
    "12gb": {"offload": "group", "fp8": "storage", "vae_tiling": True, "vae_slicing": True},
}


@dataclass
class RuntimeConfig:
    """How the pipeline runs (not what it generates). The defaults are plain eager inference on one device.

    Add a field here, a flag in :func:`add_runtime_args` and a step in :func:`apply_runtime` to add an option.
    """

    compile: bool = False
    compile_backend: str = "inductor"  # "aot_eager" compiles without code generation (tests, no C++ compiler)
    attention: str = "sdpa"
    fuse_qkv: bool = False
    fp8: str = "off"
    offload: str = "none"
    cache: str = "none"
    vae_tiling: bool = False
    vae_slicing: bool = True
    parallel: str = "none"  # several processes for one video (torchrun): acceleration/parallel.py

    @property
    def exact(self) -> bool:
        """True when the options only change float rounding, not the maths (fp8, step caches and VAE tiling do)."""
        return self.fp8 == "off" and self.cache == "none" and not self.vae_tiling

    def describe(self) -> str:
        """The options that differ from the defaults, ``name=value`` comma-separated ("eager" if none)."""
        default = RuntimeConfig()
        changed = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        ]
        return ", ".join(changed) or "eager"

    def validate(self) -> RuntimeConfig:
        """Raise :class:`UserError` for a value outside the allowed names (a typo in code, or a hand-built config)."""
        for name, allowed in (
            ("attention", tuple(ATTENTION_BACKENDS)),
            ("fp8", FP8_MODES),
            ("offload", OFFLOAD_MODES),
            ("cache", CACHE_MODES),
            ("compile_backend", COMPILE_BACKENDS),
            ("parallel", PARALLEL_MODES),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise UserError(f"runtime {name}={value!r}", f"one of {', '.join(allowed)}")
        return self


def with_memory_preset(config: RuntimeConfig, memory: str, explicit: set[str] = frozenset()) -> RuntimeConfig:
    """``config`` with the fields of ``--memory`` preset ``memory``, except those named in ``explicit``."""
    if memory not in MEMORY_PRESETS:
        raise UserError(f"--memory {memory}", f"one of {', '.join(MEMORY_PRESETS)}")
    preset = {k: v for k, v in MEMORY_PRESETS[memory].items() if k not in explicit}
    return replace(config, **preset)


# ---------------------------------------------------------------------------------------------- flags


#: flag -> (choices, or None for an on/off flag; help). One table: every script and the benchmark's sweep use it.
RUNTIME_FLAGS: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "--memory": (
        tuple(MEMORY_PRESETS),
        "preset for a card size: fast (all on the GPU), 24gb (model offload + VAE tiling), 16gb (+ fp8 storage), "
        "12gb (group offload + fp8 storage + VAE tiling); explicit flags override it",
    ),
    "--compile": (None, "regional torch.compile of the transformer blocks (exact; the first step is slower)"),
    "--attention": (
        tuple(ATTENTION_BACKENDS),
        "attention kernel through diffusers' dispatcher: sdpa (default), math, flash/efficient/cudnn (CUDA SDPA), "
        "flash-attn, flash3, sage, xformers, flex (exact up to kernel rounding)",
    ),
    "--fuse-qkv": (None, "one fused Q/K/V projection (exact)"),
    "--fp8": (
        FP8_MODES,
        "storage: fp8 weights, compute in --dtype (any GPU; about half the transformer memory; approximate); "
        "compute: torchao float8 matmuls (Ada/Hopper; approximate)",
    ),
    "--offload": (
        OFFLOAD_MODES,
        "keep idle weights in CPU memory: model (one component at a time), sequential (one layer at a time, "
        "slowest), group (one transformer block at a time, prefetched on a CUDA stream)",
    ),
    "--cache": (CACHE_MODES, "reuse attention between nearby steps: pab (Pyramid Attention Broadcast; approximate)"),
    "--vae-tiling": (None, "encode/decode the VAE in tiles (much less memory at high resolution)"),
    "--parallel": (PARALLEL_MODES, PARALLEL_HELP),
}
#: flags a one-process benchmark sweep cannot vary
_NOT_SWEPT = ("--parallel",)


def _comma_list(choices: tuple[str, ...] | None):
    def parse(text: str) -> list:
        values = [v.strip() for v in text.split(",") if v.strip()]
        allowed = ("off", "on") if choices is None else choices
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{text!r}: a comma list of {', '.join(allowed)}")
        return [v == "on" for v in values] if choices is None else values

    return parse


def add_runtime_args(parser: argparse.ArgumentParser, sweep: bool = False) -> None:
    """The runtime flags, identical in every script. Defaults are None so a ``--memory`` preset can fill them.

    ``sweep=True`` (``scripts/benchmark.py``): each flag takes a comma list instead (on/off lists for the switches;
    ``--memory`` also accepts ``none``), and the benchmark runs every combination.
    """
    group = parser.add_argument_group("runtime (speed and memory; see docs/inference.md)")
    for flag, (choices, text) in RUNTIME_FLAGS.items():
        if sweep and flag in _NOT_SWEPT:
            continue
        if sweep:
            listed = (*choices, "none") if flag == "--memory" else choices
            group.add_argument(flag, type=_comma_list(listed), default=None, help=text + " (comma list)")
        elif choices is None:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            group.add_argument(flag, choices=choices, default=None, help=text)


#: argparse dest -> RuntimeConfig field, for the flags :func:`add_runtime_args` adds.
_FLAG_FIELDS = {
    "compile": "compile",
    "attention": "attention",
    "fuse_qkv": "fuse_qkv",
    "fp8": "fp8",
    "offload": "offload",
    "cache": "cache",
    "vae_tiling": "vae_tiling",
    "parallel": "parallel",
}


def runtime_from_args(args: argparse.Namespace) -> RuntimeConfig:
    """The configuration the parsed flags ask for: the ``--memory`` preset, then the explicit flags over it."""
    explicit = {
        field: getattr(args, dest) for dest, field in _FLAG_FIELDS.items() if getattr(args, dest, None) is not None
    }
    config = RuntimeConfig()
    if getattr(args, "memory", None):
        config = with_memory_preset(config, args.memory, set(explicit))
    return replace(config, **explicit).validate()


def runtime_argv(args: argparse.Namespace) -> list[str]:
    """The runtime flags that ``args`` sets, as a command line (e.g. the web app's shown ``infer.py`` command)."""
    argv = ["--memory", args.memory] if getattr(args, "memory", None) else []
    for dest in _FLAG_FIELDS:
        value = getattr(args, dest, None)
        flag = "--" + dest.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif value is not None:
            argv += [flag, str(value)]
    return argv


# ---------------------------------------------------------------------------------------------- checks


def check_runtime(config: RuntimeConfig, device: str | torch.device) -> None:
    """Raise :class:`UserError` (one line: what and what would work) for an option that cannot run on ``device``.

    Runs before the weights load; imports torch but nothing heavier.
    """
    import torch

    config.validate()
    check_parallel(config.parallel)  # the launch (torchrun's WORLD_SIZE) fits the mode
    device = torch.device(device)
    on_cuda = device.type == "cuda"
    if config.attention in CUDA_ONLY_ATTENTION and not on_cuda:
        raise UserError(
            f"--attention {config.attention} needs a CUDA GPU (device is {device})", "--attention sdpa or math"
        )
    if config.attention not in ("sdpa", "math", "flex", "flash", "efficient", "cudnn"):
        _check_attention_package(config.attention)
    if config.attention == "cudnn" and not torch.backends.cudnn.is_available():
        raise UserError("--attention cudnn needs cuDNN, which this torch build lacks", "--attention sdpa")
    if config.fp8 == "compute":
        if not on_cuda or not torch.cuda.is_available():
            raise UserError(f"--fp8 compute needs a CUDA GPU (device is {device})", "--fp8 storage or off")
        capability = torch.cuda.get_device_capability(device)
        if capability < (8, 9):
            raise UserError(
                f"--fp8 compute needs compute capability >= 8.9; this GPU has {capability}", "--fp8 storage"
            )
        try:
            import torchao  # noqa: F401
        except ImportError:
            raise UserError("--fp8 compute needs torchao", "pip install torchao, or --fp8 storage") from None
    if config.fp8 == "storage" and not hasattr(torch, "float8_e4m3fn"):
        raise UserError("--fp8 storage needs torch >= 2.1 (float8 dtypes)", "--fp8 off")
    if config.offload == "sequential" and not on_cuda:
        raise UserError(f"--offload sequential needs an accelerator (device is {device})", "--offload none or group")
    if config.cache == "first-block":
        raise UserError(
            "--cache first-block does not apply to DynamiCtrl: its blocks also return the pose stream, which "
            "diffusers' first-block cache drops",
            "--cache pab or none",
        )
    if config.compile and config.compile_backend == "inductor" and device.type == "cpu":
        _check_cpu_compiler()


def _check_attention_package(name: str) -> None:
    from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

    try:
        _check_attention_backend_requirements(AttentionBackendName(ATTENTION_BACKENDS[name]))
    except (RuntimeError, ImportError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"--attention {name}: {first}", "--attention sdpa, or install that package") from None


def _check_cpu_compiler() -> None:
    import shutil

    if not any(shutil.which(cc) for cc in ("c++", "g++", "clang++")):
        raise UserError("--compile on the CPU needs a C++ compiler (inductor)", "install g++, or leave out --compile")


# ---------------------------------------------------------------------------------------------- apply


def apply_runtime(pipe: Any, config: RuntimeConfig, device: str | torch.device) -> Any:
    """Apply ``config`` to ``pipe`` (a ``DynamiCtrlPipeline`` with weights on the CPU, in their final dtype) and place
    it on ``device``; returns ``pipe``. Order: fused QKV, fp8, attention backend, step cache, offload / placement,
    --parallel, compile (after the offload hooks, so dynamo traces through them), VAE tiling and slicing."""
    import torch

    check_runtime(config, device)
    device = torch.device(device)
    transformer = pipe.transformer
    compute_dtype = transformer.dtype
    if config.fuse_qkv:  # first: the fused Linears are new modules, which fp8 must cover too
        transformer.fuse_qkv_projections()
    if config.fp8 == "storage":
        # diffusers keeps norms, embeddings and the output head in the compute dtype (their default skip list)
        transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype)
    elif config.fp8 == "compute":
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, quantize_

        quantize_(transformer.transformer_blocks, Float8DynamicActivationFloat8WeightConfig())
    if config.attention != "sdpa":
        transformer.set_attention_backend(ATTENTION_BACKENDS[config.attention])
    if config.cache == "pab":
        from diffusers import PyramidAttentionBroadcastConfig

        transformer.enable_cache(
            PyramidAttentionBroadcastConfig(
                spatial_attention_block_skip_range=2,
                spatial_attention_timestep_skip_range=(100, 800),
                current_timestep_callback=lambda: pipe.current_timestep,
            )
        )
    if config.offload == "none":
        pipe.to(device)
    elif config.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif config.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        # the transformer one block at a time (prefetched on a CUDA stream); the VAE and text encoder leaf by leaf,
        # since block-level groups onload their loose layers in forward(), which vae.encode/decode never call
        from diffusers.hooks import apply_group_offloading

        for name, component in pipe.components.items():
            if isinstance(component, torch.nn.Module):  # the T5 encoder (transformers) has no enable_group_offload
                block_level = name == "transformer"
                apply_group_offloading(
                    component,
                    onload_device=device,
                    offload_device=torch.device("cpu"),
                    offload_type="block_level" if block_level else "leaf_level",
                    num_blocks_per_group=1 if block_level else None,
                    use_stream=device.type == "cuda",
                )
    apply_parallel(pipe, config.parallel, device)  # after placement (each rank's device), before compile
    if config.compile:
        # one graph per input layout (block 0's pose stream is a strided slice, CFG batch 2 vs 1): raise the limit
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 32)
        transformer.compile_repeated_blocks(backend=config.compile_backend)
    if config.vae_tiling:
        pipe.enable_vae_tiling()
    if config.vae_slicing:
        pipe.enable_vae_slicing()
    logger.info("runtime: %s", config.describe())
    return pipe


def reset_runtime_state(pipe: Any) -> None:
    """Clear stateful hooks (the step cache) before a new video; a no-op when none is enabled."""
    transformer = pipe.transformer
    if getattr(transformer, "is_cache_enabled", False):
        from diffusers.hooks import HookRegistry

        for module in transformer.modules():
            registry = getattr(module, "_diffusers_hook", None)
            if isinstance(registry, HookRegistry):
                registry.reset_stateful_hooks()
