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

from dynamictrl.cli import ArgumentParser, configure_logging, for_flag, run_cli
from dynamictrl.errors import UserError
from dynamictrl.eval.summary import DEFAULT_METRICS, load_results, summary_table


def parse_run(spec: str) -> tuple[str, list[str], str]:
    label, sep, rest = spec.partition("=")
    if not sep or not label or not rest:
        raise UserError(f"--run {spec!r}", "LABEL=PATTERN[@SOURCE]")
    pattern, _, source = rest.partition("@")
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise UserError(f"--run {spec!r}: no file matches {pattern!r}", "a glob of scripts/evaluate.py results files")
    return label, paths, source or "pred"


def parse_metric(spec: str) -> tuple[str, str, str]:
    name, _, title = spec.partition("=")
    section, sep, key = name.partition(".")
    if not sep or not section or not key:
        raise UserError(f"--metric {spec!r}", "SECTION.KEY[=TITLE], e.g. synthetic.silhouette_iou")
    return section, key, title or key


@run_cli
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="LABEL=PATTERN[@SOURCE] (repeatable)")
    parser.add_argument("--metric", action="append", default=[], help="SECTION.KEY[=TITLE] (repeatable)")
    parser.add_argument("--digits", type=int, default=3, help="decimals (3)")
    args = parser.parse_args(argv)
    configure_logging()
    groups = {}
    for spec in args.run:
        label, paths, source = parse_run(spec)
        with for_flag("--run", "results files written by scripts/evaluate.py", also=(ValueError,)):
            groups[label] = (load_results(paths), source)
    metrics = [parse_metric(m) for m in args.metric] or DEFAULT_METRICS
    with for_flag("--run/--metric", "a metric and a source present in every results file", also=(ValueError, KeyError)):
        table = summary_table(groups, metrics, args.digits)
    print(table)
    return 0
