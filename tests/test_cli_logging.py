"""The library logs and never prints; the commands show its INFO records (issue 14, item 3)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from dynamictrl.data.toy import write_toy_dataset

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "dynamictrl"


def print_calls(source: str) -> list[int]:
    """Lines of the ``print(...)`` calls in ``source``."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]


def test_print_calls_finds_a_print_in_a_function_but_not_a_method_named_print():
    assert print_calls("def f():\n    x = 1\n    print(x)\nlog.print('y')\n") == [3]


def test_only_the_cli_package_prints():
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted(LIBRARY.rglob("*.py"))
        if LIBRARY / "cli" not in path.parents
        for line in print_calls(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "use logging.getLogger(__name__) outside dynamictrl/cli/"


def test_train_command_shows_the_trainers_log_lines(tmp_path):
    """The trainer's "resolved config" and checkpoint lines are log records; scripts/train.py shows them on stderr."""
    toy = write_toy_dataset(tmp_path / "toy", num_clips=1, num_frames=5)
    overrides = [f"data.root={toy}", "data.num_frames=5"]
    overrides += [f"train.output_dir={tmp_path / 'run'}", "train.max_steps=1", "checkpoint.every_steps=1"]
    overrides += ["logging.report_to=[]", "logging.progress_bar=false", "optimizer.lr_warmup_steps=0"]
    cmd = [sys.executable, str(ROOT / "scripts/train.py"), "--config", str(ROOT / "configs/train/tiny_cpu.yaml")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([*cmd, *overrides], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "INFO dynamictrl.training.trainer: resolved config:" in result.stderr
    assert "saved checkpoint" in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["global_step"] == 1  # the command's own result
