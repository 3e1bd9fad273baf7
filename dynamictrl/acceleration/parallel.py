"""Several processes for one video: diffusers' context parallelism (Ulysses, ring) and CFG parallel.

Launched with ``torchrun --nproc_per_node N scripts/infer.py ... --parallel MODE``; every rank runs the same
pipeline with the same seed, and only rank 0 writes files (:func:`is_main_process`).

* ``ulysses`` / ``ring``: the transformer's ``_cp_plan`` splits video, text and pose tokens along the sequence at the
  first block and gathers the output at ``proj_out``; attention exchanges tokens between ranks (diffusers'
  ``enable_parallelism``). Uneven splits (226 text tokens on 4 ranks) use diffusers' ``*_anything`` modes.
* ``cfg``: with classifier-free guidance the transformer's batch is (unconditional, conditional); each of two ranks
  runs one half and the halves are all-gathered, so the guided prediction is that of one process.

The hooks live in :mod:`.parallel_hooks`; this module imports no torch at module level (the scripts parse their
flags first).
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import UserError

PARALLEL_MODES = ("none", "ulysses", "ring", "cfg")
#: the help of ``--parallel`` (a runtime flag: :mod:`.runtime` adds it with the others)
PARALLEL_HELP = (
    "several processes for one video, launched with torchrun --nproc_per_node N: ulysses (sequence split, any N), "
    "ring (sequence split; GPUs with a flash/cuDNN kernel), cfg (N=2, one guidance branch each); rank 0 writes"
)


def world_size() -> int:
    """Processes launched for this run (torchrun's ``WORLD_SIZE``; 1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on the rank that writes outputs (rank 0, or the only process)."""
    return int(os.environ.get("RANK", "0")) == 0


def check_parallel(mode: str) -> None:
    """Refuse a ``--parallel`` mode that cannot run with this launch, in one line (before any weights load)."""
    if mode not in PARALLEL_MODES:
        raise UserError(f"--parallel {mode}", f"one of {', '.join(PARALLEL_MODES)}")
    ranks = world_size()
    if mode == "none" and ranks > 1:
        raise UserError(
            f"{ranks} processes were launched with --parallel none (each would compute the same video)",
            "--parallel ulysses, ring or cfg, or launch one process",
        )
    if mode != "none" and ranks < 2:
        raise UserError(
            f"--parallel {mode} with one process",
            f"launch several: torchrun --nproc_per_node 2 scripts/infer.py ... --parallel {mode}",
        )
    if mode == "cfg" and ranks != 2:
        raise UserError(f"--parallel cfg with {ranks} processes", "exactly 2: one per branch of the guided batch")


def parallel_device(device: str) -> str:
    """This rank's device: ``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per process); CPU stays CPU."""
    if str(device) == "cuda" and world_size() > 1:
        import torch

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return f"cuda:{local_rank}"
    return device


def init_distributed(device: str) -> None:
    """Join torchrun's process group (NCCL on GPUs, gloo on the CPU); no-op for one process or when joined."""
    import torch.distributed as dist

    if world_size() < 2 or dist.is_initialized():
        return
    dist.init_process_group(backend="nccl" if str(device).startswith("cuda") else "gloo")


def apply_parallel(pipe: Any, mode: str, device: Any = None) -> None:
    """Make ``pipe``'s transformer run across the launched ranks (``mode`` from :data:`PARALLEL_MODES`).

    ``device``: where the pipeline computes (picks NCCL or gloo; default the transformer's device, which offload
    leaves on the CPU)."""
    check_parallel(mode)
    if mode == "none":
        return
    from .parallel_hooks import enable_cfg_parallel, enable_context_parallel

    init_distributed(str(device if device is not None else pipe.transformer.device))
    if mode == "cfg":
        enable_cfg_parallel(pipe.transformer)
    else:
        enable_context_parallel(pipe.transformer, mode)
