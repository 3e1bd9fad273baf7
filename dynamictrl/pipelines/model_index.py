"""A pipeline folder's ``model_index.json`` in any of the namings DynamiCtrl folders use, mapped to our classes.

A DynamiCtrl pipeline folder names its components in one of three ways:

* (a) the official release's classes, as diffusers' ``save_pretrained`` records classes defined in the official
  package (which is also called ``dynamictrl``): ``["dynamictrl", "DynamiCtrlTransformerModel"]``,
  ``["dynamictrl", "AutoencoderKLCogVideoX"]``;
* (b) diffusers' CogVideoX names (``["diffusers", "CogVideoXTransformer3DModel"]``) with the official transformer's
  config and weights inside;
* (c) ours, as :meth:`DynamiCtrlPipeline.save_pretrained` writes them.

The official names resolve in our package as diffusers resolves any name, ``getattr(dynamictrl, name)`` (the aliases
are exported by ``dynamictrl/__init__.py``); the transformer is always loaded as
:class:`~dynamictrl.models.DynamiCtrlTransformer3DModel`, whose ``from_pretrained`` refuses a folder whose weights
do not all land (so diffusers' plain CogVideoX class can never drop the pose weights in silence).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from dynamictrl.errors import UserError
from dynamictrl.models.checkpoint import INDEX_NAME, WEIGHTS_NAME
from dynamictrl.models.transformer import is_pose_branch_key, no_pose_weights_error

# the submodule each pose-control mode adds to every block (uvt adds none: it widens the patch embedding)
POSE_MODULES = {"padaln": "control_norm1", "cross_attn": "pose_attn"}

OFFICIAL_PACKAGE = "dynamictrl"
# what a DynamiCtrl transformer is called in the three namings: ours, the official release's, diffusers'
TRANSFORMER_CLASS_NAMES = ("DynamiCtrlTransformer3DModel", "DynamiCtrlTransformerModel", "CogVideoXTransformer3DModel")


def normalize_component_names(config: dict[str, Any], transformer_entry: tuple[str, str]) -> dict[str, Any]:
    """``config`` (a loaded ``model_index.json``) with each component entry loadable by diffusers into our classes.

    ``transformer_entry`` is the ``(library, class)`` diffusers should load the transformer with. Raises
    :class:`~dynamictrl.errors.UserError` for a transformer that is not a CogVideoX/DynamiCtrl one and for an
    official-package name that our package does not provide.
    """
    config = dict(config)
    for name, entry in config.items():
        if name.startswith("_") or not _is_component_entry(entry):
            continue
        library, class_name = entry
        if name == "transformer":
            if class_name not in TRANSFORMER_CLASS_NAMES:
                raise UserError(
                    f"the folder's transformer is a {class_name}, not a DynamiCtrl transformer",
                    f"model_index.json naming one of {', '.join(TRANSFORMER_CLASS_NAMES)}",
                )
            config[name] = list(transformer_entry)
        elif library == OFFICIAL_PACKAGE:
            config[name] = list(_loadable_entry(name, class_name))
    return config


def _is_component_entry(entry: Any) -> bool:
    return isinstance(entry, (list, tuple)) and len(entry) == 2 and all(isinstance(v, str) for v in entry)


def _loadable_entry(component: str, class_name: str) -> tuple[str, str]:
    """An official-package class resolved in ours, re-expressed as the library diffusers loads it from."""
    cls = getattr(importlib.import_module(OFFICIAL_PACKAGE), class_name, None)
    if not isinstance(cls, type):
        raise UserError(
            f'the folder\'s {component} is ["{OFFICIAL_PACKAGE}", "{class_name}"], a class this package does not '
            "provide",
            "an official DynamiCtrl release folder, or one saved by DynamiCtrlPipeline.save_pretrained",
        )
    library = cls.__module__.split(".")[0]
    return (library if library in ("diffusers", "transformers") else cls.__module__), cls.__name__


def check_pose_weights(transformer_dir: str | Path) -> None:
    """Refuse a transformer folder without pose weights before anything is loaded.

    The same refusal as :meth:`DynamiCtrlTransformer3DModel.from_pretrained`'s strict check, read from the
    config and the safetensors header (or shard index) only, so a 5B user hears it before the text encoder loads.
    Folders this cannot read (no safetensors) are left to the loader.
    """
    folder = Path(transformer_dir)
    try:
        config = json.loads((folder / "config.json").read_text())
        names = _weight_names(folder)
    except (OSError, ValueError):
        return
    mode = config.get("pose_control", "padaln")  # official configs have no key: their structure is padaln
    if names is not None and mode in POSE_MODULES and not any(is_pose_branch_key(name) for name in names):
        raise no_pose_weights_error(folder, mode, [POSE_MODULES[mode]])


def _weight_names(folder: Path) -> list[str] | None:
    if (folder / INDEX_NAME).is_file():
        return list(json.loads((folder / INDEX_NAME).read_text())["weight_map"])
    if (folder / WEIGHTS_NAME).is_file():
        from safetensors import safe_open

        with safe_open(folder / WEIGHTS_NAME, framework="pt") as weights:
            return list(weights.keys())
    return None
