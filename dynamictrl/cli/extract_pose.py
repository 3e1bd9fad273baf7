"""Extract DWPose keypoints from a motion video and write a rendered pose video (and optionally the keypoints).

Example:
    python tools/extract_pose.py dance.mp4 --out poses/dance.mp4 --keypoints poses/dance.npz \\
        --models-dir ~/models/DWPose

The two ONNX files (yolox_l.onnx, dw-ll_ucoco_384.onnx) come from https://huggingface.co/yzd-v/DWPose; point
--models-dir (or the environment variable DYNAMICTRL_DWPOSE_DIR) at the folder holding them.

--pose-style dynamictrl draws the pose video the way the official DynamiCtrl release does (thin sticks, red and
blue swapped, confidence-weighted colours): use it for videos meant for the official checkpoints. The keypoints
file is the same for both styles. See docs/pose.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dynamictrl.cli import (
    ArgumentParser,
    at_least,
    configure_logging,
    for_flag,
    read_image_arg,
    read_video_arg,
    run_cli,
)
from dynamictrl.errors import UserError
from dynamictrl.pose.render import STYLES

MODELS_HELP = "a folder with yolox_l.onnx and dw-ll_ucoco_384.onnx (see --help)"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("video", type=Path, help="input motion video (or a single image)")
    p.add_argument("--out", type=Path, required=True, help="rendered pose video to write (.mp4)")
    p.add_argument("--keypoints", type=Path, help="also save the keypoints here (.npz or .json)")
    p.add_argument(
        "--models-dir", type=Path, help="folder with the DWPose ONNX files (default: $DYNAMICTRL_DWPOSE_DIR)"
    )
    p.add_argument("--height", type=int, help="render height (default: the video's; with --width, cover + centre crop)")
    p.add_argument("--width", type=int, help="render width (default: the video's)")
    p.add_argument("--threshold", type=float, default=0.3, help="keypoint confidence below which a joint is missing")
    p.add_argument("--no-smooth", action="store_true", help="skip gap filling and One-Euro smoothing")
    p.add_argument("--min-cutoff", type=float, default=1.0, help="One-Euro min cutoff in Hz (lower = smoother)")
    p.add_argument("--beta", type=float, default=0.05, help="One-Euro speed coefficient (higher = less lag)")
    p.add_argument("--max-gap", type=int, default=4, help="fill dropouts of at most this many frames")
    p.add_argument("--reference", type=Path, help="reference image: retarget the motion to this person's body")
    p.add_argument(
        "--retarget-mode",
        choices=("bones", "global"),
        default="bones",
        help="bones: per-bone lengths from the reference + feet on the ground; global: scale + shift only",
    )
    p.add_argument(
        "--pose-style",
        choices=STYLES,
        default="dwpose",
        help="drawing style: dwpose (standard DWPose colours, our models) or dynamictrl (the official release's "
        "pose videos, for its checkpoints)",
    )
    p.add_argument("--lossless", action="store_true", help="write the pose video losslessly (exact colours)")
    p.add_argument("--cpu", action="store_true", help="run ONNX Runtime on the CPU even if CUDA is available")
    return p


@run_cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()

    from dynamictrl.data.io import write_video
    from dynamictrl.pose import fit_to_frame, render_pose_sequence, retarget, smooth_pose_sequence
    from dynamictrl.pose.dwpose import DWPoseExtractor, resolve_models_dir
    from dynamictrl.pose.retarget import reference_pose_from_image

    if (args.height is None) != (args.width is None):
        raise UserError("only one of --height and --width given", "both, or neither")
    at_least("--height", args.height, 1)
    at_least("--width", args.width, 1)
    frames, fps = read_video_arg("video", args.video)
    if args.reference is not None:
        read_image_arg("--reference", args.reference)
    with for_flag("--models-dir", MODELS_HELP):
        resolve_models_dir(args.models_dir)
    providers = ["CPUExecutionProvider"] if args.cpu else None
    with for_flag("--models-dir", MODELS_HELP, also=(ImportError,)):
        extractor = DWPoseExtractor(args.models_dir, providers=providers, kpt_threshold=args.threshold)
    print(f"{args.video}: {len(frames)} frames {frames.shape[2]}x{frames.shape[1]} at {fps:.2f} fps")
    seq = extractor.extract_video(frames)
    if not args.no_smooth:
        seq = smooth_pose_sequence(
            seq, fps=fps, min_cutoff=args.min_cutoff, beta=args.beta, max_gap=args.max_gap, threshold=args.threshold
        )
    if args.reference is not None:
        ref = reference_pose_from_image(args.reference, models_dir=args.models_dir)
        seq = retarget(seq, ref, mode=args.retarget_mode, threshold=args.threshold)
    if args.keypoints is not None:
        seq.save(args.keypoints)
        print(f"keypoints -> {args.keypoints}")
    if args.height is not None:
        seq = fit_to_frame(seq, args.height, args.width)
    rendered = render_pose_sequence(seq, threshold=args.threshold, style=args.pose_style)
    write_video(args.out, rendered, fps=fps, lossless=args.lossless)
    size = f"{rendered.shape[2]}x{rendered.shape[1]}"
    print(f"pose video -> {args.out} ({len(rendered)} frames {size}, {args.pose_style} style)")
    return 0
