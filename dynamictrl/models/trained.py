"""What a training run leaves for inference, and the trained transformer rebuilt from it.

The trainer writes ``dynamictrl_model.json`` into ``final/`` and into every ``checkpoints/checkpoint-N/``. Its
``weights`` key says what the folder holds:

- ``pipeline``: a complete pipeline folder (``model_index.json``, ``transformer/``, ``vae/``, ...), written where the
  run built its own components (``model.source: tiny``);
- ``transformer``: a complete DynamiCtrl ``transformer/``; the VAE, text encoder, tokenizer and scheduler come from
  ``base`` (a CogVideoX-layout folder);
- ``lora``: LoRA adapters + pose branch in ``adapter`` (a safetensors file, by parameter name) over the frozen
  transformer ``frozen_transformer``; merged when loaded.

Relative paths are relative to the folder of the JSON file, so a run folder can be moved as a whole. Lives in
``models`` because both the trainer (writes) and the pipelines (read) use it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UserError

MODEL_INFO = "dynamictrl_model.json"
FORMAT = 1
WEIGHTS = ("pipeline", "transformer", "lora")
RUN_FOLDERS = "runs/X/final or runs/X/checkpoints/checkpoint-N written by scripts/train.py"


def transformer_folder(path: str | Path) -> Path:
    """``path`` when it is a transformer folder, the ``transformer/`` inside it when it is a pipeline (release)
    folder. No torch import: the CLI checks use it before anything loads."""
    path = Path(path).expanduser()
    if not (path / "config.json").is_file() and (path / "transformer" / "config.json").is_file():
        return path / "transformer"
    return path


def write_model_info(folder: str | Path, info: dict[str, Any]) -> Path:
    """Write ``folder/dynamictrl_model.json`` (paths as given: relative ones are read relative to ``folder``)."""
    if info.get("weights") not in WEIGHTS:
        raise ValueError(f"weights={info.get('weights')!r}; allowed: {', '.join(WEIGHTS)}")
    path = Path(folder) / MODEL_INFO
    path.write_text(json.dumps({"format": FORMAT, **info}, indent=2) + "\n")
    return path


def relative_path(target: str | Path, folder: str | Path) -> str:
    """``target`` as a path relative to ``folder`` (how a run refers to its own base folder)."""
    return os.path.relpath(Path(target).resolve(), Path(folder).resolve())


def read_model_info(folder: str | Path) -> dict[str, Any]:
    """The ``dynamictrl_model.json`` of a trained folder, or a :class:`UserError` that says what the folder is."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder", RUN_FOLDERS)
    path = folder / MODEL_INFO
    if not path.is_file():
        hint = ""
        if (folder / "transformer" / "config.json").is_file():
            hint = "; trained before runs recorded their base: pass --model BASE --transformer " + str(
                folder / "transformer"
            )
        raise UserError(f"{folder} has no {MODEL_INFO}{hint}", RUN_FOLDERS)
    info = json.loads(path.read_text())
    if info.get("format") != FORMAT or info.get("weights") not in WEIGHTS:
        raise UserError(
            f"{path}: unknown format {info.get('format')!r} / weights {info.get('weights')!r}",
            f"format {FORMAT} with weights one of {', '.join(WEIGHTS)}",
        )
    return info


