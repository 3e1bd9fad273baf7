"""The trainer under bad steps (tiny preset, CPU): a non-finite loss or gradient on any micro-batch skips the whole
optimizer step (also under DeepSpeed ZeRO-2), skips are counted and stop the run, resume refuses another layout,
EMA follows its closed form and resumes bit-exactly, and the merged LoRA export is the adapter model."""

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
from dynamictrl.errors import UserError
from dynamictrl.training import NonFiniteLossError, Trainer, load_config

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs/train/tiny_cpu.yaml"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), num_clips=4, num_frames=9, size=64)


@pytest.fixture(scope="module")
def cache(toy, tmp_path_factory):
    from dynamictrl.cli import prepare_dataset

    out = tmp_path_factory.mktemp("cache") / "latents"
    overrides = [f"data.root={toy}", "data.num_frames=9"]
    assert prepare_dataset.main(["--config", str(TINY), "--out", str(out), "--clips-per-video", "2", *overrides]) == 0
    return out


def overrides(toy, cache, out, *extra):
    return [
        f"data.root={toy}",
        f"data.latents={cache}",
        f"train.output_dir={out}",
        "data.num_frames=9",
        "logging.report_to=[]",
        "logging.progress_bar=false",
        "checkpoint.every_steps=0",
        "checkpoint.save_final=false",
        *extra,
    ]


def make_trainer(toy, cache, out, *extra):
    return Trainer(load_config(TINY, overrides(toy, cache, out, *extra)))


# a window of 2 micro-batches, Adam momentum, an LR that moves every step (warm-up) and EMA
WINDOW = (
    "train.gradient_accumulation_steps=2",
    "train.max_steps=8",
    "optimizer.lr_scheduler=constant_with_warmup",
    "optimizer.lr_warmup_steps=6",
    "train.ema.enabled=true",
    "train.ema.decay=0.9",
)


def tensors_of(obj, prefix=""):
    """Every tensor and number inside nested dicts/lists, by path (optimizer and scheduler states)."""
    if torch.is_tensor(obj):
        return {prefix: obj.detach().clone()}
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return {prefix: obj}
    out = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(tensors_of(value, f"{prefix}.{key}"))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            out.update(tensors_of(value, f"{prefix}[{i}]"))
    return out


def snapshot(trainer):
    model = trainer.accelerator.unwrap_model(trainer.transformer)
    return dict(
        weights=tensors_of(model.state_dict()),
        optimizer=tensors_of(trainer.optimizer.state_dict()),
        lr=(trainer.lr_scheduler.scheduler.last_epoch, trainer.lr_scheduler.get_last_lr()[0]),
        ema=tensors_of([trainer.ema.shadow_params, trainer.ema.optimization_step]),
    )


def same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if torch.is_tensor(a):
        return torch.equal(a, b)
    return a == b


def inject(trainer, monkeypatch, bad: dict[int, str]):
    """Make micro-batch i (0-based, counted over the run) give a NaN loss or a finite loss with an inf gradient."""
    real = trainer.spec.loss

    def loss(*args):
        value = real(*args)
        kind = bad.get(trainer.micro_batches - 1)  # the trainer counts the micro-batch before its loss
        if kind == "nan_loss":
            return value * float("nan")
        if kind == "inf_grad":  # d/dp sqrt(p - p) = inf, value 0
            p = trainer.params[0]
            return value + torch.sqrt(p - p.detach()).sum()
        return value

    monkeypatch.setattr(trainer.spec, "loss", loss)


@pytest.mark.parametrize("kind", ["nan_loss", "inf_grad"])
@pytest.mark.parametrize("micro", [0, 1])
def test_a_bad_micro_batch_anywhere_in_the_window_skips_the_whole_step(toy, cache, tmp_path, monkeypatch, kind, micro):
    trainer = make_trainer(toy, cache, tmp_path / "run", *WINDOW)
    trainer.setup()
    inject(trainer, monkeypatch, {4 + micro: kind})  # step 3 = micro-batches 4 and 5
    data = iter(trainer.loader)
    first = snapshot(trainer)
    trainer.train_step(data), trainer.train_step(data)
    before = snapshot(trainer)
    assert not same(first["weights"], before["weights"]) and before["lr"] != first["lr"]
    exp_avg = [v for k, v in before["optimizer"].items() if k.endswith("exp_avg")]
    assert exp_avg and any(v.abs().sum() > 0 for v in exp_avg)  # momentum that a wrong step would move
    logs = trainer.train_step(data)
    after = snapshot(trainer)
    for part in ("weights", "optimizer", "lr", "ema"):
        assert same(before[part], after[part]), part
    assert logs["nonfinite_steps"] == 1 and trainer.nonfinite_in_a_row == 1 and trainer.global_step == 3
    trainer.train_step(data)  # a good step again: applied, and the run of skips is over
    assert not same(after["weights"], snapshot(trainer)["weights"]) and trainer.nonfinite_in_a_row == 0


