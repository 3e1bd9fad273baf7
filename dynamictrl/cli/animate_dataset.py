"""Animate every clip of a dataset folder with a model, writing ``OUT/NAME.mp4`` for ``scripts/evaluate.py``.

    python tools/animate_dataset.py --data data/puppet/test --model dynamictrl/assets/models/dynamictrl-tiny --out outputs/pred
    python scripts/evaluate.py --gt data/puppet/test --pred outputs/pred --baseline repeat-first-frame --out res.json

Each clip (official layout: ``videos/NAME.mp4``, ``poses/NAME.mp4``, ``prompts.txt``) is animated with its caption
and pose video from a reference:

- ``--reference first-frame`` (default): the first frame of its video (the TikTok protocol's reference; the pose
  video's frame 0 is that frame's own pose, the official convention). Compare with ``--baseline repeat-first-frame``.
- ``--reference other-pose``: the puppet world's ``references/NAME.png`` (the same person in another pose), the pose
  video's frame 0 replaced by ``reference_poses/NAME.png`` (that reference's pose), so the model must move the
  person into every driving pose. Frame 0 of the output is the reference pose, not the ground truth's, which costs
  the model and the matching ``--baseline repeat-reference`` the same one frame.

``--prompt-override`` replaces every caption (e.g. to swap the background named by the prompt);
``--mask-reference`` masks the reference to the person with ``masks/NAME.mp4`` frame 0, or
``reference_masks/NAME.png`` for ``other-pose`` (text-controlled background; with a dataset written by
``tools/make_synthetic.py --swap-background`` the prompt names a wall the reference does not show).

Long videos: ``--clip-frames N`` animates each (longer) clip with the long-video sampler, chaining clips of N frames
on the last generated frame; ``--background PHRASE`` (repeatable) makes clip k's caption name the k-th background
(the last repeats), and ``--no-color-match`` turns off the sampler's LAB colour anchoring. The dataset's person
masks stand in for masks of the generated frames (they restrict colour matching to the person and, with
``--mask-reference``, mask the chained references). Score drift with ``scripts/evaluate.py --drift-clip-frames N``.

    python tools/make_synthetic.py --out data/puppet/test33 --num 8 --frames 33 --split test --style demo --seed 100000
    python tools/animate_dataset.py --data data/puppet/test33 --model MODEL --out outputs/long --clip-frames 9 \
        --mask-reference --background "a plain red wall" --background "a plain blue wall"
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dynamictrl.cli import (
    ArgumentParser,
    at_least,
    configure_logging,
    existing_dir,
    existing_file,
    frame_count,
    run_cli,
)
from dynamictrl.errors import UserError

REFERENCES = ("first-frame", "other-pose")
DATA_FOLDER = "a dataset folder: videos/ poses/ prompts.txt (e.g. written by tools/make_synthetic.py)"


def animate_dataset(
    pipe,
    data: Path,
    out: Path,
    steps: int = 25,
    guidance: float = 3.0,
    seed: int = 0,
    limit: int | None = None,
    prompt_override: str | None = None,
    mask_reference: bool = False,
    contact_sheets: int = 0,
    reference: str = "first-frame",
    clip_frames: int | None = None,
    backgrounds: list[str] | tuple[str, ...] = (),
    color_match: bool = True,
) -> list[str]:
    """Animate the clips of ``data`` into ``out``; returns the clip names written (long-video options: see above)."""
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from dynamictrl.data.io import make_contact_sheet, read_image, read_video, to_uint8, write_image, write_video
    from dynamictrl.data.prompts import read_clip_prompts
    from dynamictrl.pipelines.long_video import sample_long_video
    from dynamictrl.puppet import replace_background

    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    if backgrounds and clip_frames is None:
        raise ValueError("backgrounds change per chained clip: they need clip_frames (--clip-frames)")

    prompts = read_clip_prompts(data / "prompts.txt")
    names = sorted(Path(n).stem for n in prompts)[:limit]
    out.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(tqdm(names, desc="animate", unit="clip")):
        video, fps = read_video(data / "videos" / f"{name}.mp4")  # (T, H, W, 3)
        poses, _ = read_video(data / "poses" / f"{name}.mp4")
        image = video[0]
        if reference == "other-pose":
            image = read_image(data / "references" / f"{name}.png")
            poses = np.concatenate([read_image(data / "reference_poses" / f"{name}.png")[None], poses[1:]])
        person_masks = None  # (T, H, W): the long-video sampler's, and frame 0 masks a first-frame reference
        if clip_frames is not None or (mask_reference and reference == "first-frame"):
            person_masks = read_video(data / "masks" / f"{name}.mp4")[0][..., 0]
        mask = None
        if mask_reference:
            other = reference == "other-pose"
            mask = read_image(data / "reference_masks" / f"{name}.png", mode="L") if other else person_masks[0]
        prompt = prompt_override or prompts[f"{name}.mp4"]
        if clip_frames is None:
            result = pipe(
                image=image,
                pose_video=poses,
                prompt=prompt,
                reference_mask=mask,
                num_frames=len(poses),
                height=video.shape[1],
                width=video.shape[2],
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=torch.Generator().manual_seed(seed),
                output_type="np",
            )
            frames = to_uint8(np.asarray(result.frames)[0][: len(video)])  # (T, H, W, 3)
        else:
            clip_prompts = [replace_background(prompt, b) for b in backgrounds] or prompt
            frames = sample_long_video(
                pipe, image, poses, clip_prompts, clip_frames=clip_frames, color_match=color_match,
                reference_mask=mask, person_masks=person_masks, num_inference_steps=steps, guidance_scale=guidance,
                seed=seed, fps=fps, progress=False,
            ).frames[: len(video)]  # fmt: skip
        write_video(out / f"{name}.mp4", frames, fps=fps, lossless=True)
        if index < contact_sheets:
            write_image(out / f"{name}.png", make_contact_sheet(image, poses, frames))
    return names


def check_args(args: argparse.Namespace) -> None:
    """The dataset's folders, the model folder and the values, before the model loads."""
    from dynamictrl.cli.animation_checks import ModelGeometry

    data = existing_dir("--data", args.data, DATA_FOLDER)
    existing_file("--data", data / "prompts.txt", DATA_FOLDER)
    needs = ["videos", "poses"]
    needs += ["references", "reference_poses"] if args.reference == "other-pose" else []
    if args.clip_frames is not None or (args.mask_reference and args.reference == "first-frame"):
        needs.append("masks")
    if args.mask_reference and args.reference == "other-pose":
        needs.append("reference_masks")
    for folder in needs:
        existing_dir("--data", data / folder, f"{DATA_FOLDER}; this run also reads {folder}/")
    geometry = ModelGeometry.from_folder(args.model)
    frame_count("--clip-frames", args.clip_frames, geometry.temporal)
    if args.background and args.clip_frames is None:
        raise UserError("--background without --clip-frames", "--clip-frames N: backgrounds change per chained clip")
    at_least("--steps", args.steps, 1)
    at_least("--limit", args.limit, 1)
    at_least("--threads", args.threads, 1)


