"""Evaluate generated videos against ground truth: prints a Markdown table and writes a JSON results file.

Examples:
    python scripts/evaluate.py --pred outputs/run1 --gt data/synthetic_test --out results.json
    python scripts/evaluate.py --gt data/synthetic_test --baseline repeat-reference --baseline gt-background \\
        --out baselines.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dynamictrl.cli import ArgumentParser, at_least, configure_logging, existing_dir, existing_file, for_flag, run_cli
from dynamictrl.errors import UserError
from dynamictrl.eval.baselines import BASELINES
from dynamictrl.eval.weights import WEIGHT_FILES, WEIGHTS_ENV_VAR

GT_FOLDER = "the dataset folder holding videos/NAME.mp4 (and masks/, prompts.txt, ...)"


def input_size(text: str) -> tuple[str, int]:
    """``METRIC=N`` of --input-size."""
    kind, _, value = text.partition("=")
    if kind not in ("fid_vid", "fvd", "fid") or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} (METRIC=N with METRIC fid_vid, fvd or fid and N >= 1)")
    return kind, int(value)


def build_parser() -> argparse.ArgumentParser:
    weights = "; ".join(f"{w.filename} ({w.purpose})" for w in WEIGHT_FILES.values())
    parser = ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Weight files looked up in --weights-dir or ${WEIGHTS_ENV_VAR}: {weights}. Metrics whose file is "
        "absent are skipped and named in the table's notes. Profiles, metrics, pooling and weight files are described "
        "in docs/evaluation.md: 'disco' reproduces the published TikTok protocol, 'clean' uses the careful "
        "definitions.",
    )
    parser.add_argument("--pred", type=Path, help="folder of predictions NAME.mp4 (or NAME.mp4 under videos/)")
    parser.add_argument(
        "--gt",
        type=Path,
        required=True,
        help="ground-truth folder: videos/NAME.mp4 and optionally masks/, references/, backgrounds/, "
        "prompts.txt, meta.jsonl",
    )
    parser.add_argument("--masks", type=Path, help="person-mask folder (NAME.mp4, white on black); default GT/masks")
    parser.add_argument("--prompts", type=Path, help="prompts file (NAME.mp4#####caption); default GT/prompts.txt")
    parser.add_argument(
        "--profile",
        choices=["disco", "clean", "both"],
        default="both",
        help="metric definitions to report (default: both)",
    )
    parser.add_argument("--weights-dir", type=Path, help=f"folder with the metric weight files (or ${WEIGHTS_ENV_VAR})")
    parser.add_argument(
        "--baseline",
        action="append",
        choices=list(BASELINES),
        default=[],
        help="also evaluate a sanity baseline built from the GT folder (repeatable)",
    )
    parser.add_argument(
        "--resize-pred",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="resize (bilinear) a prediction whose frame size differs from the ground truth's, as the "
        "protocol does, and name it in the notes (default); --no-resize-pred refuses it instead",
    )
    parser.add_argument(
        "--drift-clip-frames", type=int, default=16, help="clip length for the temporal-drift metric (default 16)"
    )
    parser.add_argument("--device", default="cpu", help="torch device for the backbones (default cpu)")
    parser.add_argument(
        "--input-size",
        action="append",
        default=[],
        type=input_size,
        metavar="METRIC=N",
        help="backbone input size of fid_vid (protocol: 112), fvd (224) or fid (299), for quick checks "
        "on small inputs only: recorded in the results and flagged as not comparable (repeatable)",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON results file to write")
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Every path and value, before a backbone or a video is loaded."""
    if args.pred is None and not args.baseline:
        raise UserError("nothing to evaluate", "give --pred DIR and/or at least one --baseline NAME")
    gt = existing_dir("--gt", args.gt, GT_FOLDER)
    if not (gt / "videos").is_dir():
        parent = f"the dataset folder above it: --gt {gt.parent}" if gt.name == "videos" else GT_FOLDER
        raise UserError(f"--gt {gt} has no videos/ folder", parent)
    existing_dir("--pred", args.pred, "a folder of predictions NAME.mp4 (or videos/NAME.mp4)")
    existing_dir("--masks", args.masks, "a folder of person masks NAME.mp4")
    existing_file("--prompts", args.prompts, "a prompts file: NAME.mp4#####caption lines")
    existing_dir("--weights-dir", args.weights_dir, "the folder with the metric weight files")
    at_least("--drift-clip-frames", args.drift_clip_frames, 1)
    if args.out.is_dir():
        raise UserError(f"--out {args.out} is a folder", "a JSON file to write, e.g. results.json")


@run_cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    check_args(args)
    from dynamictrl.eval.runner import EvalConfig, evaluate, find_prediction, gt_names, markdown_table, write_results

    with for_flag("--gt", GT_FOLDER):
        names = gt_names(args.gt)
    if args.pred is not None:
        with for_flag("--pred", "one prediction per ground-truth clip"):
            for name in names:
                find_prediction(args.pred, name)
    cfg = EvalConfig(
        profiles=("disco", "clean") if args.profile == "both" else (args.profile,),
        weights_dir=args.weights_dir,
        masks_dir=args.masks,
        prompts_file=args.prompts,
        resize_pred=args.resize_pred,
        drift_clip_frames=args.drift_clip_frames,
        device=args.device,
        input_sizes=dict(args.input_size),
    )
    results = evaluate(args.gt, args.pred, args.baseline, cfg)
    print(markdown_table(results))
    write_results(results, args.out)
    print(f"\nresults written to {args.out}")
    return 0