def test_skipped_steps_are_logged_and_stop_the_run_after_max_in_a_row(toy, cache, tmp_path, monkeypatch, caplog):
    trainer = make_trainer(toy, cache, tmp_path / "run", *WINDOW, "train.max_nonfinite_steps=3")
    trainer.setup()
    # step 1 good, step 2 bad, step 3 good, then steps 4, 5, 6 bad: three in a row stop the run at step 6
    inject(trainer, monkeypatch, {2: "nan_loss", 7: "inf_grad", 8: "nan_loss", 11: "inf_grad"})
    with caplog.at_level("WARNING", logger="dynamictrl.training.trainer"):
        with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row"):
            trainer.train()
    assert trainer.global_step == 5 and trainer.nonfinite_total == 4
    assert [h["nonfinite_steps"] for h in trainer.history] == [0, 1, 1, 2, 3]
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 4 and "(3 in a row, 4 in all)" in skipped[-1]


def test_the_count_of_skipped_steps_survives_resume(toy, cache, tmp_path, monkeypatch):
    common = (*WINDOW, "train.max_steps=2", "checkpoint.every_steps=2", "checkpoint.resume_from=latest")
    trainer = make_trainer(toy, cache, tmp_path / "run", *common)
    trainer.setup()
    inject(trainer, monkeypatch, {3: "nan_loss"})  # step 2 skipped
    assert trainer.train()["nonfinite_steps"] == 1
    state = json.loads((tmp_path / "run/checkpoints/checkpoint-0000002/trainer_state.json").read_text())
    assert state["nonfinite_steps"] == 1 and state["nonfinite_in_a_row"] == 1
    resumed = make_trainer(toy, cache, tmp_path / "run", *common, "train.max_steps=3")
    resumed.setup()
    assert resumed.nonfinite_total == 1 and resumed.nonfinite_in_a_row == 1


