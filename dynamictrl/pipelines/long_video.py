"""Long videos: chain one-clip generations, with a prompt per clip and drift control.

The paper's method: clip k+1 is generated from the last generated frame of clip k (that frame is clip k+1's
reference, and clip k+1's pose segment starts with that frame's pose, as the model expects). So consecutive clips
share ``overlap`` pose frames (1 by default: just the seam frame):

* ``overlap=1``: clip k+1's reference is clip k's last frame; its own re-generation of that frame is dropped.
* ``overlap=K>1``: clip k+1 starts K-1 frames before clip k's end; its reference is clip k's frame at that start, and
  the K shared frames are blended linearly from the old clip to the new one across the seam.

A short last clip is padded with its final pose to the next valid (k*4+1) length and trimmed afterwards.

Drift control:

* ``anchor_every=N``: every N-th clip takes the *original* reference image (and its pose, as its frame 0) instead of
  the previous clip's last frame, so identity cannot drift for more than N clips. The seam of an anchored clip relies
  on the overlap blend; use ``overlap>1`` with it.
* ``color_match``: each new clip's per-channel mean/std in CIE LAB is matched to the first clip's, measured (and
  corrected) inside the person masks when given, else over whole frames.

Prompts change the background over time: a list (one per clip; the last repeats), or a :class:`PromptSchedule`
(``start_frame<TAB>prompt`` lines; a clip uses the last prompt starting at or before the clip's first frame).

Reuse across clips: the runtime (compiled blocks, offload hooks, ...) is applied once to the pipeline, so every clip
runs the same compiled graphs (a short last clip has another shape and compiles once more). A
:class:`~dynamictrl.acceleration.ConditionCache` on the pipeline for the whole video encodes each distinct prompt,
reference image and pose segment once: the original reference is encoded for clip 0 and reused by every anchored
clip, and a pose segment that repeats (a held or looped pose) is not encoded again. The cache is exact (keyed by
content; the VAE samples are still drawn from each clip's generator), so the frames are those of an uncached run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dynamictrl.acceleration import ConditionCache
from dynamictrl.data.frames import is_frame_count
from dynamictrl.data.io import resize_and_center_crop, to_uint8, write_video

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- clip plan


@dataclass(frozen=True)
class ClipSpan:
    """Clip ``index`` covers output frames ``[start, end)``; it is generated with ``length`` frames (>= end - start,
    the excess being padding that is trimmed)."""

    index: int
    start: int
    end: int
    length: int

    @property
    def frames(self) -> int:
        return self.end - self.start


def valid_clip_length(frames: int, temporal_compression_ratio: int = 4) -> int:
    """The smallest k*ratio+1 count >= ``frames``."""
    ratio = temporal_compression_ratio
    return max(1, -(-(frames - 1) // ratio)) * ratio + 1 if frames > 1 else 1


def plan_clips(
    total_frames: int, clip_frames: int, overlap: int = 1, temporal_compression_ratio: int = 4
) -> list[ClipSpan]:
    """Split ``total_frames`` into clips of ``clip_frames`` that share ``overlap`` frames with their predecessor."""
    ratio = temporal_compression_ratio
    if total_frames < 1:
        raise ValueError(f"the pose video is empty (total_frames={total_frames})")
    if not is_frame_count(clip_frames, ratio, min_k=1):
        raise ValueError(f"clip_frames={clip_frames} must be k*{ratio}+1 with k >= 1 (e.g. {2 * ratio + 1}, 49)")
    if not 1 <= overlap < clip_frames:
        raise ValueError(f"overlap={overlap} must be between 1 and clip_frames-1={clip_frames - 1}")
    clips = [ClipSpan(0, 0, min(clip_frames, total_frames), valid_clip_length(min(clip_frames, total_frames), ratio))]
    while clips[-1].end < total_frames:
        start = clips[-1].end - overlap
        end = min(start + clip_frames, total_frames)
        clips.append(ClipSpan(len(clips), start, end, valid_clip_length(end - start, ratio)))
    return clips


# ---------------------------------------------------------------------- prompts


@dataclass
class PromptSchedule:
    """Prompts by start frame (``entries``, sorted) or one per clip (``per_clip``)."""

    entries: list[tuple[int, str]] = field(default_factory=list)
    per_clip: list[str] = field(default_factory=list)

    @classmethod
    def from_file(cls, path: str | Path) -> PromptSchedule:
        """Read ``start_frame<TAB>prompt`` lines, or plain lines (one prompt per clip). Blank and ``#`` lines skip."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"prompts file not found: {path}")
        return cls.from_lines(path.read_text(encoding="utf-8").splitlines(), source=str(path))

    @classmethod
    def from_lines(cls, lines: Sequence[str], source: str = "prompts") -> PromptSchedule:
        timed, plain = [], []
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            head, sep, tail = raw.partition("\t")
            if sep and head.strip().lstrip("-").isdigit():
                start = int(head)
                if start < 0:
                    raise ValueError(f"{source}:{number}: start frame must be >= 0, got {start}")
                timed.append((start, tail.strip()))
            else:
                plain.append(line)
        if timed and plain:
            raise ValueError(f"{source}: mixes 'start_frame<TAB>prompt' lines with plain lines; use one form")
        if not timed and not plain:
            raise ValueError(f"{source}: no prompts found")
        if timed:
            timed.sort(key=lambda item: item[0])
            if timed[0][0] != 0:
                raise ValueError(f"{source}: the first prompt must start at frame 0, got {timed[0][0]}")
            return cls(entries=timed)
        return cls(per_clip=plain)

    @classmethod
    def coerce(cls, prompts: str | Sequence[str] | PromptSchedule | None) -> PromptSchedule:
        if isinstance(prompts, PromptSchedule):
            return prompts
        if prompts is None:
            return cls(per_clip=[""])
        if isinstance(prompts, str):
            return cls(per_clip=[prompts])
        prompts = list(prompts)
        if not prompts:
            raise ValueError("prompts is an empty list; give at least one prompt")
        return cls(per_clip=prompts)

    def prompt_for(self, clip: ClipSpan) -> str:
        if self.per_clip:
            return self.per_clip[min(clip.index, len(self.per_clip) - 1)]
        prompt = self.entries[0][1]
        for start, text in self.entries:
            if start <= clip.start:
                prompt = text
        return prompt

    def warn_unaligned(self, clips: Sequence[ClipSpan]) -> None:
        starts = {clip.start for clip in clips}
        for start, text in self.entries:
            if start not in starts:
                later = [c.start for c in clips if c.start > start]
                logger.warning(
                    "prompt %r starts at frame %d, inside a clip; it takes effect at the next clip start (%s)",
                    text,
                    start,
                    later[0] if later else "never: no later clip",
                )


