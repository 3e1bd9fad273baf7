"""The hooks behind ``--parallel`` (:mod:`.parallel`): diffusers' context parallelism and a CFG-parallel hook.

CPU runs (gloo) work too: diffusers picks each rank's device as ``rank % torch.accelerator.device_count()``,
which is a division by zero without an accelerator, so :func:`enable_context_parallel` reports one device for the
duration of that call (:func:`_one_device_on_cpu`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.hooks.context_parallel import ContextParallelSplitHook

from ..errors import UserError

_CFG_HOOK = "dynamictrl_cfg_parallel"


# ---------------------------------------------------------------------- context parallelism (Ulysses, ring)


@contextlib.contextmanager
def _one_device_on_cpu() -> Iterator[None]:
    """Report one accelerator while diffusers builds its mesh on a machine with none (gloo CPU runs).

    ``ModelMixin._resolve_parallel_config`` computes ``rank % torch.accelerator.device_count()`` for the device it
    records; the CPU mesh and the collectives do not use it.
    """
    if torch.accelerator.device_count() != 0:
        yield
        return
    original = torch.accelerator.device_count
    torch.accelerator.device_count = lambda: 1
    try:
        yield
    finally:
        torch.accelerator.device_count = original


def enable_context_parallel(transformer: Any, mode: str) -> None:
    """Split the transformer's sequence over all ranks with diffusers' context parallelism (its ``_cp_plan``).

    ``ulysses``: all-to-all over heads, any sequence length and head count (``ulysses_anything``). ``ring``: K/V
    passed around the ranks; needs an attention kernel that returns the log-sum-exp (a GPU backend), refused
    otherwise.
    """
    from diffusers import ContextParallelConfig
    from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry

    ranks = dist.get_world_size()
    heads = transformer.config.num_attention_heads
    if mode == "ulysses" and heads < ranks:  # each rank gets whole heads (uneven counts padded, never none)
        raise UserError(
            f"--parallel {mode} on {ranks} processes: this model has only {heads} attention heads",
            f"at most {heads} processes",
        )
    if mode == "ulysses":
        config = ContextParallelConfig(ulysses_degree=ranks, ulysses_anything=True)
    elif mode == "ring":
        backend = _attention_backend(transformer) or _AttentionBackendRegistry.get_active_backend()[0]
        if transformer.device.type == "cpu" or AttentionBackendName(backend) == AttentionBackendName.NATIVE:
            raise UserError(
                f"--parallel ring with the {AttentionBackendName(backend).value!r} attention on "
                f"{transformer.device.type}: ring attention needs a kernel that returns the log-sum-exp",
                "--parallel ulysses, or ring on GPUs with a flash / cuDNN attention backend",
            )
        config = ContextParallelConfig(ring_degree=ranks, ring_anything=True)
    else:
        raise ValueError(f"mode={mode!r}; context parallelism is 'ulysses' or 'ring'")
    with _one_device_on_cpu():
        transformer.enable_parallelism(config=config)
    _pass_outputs_through(transformer)


class _InputSplitHook(ContextParallelSplitHook):
    """diffusers' split hook without its check that the module returns only tensors.

    Our blocks return the pose stream too, None for ``uvt`` / ``none``, and the model may return a
    ``Transformer2DModelOutput``; nothing in our plan splits an output, so there is nothing to check.
    """

    def post_forward(self, module: torch.nn.Module, output: Any) -> Any:
        return output


def _pass_outputs_through(transformer: Any) -> None:
    """Swap each input-split hook of ``transformer._cp_plan`` for :class:`_InputSplitHook` (same plan, same config)."""
    from diffusers.hooks.context_parallel import _CONTEXT_PARALLEL_INPUT_HOOK_TEMPLATE, _get_submodule_by_name

    for name, plan in transformer._cp_plan.items():
        if not isinstance(plan, dict) or any(getattr(cpi, "split_output", False) for cpi in plan.values()):
            continue
        hook_name = _CONTEXT_PARALLEL_INPUT_HOOK_TEMPLATE.format(name)
        registry = HookRegistry.check_if_exists_or_initialize(_get_submodule_by_name(transformer, name))
        hook = registry.get_hook(hook_name)
        registry.remove_hook(hook_name)
        registry.register_hook(_InputSplitHook(hook.metadata, hook.parallel_config), hook_name)


def _attention_backend(transformer: Any) -> str | None:
    for module in transformer.modules():
        backend = getattr(getattr(module, "processor", None), "_attention_backend", None)
        if backend is not None:
            return backend
    return None


# ---------------------------------------------------------------------- CFG parallel


class CFGParallelHook(ModelHook):
    """Run this rank's share of the transformer's batch and all-gather the predictions.

    The pipeline's guided batch is (unconditional, conditional), so with two ranks each computes one branch. Every
    batch-first tensor argument is split; a batch that does not divide by the ranks (guidance off) runs whole.
    """

    _is_stateful = False

    def __init__(self, rank: int, ranks: int):
        super().__init__()
        self.rank, self.ranks = rank, ranks
        self._batch: int | None = None

    def pre_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[tuple, dict]:
        batch = args[0].shape[0] if args else kwargs["hidden_states"].shape[0]
        self._batch = batch if batch % self.ranks == 0 and batch >= self.ranks else None
        if self._batch is None:
            return args, kwargs
        return tuple(self._shard(a) for a in args), {k: self._shard(v) for k, v in kwargs.items()}

    def post_forward(self, module: torch.nn.Module, output: Any) -> Any:
        if self._batch is None:
            return output
        if isinstance(output, tuple):
            return tuple(self._gather(x) for x in output)
        output.sample = self._gather(output.sample)
        return output

    def _shard(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == self._batch:
            return value.chunk(self.ranks)[self.rank]
        return value

    def _gather(self, value: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(value) for _ in range(self.ranks)]
        dist.all_gather(parts, value.contiguous())
        return torch.cat(parts)


def enable_cfg_parallel(transformer: torch.nn.Module) -> None:
    """Register :class:`CFGParallelHook` on the transformer (diffusers' hook registry, as its caches do)."""
    if not dist.is_initialized():
        raise RuntimeError("CFG parallel needs torch.distributed initialised (launch with torchrun)")
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    registry.register_hook(CFGParallelHook(dist.get_rank(), dist.get_world_size()), _CFG_HOOK)