def resolve(folder: str | Path, value: str) -> Path:
    """A path stored in the JSON of ``folder`` (relative ones are relative to ``folder``)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(folder) / path


def _config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: no such file", "a diffusers model folder with config.json")
    return json.loads(path.read_text())


def check_fit(transformer: Mapping[str, Any], vae: Mapping[str, Any], text_encoder: Mapping[str, Any] | None) -> None:
    """Refuse a transformer whose shapes do not fit a VAE and text encoder (configs as dicts).

    Checks the latent channels (out = C, in = 2C: noisy latents and the reference), the temporal compression, the
    text width (T5 ``d_model`` = ``text_embed_dim``, when the model reads text). Sample sizes are not compared: a
    VAE config's ``sample_height``/``sample_width`` are its tiling defaults, not a size the transformer was trained at
    (the official tiny test folders pair a 48x64 transformer with a VAE that says 480x720); the generation size is
    checked against the transformer's own learned positions before loading (``cli.animation_checks.check_model_sizes``).
    """
    problems = []
    latent = vae["latent_channels"]
    if transformer["out_channels"] != latent or transformer["in_channels"] != 2 * latent:
        problems.append(
            f"latent channels: transformer in/out {transformer['in_channels']}/{transformer['out_channels']}, "
            f"VAE latent_channels {latent} (needs {2 * latent}/{latent})"
        )
    if transformer.get("temporal_compression_ratio", 4) != vae.get("temporal_compression_ratio", 4):
        problems.append(
            f"temporal compression: transformer {transformer.get('temporal_compression_ratio')}, "
            f"VAE {vae.get('temporal_compression_ratio')}"
        )
    if text_encoder is not None and transformer.get("use_text", True):
        width = text_encoder.get("d_model")
        if width != transformer["text_embed_dim"]:
            problems.append(
                f"text width: transformer text_embed_dim {transformer['text_embed_dim']}, T5 d_model {width}"
            )
    if problems:
        raise UserError("transformer does not fit the VAE/text encoder: " + "; ".join(problems))


def check_folder_fit(transformer_dir: str | Path, base: str | Path) -> None:
    """:func:`check_fit` of a transformer folder against a base folder (reads only the JSON configs)."""
    check_base_fit(_config(Path(transformer_dir) / "config.json"), base, str(transformer_dir))


def check_base_fit(transformer: Mapping[str, Any], base: str | Path, name: str) -> dict[str, Any]:
    """:func:`check_fit` of a transformer config against ``base``'s VAE and text encoder; the error names ``name``
    and the base. Returns the VAE config."""
    base = Path(base)
    vae = _config(base / "vae" / "config.json")
    text = base / "text_encoder" / "config.json"
    try:
        check_fit(transformer, vae, _config(text) if text.is_file() else None)
    except UserError as err:
        raise UserError(
            f"{name} does not fit the base {base}: {err.what.split(': ', 1)[-1]}",
            "a transformer trained with this base's VAE and text encoder",
        ) from None
    return vae


def frozen_transformer_config(folder: str | Path, info: Mapping[str, Any]) -> dict[str, Any]:
    """The config a ``lora`` folder's transformer will have (for :func:`check_fit` before loading weights)."""
    frozen = info["frozen_transformer"]
    config = _config(resolve(folder, frozen["path"]) / "config.json")
    if frozen["kind"] == "cogvideox":  # from_base adds the branch and these two switches
        config.update(pose_control=info["pose_control"], use_text=info["use_text"])
    return config


def load_trained_transformer(folder: str | Path, info: Mapping[str, Any], ema: bool = False):
    """The trained ``DynamiCtrlTransformer3DModel`` of a folder described by ``info`` (LoRA merged), in float32."""
    from .transformer import DynamiCtrlTransformer3DModel

    folder = Path(folder)
    if info["weights"] != "lora":
        name = "transformer_ema" if ema else "transformer"
        if not (folder / name / "config.json").is_file():
            what = (
                "no EMA weights (trained with train.ema.enabled=false, or a checkpoint)" if ema else "no transformer/"
            )
            raise UserError(f"{folder} has {what}", RUN_FOLDERS)
        return DynamiCtrlTransformer3DModel.from_pretrained(folder / name)
    if ema:
        raise UserError(f"{folder}: a LoRA checkpoint has no EMA weights", "drop the EMA option")
    frozen = info["frozen_transformer"]
    path = resolve(folder, frozen["path"])
    if frozen["kind"] == "cogvideox":
        model = DynamiCtrlTransformer3DModel.from_base(
            path, pose_control=info["pose_control"], use_text=info["use_text"]
        )
    else:
        model = DynamiCtrlTransformer3DModel.from_pretrained(path)
    return merge_adapter(model, folder / info["adapter"], info["lora"])


def merge_adapter(model, adapter_file: str | Path, lora: Mapping[str, Any]):
    """Add a LoRA adapter like the trainer's, load its trained tensors (and the pose branch) and fuse them."""
    try:
        from peft import LoraConfig
    except ImportError as err:
        raise ImportError("loading a LoRA checkpoint needs peft: pip install 'dynamictrl[train]'") from err
    from safetensors.torch import load_file

    model.add_adapter(
        LoraConfig(
            r=lora["rank"],
            lora_alpha=lora["alpha"],
            init_lora_weights=True,
            target_modules=list(lora["target_modules"]),
        )
    )
    state = load_file(str(adapter_file))
    _, unexpected = model.load_state_dict(state, strict=False)
    adapters = {name for name, _ in model.named_parameters() if "lora_" in name}
    absent = sorted(adapters - set(state))
    if unexpected or absent:
        raise UserError(
            f"{adapter_file} does not match the LoRA config recorded beside it: missing {absent[:4]}, unexpected "
            f"{unexpected[:4]}",
            "the checkpoint folder as the trainer wrote it",
        )
    model.fuse_lora()
    model.unload_lora()
    return model
