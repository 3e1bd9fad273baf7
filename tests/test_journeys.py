"""The documented journey, as a user runs it in a shell: toy data -> a few training steps (full fine-tune through
``accelerate launch``, and LoRA) -> ``scripts/infer.py --model`` on the result -> an MP4, with no manual step.

Each command is the one docs/training.md shows, shrunk (2 steps, 9 frames, 2 denoising steps). The LoRA run is
animated from its checkpoint folder, before any export, as a user checking progress would.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from dynamictrl.data.io import read_video

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).with_name("accelerate")
pytestmark = pytest.mark.slow  # four Python processes that import torch and diffusers


def run(*command: str | Path) -> str:
    done = subprocess.run([str(c) for c in command], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def train(toy: Path, out: Path, *overrides: str, launcher: tuple = (sys.executable,)) -> None:
    run(
        *launcher,
        "scripts/train.py",
        "--config",
        "configs/train/tiny_cpu.yaml",
        f"data.root={toy}",
        f"train.output_dir={out}",
        "data.num_frames=9",
        "train.max_steps=2",
        "checkpoint.every_steps=2",
        "logging.report_to=[]",
        "logging.progress_bar=false",
        *overrides,
    )


def animate(model: Path, toy: Path, out: Path) -> None:
    run(
        sys.executable,
        "scripts/infer.py",
        "--model",
        model,
        "--ref",
        "dynamictrl/assets/demo/reference.png",
        "--pose",
        toy / "poses" / "clip000.mp4",
        "--pose-kind",
        "rendered",
        "--height",
        "64",
        "--width",
        "64",
        "--clip-frames",
        "9",
        "--steps",
        "2",
        "--out",
        out,
    )
    frames, _ = read_video(out)
    assert frames.shape == (9, 64, 64, 3)  # the toy pose video: 9 frames, one clip


def test_toy_data_to_training_to_infer_mp4_for_a_full_run_and_a_lora_checkpoint(tmp_path):
    toy = tmp_path / "toy"
    run(
        sys.executable,
        "-c",
        f"from dynamictrl.data.toy import write_toy_dataset; write_toy_dataset({str(toy)!r}, num_clips=2, num_frames=9)",
    )

    full = tmp_path / "runs" / "tiny_cpu"
    train(toy, full, launcher=(ACCELERATE, "launch", "--config_file", "configs/accelerate/cpu.yaml"))
    animate(full / "final", toy, tmp_path / "full.mp4")

    lora = tmp_path / "runs" / "tiny_lora"
    train(toy, lora, "train.trainable=lora")
    checkpoints = sorted((lora / "checkpoints").glob("checkpoint-*"))
    assert checkpoints, "the LoRA run wrote no checkpoint"
    animate(checkpoints[-1], toy, tmp_path / "lora.mp4")
