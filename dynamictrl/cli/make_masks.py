"""Make per-frame person masks (white person on black) for a video or image.

Keypoints come from --keypoints (a .npz/.json pose file) or from DWPose extraction (--models-dir). Masks come
from Segment Anything prompted by the keypoints when --sam-dir points at a local SAM folder (e.g. a copy of
facebook/sam-vit-base), otherwise from the no-weights pose fallback (thick limbs + torso + head, smoothed over
frames).

Examples:
    python tools/make_masks.py data/videos/a.mp4 --keypoints poses/a.npz --out data/masks/a.mp4
    python tools/make_masks.py ref.png --models-dir ~/models/DWPose --sam-dir ~/models/sam-vit-base --out ref_mask.png
    python tools/make_masks.py a.mp4 --keypoints a.npz --out masks_a/     (a folder: one PNG per frame)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dynamictrl.cli import (
    ArgumentParser,
    configure_logging,
    existing_dir,
    existing_file,
    for_flag,
    read_video_arg,
    run_cli,
)
from dynamictrl.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MODELS_HELP = "a folder with yolox_l.onnx and dw-ll_ucoco_384.onnx"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("video", type=Path, help="input video or image")
    p.add_argument("--out", type=Path, required=True, help=".mp4 (lossless mask video), .png (one image) or a folder")
    p.add_argument("--keypoints", type=Path, help="pose file (.npz/.json) for the video; else DWPose runs")
    p.add_argument("--models-dir", type=Path, help="DWPose ONNX folder (default: $DYNAMICTRL_DWPOSE_DIR)")
    p.add_argument("--sam-dir", type=Path, help="local SAM folder; without it the pose fallback is used")
    p.add_argument("--device", help="torch device for SAM (default: cuda if available)")
    p.add_argument("--threshold", type=float, default=0.3, help="keypoint confidence threshold")
    p.add_argument("--window", type=int, default=3, help="fallback: frames in the temporal majority vote")
    p.add_argument("--limb-width", type=float, default=0.2, help="fallback: limb thickness x torso length")
    p.add_argument("--dilation", type=float, default=0.03, help="fallback: final grow x torso length")
    return p


@run_cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    from dynamictrl.data.io import write_image, write_video
    from dynamictrl.pose.keypoints import PoseSequence
    from dynamictrl.preprocess.masks import SamMasker, mask_to_uint8, pose_masks

    existing_file("--keypoints", args.keypoints, "a pose file (.npz/.json)")
    existing_dir("--sam-dir", args.sam_dir, "a local SAM folder, e.g. a copy of facebook/sam-vit-base")
    frames, fps = read_video_arg("video", args.video)
    if len(frames) > 1 and args.out.suffix.lower() in IMAGE_SUFFIXES:
        raise UserError(f"--out {args.out}: {len(frames)} frames cannot go into one image", "a .mp4 or a folder")
    if args.keypoints is not None:
        with for_flag("--keypoints", "a pose file (.npz/.json) of this video", also=(ValueError,)):
            seq = PoseSequence.load(args.keypoints)
    else:
        from dynamictrl.pose.dwpose import DWPoseExtractor

        with for_flag("--models-dir", MODELS_HELP + ", or give --keypoints", also=(ImportError,)):
            extractor = DWPoseExtractor(args.models_dir, kpt_threshold=args.threshold)
        seq = extractor.extract_video(frames)
    if len(seq) != len(frames):
        raise UserError(f"--keypoints: {args.video} has {len(frames)} frames but the keypoints have {len(seq)}",
                        "one pose per video frame")  # fmt: skip
    height, width = frames.shape[1:3]
    if args.sam_dir is not None:
        with for_flag("--sam-dir", "a local SAM folder, e.g. a copy of facebook/sam-vit-base", also=(ImportError,)):
            masker = SamMasker(args.sam_dir, device=args.device)
        masks = masker.video_masks(frames, seq, threshold=args.threshold)
        source = "SAM"
    else:
        masks = pose_masks(
            seq,
            height,
            width,
            threshold=args.threshold,
            window=args.window,
            limb_width=args.limb_width,
            dilation=args.dilation,
        )
        source = "pose fallback"
    images = mask_to_uint8(masks)  # (T, H, W, 3)
    out = args.out
    if out.suffix.lower() == ".mp4":
        write_video(out, images, fps=fps, lossless=True)
    elif out.suffix.lower() in IMAGE_SUFFIXES:
        write_image(out, images[0][..., 0])
    else:
        out.mkdir(parents=True, exist_ok=True)
        for t, image in enumerate(images):
            write_image(out / f"{t:05d}.png", image[..., 0])
    print(f"{len(images)} mask frame(s) ({source}) -> {out}; person covers {masks.mean():.1%} of the pixels")
    return 0
