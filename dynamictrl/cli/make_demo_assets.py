"""Regenerate the bundled demo inputs in ``dynamictrl/assets/demo/`` from the synthetic puppet world's test split.

Writes (64x64, small enough to commit):

* ``reference.png``   the puppet in its reference pose, and ``reference_mask.png`` its exact person mask;
* ``pose.mp4``        17 rendered pose frames (lossless): the reference's own pose, then 16 driving poses
                      (the official convention: frame 0 of the pose video is the pose of the reference image;
                      two chained 9-frame clips for the embedded model);
* ``prompt.txt``      the scene's caption;
* ``pose_long.mp4`` + ``prompts.txt``  a 29-frame pose video (3.5 clips of 9) and a two-prompt schedule, for
                      ``scripts/sample_long.py``.

Usage: ``python tools/make_demo_assets.py [--out dynamictrl/assets/demo] [--seed 3]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dynamictrl.cli import ArgumentParser, at_least, configure_logging, frame_count, run_cli
from dynamictrl.data.io import write_image, write_video
from dynamictrl.errors import UserError
from dynamictrl.pose.render import render_pose_sequence
from dynamictrl.puppet import make_sample


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("dynamictrl/assets/demo"),
        help="output folder (default dynamictrl/assets/demo)",
    )
    parser.add_argument("--seed", type=int, default=3, help="puppet-world test-split seed (default 3)")
    parser.add_argument("--size", type=int, default=64, help="frame size in pixels (default 64)")
    parser.add_argument("--frames", type=int, default=17, help="pose frames for pose.mp4, k*4+1 (default 17)")
    parser.add_argument("--long-frames", type=int, default=29, help="pose frames for pose_long.mp4 (default 29)")
    return parser


@run_cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    at_least("--size", args.size, 16)
    frame_count("--frames", args.frames)
    if args.long_frames < args.frames:
        raise UserError(f"--long-frames {args.long_frames}", f"at least --frames = {args.frames}")

    sample = make_sample(args.seed, split="test", size=args.size, frames=args.long_frames, style="demo")
    reference_pose = render_pose_sequence(sample.reference_pose, args.size, args.size)  # (1, H, W, 3)
    poses = np.concatenate([reference_pose, sample.pose_video])  # (1 + T, H, W, 3)

    out = args.out
    write_image(out / "reference.png", sample.reference)
    write_image(out / "reference_mask.png", sample.reference_mask)
    write_video(out / "pose.mp4", poses[: args.frames], fps=8, lossless=True)
    write_video(out / "pose_long.mp4", poses[: args.long_frames], fps=8, lossless=True)
    (out / "prompt.txt").write_text(sample.caption + "\n", encoding="utf-8")
    switch = ((args.long_frames - 1) // 2 + 7) // 8 * 8  # a clip boundary for 9-frame clips (16 for 29 frames)
    person = sample.caption.split("The background is")[0].strip()
    (out / "prompts.txt").write_text(
        f"# start_frame<TAB>prompt: the background changes at frame {switch}\n"
        f"0\t{sample.caption}\n{switch}\t{person} The background is a blue sky with white clouds.\n",
        encoding="utf-8",
    )
    print(f"wrote demo inputs to {out}/ (caption: {sample.caption!r})")
    return 0
