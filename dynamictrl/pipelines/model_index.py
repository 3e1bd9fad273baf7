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
from typing import Any

from dynamictrl.errors import UserError

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
