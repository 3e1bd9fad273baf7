"""Every launch config in configs/accelerate/ trains on this CPU machine, checkpoints, and resumes exactly.

Parametrized over the folder: a new config file is covered (or must state here why it cannot run on a CPU). Each
config runs with its engine on real ranks (gloo; two where the engine allows it): 6 steps with checkpoints every 2,
then a fresh launch resumes from the step-4 checkpoint to step 6; its weights must equal the uninterrupted run's, and
a two-rank engine's must match plain data parallelism's (the sharding engines train the same model).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from dynamictrl.data.toy import write_toy_dataset

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs/train/tiny_cpu.yaml"
CONFIGS = sorted((REPO / "configs/accelerate").glob("*.yaml"))

# Processes per engine on this CPU machine: every engine here runs on gloo with two ranks except the single-process
# configs. A distributed_type missing here fails the test: add it, or add the file to CANNOT_RUN_ON_CPU with a reason.
RANKS = {"NO": 1, "MULTI_GPU": 2, "DEEPSPEED": 2, "FSDP": 2}
CANNOT_RUN_ON_CPU: dict[str, str] = {}  # file name -> why (none today)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The toy set and its latent cache (tools/prepare_dataset.py), so each launch skips the VAE."""
    toy = write_toy_dataset(tmp_path_factory.mktemp("toy"), num_clips=4, num_frames=13, size=64)
    cache = tmp_path_factory.mktemp("cache") / "latents"
    overrides = [f"data.root={toy}", "data.num_frames=9", "data.height=64", "data.width=64"]
    cmd = [sys.executable, str(REPO / "tools/prepare_dataset.py"), "--config", str(TINY), "--out", str(cache)]
    result = subprocess.run([*cmd, "--clips-per-video", "2", *overrides], cwd=REPO, env=_env(), capture_output=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return toy, cache


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), DS_ACCELERATOR="cpu")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _run(config: Path, ranks: int, data, out: Path, *overrides: str) -> subprocess.CompletedProcess:
    toy, cache = data
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
        "--num_processes", str(ranks), "--num_machines", "1", "--mixed_precision", "no",
        "--main_process_port", str(_free_port()),
        str(REPO / "scripts/train.py"), "--config", str(TINY), f"data.root={toy}", f"data.latents={cache}",
        "data.num_frames=9", f"train.output_dir={out}", "train.mixed_precision=no", "train.max_steps=6",
        "checkpoint.every_steps=2", "checkpoint.total_limit=2", "logging.report_to=[]", "logging.progress_bar=false",
        *overrides,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)


def _launch(config: Path, ranks: int, data, out: Path, *overrides: str) -> None:
    result = _run(config, ranks, data, out, *overrides)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])


@pytest.fixture(scope="module")
def ddp_reference(data, tmp_path_factory):
    """Step-6 weights of plain data parallelism on two ranks: what every two-rank engine must compute too."""
    out = tmp_path_factory.mktemp("ddp_reference")
    _launch(REPO / "configs/accelerate/ddp.yaml", 2, data, out)
    return _weights(out / "checkpoints/checkpoint-0000006")


def _ranks(out: Path, ranks: int) -> list[dict]:
    found = [json.loads((out / "ranks" / f"rank{r}.json").read_text()) for r in range(ranks)]
    assert [r["world_size"] for r in found] == [ranks] * ranks, "the launch did not run the ranks it was asked for"
    assert [r["rank"] for r in found] == list(range(ranks))
    return found


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "transformer" / "diffusion_pytorch_model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_config_trains_checkpoints_and_resumes_to_the_same_weights(config, data, tmp_path, request):
    if config.name in CANNOT_RUN_ON_CPU:
        pytest.skip(f"{config.name} cannot run on a CPU: {CANNOT_RUN_ON_CPU[config.name]}")
    engine = yaml.safe_load(config.read_text())["distributed_type"]
    assert engine in RANKS, f"{config.name}: distributed_type {engine} has no CPU plan in this test"
    if engine == "DEEPSPEED":
        pytest.importorskip("deepspeed")
    ranks = RANKS[engine]

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _launch(config, ranks, data, straight)
    at4 = straight / "checkpoints/checkpoint-0000004"
    _launch(config, ranks, data, resumed, f"checkpoint.resume_from={at4}")

    first, second = _ranks(straight, ranks), _ranks(resumed, ranks)
    assert first[0]["global_step"] == 6 and second[0]["global_step"] == 6
    assert second[0]["steps_this_run"] == 2  # it really resumed at step 4
    assert json.loads((at4 / "trainer_state.json").read_text())["world_size"] == ranks
    # data-parallel ranks hold the same weights (sharded engines report their own shard: not comparable)
    if engine in ("NO", "MULTI_GPU", "DEEPSPEED") and "zero_stage: 3" not in config.read_text():
        assert len({r["weights_checksum"] for r in first}) == 1

    a, b = _weights(straight / "checkpoints/checkpoint-0000006"), _weights(resumed / "checkpoints/checkpoint-0000006")
    assert a.keys() == b.keys() and a.keys() == _weights(at4).keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    assert first[0]["losses"][4:] == second[0]["losses"]
    assert any(not torch.equal(a[k], v) for k, v in _weights(at4).items())  # steps 5-6 changed the weights

    # the checkpoint's transformer is a self-contained diffusers folder, also when the engine sharded it
    from dynamictrl.models import DynamiCtrlTransformer3DModel

    model = DynamiCtrlTransformer3DModel.from_pretrained(resumed / "checkpoints/checkpoint-0000006/transformer")
    assert all(torch.equal(p, a[n]) for n, p in model.state_dict().items())

    # a sharding engine trains the same model as plain data parallelism (float rounding of other reduction orders and
    # of DeepSpeed's CPU Adam apart; steps 1-6 move the weights by ~1e-3)
    if ranks == 2:
        reference = request.getfixturevalue("ddp_reference")
        assert max((a[k] - reference[k]).abs().max().item() for k in a) < 1e-6


@pytest.mark.slow
def test_zero3_config_without_the_gather_flag_still_writes_the_diffusers_transformer(data, tmp_path):
    """The issue's crash: ZeRO-3 with ``zero3_save_16bit_model: false`` died at its first checkpoint."""
    pytest.importorskip("deepspeed")
    text = (REPO / "configs/accelerate/deepspeed_zero3.yaml").read_text()
    assert "zero3_save_16bit_model: true" in text
    config = tmp_path / "zero3_no_gather.yaml"
    config.write_text(text.replace("zero3_save_16bit_model: true", "zero3_save_16bit_model: false"))
    out = tmp_path / "run"
    _launch(config, 1, data, out, "train.max_steps=2")
    from dynamictrl.models import DynamiCtrlTransformer3DModel

    DynamiCtrlTransformer3DModel.from_pretrained(out / "checkpoints/checkpoint-0000002/transformer")
    assert not list((out / "checkpoints").glob("*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "named"),
    [("train.trainable=lora", "train.trainable=lora"), ("train.ema.enabled=true", "train.ema.enabled")],
)
def test_lora_or_ema_with_a_sharding_engine_is_refused_in_one_line(override, named, data, tmp_path):
    result = _run(REPO / "configs/accelerate/fsdp.yaml", 2, data, tmp_path / "run", override)
    assert result.returncode != 0
    assert f"error: {named} with an engine that shards the weights (ZeRO-3 / FSDP) is not supported" in result.stderr


def test_relinked_lr_scheduler_drives_the_optimizer_that_replaced_its_param_groups():
    """What ZeRO-Offload does to the LR scheduler: accelerate builds DeepSpeedCPUAdam on the client optimizer's
    param-group dicts, and loading a checkpoint replaces them; relinking makes the schedule reach the stepped
    optimizer again."""
    from types import SimpleNamespace

    from dynamictrl.training.engines import relink_lr_scheduler

    weight = torch.nn.Parameter(torch.zeros(2))
    client = torch.optim.AdamW([weight], lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(client, lambda step: 0.1 * (step + 1))
    base = torch.optim.AdamW(client.param_groups, lr=1.0)  # shares the group dicts, as accelerate does
    assert base.param_groups[0] is client.param_groups[0]
    base.load_state_dict(base.state_dict())  # what DeepSpeed's checkpoint load does: new group dicts
    engine = SimpleNamespace(optimizer=SimpleNamespace(optimizer=base))
    client.step()
    scheduler.step()
    assert base.param_groups[0]["lr"] == pytest.approx(0.1)  # frozen: the schedule went to the client's dicts
    assert relink_lr_scheduler(engine, SimpleNamespace(scheduler=scheduler))
    scheduler.step()
    assert base.param_groups[0]["lr"] == pytest.approx(0.3)
    assert not relink_lr_scheduler(engine, SimpleNamespace(scheduler=scheduler))  # already linked
