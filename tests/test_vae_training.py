"""The VAE trainer (dynamictrl/puppet/vae.py, scripts/train_vae.py) on a very small config (16 px, 5 frames)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLCogVideoX
from PIL import Image
from safetensors.torch import load_file

from dynamictrl.puppet.vae import (
    VAETrainConfig,
    build_vae,
    comparison_grid,
    detail_mask,
    evaluate_vae,
    learning_rate,
    make_batch,
    psnr,
    time_roundtrip,
    train_vae,
    vae_step_loss,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(tmp_path: Path, **overrides) -> VAETrainConfig:
    values = dict(
        out_dir=str(tmp_path / "run"),
        steps=4,
        size=16,
        frames=5,
        batch_size=2,
        image_batch_size=2,
        image_every=3,
        lr=3e-3,
        warmup_steps=1,
        block_out_channels=[8, 8],
        latent_channels=4,
        norm_num_groups=4,
        checkpoint_every=2,
        keep_checkpoints=2,
        num_threads=1,  # tiny convolutions: one thread is fastest, and the suite shares the cores
    )
    values.update(overrides)
    return VAETrainConfig(**values)


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="frames must be k\\*4\\+1"):
        tiny_config(tmp_path, frames=6)
    with pytest.raises(ValueError, match="batch_size"):
        tiny_config(tmp_path, batch_size=3)
    with pytest.raises(ValueError, match="divisible"):
        tiny_config(tmp_path, size=17)


def test_batches_are_deterministic_mixed_and_image_steps_are_single_frames(tmp_path):
    config = tiny_config(tmp_path)
    a, b = make_batch(config, 0), make_batch(config, 0)
    assert a.shape == (2, 3, 5, 16, 16)
    assert torch.equal(a, b)
    assert not torch.equal(a, make_batch(config, 1))
    assert a.min() >= -1 and a.max() <= 1
    # second half is a pose video: mostly black background
    assert (a[1] < -0.9).all(0).float().mean() > 0.5
    image = make_batch(config, 2)  # image_every=3 -> step 2 is an image step
    assert image.shape == (2, 3, 1, 16, 16)


def test_detail_mask_marks_non_background_pixels():
    x = -torch.ones(1, 3, 2, 8, 8)
    x[0, 0, :, 3, 4] = 1.0  # one red line pixel on black
    mask = detail_mask(x)
    assert mask.shape == (1, 1, 2, 8, 8)
    assert mask.sum() == 2 and mask[0, 0, 0, 3, 4] == 1


def test_learning_rate_warms_up_then_decays(tmp_path):
    config = tiny_config(tmp_path, steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert learning_rate(config, 0) == pytest.approx(0.1)
    assert learning_rate(config, 9) == pytest.approx(1.0)
    assert learning_rate(config, 100) == pytest.approx(0.1)
    assert learning_rate(config, 50) < learning_rate(config, 20)


def test_a_few_steps_lower_the_loss(tmp_path):
    torch.manual_seed(0)
    config = tiny_config(tmp_path, kl_weight=0.0)
    vae = build_vae(config)
    batch = make_batch(config, 0)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-2)
    losses = []
    for step in range(15):
        loss = vae_step_loss(vae, batch, config, torch.Generator().manual_seed(step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.7 * losses[0]


def _weights(vae) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in vae.state_dict().items()}


def test_checkpoints_resume_reproduces_an_uninterrupted_run(tmp_path):
    config = tiny_config(tmp_path)
    full = _weights(train_vae(config, progress=False))
    out = Path(config.out_dir)
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["step-000002", "step-000004"]
    assert json.loads((out / "checkpoints" / "step-000004" / "state.json").read_text())["step"] == 4
    final = AutoencoderKLCogVideoX.from_pretrained(out / "vae")
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    assert final.config.scaling_factor != 1.0  # measured from the latents
    for k, v in final.state_dict().items():
        torch.testing.assert_close(v, full[k])

    # interrupt after step 2: drop the later checkpoint and the final folder, then resume
    shutil.rmtree(out / "checkpoints" / "step-000004")
    shutil.rmtree(out / "vae")
    (out / "checkpoints" / "step-000006.tmp").mkdir()  # a half-written checkpoint is ignored
    resumed = _weights(train_vae(config, resume=True, progress=False))
    for k, v in resumed.items():
        torch.testing.assert_close(v, full[k], rtol=1e-5, atol=1e-6)
    assert (out / "checkpoints" / "step-000004").is_dir()
    # the resumed model was loaded from a checkpoint folder; no local path leaks into the saved configs
    assert "_name_or_path" not in json.loads((out / "vae" / "config.json").read_text())

    keep_one = tiny_config(tmp_path, out_dir=str(tmp_path / "keep"), keep_checkpoints=1)
    train_vae(keep_one, progress=False)
    assert [p.name for p in (tmp_path / "keep" / "checkpoints").iterdir()] == ["step-000004"]


def test_evaluation_psnr_and_grid(tmp_path):
    config = tiny_config(tmp_path)
    vae = build_vae(config).eval()
    x = torch.zeros(1, 3, 5, 16, 16)
    assert psnr(x, x) == float("inf")
    black = -torch.ones(1, 3, 5, 16, 16)
    assert psnr(black + 2 / 255, black) == pytest.approx(20 * torch.log10(torch.tensor(255.0)).item(), abs=0.01)
    line = black.clone()
    line[:, 0, :, 4, 2:10] = 1.0  # a red line; the reconstruction misses it but gets the background right
    mask = detail_mask(line)
    assert psnr(black, line) > 15 and psnr(black, line, mask) < 5
    scores = evaluate_vae(vae, split="test", clips=2, size=16, frames=5)
    assert set(scores) == {"puppet", "pose", "reference", "puppet_fg", "pose_fg"}
    assert all(0 < v < 60 for v in scores.values())
    grid = comparison_grid(vae, torch.rand(2, 3, 5, 16, 16) * 2 - 1, every=2)
    assert grid.shape == (4 * 16, 3 * 16, 3) and grid.dtype.name == "uint8"


def test_cli_trains_exports_float16_and_reports(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_vae_cli", ROOT / "scripts" / "train_vae.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    export = tmp_path / "export"
    args = [
        "--out", str(tmp_path / "cli"), "--steps", "1", "--size", "16", "--frames", "5", "--batch-size", "2",
        "--block-out-channels", "8", "8", "--latent-channels", "4", "--norm-num-groups", "4",
        "--export", str(export), "--fp16", "--eval-clips", "1", "--threads", "1",
    ]  # fmt: skip
    assert cli.main(args) == 0
    stored = load_file(export / "diffusion_pytorch_model.safetensors")
    assert {v.dtype for v in stored.values()} == {torch.float16}
    vae = AutoencoderKLCogVideoX.from_pretrained(export)
    assert vae.config.block_out_channels == [8, 8] and vae.config.latent_channels == 4
    out = capsys.readouterr().out
    assert "test PSNR (demo" in out and "pose" in out


def test_cli_evaluate_mode_writes_grid_and_times(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_vae_cli2", ROOT / "scripts" / "train_vae.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    config = tiny_config(tmp_path)
    vae_dir = tmp_path / "saved"
    build_vae(config).save_pretrained(vae_dir)
    grid = tmp_path / "grid.png"
    args = [
        "--out", str(tmp_path / "unused"), "--evaluate", str(vae_dir), "--size", "16", "--frames", "5",
        "--eval-clips", "1", "--eval-frames", "5", "9", "--grid", str(grid), "--time", "--threads", "1",
    ]  # fmt: skip
    assert cli.main(args) == 0
    assert not (tmp_path / "unused").exists()  # nothing trained
    out = capsys.readouterr().out
    assert "1 clips, 5 frames" in out and "1 clips, 9 frames" in out
    assert "encode+decode, 1 clip of 13x16x16, 1 thread(s)" in out
    image = np.asarray(Image.open(grid))
    assert image.shape == (12 * 16, 5 * 16, 3)  # 6 clips x (original, reconstruction) rows, 5 frames
    assert time_roundtrip(build_vae(config), frames=5, size=16, repeats=2) > 0
