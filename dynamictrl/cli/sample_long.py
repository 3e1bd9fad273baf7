"""Animate a long pose video clip by clip with DynamiCtrl, with prompts that change over time.

Clip k+1 starts from the last generated frame of clip k (the paper's method); --overlap K shares K pose frames
between clips and blends them across the seam; --anchor-every N re-anchors identity on the original reference every
N clips; --color-match (default) matches each clip's LAB colour statistics to the first clip's (inside the person
masks when --person-masks is given).

Prompts: --prompts-file FILE with 'start_frame<TAB>prompt' lines (a prompt takes effect with the first clip that
starts at or after its frame) or plain lines (one prompt per clip, the last repeats); or one --prompt for all.

Example:
  python scripts/sample_long.py --ref dynamictrl/assets/demo/reference.png \\
      --pose dynamictrl/assets/demo/pose_long.mp4 --prompts-file dynamictrl/assets/demo/prompts.txt \\
      --clip-frames 9 --out outputs/long.mp4 --save-clips
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dynamictrl.cli import ArgumentParser, configure_logging, run_cli
from dynamictrl.cli.animation import add_generation_args, add_long_video_args, add_model_args, animate


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", type=Path, required=True, help="reference image")
    parser.add_argument("--pose", type=Path, required=True, help="long pose video, keypoints file or raw video")
    parser.add_argument("--prompts-file", type=Path, help="'start_frame<TAB>prompt' lines, or one prompt per clip")
    parser.add_argument("--prompt", help="one prompt for every clip (instead of --prompts-file)")
    parser.add_argument("--out", type=Path, default=Path("outputs/long.mp4"), help="output MP4 (outputs/long.mp4)")
    add_model_args(parser)
    add_generation_args(parser)
    add_long_video_args(parser)
    return parser


@run_cli
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    if args.prompts_file is None and args.prompt is None:
        parser.error("give --prompts-file FILE or --prompt TEXT")
    animate(args)
    return 0
