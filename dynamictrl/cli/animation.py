"""What ``dynamictrl-infer`` and ``dynamictrl-sample-long`` share: loading a pipeline, reading inputs, running.

Both scripts go through :func:`animate`, which always uses the long-video sampler (a pose video that fits one clip is
a single pipeline call), so the two give the same result for the same arguments.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dynamictrl.acceleration.parallel import is_main_process, parallel_device
from dynamictrl.acceleration.runtime import (
    RuntimeConfig,
    add_runtime_args,
    apply_runtime,
    check_runtime,
    runtime_from_args,
)
from dynamictrl.assets import EMBEDDED_MODEL_DIR
from dynamictrl.cli import for_flag, read_image_arg, read_video_arg
from dynamictrl.devices import DTYPES, default_device, torch_dtype
from dynamictrl.errors import UserError
from dynamictrl.models.trained import check_folder_fit, transformer_folder
from dynamictrl.pipelines.trained import inspect_trained, is_trained_output, load_trained_pipeline

from .animation_checks import ModelGeometry, check_generation_args, check_model_sizes

if TYPE_CHECKING:  # torch and diffusers load after the arguments are parsed and checked
    import torch

    from dynamictrl.pipelines.long_video import PromptSchedule
    from dynamictrl.pipelines.pipeline_dynamictrl import DynamiCtrlPipeline

logger = logging.getLogger(__name__)

RANDOM_WEIGHTS_NOTICE = (
    "NOTE: no model given and no embedded model at {path}: using RANDOM tiny weights. The result is noise until "
    "the embedded model is trained (or pass --model DIR)."
)


def embedded_model_dir() -> Path | None:
    """The embedded tiny model folder, if it has been trained and saved."""
    return EMBEDDED_MODEL_DIR if (EMBEDDED_MODEL_DIR / "model_index.json").is_file() else None


@dataclass
class LoadedPipeline:
    pipe: DynamiCtrlPipeline
    source: str
    random_weights: bool


def parse_dtype(name: str | None, device: str) -> torch.dtype:
    """``--dtype``, or by default bfloat16 on CUDA and float32 elsewhere."""
    if name is None:
        name = "bfloat16" if str(device).startswith("cuda") else "float32"
    return torch_dtype(name)


def model_geometry(model: Path, transformer: Path | None = None) -> ModelGeometry:
    """The sizes of the model that ``--model`` (and ``--transformer``) name, from JSON files only: a pipeline folder,
    a base folder + transformer (checked to fit its VAE and text encoder), or a training output (``runs/X/final``,
    a checkpoint)."""
    if transformer is None and is_trained_output(model):
        trained = inspect_trained(model)
        return ModelGeometry.from_configs(trained.transformer_config, trained.vae_config)
    geometry = ModelGeometry.from_folder(model, transformer)
    if transformer is not None:
        check_folder_fit(transformer_folder(transformer), model)
    return geometry


def load_pipeline(
    model: str | Path | None = None,
    transformer: str | Path | None = None,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    runtime: RuntimeConfig | None = None,
    scheduler: str = "dpm",
) -> LoadedPipeline:
    """Load a diffusers-layout folder (an official DynamiCtrl release, ours, or a base CogVideoX folder with
    ``transformer`` = DynamiCtrl weights, or a training output: ``runs/X``, ``runs/X/final``, a checkpoint); without
    ``model``, the embedded tiny model, else random tiny components. ``dtype``: float32 by default. Nothing is
    downloaded: a missing folder or file raises a :class:`UserError` naming it. ``runtime`` (compile, attention,
    fp8, offload, cache, VAE tiling; :mod:`dynamictrl.acceleration.runtime`) is checked before the weights load and
    applied after."""
    import torch
    from diffusers import CogVideoXDPMScheduler

    from dynamictrl.models import DynamiCtrlTransformer3DModel
    from dynamictrl.models.checkpoint import resolve_transformer_dir
    from dynamictrl.pipelines.pipeline_dynamictrl import DynamiCtrlPipeline

    dtype = dtype or torch.float32
    runtime = runtime or RuntimeConfig()
    check_runtime(runtime, device)  # an option this machine cannot run fails in one line, before the weights load

    random_weights = False
    if model is None:
        model = embedded_model_dir()
    if model is not None:
        model = Path(model)
        model_geometry(model, transformer)  # every component present and fitting, else one line naming the flag
    if model is None:
        if transformer is not None:
            raise UserError(
                "--transformer given without --model", "the base CogVideoX folder with vae/, text_encoder/..."
            )
        from dynamictrl.models.tiny import build_tiny_components

        pipe = DynamiCtrlPipeline(**build_tiny_components())
        source, random_weights = "random tiny components", True
    elif transformer is None and is_trained_output(model):
        # runs/X, runs/X/final or a checkpoint: a LoRA or pose-branch checkpoint is joined to its recorded base
        pipe = load_trained_pipeline(model, dtype=dtype)
        source = f"{model} (training output)"
    else:
        kwargs = {"dtype": dtype}  # diffusers >= 0.42 (our lower bound) names it dtype
        if transformer is not None:
            transformer = resolve_transformer_dir(transformer)  # a release folder stands for its transformer/
            kwargs["transformer"] = DynamiCtrlTransformer3DModel.from_pretrained(transformer, dtype=dtype)
        pipe = DynamiCtrlPipeline.from_pretrained(model, **kwargs)
        source = str(model) + (f" + transformer {transformer}" if transformer else "")
    if scheduler == "dpm" and not isinstance(pipe.scheduler, CogVideoXDPMScheduler):
        # the official release samples with CogVideoX's DPM scheduler and trailing timesteps
        pipe.scheduler = CogVideoXDPMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    elif scheduler not in ("dpm", "model"):
        raise ValueError(f"scheduler={scheduler!r}; allowed: 'dpm' (official) or 'model' (the folder's own)")
    if pipe.transformer.dtype != dtype:
        pipe = pipe.to(dtype=dtype)
    apply_runtime(pipe, runtime, device)
    return LoadedPipeline(pipe, source, random_weights)


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        type=Path,
        help="pipeline folder: an official DynamiCtrl release, one saved by DynamiCtrlPipeline, or a CogVideoX I2V "
        "base with --transformer (default: the embedded tiny model)",
    )
    group.add_argument(
        "--transformer", type=Path, help="transformer folder to use instead of MODEL/transformer (official DynamiCtrl)"
    )
    group.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    group.add_argument(
        "--dtype", default=None, choices=DTYPES, help="float32 | bfloat16 | float16 (default: bf16 on GPU, fp32 on CPU)"
    )
    group.add_argument(
        "--scheduler",
        choices=("dpm", "model"),
        default="dpm",
        help="dpm: CogVideoX DPM with trailing timesteps (official); model: the folder's own scheduler",
    )
    add_runtime_args(parser)  # the same speed / memory flags in every script (and in the benchmark)


def add_generation_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("generation")
    group.add_argument("--mask", type=Path, help="person mask of the reference: the prompt alone draws the background")
    group.add_argument("--negative-prompt", default=None, help="negative prompt for guidance")
    group.add_argument("--height", type=int, help="output height (default: the model's sample height)")
    group.add_argument("--width", type=int, help="output width (default: the model's sample width)")
    group.add_argument("--steps", type=int, default=None, help="denoising steps (default 25; 10 with --demo)")
    group.add_argument("--guidance", type=float, default=3.0, help="text guidance scale; <= 1 turns it off (3.0)")
    group.add_argument("--seed", type=int, default=42, help="random seed; clip k uses seed + k (default 42)")
    group.add_argument("--max-frames", type=int, help="animate only the first N pose frames")
    group.add_argument("--fps", type=float, help="output frame rate (default: the pose video's)")
    group.add_argument(
        "--retarget",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit keypoints / raw-video poses to the reference's body (default: on with --pose-style dynamictrl)",
    )
    group.add_argument(
        "--reference-pose-first",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pose frame 0 = the reference's own pose, as the official inference does; --max-frames counts it "
        "(default: on with --pose-style dynamictrl, for keypoints / raw videos)",
    )
    group.add_argument(
        "--retarget-mode",
        choices=("global", "bones"),
        help="global: scale + shift (official; default with dynamictrl); bones: also bone lengths (default otherwise)",
    )
    group.add_argument(
        "--ref-pose", type=Path, help="keypoints file of the reference person (.npz/.json) instead of extracting it"
    )
    group.add_argument(
        "--pose-kind",
        default="auto",
        choices=("auto", "rendered", "keypoints", "raw"),
        help="what --pose is (default: detect)",
    )
    group.add_argument("--pose-models", type=Path, help="folder of the DWPose ONNX models (raw motion videos)")
    group.add_argument(
        "--pose-style",
        default="dwpose",
        choices=("dwpose", "dynamictrl"),
        help="how keypoints / raw videos are drawn: dwpose (our models) or dynamictrl (official checkpoints)",
    )
    group.add_argument(
        "--person-masks",
        type=Path,
        help="person-mask video for the output (colour matching; with --mask, masks chained references)",
    )
    group.add_argument("--save-frames", action="store_true", help="also write OUT.png: reference | pose | result rows")
    group.add_argument("--save-pose", action="store_true", help="also write OUT_pose.mp4: the pose video animated")


def add_long_video_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("long videos")
    group.add_argument(
        "--clip-frames",
        "--frames",  # the older name in infer.py
        dest="clip_frames",
        type=int,
        help="frames per clip, k*4+1 (default: the model's sample_frames)",
    )
    group.add_argument("--overlap", type=int, default=1, help="pose frames shared by consecutive clips (default 1)")
    group.add_argument(
        "--anchor-every", type=int, default=0, help="re-anchor on the original reference every N clips (0: never)"
    )
    group.add_argument(
        "--color-match",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="match each clip's LAB colour statistics to the first clip's (default on)",
    )
    group.add_argument("--save-clips", action="store_true", help="also write each clip to OUT_clips/clip_NNN.mp4")


def load_prompts(args: argparse.Namespace) -> PromptSchedule:
    from dynamictrl.pipelines.long_video import PromptSchedule

    if getattr(args, "prompts_file", None):
        if args.prompt:
            raise ValueError("give --prompt or --prompts-file, not both")
        return PromptSchedule.from_file(args.prompts_file)
    return PromptSchedule.coerce(args.prompt or "")


def animate(args: argparse.Namespace, loaded: LoadedPipeline | None = None) -> Path:
    """Run a generation from parsed arguments; returns the output path (prints where it went and how long it took).
    ``loaded``: the pipeline the model arguments name, already loaded (the web app keeps one between requests)."""
    from dynamictrl.data.io import make_contact_sheet, video_fps, write_image, write_video
    from dynamictrl.pose.inputs import load_pose_input

    started = time.perf_counter()
    check_generation_args(args)
    model = args.model if args.model is not None else embedded_model_dir()
    runtime = runtime_from_args(args)  # names only; load_pipeline checks it against the device before the weights

    def load() -> LoadedPipeline:
        device = parallel_device(args.device or default_device())  # cuda -> cuda:LOCAL_RANK under torchrun
        return load_pipeline(model, args.transformer, device, parse_dtype(args.dtype, device), runtime, args.scheduler)

    # Every input is read and checked before the weights load: a mistyped path costs a second, not minutes.
    if model is None:  # random tiny components are built in memory: nothing to load
        loaded = loaded or load()
        geometry = ModelGeometry.from_pipeline(loaded.pipe)
    else:
        geometry = model_geometry(model, args.transformer)
    height, width, clip_frames = check_model_sizes(args, geometry)
    reference = read_image_arg("--ref", args.ref)  # (H, W, 3)
    mask = read_image_arg("--mask", args.mask, mode="L") if args.mask else None
    if mask is not None and mask.shape[:2] != reference.shape[:2]:
        raise UserError(f"--mask is {mask.shape[1]}x{mask.shape[0]}", f"the size of --ref, {reference.shape[1]}x"
                        f"{reference.shape[0]} (W x H)")  # fmt: skip
    pose_help = "a rendered pose video, a keypoints file (.npz/.json) or a raw motion video with --pose-models"
    with for_flag("--pose", pose_help, also=(ValueError, ImportError)):
        poses = load_pose_input(
            args.pose,
            height,
            width,
            reference_image=reference,
            retarget=args.retarget,
            reference_pose_first=args.reference_pose_first,
            retarget_mode=args.retarget_mode,
            reference_pose=args.ref_pose,
            max_frames=args.max_frames,
            models_dir=args.pose_models,
            kind=args.pose_kind,
            pose_style=args.pose_style,
        )  # (T, H, W, 3)
    if args.max_frames:
        poses = poses[: args.max_frames]
    person_masks = read_video_arg("--person-masks", args.person_masks)[0] if args.person_masks else None
    if person_masks is not None and len(person_masks) < len(poses):
        raise UserError(f"--person-masks has {len(person_masks)} frames", f"one per pose frame: {len(poses)}")
    fps = args.fps or video_fps(args.pose)
    with for_flag("--prompts-file", "'start_frame<TAB>prompt' lines, or one prompt per line", also=(ValueError,)):
        prompts = load_prompts(args)
    if loaded is None:
        loaded = load()
    if loaded.random_weights:
        print(RANDOM_WEIGHTS_NOTICE.format(path=EMBEDDED_MODEL_DIR))
    pipe = loaded.pipe

    from dynamictrl.pipelines.long_video import sample_long_video

    out = Path(args.out)
    clips_dir = out.with_name(out.stem + "_clips") if args.save_clips else None
    result = sample_long_video(
        pipe,
        reference,
        poses,
        prompts,
        clip_frames=clip_frames,
        overlap=args.overlap,
        anchor_every=args.anchor_every,
        color_match=args.color_match,
        height=height,
        width=width,
        reference_mask=mask,
        person_masks=person_masks,
        negative_prompt=args.negative_prompt,
        num_inference_steps=args.steps or 25,
        guidance_scale=args.guidance,
        seed=args.seed,
        save_clips_dir=clips_dir if is_main_process() else None,
        fps=fps,
    )
    if not is_main_process():  # --parallel: every rank computed the same video; rank 0 writes it
        return out
    write_video(out, result.frames, fps=fps)
    elapsed = time.perf_counter() - started
    print(f"model: {loaded.source}; {len(result.frames)} frames {width}x{height} in {len(result.clips)} clip(s)")
    if args.save_frames:
        sheet = write_image(out.with_suffix(".png"), make_contact_sheet(reference, poses, result.frames))
        print(f"contact sheet (reference | pose | result): {sheet}")
    if args.save_pose:  # after fitting (retargeting, reference pose first, --max-frames), at the output size
        print(f"pose video used: {write_video(out.with_name(out.stem + '_pose.mp4'), poses, fps=fps)}")
    if clips_dir is not None:
        print(f"clips: {clips_dir}/")
    print(f"wrote {out} in {elapsed:.1f} s")
    return out
