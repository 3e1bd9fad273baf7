"""A trained model is a usable model: what a few tiny training steps write (final/ and checkpoints, full, LoRA and
pose-branch-only, source tiny and base) loads as a DynamiCtrlPipeline and animates; wrong folders and
transformers that do not fit their base are refused with one line."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dynamictrl.data.toy import write_toy_dataset
from dynamictrl.errors import UserError
from dynamictrl.models import DynamiCtrlTransformer3DModel, build_transformer
from dynamictrl.models.trained import MODEL_INFO, check_fit
from dynamictrl.pipelines import DynamiCtrlPipeline
from dynamictrl.pipelines.trained import inspect_trained, is_trained_output, load_trained_pipeline
from dynamictrl.training import Trainer, load_config

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs/train/tiny_cpu.yaml"
WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), num_clips=2, num_frames=9, size=64)


def train(toy, out, *extra) -> Path:
    """Two steps from pixels (VAE + T5 every step: the run needs its own components), a checkpoint at step 2."""
    cfg = load_config(
        TINY,
        [
            f"data.root={toy}",
            f"train.output_dir={out}",
            "data.num_frames=9",
            "train.max_steps=2",
            "optimizer.lr=1e-2",
            "optimizer.lr_warmup_steps=0",
            "logging.report_to=[]",
            "logging.progress_bar=false",
            "checkpoint.every_steps=2",
            *extra,
        ],
    )
    Trainer(cfg).train()
    return out


def animate(pipe) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    out = pipe(
        image=rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
        pose_video=rng.integers(0, 255, (9, 64, 64, 3), dtype=np.uint8),
        prompt="a red puppet",
        num_frames=9,
        height=64,
        width=64,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    video = np.asarray(out.frames)
    assert video.shape == (1, 9, 64, 64, 3) and np.isfinite(video).all()
    return video


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def full_run(toy, tmp_path_factory):
    return train(toy, tmp_path_factory.mktemp("full") / "run")


def test_tiny_run_final_is_a_pipeline_folder_and_its_checkpoint_loads_the_same_model(full_run):
    final, ckpt = full_run / "final", full_run / "checkpoints/checkpoint-0000002"
    assert json.loads((final / MODEL_INFO).read_text())["weights"] == "pipeline"
    assert is_trained_output(full_run) and is_trained_output(final) and is_trained_output(ckpt)
    checked = inspect_trained(ckpt)  # the checks before loading read JSON only
    assert checked.base == ckpt / "../../base" and checked.transformer_config["out_channels"] == 4
    assert checked.vae_config["latent_channels"] == 4 and inspect_trained(full_run).folder == final
    plain = DynamiCtrlPipeline.from_pretrained(final)  # a complete diffusers folder, no loader needed
    from_final, from_ckpt = load_trained_pipeline(final), load_trained_pipeline(ckpt)
    trained = state(from_final.transformer)
    assert same_weights(trained, state(plain.transformer)) and same_weights(trained, state(from_ckpt.transformer))
    initial = load_file(str(full_run / "base/transformer" / WEIGHTS))
    assert not same_weights(trained, initial)  # the run's base holds the initial weights, final the trained ones
    video = animate(from_final)
    np.testing.assert_array_equal(video, animate(from_ckpt))
    np.testing.assert_array_equal(video, animate(load_trained_pipeline(full_run)))  # a run folder -> its final/


def test_base_source_run_records_its_base_and_loads_from_it(toy, full_run, tmp_path):
    base = shutil.copytree(full_run / "base", tmp_path / "base")  # a CogVideoX-layout folder of tiny components
    run = train(toy, tmp_path / "run", "model.source=base", f"model.base_path={base}")
    info = json.loads((run / "final" / MODEL_INFO).read_text())
    assert info["weights"] == "transformer" and Path(info["base"]) == base.resolve()
    assert not (run / "final/model_index.json").exists() and not (run / "base").exists()
    pipe = load_trained_pipeline(run / "checkpoints/checkpoint-0000002")
    assert same_weights(state(pipe.transformer), state(load_trained_pipeline(run / "final").transformer))
    animate(pipe)
    shutil.rmtree(base)
    with pytest.raises(UserError, match="recorded base .* has no vae"):
        load_trained_pipeline(run / "final")


def test_lora_checkpoint_is_merged_on_load_like_the_final_export(toy, tmp_path):
    run = train(toy, tmp_path / "run", "train.trainable=lora", "train.lora.rank=4", "train.lora.alpha=8")
    ckpt = run / "checkpoints/checkpoint-0000002"
    assert json.loads((ckpt / MODEL_INFO).read_text())["weights"] == "lora"
    assert not (ckpt / "transformer").exists()  # adapters only: the frozen transformer is the run's base
    merged = load_trained_pipeline(ckpt)
    final = DynamiCtrlTransformer3DModel.from_pretrained(run / "final/transformer")
    assert not any("lora" in k for k in merged.transformer.state_dict())
    ours, theirs = state(merged.transformer), state(final)
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], atol=1e-6, rtol=1e-6)
    initial = load_file(str(run / "base/transformer" / WEIGHTS))
    assert any(not torch.allclose(ours[k], initial[k]) for k in initial if ".attn1.to_q." in k)  # adapters merged
    animate(merged)


def test_pose_branch_only_checkpoint_animates_with_only_the_branch_changed(toy, tmp_path):
    run = train(toy, tmp_path / "run", "train.trainable=pose_branch_only")
    pipe = load_trained_pipeline(run / "checkpoints/checkpoint-0000002")
    trained, initial = state(pipe.transformer), load_file(str(run / "base/transformer" / WEIGHTS))
    changed = {k for k in initial if not torch.equal(initial[k], trained[k])}
    assert changed and all(".control_norm1." in k for k in changed)
    animate(pipe)


def test_wrong_folders_are_refused_with_one_line(full_run, tmp_path):
    cases = [
        (tmp_path / "nope", "no such folder"),
        (full_run / "base", "has no dynamictrl_model.json"),
        (full_run / "checkpoints", "has no dynamictrl_model.json"),
    ]
    for path, message in cases:
        with pytest.raises(UserError, match=message) as err:
            load_trained_pipeline(path)
        assert "\n" not in str(err.value) and "runs/X/final" in str(err.value)
    with pytest.raises(UserError, match="no EMA weights"):
        load_trained_pipeline(full_run / "final", ema=True)


def test_loader_refuses_a_transformer_that_does_not_fit_its_base(full_run, tmp_path):
    folder = tmp_path / "final"
    build_transformer("tiny", text_embed_dim=32).save_pretrained(folder / "transformer")
    (folder / MODEL_INFO).write_text(
        json.dumps({"format": 1, "weights": "transformer", "base": str(full_run / "base"), "pose_control": "padaln"})
    )
    with pytest.raises(UserError, match="text width: transformer text_embed_dim 32, T5 d_model 16") as err:
        load_trained_pipeline(folder)
    assert "\n" not in str(err.value)


def test_check_fit_names_latent_channels_and_text_width_and_ignores_vae_sample_size():
    transformer = dict(build_transformer("tiny").config)
    vae = {"latent_channels": 4, "block_out_channels": [8, 8, 16, 16], "sample_height": 64, "sample_width": 64}
    check_fit(transformer, vae, {"d_model": 16})
    with pytest.raises(UserError, match="latent channels: transformer in/out 8/4, VAE latent_channels 16"):
        check_fit(transformer, {**vae, "latent_channels": 16}, {"d_model": 16})
    with pytest.raises(UserError, match="text width: transformer text_embed_dim 16, T5 d_model 32"):
        check_fit(transformer, vae, {"d_model": 32})
    check_fit(transformer, {**vae, "sample_height": 480, "sample_width": 720}, {"d_model": 16})  # tiling defaults


def test_export_refuses_a_transformer_that_does_not_fit_the_base(full_run, tmp_path, capsys):
    from dynamictrl.cli import build_tiny_model

    wrong = tmp_path / "wrong"
    build_transformer("tiny", text_embed_dim=32).save_pretrained(wrong)
    out = tmp_path / "out"
    args = ["export", "--base", str(full_run / "base"), "--out", str(out)]
    assert build_tiny_model.main([*args, "--transformer", str(wrong)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --transformer") and "text width" in err and "\n" not in err
    assert not out.exists()
    assert build_tiny_model.main([*args, "--transformer", str(full_run / "final/transformer")]) == 0
    animate(DynamiCtrlPipeline.from_pretrained(out))
