"""Training data in the official DynamiCtrl layout, read as pixels (the latent cache is :mod:`.latent_cache`).

Layout (the official DynamiCtrl training-data layout)::

    DATA_ROOT/
      videos/NAME.mp4        target clips
      poses/NAME.mp4         rendered pose videos, same frame count and size
      masks/NAME.mp4|png     optional person masks (white = person)
      prompts.txt            NAME.mp4#####caption   (one line per clip)
      videos.txt             optional index: one video path per line (relative to DATA_ROOT or absolute)

A sample is ``num_frames`` frames taken every ``frame_stride`` frames (random start), resized and centre-cropped
with the inference policy (:func:`dynamictrl.data.io.resize_and_center_crop`). The reference image is the first
sampled frame and the pose clip covers the same frames, so the pose video's first frame is the reference's pose:
the official release's convention. With a mask, the reference is masked to the person with probability
``reference_mask_prob``, by :func:`~dynamictrl.data.pixels.apply_reference_mask` (the one the pipeline uses)
(background 0 in [-1, 1], i.e. mid-grey), so training and inference see the same masked reference.

An unreadable video is skipped (the next clip is used instead) and counted in the sample's ``skipped`` field so the
trainer can log it; a dataset with missing pose files fails at construction, listing them.

Randomness is a pure function of ``(seed, epoch, index)``: the sampler yields ``(index, epoch)`` pairs, so a resumed
run reads exactly the clips (and crops, masks) the uninterrupted run would have.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .io import IMAGE_SUFFIXES, VideoReadError, read_image, read_video, resize_and_center_crop
from .pixels import apply_reference_mask, to_model_range
from .prompts import read_clip_prompts

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------- the layout


def list_clips(root: str | Path) -> list[dict[str, Any]]:
    """The clips of a dataset folder: ``[{name, video, pose, mask, prompt}]``.

    Raises ``FileNotFoundError`` when the folder or ``videos/`` is missing and ``ValueError`` listing every clip
    without a pose video (or without a caption when ``prompts.txt`` exists).
    """
    root = Path(root)
    if not (root / "videos").is_dir():
        raise FileNotFoundError(f"{root}: expected a dataset folder with videos/ and poses/ (see docs/training.md)")
    if (root / "videos.txt").is_file():
        videos = []
        for line in (root / "videos.txt").read_text().splitlines():
            if line.strip():
                path = Path(line.strip())
                videos.append(path if path.is_absolute() else root / path)
    else:
        videos = sorted(p for p in (root / "videos").iterdir() if p.is_file() and not p.name.startswith("."))
    if not videos:
        raise ValueError(f"{root}/videos: no videos found")
    prompts = read_clip_prompts(root / "prompts.txt") if (root / "prompts.txt").is_file() else None

    clips, missing_pose, missing_prompt = [], [], []
    for video in videos:
        pose = root / "poses" / video.name
        if not pose.is_file():
            missing_pose.append(str(pose))
        if prompts is not None and video.name not in prompts:
            missing_prompt.append(video.name)
        mask = None
        for candidate in [root / "masks" / video.name] + [
            root / "masks" / (video.stem + suffix) for suffix in IMAGE_SUFFIXES
        ]:
            if candidate.is_file():
                mask = candidate
                break
        prompt = prompts.get(video.name, "") if prompts is not None else ""
        clips.append(dict(name=video.stem, video=video, pose=pose, mask=mask, prompt=prompt))
    if missing_pose:
        raise ValueError(
            f"{root}: {len(missing_pose)} of {len(videos)} videos have no pose video: "
            + ", ".join(missing_pose[:20])
            + (" ..." if len(missing_pose) > 20 else "")
            + " (render them with tools/extract_pose.py)"
        )
    if missing_prompt:
        raise ValueError(
            f"{root}/prompts.txt has no caption for {len(missing_prompt)} videos: "
            + ", ".join(missing_prompt[:20])
            + (" ..." if len(missing_prompt) > 20 else "")
        )
    return clips


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one sample: a pure function of the run seed, the epoch and the clip index."""
    return np.random.default_rng([seed, epoch, index])


def clip_indices(num_available: int, num_frames: int, stride: int, rng: np.random.Generator | None) -> np.ndarray:
    """Frame indices of one clip (random start when ``rng`` is given, else 0). Raises ``ValueError`` if too short."""
    span = (num_frames - 1) * stride + 1
    if num_available < span:
        raise ValueError(f"needs {span} frames ({num_frames} every {stride}), has {num_available}")
    start = int(rng.integers(0, num_available - span + 1)) if rng is not None else 0
    return start + stride * np.arange(num_frames)


# ---------------------------------------------------------------------------------------------------- pixel data