def test_resume_with_another_batch_size_accumulation_or_world_size_is_refused(toy, cache, tmp_path, capsys):
    out = tmp_path / "run"
    common = ("train.max_steps=2", "checkpoint.every_steps=2", "checkpoint.resume_from=latest")
    make_trainer(toy, cache, out, *common).train()
    state_file = out / "checkpoints/checkpoint-0000002/trainer_state.json"
    state = json.loads(state_file.read_text())
    assert state["batch_size"] == 1 and state["gradient_accumulation_steps"] == 1 and state["world_size"] == 1
    with pytest.raises(UserError, match=r"batch_size 1 \(now 2\)"):
        make_trainer(toy, cache, out, *common, "train.max_steps=3", "train.batch_size=2").setup()
    with pytest.raises(UserError, match=r"gradient_accumulation_steps 1 \(now 2\)"):
        make_trainer(toy, cache, out, *common, "train.gradient_accumulation_steps=2").setup()
    state_file.write_text(json.dumps({**state, "world_size": 2}))
    with pytest.raises(UserError, match=r"world_size 2 \(now 1\)"):
        make_trainer(toy, cache, out, *common).setup()
    state_file.write_text(json.dumps(state))
    from dynamictrl.cli import train  # the CLI prints the refusal as one line, status 2

    assert train.main(["--config", str(TINY), *overrides(toy, cache, out, *common, "train.batch_size=2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: checkpoint.resume_from:") and "batch_size 1 (now 2)" in err[-1]
    resumed = make_trainer(toy, cache, out, *common, "train.max_steps=3")
    resumed.setup()
    assert resumed.global_step == 2


def test_ema_after_two_steps_is_the_closed_form_of_diffusers_ema(toy, cache, tmp_path):
    """diffusers' EMAModel: step 1 copies the weights (decay 0), step 2 uses decay min(0.9, (1+1)/(10+1))."""
    trainer = make_trainer(toy, cache, tmp_path / "run", *WINDOW, "checkpoint.save_final=true")
    trainer.setup()
    data = iter(trainer.loader)
    trainer.train_step(data)
    w1 = [p.detach().clone() for p in trainer.params]
    trainer.train_step(data)
    w2 = [p.detach().clone() for p in trainer.params]
    d = 2 / 11
    expected = [d * a + (1 - d) * b for a, b in zip(w1, w2)]
    assert any(not torch.equal(a, b) for a, b in zip(w1, w2))
    close = lambda xs, ys: all(torch.allclose(x, y, atol=1e-6, rtol=0) for x, y in zip(xs, ys))  # noqa: E731
    assert close(trainer.ema.shadow_params, expected)  # float32 rounding of the in-place update: ~1e-7
    assert not close(trainer.ema.shadow_params, w2)  # the steps are large enough to tell the forms apart
    assert not close(trainer.ema.shadow_params, [0.9 * a + 0.1 * b for a, b in zip(w1, w2)])
    # final/transformer_ema holds exactly these weights
    trainer.save_final()
    saved = load_file(str(tmp_path / "run/final/transformer_ema/diffusion_pytorch_model.safetensors"))
    names = [n for n, p in trainer.accelerator.unwrap_model(trainer.transformer).named_parameters() if p.requires_grad]
    assert all(torch.equal(saved[n], s) for n, s in zip(names, trainer.ema.shadow_params))


def test_ema_is_bit_exact_across_resume(toy, cache, tmp_path):
    common = (*WINDOW, "train.max_steps=4", "checkpoint.every_steps=2", "checkpoint.resume_from=latest")
    make_trainer(toy, cache, tmp_path / "a", *common, "checkpoint.save_final=true").train()
    make_trainer(toy, cache, tmp_path / "b", *common, "train.max_steps_per_run=2").train()
    make_trainer(toy, cache, tmp_path / "b", *common, "checkpoint.save_final=true").train()
    name = "final/transformer_ema/diffusion_pytorch_model.safetensors"
    a, b = load_file(str(tmp_path / "a" / name)), load_file(str(tmp_path / "b" / name))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    plain = load_file(str(tmp_path / "a/final/transformer/diffusion_pytorch_model.safetensors"))
    assert any(not torch.equal(a[k], plain[k]) for k in a)  # the EMA is not the plain weights


def forward(model, seed=0):
    """The transformer's output on fixed random inputs of the tiny preset's shapes."""
    g = torch.Generator().manual_seed(seed)
    frames, channels, size = 3, model.config.out_channels, model.config.sample_height
    with torch.no_grad():
        return model(
            hidden_states=torch.randn(1, frames, 2 * channels, size, size, generator=g),
            encoder_hidden_states=torch.randn(
                1, model.config.max_text_seq_length, model.config.text_embed_dim, generator=g
            ),
            timestep=torch.tensor([500]),
            pose_latents=torch.randn(1, frames, channels, size, size, generator=g),
            image_rotary_emb=model.rotary_embedding(frames, size, size),
            return_dict=False,
        )[0]


def test_merged_lora_export_has_the_forward_of_the_adapter_model(toy, cache, tmp_path):
    from dynamictrl.models import DynamiCtrlTransformer3DModel

    out = tmp_path / "run"
    lora = ("train.trainable=lora", "train.lora.rank=4", "train.lora.alpha=8", "train.max_steps=3")
    trainer = make_trainer(toy, cache, out, *lora, "optimizer.lr=1e-2", "optimizer.lr_warmup_steps=0")
    trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.transformer).eval()
    adapted = forward(model)
    model.disable_adapters()
    base = forward(model)
    model.enable_adapters()
    assert (adapted - base).abs().max() > 1e-3  # the adapters changed the model
    trainer.save_final()
    merged = DynamiCtrlTransformer3DModel.from_pretrained(out / "final/transformer").eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(forward(merged), adapted, atol=1e-5, rtol=1e-5)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DEEPSPEED_SCRIPT = r"""
import json, sys
import torch
sys.path.insert(0, sys.argv[1])
from tests.test_train_robustness import inject, overrides, same, snapshot, TINY
from dynamictrl.training import Trainer, load_config

toy, cache, out = sys.argv[2:5]
trainer = Trainer(load_config(TINY, overrides(toy, cache, out, *json.loads(sys.argv[5]))))
trainer.setup()


class Patch:  # pytest's monkeypatch, enough for inject()
    def setattr(self, obj, name, value):
        setattr(obj, name, value)


# step 3: NaN loss on the first micro-batch of the window; step 4: inf gradient on the last one
inject(trainer, Patch(), {4: "nan_loss", 7: "inf_grad"})
data = iter(trainer.loader)
trainer.train_step(data), trainer.train_step(data)
result = {"engine": type(trainer.transformer).__name__}
for step in (3, 4):
    before = snapshot(trainer)
    trainer.train_step(data)
    after = snapshot(trainer)
    result[f"step{step}"] = {part: same(before[part], after[part]) for part in before}
before = snapshot(trainer)
trainer.train_step(data)
result["step5_changed"] = not same(before["weights"], snapshot(trainer)["weights"])
result["nonfinite_total"] = trainer.nonfinite_total
result["engine_skipped_steps"] = trainer.transformer.skipped_steps
result["momentum"] = any(v.abs().sum().item() > 0 for k, v in before["optimizer"].items() if k.endswith("exp_avg"))
print("RESULT " + json.dumps(result), flush=True)
"""


@pytest.mark.slow
def test_deepspeed_zero2_skips_a_bad_window_on_cpu(toy, cache, tmp_path):
    pytest.importorskip("deepspeed")
    script = tmp_path / "ds_skip.py"
    script.write_text(DEEPSPEED_SCRIPT)
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file",
        str(REPO / "configs/accelerate/deepspeed_zero2.yaml"), "--num_processes", "1", "--mixed_precision", "no",
        "--main_process_port", str(_free_port()), str(script), str(REPO), str(toy), str(cache), str(tmp_path / "run"),
        json.dumps([*WINDOW, "train.mixed_precision=no"]),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), DS_ACCELERATOR="cpu")
    env.pop("WORLD_SIZE", None)
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")][-1]
    found = json.loads(line[len("RESULT ") :])
    assert found["engine"] == "DeepSpeedEngine"
    unchanged = {"weights": True, "optimizer": True, "lr": True, "ema": True}
    assert found["step3"] == unchanged and found["step4"] == unchanged
    assert found["step5_changed"] and found["momentum"]
    assert found["nonfinite_total"] == 2 and found["engine_skipped_steps"] == 2
