"""Validation during training: sample one clip with the DynamiCtrl pipeline, save it as MP4, compute metrics.

Runs on the main process every ``validation.every_steps`` steps (other ranks wait). Writes
``OUTPUT/validation/step-<step>.mp4`` and appends ``{step, l1, ssim, psnr}`` (against ``validation.target`` when
given) to ``OUTPUT/validation/metrics.jsonl``; the metrics also go to the trackers.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.io import read_image, read_video, resize_and_center_crop, write_video

logger = logging.getLogger(__name__)


def _pipeline_class():
    try:
        from ..pipelines import DynamiCtrlPipeline
    except ImportError as err:
        raise ImportError(
            "validation needs dynamictrl.pipelines.DynamiCtrlPipeline, which this installation lacks; "
            "set validation.every_steps=0 to train without validation"
        ) from err
    return DynamiCtrlPipeline


def sample_validation_clip(trainer) -> np.ndarray:
    """One clip (F, H, W, 3) uint8 sampled with the current weights."""
    cfg = trainer.cfg
    val = cfg.validation
    if not val.reference or not val.pose:
        raise ValueError("validation.every_steps > 0 needs validation.reference (image) and validation.pose (video)")
    frames = val.num_frames or cfg.data.num_frames
    height, width = val.height or cfg.data.height, val.width or cfg.data.width
    reference = resize_and_center_crop(read_image(val.reference)[None], height, width)[0]  # (H, W, 3)
    pose, _ = read_video(val.pose)
    if len(pose) < frames:
        raise ValueError(f"validation.pose {val.pose} has {len(pose)} frames; {frames} are needed")
    pose = resize_and_center_crop(pose[:frames], height, width)  # (F, H, W, 3)

    c = trainer.spec.components
    transformer = trainer.accelerator.unwrap_model(trainer.transformer)
    pipe = _pipeline_class()(
        vae=c.vae,
        text_encoder=c.text_encoder,
        tokenizer=c.tokenizer,
        transformer=transformer,
        scheduler=copy.deepcopy(c.scheduler),  # sampling sets timesteps on it; training keeps its own
        scale_reference_latents=trainer.spec.scale_reference_latents,
    )
    pipe.set_progress_bar_config(disable=True)
    was_training = transformer.training
    transformer.eval()
    try:
        with torch.no_grad(), trainer.accelerator.autocast():
            out = pipe(
                image=reference,
                pose_video=pose,
                prompt=val.prompt,
                num_frames=frames,
                height=height,
                width=width,
                num_inference_steps=val.num_inference_steps,
                guidance_scale=val.guidance_scale,
                generator=torch.Generator(device=trainer.device).manual_seed(val.seed),
                output_type="np",
            )
    finally:
        transformer.train(was_training)
    video = np.asarray(out.frames[0])  # (F, H, W, 3) in [0, 1]
    if video.dtype != np.uint8:
        video = (np.clip(video, 0, 1) * 255).round().astype(np.uint8)
    return video  # (F, H, W, 3)


def clip_metrics(pred: np.ndarray, target_path: str, height: int, width: int) -> dict[str, float]:
    """L1 / SSIM / PSNR of a sampled clip against a target video, pooled as the 'clean' profile does."""
    from ..eval.image_metrics import video_metrics

    target, _ = read_video(target_path)
    target = resize_and_center_crop(target[: len(pred)], height, width)
    if len(target) < len(pred):
        raise ValueError(f"validation.target {target_path} has {len(target)} frames; {len(pred)} were sampled")
    return {f"val/{k}": v for k, v in video_metrics(target, pred, "clean").items()}


def run_validation(trainer) -> dict[str, Any] | None:
    """Sample, save and score one validation clip (main process); returns the metrics there, None elsewhere."""
    accelerator = trainer.accelerator
    result = None
    if accelerator.is_main_process:
        cfg = trainer.cfg
        folder = Path(cfg.train.output_dir) / "validation"
        folder.mkdir(parents=True, exist_ok=True)
        video = sample_validation_clip(trainer)
        path = write_video(folder / f"step-{trainer.global_step:07d}.mp4", video, fps=8.0)
        result = {"step": trainer.global_step, "video": str(path)}
        if cfg.validation.target:
            metrics = clip_metrics(video, cfg.validation.target, video.shape[1], video.shape[2])
            result.update(metrics)
            if cfg.logging.report_to:
                accelerator.log(metrics, step=trainer.global_step)
        with open(folder / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(result) + "\n")
        logger.info("validation at step %d: %s", trainer.global_step, result)
    accelerator.wait_for_everyone()
    return result
