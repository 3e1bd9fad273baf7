#!/usr/bin/env python
"""Evaluate generated videos against ground truth: prints a Markdown table and writes a JSON results file.

Examples:
    python scripts/evaluate.py --pred outputs/run1 --gt data/synthetic_test --out results.json
    python scripts/evaluate.py --gt data/synthetic_test --baseline repeat-reference --baseline gt-background \\
        --out baselines.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynamictrl.eval.baselines import BASELINES  # noqa: E402
from dynamictrl.eval.runner import EvalConfig, evaluate, markdown_table, write_results  # noqa: E402
from dynamictrl.eval.weights import WEIGHT_FILES, WEIGHTS_ENV_VAR  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    weights = "; ".join(f"{w.filename} ({w.purpose})" for w in WEIGHT_FILES.values())
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Weight files looked up in --weights-dir or ${WEIGHTS_ENV_VAR}: {weights}. Metrics whose file is "
        "absent are skipped and named in the table's notes. Profiles are defined in EVAL_PROTOCOL.md: 'disco' "
        "reproduces the published TikTok protocol, 'clean' uses the careful definitions.",
    )
    parser.add_argument("--pred", type=Path, help="folder of predictions NAME.mp4 (or NAME.mp4 under videos/)")
    parser.add_argument("--gt", type=Path, required=True,
                        help="ground-truth folder: videos/NAME.mp4 and optionally masks/, references/, backgrounds/, "
                        "prompts.txt, meta.jsonl")
    parser.add_argument("--masks", type=Path, help="person-mask folder (NAME.mp4, white on black); default GT/masks")
    parser.add_argument("--prompts", type=Path, help="prompts file (NAME.mp4#####caption); default GT/prompts.txt")
    parser.add_argument("--profile", choices=["disco", "clean", "both"], default="both",
                        help="metric definitions to report (default: both)")
    parser.add_argument("--weights-dir", type=Path, help=f"folder with the metric weight files (or ${WEIGHTS_ENV_VAR})")
    parser.add_argument("--baseline", action="append", choices=list(BASELINES), default=[],
                        help="also evaluate a sanity baseline built from the GT folder (repeatable)")
    parser.add_argument("--resize-pred", action="store_true",
                        help="resize predictions whose frame size differs from the ground truth (the disco protocol "
                        "does this); by default a size mismatch is an error")
    parser.add_argument("--drift-clip-frames", type=int, default=16,
                        help="clip length for the temporal-drift metric (default 16)")
    parser.add_argument("--device", default="cpu", help="torch device for the backbones (default cpu)")
    parser.add_argument("--out", type=Path, required=True, help="JSON results file to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.pred is None and not args.baseline:
        print("error: give --pred and/or at least one --baseline", file=sys.stderr)
        return 2
    cfg = EvalConfig(
        profiles=("disco", "clean") if args.profile == "both" else (args.profile,),
        weights_dir=args.weights_dir, masks_dir=args.masks, prompts_file=args.prompts, resize_pred=args.resize_pred,
        drift_clip_frames=args.drift_clip_frames, device=args.device,
    )
    results = evaluate(args.gt, args.pred, args.baseline, cfg)
    print(markdown_table(results))
    write_results(results, args.out)
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
