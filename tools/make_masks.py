#!/usr/bin/env python
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
import logging
import sys
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from dynamictrl.data.io import VideoReadError, read_video, write_image, write_video
    from dynamictrl.pose.keypoints import PoseSequence
    from dynamictrl.pose.masks import SamMasker, mask_to_uint8, pose_masks

    try:
        frames, fps = read_video(args.video)
        if args.keypoints is not None:
            seq = PoseSequence.load(args.keypoints)
        else:
            from dynamictrl.pose.dwpose import DWPoseExtractor

            seq = DWPoseExtractor(args.models_dir, kpt_threshold=args.threshold).extract_video(frames)
    except (VideoReadError, FileNotFoundError, ImportError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if len(seq) != len(frames):
        print(f"error: {args.video} has {len(frames)} frames but the keypoints have {len(seq)}", file=sys.stderr)
        return 1
    height, width = frames.shape[1:3]
    if args.sam_dir is not None:
        try:
            masker = SamMasker(args.sam_dir, device=args.device)
        except (FileNotFoundError, ImportError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
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
        if len(images) != 1:
            print(f"error: {len(images)} frames cannot go into one image; give a .mp4 or a folder", file=sys.stderr)
            return 2
        write_image(out, images[0][..., 0])
    else:
        out.mkdir(parents=True, exist_ok=True)
        for t, image in enumerate(images):
            write_image(out / f"{t:05d}.png", image[..., 0])
    print(f"{len(images)} mask frame(s) ({source}) -> {out}; person covers {masks.mean():.1%} of the pixels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