# ---------------------------------------------------------------------- colour matching


_XYZ_FROM_RGB = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (..., 3) uint8 or float in [0, 1] -> CIE LAB (D65), float64."""
    rgb = np.asarray(rgb, dtype=np.float64) / (255.0 if np.asarray(rgb).dtype == np.uint8 else 1.0)
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ _XYZ_FROM_RGB.T / _WHITE_D65
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE LAB (D65) -> sRGB float in [0, 1] (clipped)."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], -1)
    xyz = np.where(f > 0.206893, f**3, (f - 16.0 / 116.0) / 7.787) * _WHITE_D65
    linear = np.clip(xyz @ _RGB_FROM_XYZ.T, 0.0, None)
    rgb = np.where(linear > 0.0031308, 1.055 * linear ** (1 / 2.4) - 0.055, 12.92 * linear)
    return np.clip(rgb, 0.0, 1.0)


def lab_stats(frames: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel LAB mean and std of frames (T, H, W, 3), over the pixels where ``masks`` (T, H, W) is set."""
    lab = rgb_to_lab(frames).reshape(-1, 3)
    if masks is not None:
        selected = lab[np.asarray(masks, dtype=bool).reshape(-1)]
        lab = selected if len(selected) >= 16 else lab  # too few person pixels to measure: use whole frames
    return lab.mean(0), lab.std(0) + 1e-6