class VideoPoseDataset(Dataset):
    """Clips, pose clips and reference images read from the official layout.

    ``dataset[(index, epoch)]`` (or ``dataset[index]`` for epoch 0) returns::

        video      (3, F, H, W) float in [-1, 1]   target clip
        pose       (3, F, H, W) float in [-1, 1]   pose clip; frame 0 is the reference's pose
        reference  (3, H, W)    float in [-1, 1]   first clip frame, masked to the person with reference_mask_prob
        prompt     str
        name       str
        skipped    int   unreadable clips skipped to produce this sample
    """

    def __init__(
        self,
        root: str | Path,
        num_frames: int,
        height: int,
        width: int,
        frame_stride: int = 1,
        random_start: bool = True,
        reference_mask_prob: float = 0.0,
        seed: int = 0,
    ):
        self.root = Path(root)
        self.clips = list_clips(self.root)
        self.num_frames, self.height, self.width = num_frames, height, width
        self.frame_stride = frame_stride
        self.random_start = random_start
        self.reference_mask_prob = reference_mask_prob
        self.seed = seed
        self._bad: set[int] = set()
        if reference_mask_prob > 0 and not any(clip["mask"] for clip in self.clips):
            raise ValueError(
                f"data.reference_mask_prob={reference_mask_prob} but {self.root}/masks has no masks "
                "(make them with tools/make_masks.py)"
            )

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        skipped = 0
        for attempt in range(len(self.clips)):
            current = (index + attempt) % len(self.clips)
            if current in self._bad:
                skipped += 1
                continue
            try:
                sample = self._load(current, sample_rng(self.seed, epoch, current))
            except (VideoReadError, ValueError) as err:
                self._bad.add(current)
                skipped += 1
                logger.warning("skipping clip %s: %s", self.clips[current]["name"], err)
                continue
            sample["skipped"] = skipped
            return sample
        raise RuntimeError(f"{self.root}: no readable clip left ({len(self._bad)} unreadable)")

    def _load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        clip = self.clips[index]
        masked = clip["mask"] is not None and rng.random() < self.reference_mask_prob
        return self.load(index, rng=rng if self.random_start else None, masked_reference=masked)

    def num_source_frames(self, index: int) -> int:
        return len(read_video(self.clips[index]["video"])[0])

    def load(
        self,
        index: int,
        rng: np.random.Generator | None = None,
        start: int | None = None,
        masked_reference: bool = False,
        with_masked_reference: bool = False,
    ) -> dict[str, Any]:
        """Read one clip: random start with ``rng``, else ``start`` (default 0). ``masked_reference`` masks the
        returned reference; ``with_masked_reference`` also returns ``masked_reference`` (the latent cache stores
        both). Raises ``VideoReadError`` / ``ValueError`` for unreadable or too-short clips."""
        clip = self.clips[index]
        frames, _ = read_video(clip["video"])  # (T, H, W, 3)
        poses, _ = read_video(clip["pose"])  # (T, H, W, 3)
        if len(poses) != len(frames):
            raise ValueError(f"{clip['pose']} has {len(poses)} frames, {clip['video']} has {len(frames)}")
        idx = clip_indices(len(frames), self.num_frames, self.frame_stride, rng)
        if rng is None and start:
            if idx[-1] + start >= len(frames):
                raise ValueError(f"{clip['video']}: start {start} leaves fewer than {self.num_frames} frames")
            idx = idx + start
        video = resize_and_center_crop(frames[idx], self.height, self.width)  # (F, H, W, 3)
        pose = resize_and_center_crop(poses[idx], self.height, self.width)  # (F, H, W, 3)
        reference = to_model_range(video[:1])[:, 0]  # (3, H, W): the first clip frame, whose pose is pose[0]
        masked = None
        if clip["mask"] is not None and (masked_reference or with_masked_reference):
            person = torch.from_numpy(self._person_mask(clip["mask"], int(idx[0]))).float()  # (H, W) in {0, 1}
            masked = apply_reference_mask(reference[None], person)[0]  # background 0 (grey), as at inference
        sample = dict(
            video=to_model_range(video),
            pose=to_model_range(pose),
            reference=masked if masked_reference and masked is not None else reference,
            prompt=clip["prompt"],
            name=clip["name"],
            start=int(idx[0]),
        )
        if with_masked_reference and masked is not None:
            sample["masked_reference"] = masked
        return sample

    def _person_mask(self, path: Path, frame: int) -> np.ndarray:
        """Binary person mask (H, W) uint8 of the given frame, resized and cropped like the frames."""
        if path.suffix.lower() in IMAGE_SUFFIXES:
            mask = read_image(path)[None]  # (1, h, w, 3)
        else:
            masks, _ = read_video(path)  # (T, h, w, 3)
            if frame >= len(masks):
                raise ValueError(f"{path} has {len(masks)} frames; the reference is frame {frame}")
            mask = masks[frame : frame + 1]
        mask = resize_and_center_crop(mask, self.height, self.width)[0]  # (H, W, 3)
        return (mask[..., 0] > 127).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------- batching


class ResumableSampler(Sampler):
    """An endless, rank-aware, resumable sampler yielding ``(index, epoch)`` pairs.

    Each epoch is a permutation seeded by ``(seed, epoch)``; rank ``r`` of ``world_size`` takes every
    ``world_size``-th element, cut so every rank gets the same whole number of batches (a dataset smaller than one
    global batch is repeated). ``start_batch`` skips that many of this rank's batches: the data position on resume.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        start_batch: int = 0,
    ):
        if num_samples < 1:
            raise ValueError("the dataset is empty")
        self.num_samples, self.batch_size = num_samples, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.shuffle = shuffle
        self.start_batch = start_batch
        global_batch = batch_size * world_size
        self.batches_per_epoch = max(1, num_samples // global_batch)

    def epoch_order(self, epoch: int) -> list[int]:
        """This rank's indices for one epoch (a multiple of batch_size)."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            order = list(range(self.num_samples))
        needed = self.batches_per_epoch * self.batch_size * self.world_size
        while len(order) < needed:
            order = order + order
        return order[:needed][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = divmod(self.start_batch, self.batches_per_epoch)
        while True:
            order = self.epoch_order(epoch)
            for index in order[skip * self.batch_size :]:
                yield index, epoch
            skip = 0
            epoch += 1

    def __len__(self) -> int:  # one epoch; the iterator itself never ends
        return self.batches_per_epoch * self.batch_size


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors, keep strings as lists, sum ``skipped``."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key == "skipped":
            batch[key] = int(sum(values))
        elif isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch
