"""Write puppet-world clips in the official training-data layout (see dynamictrl.data.dataset), plus evaluation extras.

```
OUT/
  videos/NAME.mp4            target clip                    (lossless RGB)
  poses/NAME.mp4             DWPose-style pose video        (lossless RGB)
  masks/NAME.mp4             person masks, white on black   (lossless RGB)
  prompts.txt                NAME.mp4#####caption
  videos.txt                 videos/NAME.mp4
  references/NAME.png        reference image
  reference_masks/NAME.png   reference person mask (L, 0/255)
  reference_poses/NAME.png   the reference's own rendered pose
  backgrounds/NAME.mp4       the background alone           (lossless RGB)
  parts/NAME.npz             exact part labels and keypoints (numpy, compressed; see below)
  meta.jsonl                 one JSON object per clip (the sample's meta, plus "name")
```
``NAME`` is ``synth_{split}_{seed:06d}``. ``parts/NAME.npz`` holds ``labels`` (T, H, W) uint8, the part drawn on
top per pixel (0 = no person), ``reference_labels`` (H, W) uint8 for the reference, ``names`` (the label names, id =
index: :data:`dynamictrl.puppet.draw.PART_LABELS`) and ``keypoints`` (T, 18, 2) float32, the clip's exact body
keypoints in pixels (x, y). Read it with :func:`read_parts`.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from dynamictrl.data.io import write_image, write_video
from dynamictrl.data.prompts import write_prompts
from dynamictrl.pose.render import render_pose_sequence
from dynamictrl.puppet.draw import PART_LABELS
from dynamictrl.puppet.world import make_sample

logger = logging.getLogger(__name__)

SUBDIRS = ("videos", "poses", "masks", "references", "reference_masks", "reference_poses", "backgrounds", "parts")


def sample_name(split: str, seed: int) -> str:
    return f"synth_{split}_{seed:06d}"


def write_parts(path: str | Path, sample) -> None:
    """``parts/NAME.npz`` of a :class:`~dynamictrl.puppet.world.SyntheticSample` (layout: the module docstring)."""
    np.savez_compressed(
        path,
        labels=sample.parts,
        reference_labels=sample.reference_parts,
        names=np.array(PART_LABELS),
        keypoints=sample.keypoints.body.astype(np.float32),
    )


def read_parts(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a ``parts/NAME.npz`` file (``labels``, ``reference_labels``, ``names``, ``keypoints``)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _write_one(job: tuple) -> tuple[str, str, dict]:
    out, seed, split, size, frames, style, fps, swap_background = job
    sample = make_sample(
        seed, split=split, size=size, frames=frames, style=style, fps=fps, swap_background=swap_background
    )
    name = sample_name(split, seed)
    out = Path(out)
    write_video(out / "videos" / f"{name}.mp4", sample.video, fps=fps, lossless=True)
    write_video(out / "poses" / f"{name}.mp4", sample.pose_video, fps=fps, lossless=True)
    write_video(out / "masks" / f"{name}.mp4", sample.masks, fps=fps, lossless=True)
    write_video(out / "backgrounds" / f"{name}.mp4", sample.background, fps=fps, lossless=True)
    write_image(out / "references" / f"{name}.png", sample.reference)
    write_image(out / "reference_masks" / f"{name}.png", sample.reference_mask)
    write_parts(out / "parts" / f"{name}.npz", sample)
    # the reference's own rendered pose: frame 0 of a pose video that drives this reference (official convention)
    write_image(
        out / "reference_poses" / f"{name}.png",
        render_pose_sequence(sample.reference_pose, size, size, stick_width=sample.meta["pose_stick_width"])[0],
    )
    return name, sample.caption, {"name": name, **sample.meta}


def write_dataset(
    out: str | Path,
    num: int,
    split: str = "train",
    size: int = 64,
    frames: int = 13,
    style: str = "full",
    seed: int = 0,
    workers: int = 1,
    fps: float = 8.0,
    overwrite: bool = False,
    progress: bool = True,
    swap_background: bool = False,
) -> list[str]:
    """Generate ``num`` clips with seeds ``seed .. seed + num - 1`` into ``out``; returns their names in order.

    ``swap_background``: every clip on a wall of another colour than its reference's (see :func:`make_sample`);
    the names stay the same, so this is the swapped twin of the dataset written without it.

    An existing ``prompts.txt`` in ``out`` is an error unless ``overwrite`` (then the index files are rewritten
    and clips with the same names replaced).
    """
    out = Path(out)
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if (out / "prompts.txt").exists() and not overwrite:
        raise FileExistsError(f"{out / 'prompts.txt'} already exists; pass overwrite=True (--overwrite) to replace it")
    # Validate the arguments once in this process, so a bad value fails before any worker starts.
    make_sample(seed, split=split, size=size, frames=1, style=style, fps=fps, render_pose=False)
    for sub in SUBDIRS:
        (out / sub).mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), seed + i, split, size, frames, style, fps, swap_background) for i in range(num)]
    bar = tqdm(total=num, desc=f"synthetic {split}", unit="clip", disable=not progress)
    results = []
    if workers == 1:
        for job in jobs:
            results.append(_write_one(job))
            bar.update()
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            for result in pool.imap(_write_one, jobs, chunksize=max(1, min(16, num // (4 * workers)))):
                results.append(result)
                bar.update()
    bar.close()
    names = [r[0] for r in results]
    write_prompts(out / "prompts.txt", [(f"{n}.mp4", c) for n, c, _ in results])
    (out / "videos.txt").write_text("".join(f"videos/{n}.mp4\n" for n in names))
    (out / "meta.jsonl").write_text("".join(json.dumps(m) + "\n" for _, _, m in results))
    logger.info("wrote %d synthetic %s clips to %s", num, split, out)
    return names