def match_color(
    frames: np.ndarray, target: tuple[np.ndarray, np.ndarray], masks: np.ndarray | None = None
) -> np.ndarray:
    """Shift/scale frames' LAB channels so their mean/std (inside ``masks``) equals ``target``; uint8 (T, H, W, 3).

    With masks only the masked pixels change (the prompt-driven background is left alone).
    """
    mean, std = lab_stats(frames, masks)
    lab = rgb_to_lab(frames)
    corrected = to_uint8(lab_to_rgb((lab - mean) / std * target[1] + target[0]))
    if masks is None:
        return corrected
    keep = np.asarray(masks, dtype=bool)[..., None]
    return np.where(keep, corrected, to_uint8(frames))


# ---------------------------------------------------------------------- the sampler


@dataclass
class ClipRecord:
    """What one clip was generated with (for logs and tests)."""

    span: ClipSpan
    prompt: str
    anchored: bool


@dataclass
class LongVideoResult:
    frames: np.ndarray  # (T, H, W, 3) uint8
    clips: list[ClipRecord]


@contextmanager
def _condition_cache(pipe: Callable, cache: bool | ConditionCache):
    """The pipeline's ``condition_cache`` for the duration of a long video: ``True`` keeps the pipeline's own cache
    or gives it a fresh one, ``False`` none, a :class:`ConditionCache` that one; the attribute is restored after."""
    if not hasattr(pipe, "condition_cache"):  # a pipeline-like callable without the attribute
        yield
        return
    before = pipe.condition_cache
    if cache is True:
        pipe.condition_cache = before if before is not None else ConditionCache()
    else:  # not `cache or None`: an empty ConditionCache is falsy (len 0)
        pipe.condition_cache = None if cache is False else cache
    try:
        yield
    finally:
        pipe.condition_cache = before


