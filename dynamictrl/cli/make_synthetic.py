"""Write synthetic puppet-world clips in the official training-data layout.

Example:
    python tools/make_synthetic.py --out data/synth_train --num 1000 --size 64 --frames 13 --split train
    python tools/make_synthetic.py --out data/synth_test --num 100 --split test --style demo --workers 2
    # the same clips on walls of other colours (references keep theirs): background-control ground truth
    python tools/make_synthetic.py --out data/synth_test_swap --num 100 --split test --style demo --swap-background

The layout (read by the trainer exactly like real data, plus extras for evaluation):
videos/NAME.mp4, poses/NAME.mp4, masks/NAME.mp4, prompts.txt (NAME.mp4#####caption), videos.txt,
references/NAME.png, reference_masks/NAME.png, reference_poses/NAME.png, backgrounds/NAME.mp4, parts/NAME.npz
(exact part labels and keypoints, for the arm metrics), meta.jsonl. Videos are lossless.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dynamictrl.cli import ArgumentParser, at_least, configure_logging, run_cli
from dynamictrl.errors import UserError
from dynamictrl.puppet.export import write_dataset
from dynamictrl.puppet.motion import SPLITS
from dynamictrl.puppet.world import STYLES


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--num", type=int, required=True, help="number of clips to write")
    parser.add_argument("--size", type=int, default=64, help="frame height and width in pixels (default 64)")
    parser.add_argument("--frames", type=int, default=13, help="frames per clip (default 13)")
    parser.add_argument("--split", choices=SPLITS, default="train", help="motion split (default train)")
    parser.add_argument(
        "--style",
        choices=STYLES,
        default="full",
        help="'full': every pattern, colour and background; 'demo': bold solid colours on plain walls",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first clip; clip i uses seed + i")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--fps", type=float, default=8.0, help="frame rate of the written videos (default 8)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    parser.add_argument(
        "--swap-background",
        action="store_true",
        help="put every clip on a wall of another colour (named by its caption) while the reference keeps its own",
    )
    return parser.parse_args(argv)


@run_cli
def main(argv=None) -> int:
    args = parse_args(argv)
    configure_logging()
    for flag, value, minimum in (("--num", args.num, 1), ("--size", args.size, 16), ("--frames", args.frames, 1),
                                 ("--workers", args.workers, 1)):  # fmt: skip
        at_least(flag, value, minimum)
    if args.fps <= 0:
        raise UserError(f"--fps {args.fps}", "a positive frame rate")
    if (Path(args.out) / "prompts.txt").is_file() and not args.overwrite:
        raise UserError(f"--out {args.out} already holds a dataset", "another folder, or --overwrite to replace it")
    start = time.perf_counter()
    names = write_dataset(
        args.out,
        args.num,
        split=args.split,
        size=args.size,
        frames=args.frames,
        style=args.style,
        seed=args.seed,
        workers=args.workers,
        fps=args.fps,
        overwrite=args.overwrite,
        swap_background=args.swap_background,
    )
    elapsed = time.perf_counter() - start
    print(f"wrote {len(names)} clips to {args.out} in {elapsed:.1f} s ({60 * len(names) / elapsed:.0f} clips/min)")
    return 0
