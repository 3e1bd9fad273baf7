"""The one inference runtime (dynamictrl/acceleration/runtime.py) on the tiny preset on CPU.

Exact options give the eager video within ATOL; approximate ones (fp8 storage, step cache) run, change the video a
little and say so (``RuntimeConfig.exact``); options this machine cannot run fail in one line before any load.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dynamictrl.acceleration.runtime import (
    MEMORY_PRESETS,
    RuntimeConfig,
    add_runtime_args,
    apply_runtime,
    check_runtime,
    runtime_argv,
    runtime_from_args,
)
from dynamictrl.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
# fp32 on CPU: exact options only reorder float sums (kernel choice, fused matmuls, compiled graphs); frames in [0, 1]
ATOL = 1e-5


def _pipeline(pose_control: str = "padaln"):
    from dynamictrl.models.tiny import build_tiny_components
    from dynamictrl.pipelines.pipeline_dynamictrl import DynamiCtrlPipeline

    torch.manual_seed(0)
    parts = build_tiny_components("tiny", sample_height=4, sample_width=4, pose_control=pose_control)
    pipe = DynamiCtrlPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=parts["vae"],
        transformer=parts["transformer"],
        scheduler=parts["scheduler"],
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _animate(pipe, steps: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    embeds = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(3))
    return pipe(
        image=rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        pose_video=rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8),
        prompt_embeds=embeds[1:],
        negative_prompt_embeds=embeds[:1],
        num_frames=5,
        height=32,
        width=32,
        num_inference_steps=steps,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).frames


def _run(config: RuntimeConfig, pose_control: str = "padaln", steps: int = 2) -> np.ndarray:
    return _animate(apply_runtime(_pipeline(pose_control), config, "cpu"), steps)


_EAGER: dict[tuple[str, int], np.ndarray] = {}


def _eager(pose_control: str = "padaln", steps: int = 2) -> np.ndarray:
    key = (pose_control, steps)
    if key not in _EAGER:
        _EAGER[key] = _run(RuntimeConfig(), pose_control, steps)
    return _EAGER[key]


# ---------------------------------------------------------------------------------------------- exact options


EXACT = {
    "attention-math": RuntimeConfig(attention="math"),
    "fuse-qkv": RuntimeConfig(fuse_qkv=True),
    "compile-aot-eager": RuntimeConfig(compile=True, compile_backend="aot_eager"),
    "offload-model": RuntimeConfig(offload="model"),
    "offload-group": RuntimeConfig(offload="group"),
    "all-exact-together": RuntimeConfig(attention="math", fuse_qkv=True, offload="group"),
}


@pytest.mark.parametrize("name", list(EXACT))
def test_exact_option_gives_the_eager_video_within_1e_5(name):
    config = EXACT[name]
    assert config.exact
    np.testing.assert_allclose(_run(config), _eager(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("pose_control", ["uvt", "cross_attn"])
def test_attention_backend_and_fused_qkv_reach_every_pose_mode_exactly(pose_control):
    # cross_attn's pose attention goes through the same dispatcher, so the backend and the fused K/V reach it too
    config = RuntimeConfig(attention="math", fuse_qkv=True)
    np.testing.assert_allclose(_run(config, pose_control), _eager(pose_control), atol=ATOL, rtol=0)


def test_offload_installs_hooks_and_the_attention_backend_is_set():
    pipe = apply_runtime(_pipeline(), RuntimeConfig(offload="group", attention="math"), "cpu")
    assert any(hasattr(m, "_diffusers_hook") for m in pipe.transformer.modules())
    assert any(hasattr(m, "_diffusers_hook") for m in pipe.vae.modules())
    processors = [m.processor for m in pipe.transformer.modules() if hasattr(m, "processor")]
    assert processors and all(getattr(p, "_attention_backend", None) == "_native_math" for p in processors)


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("c++") and not shutil.which("g++"), reason="inductor on CPU needs a C++ compiler")
def test_compile_with_inductor_gives_the_eager_video_within_1e_4():
    # generated kernels may fuse and reorder more than the eager ops: a looser bound than the other exact options
    np.testing.assert_allclose(_run(RuntimeConfig(compile=True)), _eager(), atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------- approximate options


@pytest.mark.parametrize(
    "config,bound",
    [(RuntimeConfig(fp8="storage"), 0.1), (RuntimeConfig(cache="pab"), 0.3)],
    ids=["fp8-storage", "cache-pab"],
)
def test_approximate_option_runs_is_marked_approximate_and_changes_the_video_a_little(config, bound):
    assert not config.exact
    eager, video = _eager(steps=4), _run(config, steps=4)
    assert np.isfinite(video).all() and video.shape == eager.shape
    diff = np.abs(video - eager).max()
    assert 0 < diff < bound, diff  # not a no-op, not a different video


def test_every_option_at_once_runs_and_stays_close_to_eager():
    # the order apply_runtime uses (fuse, fp8, backend, cache, offload, compile) composes (every pair of options was
    # also run once by hand on padaln and cross_attn; not kept as a test: 70 s)
    config = RuntimeConfig(
        compile=True,
        compile_backend="aot_eager",
        attention="math",
        fuse_qkv=True,
        fp8="storage",
        offload="group",
        cache="pab",
    )
    video = _run(config, steps=4)
    assert not config.exact and np.isfinite(video).all()
    assert np.abs(video - _eager(steps=4)).max() < 0.3


@pytest.mark.parametrize("fuse_qkv", [False, True])
def test_fp8_storage_keeps_the_attention_weights_in_fp8_fused_or_not(fuse_qkv):
    pipe = apply_runtime(_pipeline(), RuntimeConfig(fp8="storage", fuse_qkv=fuse_qkv), "cpu")
    attn = pipe.transformer.transformer_blocks[0].attn1
    projection = attn.to_qkv if fuse_qkv else attn.to_q
    assert projection.weight.dtype == torch.float8_e4m3fn
    assert np.isfinite(_animate(pipe)).all()


def test_pab_cache_starts_empty_for_every_pipeline_call():
    # the pipeline resets diffusers' stateful hooks at the end of each call (maybe_free_model_hooks): a second video
    # does not reuse the first one's attention
    pipe = apply_runtime(_pipeline(), RuntimeConfig(cache="pab"), "cpu")
    first = _animate(pipe, 4)
    np.testing.assert_array_equal(_animate(pipe, 4), first)


@pytest.mark.parametrize("memory", ["24gb", "16gb", "12gb"])
def test_memory_preset_runs_on_cpu_and_only_its_fp8_changes_the_video(memory):
    # offload and VAE tiling (no seam at 32 px) are exact here; 16gb/12gb add fp8 storage, the one approximate part
    config = runtime_from_args(_parse(["--memory", memory]))
    video = _run(config)
    expected = _run(RuntimeConfig(fp8=config.fp8)) if config.fp8 != "off" else _eager()
    np.testing.assert_allclose(video, expected, atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "config,flag",
    [
        (RuntimeConfig(attention="flash"), "--attention flash"),
        (RuntimeConfig(attention="cudnn"), "--attention cudnn"),
        (RuntimeConfig(fp8="compute"), "--fp8 compute"),
        (RuntimeConfig(offload="sequential"), "--offload sequential"),
        (RuntimeConfig(cache="first-block"), "--cache first-block"),
    ],
)
def test_an_option_that_cannot_apply_on_cpu_fails_in_one_line(config, flag):
    with pytest.raises(UserError) as err:
        check_runtime(config, "cpu")
    assert str(err.value).startswith(flag) and "\n" not in str(err.value)
    assert err.value.expected  # says what would work


def test_a_hand_built_config_with_an_unknown_name_is_refused():
    with pytest.raises(UserError, match="offload='disk'"):
        RuntimeConfig(offload="disk").validate()


# ---------------------------------------------------------------------------------------------- flags


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_runtime_args(parser)
    return parser.parse_args(argv)


def test_no_flags_is_eager_and_memory_preset_fills_only_unset_fields():
    assert runtime_from_args(_parse([])) == RuntimeConfig()
    assert RuntimeConfig().describe() == "eager"
    for name, preset in MEMORY_PRESETS.items():
        config = runtime_from_args(_parse(["--memory", name]))
        assert all(getattr(config, k) == v for k, v in preset.items()), name
    config = runtime_from_args(_parse(["--memory", "12gb", "--offload", "model", "--no-vae-tiling", "--compile"]))
    assert (config.offload, config.fp8, config.vae_tiling, config.compile) == ("model", "storage", False, True)


def test_runtime_argv_gives_back_the_same_configuration():
    argv = ["--memory", "16gb", "--attention", "math", "--no-vae-tiling", "--fuse-qkv", "--cache", "pab"]
    args = _parse(argv)
    assert runtime_from_args(_parse(runtime_argv(args))) == runtime_from_args(args)


def test_infer_help_shows_the_runtime_flags():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "infer.py"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--memory", "--compile", "--attention", "--fuse-qkv", "--fp8", "--offload", "--cache", "--vae-tiling"):
        assert flag in out, flag


def test_infer_refuses_a_cuda_only_option_on_cpu_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "infer.py"), "--demo", "--device", "cpu", "--attention", "flash"]
        + ["--out", str(tmp_path / "x.mp4")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()  # INFO lines of the input reading come first
    assert lines[-1] == "error: --attention flash needs a CUDA GPU (device is cpu) (--attention sdpa or math)"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_load_pipeline_refuses_before_loading_any_weights(monkeypatch):
    from dynamictrl.cli import animation as cli
    from dynamictrl.pipelines.pipeline_dynamictrl import DynamiCtrlPipeline

    def no_load(*args, **kwargs):
        raise AssertionError("weights loaded before the runtime check")

    monkeypatch.setattr(DynamiCtrlPipeline, "from_pretrained", no_load)
    monkeypatch.setattr("dynamictrl.models.tiny.build_tiny_components", no_load)
    for model in (cli.embedded_model_dir(), None):  # a folder, and the random tiny components
        with pytest.raises(UserError, match="--fp8 compute needs a CUDA GPU"):
            cli.load_pipeline(model, device="cpu", runtime=RuntimeConfig(fp8="compute"))
