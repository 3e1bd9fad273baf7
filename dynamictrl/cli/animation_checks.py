"""Checks of the animation arguments (``dynamictrl-infer``, ``dynamictrl-sample-long``, the app) before any weight loads.

The model folder's JSON configs say everything the arguments are checked against (sizes, clip length), so a bad
``--height`` or a folder with a missing component is reported in a second, not after a 5B model has loaded. No torch
import at module level.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from dynamictrl.cli import at_least, existing_dir, existing_file, frame_count
from dynamictrl.errors import UserError
from dynamictrl.models.trained import transformer_folder

MODEL_FOLDER = "a diffusers-layout folder: model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/"
TRANSFORMER_FOLDER = "a transformer folder: config.json + diffusion_pytorch_model*.safetensors (or a pipeline folder)"
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json")


@dataclass(frozen=True)
class ModelGeometry:
    """The sizes a model generates, from its transformer and VAE configs."""

    spatial: int  # VAE spatial factor
    temporal: int  # VAE temporal factor
    patch_size: int
    sample_height: int  # latent pixels
    sample_width: int
    sample_frames: int  # the model's default clip length
    learned_positions: bool  # CogVideoX 1.0 I2V: one fixed resolution

    @property
    def size_multiple(self) -> int:
        return self.spatial * self.patch_size

    @property
    def default_size(self) -> tuple[int, int]:
        return self.sample_height * self.spatial, self.sample_width * self.spatial

    @classmethod
    def from_configs(cls, transformer: dict, vae: dict) -> ModelGeometry:
        # defaults are CogVideoXTransformer3DModel's and AutoencoderKLCogVideoX's
        return cls(
            spatial=2 ** (len(vae.get("block_out_channels", (128, 256, 256, 512))) - 1),
            temporal=int(vae.get("temporal_compression_ratio", 4)),
            patch_size=int(transformer.get("patch_size", 2)),
            sample_height=int(transformer.get("sample_height", 60)),
            sample_width=int(transformer.get("sample_width", 90)),
            sample_frames=int(transformer.get("sample_frames", 49)),
            learned_positions=bool(transformer.get("use_learned_positional_embeddings", False)),
        )

    @classmethod
    def from_pipeline(cls, pipe) -> ModelGeometry:
        return cls.from_configs(dict(pipe.transformer.config), dict(pipe.vae.config))

    @classmethod
    def from_folder(cls, model: Path, transformer: Path | None = None, model_flag: str = "--model") -> ModelGeometry:
        """Check that ``model`` (and ``transformer``) hold every component, and read their sizes."""
        model = Path(model).expanduser()
        if not model.is_dir():
            raise UserError(f"{model_flag} {model}: no such folder", MODEL_FOLDER + "; nothing is downloaded")
        index = _read_json(model / "model_index.json", model_flag, MODEL_FOLDER)
        for name, entry in index.items():
            if not name.startswith("_") and isinstance(entry, list) and entry and entry[0] is not None:
                if not (model / name).is_dir() and not (name == "transformer" and transformer is not None):
                    raise UserError(f"{model_flag} {model}: model_index.json lists {name} but {model / name}/ is missing",
                                    MODEL_FOLDER)  # fmt: skip
        vae = _read_json(model / "vae" / "config.json", model_flag, MODEL_FOLDER)
        if transformer is None:
            return cls.from_configs(_transformer_config(model / "transformer", model_flag), vae)
        transformer = Path(transformer).expanduser()
        if not transformer.is_dir():
            raise UserError(
                f"--transformer {transformer}: no such folder", TRANSFORMER_FOLDER + "; nothing is downloaded"
            )
        transformer = transformer_folder(transformer)  # a release folder stands for its transformer/
        return cls.from_configs(_transformer_config(transformer, "--transformer"), vae)


def _read_json(path: Path, flag: str, expected: str) -> dict:
    if not path.is_file():
        raise UserError(f"{flag} {path.parent}: no {path.name}", expected)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{flag} {path}: not valid JSON ({err})", expected) from err


def _transformer_config(folder: Path, flag: str) -> dict:
    config = _read_json(folder / "config.json", flag, TRANSFORMER_FOLDER)
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        found = sorted(p.name for p in folder.iterdir())
        raise UserError(f"{flag} {folder}: no weights (found {found})", f"{' or '.join(WEIGHT_FILES)}; no .bin files")
    return config


def check_generation_args(args: argparse.Namespace) -> None:
    """The checks that need no model: values in range, files present, one prompt source."""
    at_least("--steps", args.steps, 1)
    at_least("--max-frames", args.max_frames, 1)
    at_least("--overlap", args.overlap, 1)
    at_least("--anchor-every", args.anchor_every, 0)
    at_least("--height", args.height, 1)
    at_least("--width", args.width, 1)
    if args.fps is not None and args.fps <= 0:
        raise UserError(f"--fps {args.fps}", "a positive frame rate")
    if getattr(args, "prompts_file", None) is not None and args.prompt:
        raise UserError("both --prompt and --prompts-file given", "one of them")
    existing_file("--prompts-file", getattr(args, "prompts_file", None), "a text file of prompts")
    existing_file("--pose", args.pose, "a pose video, a keypoints file (.npz/.json) or a raw motion video")
    existing_file("--ref-pose", getattr(args, "ref_pose", None), "a keypoints file (.npz/.json)")
    existing_dir("--pose-models", args.pose_models, "a folder with the DWPose ONNX files")


def check_model_sizes(args: argparse.Namespace, geometry: ModelGeometry) -> tuple[int, int, int]:
    """``(height, width, clip_frames)`` for this model, or a :class:`UserError` naming the flag."""
    default_height, default_width = geometry.default_size
    height, width = args.height or default_height, args.width or default_width
    multiple = geometry.size_multiple
    for flag, value in (("--height", height), ("--width", width)):
        if value % multiple:
            raise UserError(
                f"{flag} {value}",
                f"a multiple of {multiple} for this model: VAE factor {geometry.spatial} x patch size "
                f"{geometry.patch_size}",
            )
    if geometry.learned_positions and (height, width) != (default_height, default_width):
        raise UserError(
            f"--height x --width {height}x{width}",
            f"{default_height}x{default_width}: this transformer has learned positional embeddings (CogVideoX 1.0 "
            "I2V) and generates one size only",
        )
    clip_frames = args.clip_frames or geometry.sample_frames
    frame_count("--clip-frames", clip_frames, geometry.temporal)
    if args.overlap >= clip_frames:
        raise UserError(f"--overlap {args.overlap}", f"fewer than --clip-frames = {clip_frames}")
    return height, width, clip_frames
