"""tools/run_tiny_ablations.sh checks its inputs before any work and says why a stage failed (fake work dirs, no
training)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "run_tiny_ablations.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run(workdir: Path, **env: str) -> subprocess.CompletedProcess:
    """Run a copy of the script in ``workdir`` (it works from the folder above its own)."""
    (workdir / "tools").mkdir(parents=True, exist_ok=True)
    shutil.copy(SCRIPT, workdir / "tools" / SCRIPT.name)
    return subprocess.run(
        ["bash", "tools/run_tiny_ablations.sh"],
        cwd=workdir,
        env={**os.environ, "PY": "/bin/true", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_empty_workdir_names_each_missing_input_with_the_command_that_makes_it_and_runs_nothing(tmp_path):
    result = run(tmp_path, ACCELERATE="/bin/true")
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    assert (
        "error: missing data/puppet/train/latents9 (the latent cache the runs train on); make it with: "
        "python tools/prepare_dataset.py --config configs/train/tiny_puppet.yaml --out data/puppet/train/latents9"
    ) in result.stderr
    assert any(
        e.startswith("error: missing runs/tiny-base/model_index.json") and "build_tiny_model.py base" in e
        for e in errors
    )
    assert any(
        e.startswith("error: missing data/puppet/test9/prompts.txt") and "make_synthetic.py" in e for e in errors
    )
    assert len(errors) == len(set(errors)) and all(e.startswith("error: missing ") for e in errors)
    assert "train padaln seed 1" not in result.stdout  # nothing started
    assert not (tmp_path / "runs").exists()


def test_later_stages_alone_ask_for_the_earlier_stages_that_make_their_inputs(tmp_path):
    result = run(tmp_path, STAGES="background")
    assert result.returncode == 1
    assert (
        "error: missing runs/ablate/export-masked-s1/model_index.json (the exported masked-s1 model); make it with: "
        "STAGES=train SEEDS=1 bash tools/run_tiny_ablations.sh"
    ) in result.stderr.splitlines()
    assert "make it with: STAGES=data bash tools/run_tiny_ablations.sh" in result.stderr
    assert "latents9" not in result.stderr  # training inputs are not asked for without the train stage


def test_unknown_stage_is_refused_in_one_line(tmp_path):
    result = run(tmp_path, STAGES="trian")
    assert result.returncode == 2
    assert result.stderr == "error: unknown stage 'trian' in STAGES (choose from: train data background long)\n"


def test_a_failed_training_run_prints_the_tail_of_its_log(tmp_path):
    for folder in ("data/puppet/test9", "data/puppet/train/latents9", "runs/tiny-base"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "data/puppet/test9/prompts.txt").touch()
    (tmp_path / "runs/tiny-base/model_index.json").touch()
    fake_accelerate = tmp_path / "accelerate"
    fake_accelerate.write_text('#!/bin/sh\necho "step 0"\necho "ValueError: data.latents has no clips" >&2\nexit 3\n')
    fake_accelerate.chmod(0o755)

    result = run(tmp_path, STAGES="train", SEEDS="1", ACCELERATE=str(fake_accelerate))
    assert result.returncode == 3
    assert "train padaln seed 1" in result.stdout
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: stage train failed (exit 3): $ACCELERATE launch")
    assert lines[1:] == [
        "last lines of runs/ablate/padaln-s1.train.log:",
        "step 0",
        "ValueError: data.latents has no clips",
    ]


def script_commands() -> list[list[str]]:
    """The repository commands the script runs, as argument lists (its variables filled with stand-ins)."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    text = text.replace('"$PY tools/animate_dataset.py', '"python tools/animate_dataset.py')
    stand_ins = {
        "$A ": "python tools/animate_dataset.py --steps 10 ",
        "$E ": "python scripts/evaluate.py --profile clean ",
        "$PY ": "python ",
        "$ACCELERATE ": "accelerate ",
        "--$cm": "--color-match",
        '"${BGS[@]}"': "",
        "${OVERRIDES[$name]}": "",
        "=$STEPS": "=1500",
        "=$seed": "=1",
    }
    commands = []
    for line in text.splitlines():
        line = line.split(" > ")[0].split(" >> ")[0].split("|| ", 1)[-1].strip()
        for old, new in stand_ins.items():
            line = line.replace(old, new)
        if line.startswith(("python tools/", "python scripts/", "accelerate launch")):
            commands.append(line.split())
    return commands


def test_every_command_of_the_script_uses_flags_its_tools_have():
    from test_docs import check_command

    commands = script_commands()
    assert len(commands) >= 25  # train, export, animate, evaluate, make_synthetic, ...
    for tokens in commands:
        check_command(tokens, mention=True)  # each --flag exists (and a value given to a choice flag is allowed)
