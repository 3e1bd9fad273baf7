"""Distributed engines chosen by the accelerate launch config (DDP, DeepSpeed ZeRO-2/3, FSDP2): what they need beyond
accelerate's defaults."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)


def fsdp_requested() -> bool:
    """True when ``accelerate launch`` was given an FSDP config (it exports ``ACCELERATE_USE_FSDP``)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def enable_fsdp_on_cpu_ranks(accelerator) -> bool:
    """Turn FSDP on for CPU ranks (gloo) when the launch config asks for it; returns whether it did.

    accelerate 1.x enables FSDP only on GPU-like devices and silently falls back to plain data parallelism on CPU
    ranks, while PyTorch's FSDP2 (``fully_shard``) runs on CPU over gloo. Promoting the state before
    ``accelerator.prepare`` lets a CPU machine (CI, a laptop) run the same FSDP2 code path as the GPUs: sharding,
    sharded checkpoints and their resume. Only FSDP2 without mixed precision is supported this way.
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if not fsdp_requested() or accelerator.distributed_type != DistributedType.MULTI_CPU:
        return False
    plugin = getattr(accelerator.state, "fsdp_plugin", None) or FullyShardedDataParallelPlugin()  # from the env
    if plugin.fsdp_version != 2 or accelerator.mixed_precision != "no":
        raise ValueError(
            f"FSDP on CPU ranks runs FSDP2 without mixed precision only (got fsdp_version={plugin.fsdp_version}, "
            f"mixed_precision={accelerator.mixed_precision}; launch with --mixed_precision no and fsdp_version: 2)"
        )
    # AcceleratorState copies PartialState's fields each time it is built, so both must say FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin
    logger.info("FSDP2 on %d CPU ranks (gloo)", accelerator.num_processes)
    return True


def deepspeed_on_cpu() -> bool:
    """True for a DeepSpeed launch on a machine without CUDA (``DS_ACCELERATOR=cpu``)."""
    import torch

    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and not torch.cuda.is_available()


def accelerator_kwargs_handlers() -> list:
    """Extra ``kwargs_handlers`` for ``Accelerator`` on CPU ranks.

    DeepSpeed on CPU: accelerate picks a process-group backend only for GPU-like devices; without one it lets
    DeepSpeed form the group but records every rank as process 0 of 1 (each rank then writes rank 0's files and
    DeepSpeed's batch-size check fails). Naming gloo makes the ranks real."""
    from accelerate.utils import InitProcessGroupKwargs

    return [InitProcessGroupKwargs(backend="gloo")] if deepspeed_on_cpu() else []


def relink_lr_scheduler(model, lr_scheduler) -> bool:
    """Call after ``accelerator.load_state``: make the LR scheduler drive the optimizer DeepSpeed really steps.

    Under ZeRO-Offload accelerate swaps the client optimizer for ``DeepSpeedCPUAdam`` built on the same param-group
    dicts, so the scheduler (bound to the client optimizer) sets the learning rate DeepSpeed uses. Loading a
    checkpoint replaces the CPU Adam's param groups with new dicts: without this the learning rate silently stays at
    its checkpointed value for the rest of the run. Returns whether it relinked."""
    base = getattr(getattr(model, "optimizer", None), "optimizer", None)  # DeepSpeed engine -> ZeRO -> base
    client = getattr(getattr(lr_scheduler, "scheduler", lr_scheduler), "optimizer", None)
    if base is None or client is None or client is base or client.param_groups is base.param_groups:
        return False
    client.param_groups = base.param_groups
    return True