@run_cli
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (videos/ poses/ prompts.txt)")
    parser.add_argument("--model", type=Path, required=True, help="DynamiCtrlPipeline folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder for NAME.mp4 predictions")
    parser.add_argument("--steps", type=int, default=25, help="denoising steps (25)")
    parser.add_argument("--guidance", type=float, default=3.0, help="text guidance scale (3.0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="animate only the first N clips (sorted by name)")
    parser.add_argument("--prompt-override", help="use this prompt for every clip")
    parser.add_argument(
        "--mask-reference", action="store_true", help="mask the reference to the person (masks/ or reference_masks/)"
    )
    parser.add_argument("--contact-sheets", type=int, default=0, help="also write NAME.png for the first N clips")
    parser.add_argument("--reference", choices=REFERENCES, default="first-frame", help="reference image (see above)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (2)")
    long = parser.add_argument_group("long videos")
    long.add_argument("--clip-frames", type=int, help="chain clips of this many frames (k*4+1) per video")
    long.add_argument(
        "--background", action="append", default=[], help="background phrase of clip k's caption (repeat per clip)"
    )
    long.add_argument(
        "--color-match", action=argparse.BooleanOptionalAction, default=True, help="LAB colour anchoring (on)"
    )
    args = parser.parse_args(argv)
    configure_logging()
    check_args(args)
    import torch

    from dynamictrl.pipelines import DynamiCtrlPipeline

    torch.set_num_threads(args.threads)
    pipe = DynamiCtrlPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    start = time.perf_counter()
    names = animate_dataset(
        pipe, args.data, args.out, args.steps, args.guidance, args.seed, args.limit, args.prompt_override,
        args.mask_reference, args.contact_sheets, args.reference, args.clip_frames, args.background, args.color_match,
    )  # fmt: skip
    print(f"animated {len(names)} clips into {args.out} in {time.perf_counter() - start:.1f} s")
    return 0
