"""Trainer on the tiny preset (CPU): loss goes down, bit-exact resume, trainable subsets, checkpoints, NaN handling,
the latent cache, the CLI, two gloo ranks, and (slow) DeepSpeed ZeRO-2."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dynamictrl.data.toy import write_toy_dataset
from dynamictrl.training import NonFiniteLossError, Trainer, load_config
from dynamictrl.training.checkpointing import list_checkpoints, resolve_resume
from dynamictrl.training.spec import step_generator

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs/train/tiny_cpu.yaml"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), num_clips=4, num_frames=13, size=64)


@pytest.fixture(scope="module")
def cache(toy, tmp_path_factory):
    """Latent cache of the toy set (tools/prepare_dataset.py): most tests train from it to skip the VAE per step."""
    from dynamictrl.cli import prepare_dataset

    out = tmp_path_factory.mktemp("cache") / "latents"
    overrides = [f"data.root={toy}", "data.num_frames=9", "data.height=64", "data.width=64"]
    assert prepare_dataset.main(["--config", str(TINY), "--out", str(out), "--clips-per-video", "2", *overrides]) == 0
    return out


def make_cfg(toy, out, *extra):
    return load_config(
        TINY,
        [
            f"data.root={toy}",
            f"train.output_dir={out}",
            "data.num_frames=9",
            "data.height=64",
            "data.width=64",
            "logging.report_to=[]",
            "logging.progress_bar=false",
            "checkpoint.every_steps=0",
            "checkpoint.save_final=false",
            *extra,
        ],
    )


def fixed_loss(trainer, batch, repeats=8):
    """Loss of one fixed batch averaged over fixed noise/timestep draws (no dropout), with the current weights."""
    spec, total = trainer.spec, 0.0
    with torch.no_grad():
        inputs = spec.prepare(batch, torch.Generator().manual_seed(999), trainer.device, torch.float32)
        for k in range(repeats):
            total += float(spec.loss(trainer.transformer, inputs, torch.Generator().manual_seed(1000 + k)))
    return total / repeats


def transformer_weights(checkpoint):
    return load_file(str(Path(checkpoint) / "transformer" / "diffusion_pytorch_model.safetensors"))


def test_ten_steps_lower_the_loss(toy, cache, tmp_path):
    cfg = make_cfg(
        toy,
        tmp_path / "run",
        f"data.latents={cache}",
        "train.max_steps=10",
        "data.text_dropout_prob=0",
        "data.image_dropout_prob=0",
        "optimizer.lr=2e-3",
        "optimizer.lr_warmup_steps=0",
    )
    trainer = Trainer(cfg)
    trainer.setup()
    batch = next(iter(trainer.loader))
    before = fixed_loss(trainer, batch)
    summary = trainer.train()
    after = fixed_loss(trainer, batch)
    assert summary["global_step"] == 10 and len(summary["losses"]) == 10
    assert all(torch.isfinite(torch.tensor(summary["losses"])))
    assert after < 0.95 * before, (before, after)
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_training_from_pixels_encodes_on_the_fly(toy, tmp_path):
    """The raw-video path: VAE + T5 per step, reference pixel noise, dropouts, masked references."""
    cfg = make_cfg(
        toy,
        tmp_path / "run",
        "train.max_steps=2",
        "data.num_frames=5",
        "data.reference_mask_prob=0.5",
        "data.text_dropout_prob=0.5",
        "data.image_dropout_prob=0.5",
    )
    trainer = Trainer(cfg)
    torch.set_num_threads(2)
    trainer.setup()
    assert torch.get_num_threads() == 1  # train.cpu_threads from tiny_cpu.yaml
    assert trainer.spec.components.vae is not None and trainer.spec.components.text_encoder is not None
    batch = next(iter(trainer.loader))
    inputs = trainer.spec.prepare(batch, torch.Generator().manual_seed(0), trainer.device, torch.float32)
    assert inputs["latents"].shape == (1, 2, 4, 8, 8) and inputs["prompt_embeds"].shape == (1, 8, 16)
    assert inputs["reference_latents"][:, 1:].abs().sum() == 0
    summary = trainer.train()
    assert summary["global_step"] == 2 and all(torch.isfinite(torch.tensor(summary["losses"])))
    with pytest.raises(ValueError, match="learned positional embeddings"):
        Trainer(make_cfg(toy, tmp_path / "r2", "data.height=32", "data.width=32")).setup()
    with pytest.raises(ValueError, match="num_frames=8"):
        Trainer(make_cfg(toy, tmp_path / "r3", "data.num_frames=8")).setup()


def test_four_steps_equal_two_plus_resume_plus_two(toy, cache, tmp_path):
    common = (
        f"data.latents={cache}",
        "train.max_steps=4",
        "train.gradient_accumulation_steps=2",
        "train.batch_size=2",
        "data.text_dropout_prob=0.5",
        "data.image_dropout_prob=0.3",
        "checkpoint.every_steps=2",
        "checkpoint.resume_from=latest",
        "optimizer.lr_scheduler=cosine_with_restarts",
        "optimizer.lr_warmup_steps=1",
    )
    straight = Trainer(make_cfg(toy, tmp_path / "a", *common)).train()
    # an interrupted run (stopped after 2 of 4 steps), then resumed
    Trainer(make_cfg(toy, tmp_path / "b", *common, "train.max_steps_per_run=2")).train()
    resumed_trainer = Trainer(make_cfg(toy, tmp_path / "b", *common))
    resumed = resumed_trainer.train()
    assert resumed["steps_this_run"] == 2 and resumed["global_step"] == 4
    a = transformer_weights(tmp_path / "a/checkpoints/checkpoint-0000004")
    b = transformer_weights(tmp_path / "b/checkpoints/checkpoint-0000004")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight["losses"][2:] == resumed["losses"]
    state = json.loads((tmp_path / "b/checkpoints/checkpoint-0000004/trainer_state.json").read_text())
    assert state == {**state, "global_step": 4, "micro_batches": 8}
    # a checkpoint beside its config, and the weights really changed from the initial ones
    assert (tmp_path / "b/checkpoints/checkpoint-0000002/config.yaml").is_file()
    first = transformer_weights(tmp_path / "b/checkpoints/checkpoint-0000002")
    assert any(not torch.equal(first[k], b[k]) for k in b)


def test_checkpoint_limit_tmp_folders_and_resume_paths(toy, cache, tmp_path):
    out = tmp_path / "run"
    Trainer(
        make_cfg(
            toy,
            out,
            f"data.latents={cache}",
            "train.max_steps=3",
            "checkpoint.every_steps=1",
            "checkpoint.total_limit=2",
        )
    ).train()
    names = [p.name for p in list_checkpoints(out)]
    assert names == ["checkpoint-0000002", "checkpoint-0000003"]
    assert not list((out / "checkpoints").glob("*.tmp"))
    # a half-written checkpoint (crash before the rename) is never picked up
    (out / "checkpoints" / "checkpoint-0000009.tmp").mkdir()
    assert resolve_resume("latest", out).name == "checkpoint-0000003"
    assert resolve_resume(None, out) is None
    assert resolve_resume("latest", tmp_path / "empty") is None
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        resolve_resume(str(tmp_path / "nope"), out)
    # the saved transformer loads as a self-describing diffusers folder
    from dynamictrl.models import DynamiCtrlTransformer3DModel

    model = DynamiCtrlTransformer3DModel.from_pretrained(out / "checkpoints/checkpoint-0000003/transformer")
    assert model.config.pose_control == "padaln"


def test_pose_branch_only_trains_only_the_branch(toy, cache, tmp_path):
    cfg = make_cfg(
        toy, tmp_path / "run", f"data.latents={cache}", "train.max_steps=2", "train.trainable=pose_branch_only"
    )
    trainer = Trainer(cfg)
    trainer.setup()
    model = trainer.accelerator.unwrap_model(trainer.transformer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.train()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".control_norm1." in k for k in changed)


def test_lora_trains_adapters_and_pose_branch_and_resumes(toy, cache, tmp_path):
    extra = (
        f"data.latents={cache}",
        "train.trainable=lora",
        "train.lora.rank=4",
        "train.lora.alpha=4",
        "checkpoint.every_steps=1",
    )
    out = tmp_path / "run"
    trainer = Trainer(make_cfg(toy, out, "train.max_steps=2", "checkpoint.save_final=true", *extra))
    trainer.setup()
    model = trainer.accelerator.unwrap_model(trainer.transformer)
    base = {k: v.clone() for k, v in model.state_dict().items() if "lora" not in k}
    trainer.train()
    ckpt = out / "checkpoints/checkpoint-0000002"
    saved = load_file(str(ckpt / "trainable.safetensors"))
    assert any("lora_A" in k for k in saved) and any(".control_norm1." in k for k in saved)
    assert not (ckpt / "model.safetensors").exists()
    frozen = [k for k in base if ".control_norm1." not in k]
    assert all(torch.equal(base[k], model.state_dict()[k]) for k in frozen if k in model.state_dict())
    resumed = Trainer(make_cfg(toy, out, "train.max_steps=3", "checkpoint.resume_from=latest", *extra))
    resumed.setup()
    assert resumed.global_step == 2
    again = resumed.accelerator.unwrap_model(resumed.transformer).state_dict()
    assert all(torch.equal(saved[k], again[k]) for k in saved)
    final = load_file(str(out / "final/transformer/diffusion_pytorch_model.safetensors"))
    assert not any("lora" in k for k in final)  # merged


def test_nonfinite_loss_skips_the_step_then_stops(toy, cache, tmp_path, monkeypatch):
    trainer = Trainer(
        make_cfg(toy, tmp_path / "run", f"data.latents={cache}", "train.max_steps=10", "train.max_nonfinite_steps=3")
    )
    trainer.setup()
    model = trainer.accelerator.unwrap_model(trainer.transformer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    real_loss = trainer.spec.loss
    monkeypatch.setattr(trainer.spec, "loss", lambda *a: real_loss(*a) * float("nan"))
    with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row"):
        trainer.train()
    assert trainer.nonfinite_total == 3
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no step was applied
    monkeypatch.setattr(trainer.spec, "loss", real_loss)
    trainer.nonfinite_in_a_row = 0
    logs = trainer.train_step(iter(trainer.loader))
    assert torch.isfinite(torch.tensor(logs["loss"])) and logs["nonfinite_steps"] == 3


def test_latent_cache_and_training_from_it(toy, cache, tmp_path):
    index = json.loads((cache / "index.json").read_text())
    assert len(index["entries"]) == 8 and index["meta"]["has_prompt_embeds"]
    entry = index["entries"][0]
    tensors = load_file(str(cache / entry["shard"]))
    assert tensors[f"{entry['key']}.latents"].shape == (3, 4, 8, 8)  # (F', C, H', W')
    ref = tensors[f"{entry['key']}.reference_latents"]
    assert ref[1:].abs().sum() == 0 and ref[0].abs().sum() > 0
    assert f"{entry['key']}.masked_reference_latents" in tensors
    assert tensors[f"{entry['key']}.prompt_embeds"].shape == (8, 16)

    trainer = Trainer(make_cfg(toy, tmp_path / "run", "train.max_steps=3", f"data.latents={cache}"))
    trainer.setup()
    assert trainer.spec.components.vae is None and trainer.spec.components.text_encoder is None
    summary = trainer.train()
    assert summary["global_step"] == 3 and all(torch.isfinite(torch.tensor(summary["losses"])))


def test_validation_samples_saves_mp4_and_metrics(toy, cache, tmp_path):
    from dynamictrl.data.io import read_image, read_video, write_image

    frames, _ = read_video(toy / "videos/clip000.mp4")
    write_image(tmp_path / "ref.png", frames[0])
    cfg = make_cfg(
        toy,
        tmp_path / "run",
        f"data.latents={cache}",
        "train.max_steps=1",
        "validation.every_steps=1",
        f"validation.reference={tmp_path / 'ref.png'}",
        f"validation.pose={toy / 'poses/clip000.mp4'}",
        f"validation.target={toy / 'videos/clip000.mp4'}",
        "validation.prompt=red",
        "validation.num_inference_steps=2",
    )
    Trainer(cfg).train()
    folder = tmp_path / "run/validation"
    video, _ = read_video(folder / "step-0000001.mp4")
    assert video.shape == (9, 64, 64, 3)
    record = json.loads((folder / "metrics.jsonl").read_text().splitlines()[0])
    assert record["step"] == 1 and {"val/l1", "val/ssim", "val/psnr"} <= record.keys()
    assert read_image(tmp_path / "ref.png").shape == (64, 64, 3)


def test_step_generators_are_distinct_and_reproducible():
    draw = lambda *a: torch.randn(4, generator=step_generator(*a, torch.device("cpu")))  # noqa: E731
    assert torch.equal(draw(1, 5, 0, 0), draw(1, 5, 0, 0))
    assert not torch.equal(draw(1, 5, 0, 0), draw(1, 5, 1, 0))
    assert not torch.equal(draw(1, 5, 0, 0), draw(1, 6, 0, 0))


def test_cli_reports_bad_keys_and_missing_data(tmp_path, capsys):
    from dynamictrl.cli import train

    assert train.main(["--config", str(TINY), "train.max_stepz=3"]) == 2  # one line, no traceback
    assert "train.max_stepz" in capsys.readouterr().err
    assert train.main(["--config", str(TINY), "--print-config", "train.max_steps=3"]) == 0
    assert "max_steps: 3" in capsys.readouterr().out
    root = write_toy_dataset(tmp_path / "d", num_clips=2, num_frames=5, size=16, masks=False)
    (root / "poses" / "clip001.mp4").unlink()
    with pytest.raises(ValueError, match="clip001.mp4"):
        Trainer(make_cfg(root, tmp_path / "run")).setup()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("WORLD_SIZE", None)
    return env


def test_two_cpu_ranks_agree(toy, cache, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
        str(REPO / "scripts/train.py"), "--config", str(TINY), f"data.root={toy}", f"train.output_dir={out}",
        f"data.latents={cache}", "train.max_steps=3", "logging.report_to=[]",
        "logging.progress_bar=false", "checkpoint.every_steps=3",
    ]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((out / "ranks" / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["weights_checksum"] == ranks[1]["weights_checksum"]
    assert ranks[0]["losses"] == ranks[1]["losses"]  # reduced across ranks
    assert json.loads((out / "checkpoints/checkpoint-0000003/trainer_state.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_deepspeed_zero2_two_steps_on_cpu(toy, cache, tmp_path):
    pytest.importorskip("deepspeed")
    out = tmp_path / "ds"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file",
        str(REPO / "configs/accelerate/deepspeed_zero2.yaml"), "--num_processes", "1", "--mixed_precision", "no",
        "--main_process_port", str(_free_port()),
        str(REPO / "scripts/train.py"), "--config", str(TINY), f"data.root={toy}", f"train.output_dir={out}",
        f"data.latents={cache}", "train.max_steps=2", "train.mixed_precision=no",
        "logging.report_to=[]", "logging.progress_bar=false", "checkpoint.every_steps=2",
    ]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, env={**_env(), "DS_ACCELERATOR": "cpu"}, capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DeepSpeed" in result.stderr + result.stdout
    ckpt = out / "checkpoints/checkpoint-0000002"
    assert (ckpt / "pytorch_model").is_dir()  # DeepSpeed's own engine state
    assert (ckpt / "transformer/diffusion_pytorch_model.safetensors").is_file()
    assert json.loads((out / "ranks/rank0.json").read_text())["global_step"] == 2


def test_v_prediction_loss_is_the_v_mse_and_epsilon_loss_is_its_weighted_form():
    from diffusers import CogVideoXDPMScheduler

    from dynamictrl.models.tiny import COGVIDEOX_SCHEDULER_CONFIG
    from dynamictrl.training.losses import diffusion_loss

    scheduler = CogVideoXDPMScheduler(**COGVIDEOX_SCHEDULER_CONFIG)
    g = torch.Generator().manual_seed(0)
    x0, eps, out = (torch.randn(3, 2, 4, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([0, 500, 999])
    a = scheduler.alphas_cumprod.double()[t].view(-1, 1, 1, 1, 1)
    noisy = scheduler.add_noise(x0, eps, t)
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    loss = diffusion_loss(scheduler.alphas_cumprod, "v_prediction", out, noisy, x0, eps, t)
    assert torch.allclose(loss.double(), ((out - v) ** 2).flatten(1).mean(1), rtol=1e-4)  # float32 inside
    # CogVideoX's fine-tuning form: x0 from the scheduler's get_velocity, weighted by 1 / (1 - alpha_bar)
    x0_hat = scheduler.get_velocity(out, noisy, t)
    reference = ((x0_hat - x0) ** 2 / (1 - a)).flatten(1).mean(1)
    assert torch.allclose(loss.double(), reference, rtol=1e-4)
    # the epsilon-loss of the same prediction is alpha_bar times the v-loss
    eps_hat = (1 - a).sqrt() * noisy + a.sqrt() * out
    eps_loss = diffusion_loss(scheduler.alphas_cumprod, "epsilon", eps_hat, noisy, x0, eps, t)
    assert torch.allclose(eps_loss.double(), a.flatten() * loss.double(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="prediction_type"):
        diffusion_loss(scheduler.alphas_cumprod, "flow", out, noisy, x0, eps, t)
