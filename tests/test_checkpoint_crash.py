"""Crash-safe checkpoints: a process killed (SIGKILL) while writing a checkpoint leaves the previous checkpoint as
``latest``, and resuming from it gives the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dynamictrl.data.toy import write_toy_dataset
from dynamictrl.training import Trainer, load_config
from dynamictrl.training.checkpointing import TRAINER_STATE, list_checkpoints, publish_checkpoint, resolve_resume

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs/train/tiny_cpu.yaml"


@pytest.fixture(scope="module")
def overrides(tmp_path_factory):
    """Config overrides for a 4-step run on the toy set's latent cache, checkpoints every 2 steps."""
    from dynamictrl.cli import prepare_dataset

    toy = write_toy_dataset(tmp_path_factory.mktemp("toy"), num_clips=4, num_frames=13, size=64)
    cache = tmp_path_factory.mktemp("cache") / "latents"
    common = [f"data.root={toy}", "data.num_frames=9", "data.height=64", "data.width=64"]
    assert prepare_dataset.main(["--config", str(TINY), "--out", str(cache), "--clips-per-video", "2", *common]) == 0
    return [
        *common,
        f"data.latents={cache}",
        "train.max_steps=4",
        "checkpoint.every_steps=2",
        "checkpoint.resume_from=latest",
        "checkpoint.save_final=false",
        "logging.report_to=[]",
        "logging.progress_bar=false",
    ]


@pytest.fixture(scope="module")
def uninterrupted(overrides, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    Trainer(load_config(TINY, [*overrides, f"train.output_dir={out}"])).train()
    return _weights(out / "checkpoints/checkpoint-0000004")


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "transformer" / "diffusion_pytorch_model.safetensors"))


# Each driver kills its own process with SIGKILL (no cleanup, no exception handling) at one moment of the step-4 save.
KILL_POINTS = {
    # half of the transformer's safetensors written; accelerate's optimizer/RNG files and trainer_state.json not yet
    "mid_weights": """
        from dynamictrl.training import checkpointing
        real = checkpointing.save_transformer
        def dying(model, path, state_dict=None):
            real(model, path, state_dict)
            if "checkpoint-0000004" in str(path):
                weights = Path(path) / "diffusion_pytorch_model.safetensors"
                weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return path
        checkpointing.save_transformer = dying
    """,
    # everything written, trainer_state.json included, but killed before the rename
    "before_rename": """
        from dynamictrl.training import trainer
        real = trainer.publish_checkpoint
        def dying(tmp, final):
            if final.name == "checkpoint-0000004":
                os.kill(os.getpid(), signal.SIGKILL)
            return real(tmp, final)
        trainer.publish_checkpoint = dying
    """,
}


@pytest.mark.parametrize("kill_point", sorted(KILL_POINTS))
def test_kill_while_saving_keeps_previous_latest_and_resume_matches_uninterrupted(
    kill_point, overrides, uninterrupted, tmp_path
):
    out = tmp_path / "run"
    args = [*overrides, f"train.output_dir={out}"]
    driver = "import os, signal, sys\nfrom pathlib import Path\n" + textwrap.dedent(KILL_POINTS[kill_point])
    driver += textwrap.dedent(f"""
        from dynamictrl.training import Trainer, load_config
        Trainer(load_config({str(TINY)!r}, {args!r})).train()
    """)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", driver], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]

    half = out / "checkpoints/checkpoint-0000004.tmp"
    assert half.is_dir()  # the interrupted save is there, under its temporary name
    assert (half / TRAINER_STATE).is_file() == (kill_point == "before_rename")
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-0000002"]
    assert resolve_resume("latest", out).name == "checkpoint-0000002"

    resumed = Trainer(load_config(TINY, args)).train()
    assert resumed["steps_this_run"] == 2 and resumed["global_step"] == 4
    assert not list((out / "checkpoints").glob("*.tmp"))  # the leftover of the crash is cleaned up
    again = _weights(out / "checkpoints/checkpoint-0000004")
    assert again.keys() == uninterrupted.keys()
    assert all(torch.equal(again[k], uninterrupted[k]) for k in again)


def test_publish_replaces_an_existing_checkpoint_and_latest_needs_trainer_state(tmp_path):
    folder = tmp_path / "checkpoints"
    old, tmp = folder / "checkpoint-0000002", folder / "checkpoint-0000002.tmp"
    for path, text in ((old, "old"), (tmp, "new")):
        path.mkdir(parents=True)
        (path / TRAINER_STATE).write_text(text)
    publish_checkpoint(tmp, old)
    assert (old / TRAINER_STATE).read_text() == "new"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-0000002"]
    (folder / "checkpoint-0000003").mkdir()  # a folder without trainer_state.json is not a checkpoint
    assert resolve_resume("latest", tmp_path).name == "checkpoint-0000002"
