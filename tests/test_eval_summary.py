"""scripts/summarize_results.py and dynamictrl.eval.summary: mean ± std over runs of evaluate.py results."""

import importlib.util
import json
from pathlib import Path

import pytest

from dynamictrl.eval.summary import mean_std, summary_table

ROOT = Path(__file__).resolve().parents[1]


def results(psnr, iou, baseline_psnr=None):
    sources = {"pred": {"clean": {"psnr": psnr}, "synthetic": {"silhouette_iou": iou}}}
    if baseline_psnr is not None:
        sources["baseline:repeat-reference"] = {"clean": {"psnr": baseline_psnr}, "synthetic": {"silhouette_iou": 0.3}}
    return {"sources": sources}


def test_mean_and_sample_std():
    assert mean_std([2.0]) == (2.0, 0.0)
    mean, std = mean_std([1.0, 2.0, 3.0])
    assert mean == 2.0 and std == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mean_std([])


def test_table_rows_are_mean_std_over_runs_and_absent_metrics_dropped():
    groups = {
        "A": ([results(17.0, 0.5), results(19.0, 0.7)], "pred"),
        "base": ([results(1, 1, baseline_psnr=15.0)], "baseline:repeat-reference"),
    }
    table = summary_table(groups, digits=2)
    lines = table.splitlines()
    assert lines[0] == "| run | n | PSNR ↑ | silhouette IoU ↑ |"  # L1, SSIM, PSNR*, fg/bg absent: dropped
    assert lines[2] == "| A | 2 | 18.00 ± 1.41 | 0.60 ± 0.14 |"
    assert lines[3] == "| base | 1 | 15.00 | 0.30 |"


def test_runs_evaluated_differently_are_an_error():
    partial = {"sources": {"pred": {"clean": {}, "synthetic": {"silhouette_iou": 0.5}}}}
    with pytest.raises(ValueError, match="missing from some of its runs"):
        summary_table({"A": ([results(17.0, 0.5), partial], "pred")})
    with pytest.raises(KeyError, match="no source"):
        summary_table({"A": ([results(17.0, 0.5)], "baseline:gt-background")})


def test_cli_globs_runs_and_sources(tmp_path, capsys):
    for seed, psnr in ((1, 17.0), (2, 18.0)):
        (tmp_path / f"padaln-s{seed}.json").write_text(json.dumps(results(psnr, 0.5, baseline_psnr=15.0)))
    spec = importlib.util.spec_from_file_location("summarize", ROOT / "scripts" / "summarize_results.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    argv = [
        "--run", f"PadaLN={tmp_path}/padaln-s*.json",
        "--run", f"repeat={tmp_path}/padaln-s1.json@baseline:repeat-reference",
        "--metric", "clean.psnr=PSNR", "--digits", "1",
    ]  # fmt: skip
    assert tool.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| run | n | PSNR |"
    assert out[2:] == ["| PadaLN | 2 | 17.5 ± 0.7 |", "| repeat | 1 | 15.0 |"]
    assert tool.main(["--run", f"x={tmp_path}/none*.json"]) == 2
    assert tool.main(["--run", f"x={tmp_path}/padaln-s1.json", "--metric", "psnr"]) == 2
    assert "SECTION.KEY" in capsys.readouterr().err
