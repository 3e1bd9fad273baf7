"""Animate a reference image with a pose video (and a prompt) using DynamiCtrl.

Examples:
  python scripts/infer.py --demo                                   # bundled inputs, embedded tiny model
  python scripts/infer.py --ref person.png --pose dance.mp4 --prompt "a dancer on a beach" --out out.mp4
  python scripts/infer.py --model /models/CogVideoX1.5-5B-I2V --transformer /models/DynamiCtrl-5B/transformer \\
      --ref person.png --pose dance_pose.mp4 --prompt "..." --clip-frames 37 --height 768 --width 1360

--pose takes a rendered pose video (its first frame should be the pose of the reference image, then the driving
poses), a keypoints file, or a raw motion video (pose extraction runs if the DWPose models are present).
A pose video longer than one clip (--clip-frames; --frames is the same flag) is animated by the long-video sampler, exactly as
scripts/sample_long.py does; --prompts-file then gives the prompts over time.
Without --model the embedded tiny model (dynamictrl/assets/models/dynamictrl-tiny/) is used, or random tiny weights if it has
not been trained yet (the result is then noise). Every input is checked before the model loads; a bad one is
reported in one line (--debug shows the traceback).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dynamictrl.assets import DEMO_DIR
from dynamictrl.cli import ArgumentParser, configure_logging, run_cli
from dynamictrl.cli.animation import add_generation_args, add_long_video_args, add_model_args, animate


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--demo", action="store_true", help="animate the bundled demo inputs in dynamictrl/assets/demo/"
    )
    parser.add_argument("--ref", type=Path, help="reference image (PNG/JPEG; RGBA and greyscale are converted)")
    parser.add_argument("--pose", type=Path, help="pose video, keypoints file (.npz/.json) or raw motion video")
    parser.add_argument("--prompt", help="text prompt (describe the person and the background)")
    parser.add_argument(
        "--prompts-file",
        type=Path,
        help="prompts over time: 'start_frame<TAB>prompt' lines, or one prompt per line = one per clip",
    )
    parser.add_argument("--out", type=Path, help="output MP4 (default outputs/<ref>_<pose>.mp4)")
    add_model_args(parser)
    add_generation_args(parser)
    add_long_video_args(parser)
    return parser


@run_cli
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    if args.demo:
        args.ref = args.ref or DEMO_DIR / "reference.png"
        args.pose = args.pose or DEMO_DIR / "pose.mp4"
        if args.prompt is None and args.prompts_file is None:
            args.prompt = (DEMO_DIR / "prompt.txt").read_text(encoding="utf-8").strip()
        args.out = args.out or Path("outputs") / "demo.mp4"
        args.save_frames = True
        args.steps = args.steps or 10
    if args.ref is None or args.pose is None:
        parser.error("--ref and --pose are required (or --demo)")
    if args.out is None:
        args.out = Path("outputs") / f"{args.ref.stem}_{args.pose.stem}.mp4"
    animate(args)
    return 0
