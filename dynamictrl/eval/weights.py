"""Metric weight files: where they live, how they are loaded, and how they are fingerprinted.

None of the backbone weights can be downloaded by this package. Users place the published files in one
directory and point at it with ``--weights-dir`` or the ``DYNAMICTRL_METRIC_WEIGHTS`` environment variable
(the table of files and sources is in ``docs/evaluation.md``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads with the first weight file: scripts/evaluate.py --help stays light
    import torch

logger = logging.getLogger(__name__)

WEIGHTS_ENV_VAR = "DYNAMICTRL_METRIC_WEIGHTS"


@dataclass(frozen=True)
class WeightFile:
    """A published weight file: its expected file name, what it is for, and where users usually get it."""

    filename: str
    purpose: str
    source: str


WEIGHT_FILES: dict[str, WeightFile] = {
    "lpips_vgg": WeightFile(
        "vgg.pth",
        "LPIPS v0.1 linear heads (VGG)",
        "richzhang/PerceptualSimilarity on GitHub, lpips/weights/v0.1/vgg.pth (also inside the `lpips` pip wheel)",
    ),
    "vgg16_imagenet": WeightFile(
        "vgg16-397923af.pth",
        "ImageNet VGG16 backbone for LPIPS",
        "https://download.pytorch.org/models/vgg16-397923af.pth (torchvision's VGG16 ImageNet weights)",
    ),
    "resnet3d_kinetics": WeightFile(
        "resnet-50-kinetics.pth",
        "3D ResNet-50 (Kinetics-400) for FID-VID",
        "kenshohara/3D-ResNets-PyTorch pretrained models (Google Drive link in its README; DisCo's README links it too)",
    ),
    "i3d_kinetics": WeightFile(
        "i3d_pretrained_400.pt",
        "I3D (Kinetics-400) for FVD",
        "wilson1yan/VideoGPT FVD code (Google Drive id 1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT; mirrored by TATS and "
        "Open-Sora-Plan)",
    ),
    "inception_fid": WeightFile(
        "pt_inception-2015-12-05-6726825d.pth",
        "Inception-v3 (pytorch-fid) for FID",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    ),
}


class MissingWeightError(FileNotFoundError):
    """A metric needs a weight file that is not present; the message names the file and where to get it."""


def weights_dir_from(arg: str | Path | None) -> Path | None:
    """The weights directory: the explicit argument, else ``$DYNAMICTRL_METRIC_WEIGHTS``, else None."""
    if arg:
        return Path(arg)
    env = os.environ.get(WEIGHTS_ENV_VAR)
    return Path(env) if env else None


def resolve_weight(key: str, weights_dir: str | Path | None) -> Path:
    """Path of the weight file ``key`` (one of :data:`WEIGHT_FILES`) inside ``weights_dir``.

    Raises :class:`MissingWeightError` naming the expected file and where users usually get it.
    """
    if key not in WEIGHT_FILES:
        raise ValueError(f"unknown weight file key {key!r}; allowed: {sorted(WEIGHT_FILES)}")
    spec = WEIGHT_FILES[key]
    where = f"Get it from {spec.source}."
    if weights_dir is None:
        raise MissingWeightError(
            f"{spec.purpose} needs the weight file '{spec.filename}', but no weights directory was given "
            f"(use --weights-dir or set {WEIGHTS_ENV_VAR}). {where}"
        )
    path = Path(weights_dir) / spec.filename
    if not path.is_file():
        raise MissingWeightError(f"{spec.purpose} needs the weight file '{path}', which does not exist. {where}")
    return path


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a tensor state dict saved with ``torch.save`` (safely: ``weights_only=True``).

    Checkpoints that wrap the weights (``{"state_dict": ...}``, as ``resnet-50-kinetics.pth`` does) are
    unwrapped; a ``module.`` prefix from ``DataParallel`` is stripped.
    """
    import torch

    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    state = {}
    for name, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue
        state[name[len("module.") :] if name.startswith("module.") else name] = value
    return state


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str, ignore_prefixes=()) -> None:
    """Copy ``state`` into ``module`` strictly, naming every missing, unexpected or mis-shaped key.

    BatchNorm ``num_batches_tracked`` buffers may be absent (old checkpoints predate them); keys starting
    with one of ``ignore_prefixes`` (e.g. a classifier we do not use) are dropped.
    """
    state = {k: v for k, v in state.items() if not any(k.startswith(p) for p in ignore_prefixes)}
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    bad_shape = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    if missing or unexpected or bad_shape:
        raise ValueError(
            f"{source}: the state dict does not match {type(module).__name__}: "
            f"missing {missing[:8]}{'...' if len(missing) > 8 else ''} ({len(missing)}), "
            f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''} ({len(unexpected)}), "
            f"wrong shapes {bad_shape[:8]}"
        )
    module.load_state_dict(state, strict=False)
    logger.info("loaded %d tensors into %s from %s", len(state), type(module).__name__, source)
