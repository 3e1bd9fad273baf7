"""Mean ± standard deviation over runs (training seeds) of results files written by ``scripts/evaluate.py``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

#: (section, key, column title) of the default summary: ``section`` is a profile name or ``synthetic``.
DEFAULT_METRICS: tuple[tuple[str, str, str], ...] = (
    ("clean", "l1", "L1 ↓"),
    ("clean", "ssim", "SSIM ↑"),
    ("clean", "psnr", "PSNR ↑"),
    ("disco", "psnr_star", "PSNR* ↑"),
    ("synthetic", "psnr_fg", "PSNR fg ↑"),
    ("synthetic", "psnr_bg", "PSNR bg ↑"),
    ("synthetic", "silhouette_iou", "silhouette IoU ↑"),
)


def metric_value(results: Mapping, source: str, section: str, key: str) -> float | None:
    """One aggregate value of ``results["sources"][source][section][key]``; None when the file lacks it."""
    sources = results.get("sources", {})
    if source not in sources:
        raise KeyError(f"results have no source {source!r}; they have {sorted(sources)}")
    value = sources[source].get(section, {}).get(key)
    return None if value is None else float(value)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def load_results(paths: Sequence[str | Path]) -> list[dict]:
    out = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such results file (write it with scripts/evaluate.py --out)")
        out.append(json.loads(path.read_text()))
    return out


def summary_table(
    groups: Mapping[str, tuple[Sequence[Mapping], str]],
    metrics: Sequence[tuple[str, str, str]] = DEFAULT_METRICS,
    digits: int = 3,
) -> str:
    """Markdown table: one row per group ``label -> (results of each run, source)``, each cell ``mean ± std``
    over the runs (``mean`` alone for one run), a column ``n`` with the number of runs. Metrics no run has are
    dropped; a metric only some runs have is an error (the runs were not evaluated alike)."""
    rows, kept = [], []
    for section, key, title in metrics:
        present = [[metric_value(r, source, section, key) for r in runs] for runs, source in groups.values()]
        if all(v is None for vals in present for v in vals):
            continue
        for label, vals in zip(groups, present):
            if any(v is None for v in vals):
                raise ValueError(f"{label}: {section}.{key} is missing from some of its runs")
        kept.append((title, present))
    if not kept:
        raise ValueError("none of the requested metrics is in the results")
    lines = ["| run | n | " + " | ".join(title for title, _ in kept) + " |", "|---" * (len(kept) + 2) + "|"]
    for row, (label, (runs, _)) in enumerate(groups.items()):
        cells = []
        for _, present in kept:
            mean, std = mean_std(present[row])
            cells.append(f"{mean:.{digits}f}" if len(runs) == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}")
        rows.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines + rows)
