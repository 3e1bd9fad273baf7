"""tools/gpu_benchmark.sh: the GPU table's rows as benchmark commands, and the table it writes (run on the tiny
presets here: the same rows and flags, a small model and video)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_benchmark.sh"
ROWS = ["default-eager", "default-best", "default-24gb", "default-16gb", "default-12gb", "480-eager", "480-best",
        "480-24gb"]  # fmt: skip


def run(*args: str, env: dict[str, str] | None = None, timeout: int = 60) -> subprocess.CompletedProcess:
    names = ("DYNAMICTRL_MODEL_15", "DYNAMICTRL_BASE_15", "DYNAMICTRL_TRANSFORMER_15", "DYNAMICTRL_MODEL_10")
    clean = {k: v for k, v in os.environ.items() if k not in names}
    full_env = clean | {"PY": sys.executable} | (env or {})
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT
    )


def commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line)[2:] for line in stdout.splitlines() if line.startswith("python scripts/benchmark.py ")]


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_dry_run_gives_one_benchmark_command_per_row_at_the_real_sizes_and_each_parses(tmp_path):
    from dynamictrl.cli.benchmark import parse_args

    proc = run("--dry-run", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    argvs = commands(proc.stdout)
    assert [Path(flag(a, "--json")).stem for a in argvs] == ROWS
    for name, argv in zip(ROWS, argvs, strict=True):
        size = ("cogvideox1.5-5b-i2v", "37", "768", "1360") if name.startswith("default") else (
            "cogvideox-5b-i2v", "49", "480", "720")  # fmt: skip
        assert (flag(argv, "--preset"), flag(argv, "--frames"), flag(argv, "--height"), flag(argv, "--width")) == size
        assert flag(argv, "--steps") == "25" and "--random-init" in argv
        assert flag(argv, "--memory") == (name.split("-")[1] if name.endswith("gb") else None)
        assert (flag(argv, "--compile"), flag(argv, "--fuse-qkv")) == (("on", "on") if "best" in name else (None, None))
        args = parse_args(argv)  # the benchmark's own parser accepts every row
        assert args.steps == 25 and args.pose_control == ["padaln"]
    assert not list(tmp_path.glob("*.json"))  # a dry run measures nothing


def test_a_base_folder_and_a_transformer_folder_are_linked_into_the_pipeline_folder_the_benchmark_loads(tmp_path):
    from dynamictrl.cli.benchmark import parse_args

    base, transformer, out = tmp_path / "CogVideoX1.5-5B-I2V", tmp_path / "DynamiCtrl-transformer", tmp_path / "out"
    for folder in (base / "vae", base / "scheduler", transformer):
        folder.mkdir(parents=True)
    env = {"DYNAMICTRL_BASE_15": str(base), "DYNAMICTRL_TRANSFORMER_15": str(transformer)}
    proc = run("--dry-run", "--rows", "default-eager,480-eager", "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    default, small = commands(proc.stdout)
    assert flag(default, "--model") == str(out / "model_15") and "--random-init" not in default
    assert {p.name: p.resolve() for p in (out / "model_15").iterdir()} == {
        "vae": base / "vae",
        "scheduler": base / "scheduler",
        "transformer": transformer,
    }
    assert "--random-init" in small  # no CogVideoX-5B-I2V weights given: random weights of the real shapes
    assert parse_args(default).model == str(out / "model_15")


@pytest.mark.parametrize(
    "args, env, says",
    [
        (["--rows", "default-eager,fastest"], {}, "no row fastest"),
        (["--frames", "9"], {}, "unknown argument --frames"),
        (["--rows"], {}, "--rows needs a value"),
        ([], {"DYNAMICTRL_BASE_15": "/nowhere"}, "DYNAMICTRL_BASE_15 and DYNAMICTRL_TRANSFORMER_15 go together"),
        ([], {"DYNAMICTRL_MODEL_15": "/nowhere"}, "/nowhere has no transformer/"),
    ],
    ids=["unknown-row", "unknown-flag", "missing-value", "base-alone", "not-a-pipeline-folder"],
)
def test_a_bad_row_flag_or_weights_folder_stops_in_one_line(tmp_path, args, env, says):
    proc = run("--dry-run", "--out", str(tmp_path), *args, env=env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and says in proc.stderr, proc.stderr


@pytest.mark.slow  # two benchmark processes (torch and diffusers imports): ~40 s on a busy 2-core machine
def test_tiny_sweep_writes_a_table_with_each_rows_numbers_beside_the_command_that_measured_them(tmp_path):
    proc = run("--tiny", "--rows", "default-eager,default-24gb", "--out", str(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = (tmp_path / "table.md").read_text()
    assert table in proc.stdout
    rows = [line for line in table.splitlines() if line.startswith("| default-")]
    assert len(rows) == 2
    for row, name in zip(rows, ("default-eager", "default-24gb"), strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == name
        step, e2e, peak = (float(c.split(" ")[0]) for c in cells[1:4])  # "median" or "median ± spread"
        assert step > 0 and e2e > 0 and peak > 0
        assert cells[4] == "random (real shapes)"
        command = shlex.split(cells[5].strip("`"))
        assert command[:4] == ["python", "scripts/benchmark.py", "--preset", "tiny-1.5"]
        report = json.loads((tmp_path / f"{name}.json").read_text())
        assert shlex.split(report["environment"]["command"])[1:] == command[2:]  # this command made these numbers
        assert report["rows"][0]["e2e_s"]["median"] == pytest.approx(e2e, rel=1e-2)
    assert "--memory 24gb" in rows[1] and "--memory" not in rows[0]
    assert "e2e_s (2 steps)" in table and "torch" in table.splitlines()[-1]


@pytest.mark.slow  # builds and times the tiny model twice, once compiled: ~55 s on a busy 2-core machine
@pytest.mark.parametrize("compile", [False, True])
def test_the_benchmark_times_the_pipeline_after_an_untimed_call_only_when_compiling(monkeypatch, compile):
    # the "best" rows: the pipeline's call (under no_grad) compiles graphs of its own; that must not be in e2e_s
    import torch

    from dynamictrl.cli import benchmark
    from dynamictrl.pipelines.pipeline_dynamictrl import DynamiCtrlPipeline

    calls = []
    real_call = DynamiCtrlPipeline.__call__
    monkeypatch.setattr(DynamiCtrlPipeline, "__call__", lambda self, **kw: calls.append(1) or real_call(self, **kw))
    setting = benchmark.Setting("tiny", 5, 32, 32, "padaln", "fp32", "none", "sdpa", compile, False, "none", False,
                                "none", "off")  # fmt: skip
    row = benchmark.run_setting(setting, torch.device("cpu"), 1, 0, 1, 1, compile_backend="aot_eager")
    assert len(row["e2e_s"]["samples"]) == 1
    assert len(calls) == (2 if compile else 1)
