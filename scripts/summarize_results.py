#!/usr/bin/env python
"""Summarise several ``scripts/evaluate.py`` results files as one Markdown table, mean ± std over runs.

Each ``--run LABEL=PATTERN[@SOURCE]`` is one row: the results files matching the glob PATTERN (one per training
seed) and the source inside them (default ``pred``; e.g. ``baseline:repeat-reference``).

    python scripts/summarize_results.py \\
        --run "PadaLN=runs/ablate/padaln-s*.other.json" --run "UVT=runs/ablate/uvt-s*.other.json" \\
        --run "repeat the reference=outputs/eval/other-pose.json@baseline:repeat-reference"

``--metric SECTION.KEY[=TITLE]`` (repeatable) picks the columns; SECTION is a profile (``clean``, ``disco``) or
``synthetic``. Default: L1, SSIM, PSNR, PSNR*, foreground/background PSNR, silhouette IoU (those present).
"""

from __future__ import annotations

import argparse
import glob
import sys

from dynamictrl.eval.summary import DEFAULT_METRICS, load_results, summary_table


def parse_run(spec: str) -> tuple[str, list[str], str]:
    label, sep, rest = spec.partition("=")
    if not sep or not label or not rest:
        raise ValueError(f"--run {spec!r}: expected LABEL=PATTERN[@SOURCE]")
    pattern, _, source = rest.partition("@")
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise ValueError(f"--run {spec!r}: no file matches {pattern!r}")
    return label, paths, source or "pred"


def parse_metric(spec: str) -> tuple[str, str, str]:
    name, _, title = spec.partition("=")
    section, sep, key = name.partition(".")
    if not sep or not section or not key:
        raise ValueError(f"--metric {spec!r}: expected SECTION.KEY[=TITLE], e.g. synthetic.silhouette_iou")
    return section, key, title or key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="LABEL=PATTERN[@SOURCE] (repeatable)")
    parser.add_argument("--metric", action="append", default=[], help="SECTION.KEY[=TITLE] (repeatable)")
    parser.add_argument("--digits", type=int, default=3, help="decimals (3)")
    args = parser.parse_args(argv)
    try:
        groups = {}
        for spec in args.run:
            label, paths, source = parse_run(spec)
            groups[label] = (load_results(paths), source)
        metrics = [parse_metric(m) for m in args.metric] or DEFAULT_METRICS
        print(summary_table(groups, metrics, args.digits))
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