def sample_long_video(
    pipe: Callable,
    image: np.ndarray,
    pose_video: np.ndarray,
    prompts: str | Sequence[str] | PromptSchedule | None = None,
    *,
    clip_frames: int = 49,
    overlap: int = 1,
    anchor_every: int = 0,
    color_match: bool = True,
    height: int | None = None,
    width: int | None = None,
    reference_mask: np.ndarray | None = None,
    person_masks: np.ndarray | None = None,
    negative_prompt: str | None = None,
    num_inference_steps: int = 25,
    guidance_scale: float = 3.0,
    seed: int = 0,
    save_clips_dir: str | Path | None = None,
    fps: float = 8.0,
    progress: bool = True,
    cache: bool | ConditionCache = True,
    **pipe_kwargs,
) -> LongVideoResult:
    """Animate a pose video of any length by chaining clips (see the module docstring).

    Args:
        pipe: a :class:`DynamiCtrlPipeline` (anything with its ``__call__`` signature).
        image: reference image, uint8 (H, W, 3).
        pose_video: rendered pose frames, uint8 (T, H, W, 3); frame 0 is the reference's pose.
        prompts: one prompt, a list (one per clip), or a :class:`PromptSchedule`.
        clip_frames: frames per clip (k*4+1). ``overlap``: pose frames shared by consecutive clips (>= 1).
        anchor_every: re-anchor on the original reference every N clips (0: never).
        color_match: match each clip's LAB statistics to the first clip's.
        reference_mask: the reference's person mask (masked-reference models); applied wherever the original
            reference is used. ``person_masks``: (T, H, W) person masks of the output frames (optional); they
            restrict colour matching to the person and, when ``reference_mask`` is given, mask chained references.
        seed: clip k uses ``torch.Generator().manual_seed(seed + k)``, so runs are reproducible.
        save_clips_dir: also write each clip (as generated, before blending) to ``clip_000.mp4``, ...
        cache: reuse the encodings of prompts, the reference and pose segments across clips (exact; see the module
            docstring): ``True`` (a cache for this video, or the pipeline's own ``condition_cache``), ``False``
            (encode everything for every clip), or a :class:`ConditionCache` to keep across videos (a re-run of the
            same inputs then encodes nothing).
    Returns:
        :class:`LongVideoResult` with ``frames`` (T, H, W, 3) uint8 and one :class:`ClipRecord` per clip.
    """
    pose_video = to_uint8(np.asarray(pose_video))
    total = len(pose_video)
    if total == 0:
        raise ValueError("the pose video is empty (0 frames)")
    ratio = getattr(pipe, "vae_scale_factor_temporal", 4)
    if height is None or width is None:
        height, width = pose_video.shape[1], pose_video.shape[2]
    if anchor_every < 0:
        raise ValueError(f"anchor_every={anchor_every} must be >= 0 (0 disables re-anchoring)")
    pose_video = resize_and_center_crop(pose_video, height, width)  # (T, H, W, 3)
    clips = plan_clips(total, clip_frames, overlap, ratio)
    schedule = PromptSchedule.coerce(prompts)
    schedule.warn_unaligned(clips)
    masks = None
    if person_masks is not None:
        masks = np.asarray(person_masks)
        masks = masks[..., 0] if masks.ndim == 4 else masks
        if len(masks) < total:
            raise ValueError(f"person_masks has {len(masks)} frames but the pose video has {total}")
        # as a (T, H, W, 1) mask video: a bare (T, H, W) stack would be read as one (H, W, C) image
        masks = resize_and_center_crop(to_uint8(masks[:total])[..., None], height, width)[..., 0] > 127  # (T, H, W)

    output = np.zeros((total, height, width, 3), dtype=np.uint8)
    records: list[ClipRecord] = []
    target_stats = None
    if save_clips_dir is not None:
        Path(save_clips_dir).mkdir(parents=True, exist_ok=True)
    with _condition_cache(pipe, cache):
        for clip in tqdm(clips, desc="clips", disable=not progress or len(clips) == 1):
            anchored = clip.index == 0 or (anchor_every > 0 and clip.index % anchor_every == 0)
            poses = pose_video[clip.start : clip.end]
            if anchored:
                reference, mask = image, reference_mask
                if clip.index > 0:  # frame 0 of the pose is the original reference's own pose
                    poses = np.concatenate([pose_video[:1], poses[1:]])
            else:
                reference = output[clip.start]
                # a masked-reference model gets every chained reference masked too; any other model sees it whole
                mask = None if masks is None or reference_mask is None else masks[clip.start]
            if clip.length > clip.frames:  # short last clip: hold the last pose
                poses = np.concatenate([poses, np.repeat(poses[-1:], clip.length - clip.frames, axis=0)])
            prompt = schedule.prompt_for(clip)
            result = pipe(
                image=reference,
                pose_video=poses,
                prompt=prompt,
                negative_prompt=negative_prompt,
                reference_mask=mask,
                num_frames=clip.length,
                height=height,
                width=width,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                generator=torch.Generator().manual_seed(seed + clip.index),
                output_type="np",
                **pipe_kwargs,
            )
            frames = to_uint8(np.asarray(result.frames)[0][: clip.frames])  # (F, H, W, 3)
            if save_clips_dir is not None:
                write_video(Path(save_clips_dir) / f"clip_{clip.index:03d}.mp4", frames, fps=fps)
            clip_masks = None if masks is None else masks[clip.start : clip.end]
            if color_match:
                if target_stats is None:
                    target_stats = lab_stats(frames, clip_masks)
                else:
                    frames = match_color(frames, target_stats, clip_masks)
            _blend_into(output, frames, clip, shared=0 if clip.index == 0 else clips[clip.index - 1].end - clip.start)
            records.append(ClipRecord(clip, prompt, anchored))
            logger.info(
                "clip %d: frames %d-%d, prompt %r%s",
                clip.index,
                clip.start,
                clip.end - 1,
                prompt,
                " (anchored on the reference)" if anchored and clip.index else "",
            )

    return LongVideoResult(output, records)


def _blend_into(output: np.ndarray, frames: np.ndarray, clip: ClipSpan, shared: int) -> None:
    """Write a clip into the output; its first ``shared`` frames blend linearly from the old clip to the new one."""
    if shared:
        weights = (np.arange(shared, dtype=np.float32) / shared)[:, None, None, None]  # 0 (old) ... -> new
        old = output[clip.start : clip.start + shared].astype(np.float32)
        new = frames[:shared].astype(np.float32)
        output[clip.start : clip.start + shared] = np.round(old * (1 - weights) + new * weights).astype(np.uint8)
    output[clip.start + shared : clip.end] = frames[shared:]
