"""scripts/infer.py and scripts/sample_long.py end to end on a tiny saved model (CPU).

One test runs infer.py as a subprocess (the real command line); the others call the scripts' ``main(argv)`` in this
process, which saves the ~5-10 s interpreter + torch start-up per call.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dynamictrl.data.io import read_image, read_video, write_image, write_video
from dynamictrl.models.tiny import build_tiny_components
from dynamictrl.pipelines import DynamiCtrlPipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    DynamiCtrlPipeline(**build_tiny_components("tiny-1.5")).save_pretrained(root / "model")
    rng = np.random.default_rng(0)
    write_image(root / "ref.png", rng.integers(0, 256, (40, 32, 4), dtype=np.uint8))  # RGBA, other size
    poses = np.zeros((15, 32, 32, 3), np.uint8)
    for t in range(15):  # a moving saturated bar on black: looks like a rendered pose video
        poses[t, 10:20, t : t + 8] = (255, 0, 85)
    write_video(root / "pose.mp4", poses, fps=10, lossless=True)
    (root / "prompts.txt").write_text("0\ta red room\n8\ta green garden\n")
    return root


def run(script, *args):
    cmd = [sys.executable, str(ROOT / "scripts" / script), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)


def main_of(script):
    spec = importlib.util.spec_from_file_location(script.replace(".py", ""), ROOT / "scripts" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def call(capsys, script, *args):
    """Run a script's main in-process; returns (exit code, stdout, stderr)."""
    try:
        code = main_of(script)([str(a) for a in args])
    except SystemExit as exit_:  # argparse: --help, or a bad command line
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


COMMON = ("--height", 32, "--width", 32, "--steps", 1, "--device", "cpu")


def test_infer_one_clip_with_contact_sheet(inputs, tmp_path):
    out = tmp_path / "one.mp4"
    proc = run(
        "infer.py",
        "--model",
        inputs / "model",
        "--ref",
        inputs / "ref.png",
        "--pose",
        inputs / "pose.mp4",
        "--prompt",
        "a dancer",
        "--frames",
        9,
        "--max-frames",
        9,
        "--out",
        out,
        "--save-frames",
        *COMMON,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out} in" in proc.stdout
    frames, fps = read_video(out)
    assert frames.shape == (9, 32, 32, 3) and fps == pytest.approx(10)
    assert read_image(out.with_suffix(".png")).shape == (6 * 32, 3 * 32, 3)


def test_long_pose_video_gives_the_same_result_from_both_scripts(inputs, tmp_path, capsys):
    args = (
        "--model",
        inputs / "model",
        "--ref",
        inputs / "ref.png",
        "--pose",
        inputs / "pose.mp4",
        "--prompts-file",
        inputs / "prompts.txt",
        *COMMON,
    )
    code_a, out_a, err_a = call(capsys, "infer.py", *args, "--frames", 9, "--out", tmp_path / "a.mp4")
    code_b, _, err_b = call(
        capsys, "sample_long.py", *args, "--clip-frames", 9, "--out", tmp_path / "b.mp4", "--save-clips"
    )
    assert code_a == 0, err_a
    assert code_b == 0, err_b
    frames_a, _ = read_video(tmp_path / "a.mp4")
    frames_b, _ = read_video(tmp_path / "b.mp4")
    assert frames_a.shape == (15, 32, 32, 3)
    assert np.array_equal(frames_a, frames_b)
    assert "in 2 clip(s)" in out_a
    assert sorted(p.name for p in (tmp_path / "b_clips").iterdir()) == ["clip_000.mp4", "clip_001.mp4"]


def test_cli_errors_are_clear(inputs, tmp_path, capsys):
    code, _, err = call(
        capsys,
        "infer.py",
        "--model",
        tmp_path / "nothing",
        "--ref",
        inputs / "ref.png",
        "--pose",
        inputs / "pose.mp4",
        "--prompt",
        "x",
        *COMMON,
    )
    assert code == 2 and f"--model {tmp_path / 'nothing'}: no such folder" in err
    code, _, err = call(
        capsys,
        "infer.py",
        "--model",
        inputs / "model",
        "--ref",
        inputs / "ref.png",
        "--pose",
        inputs / "pose.mp4",
        "--prompt",
        "x",
        "--height",
        30,
        "--width",
        32,
        "--steps",
        1,
        "--out",
        tmp_path / "x.mp4",
    )
    assert code == 2 and "--height 30" in err
    code, _, err = call(capsys, "sample_long.py", "--ref", inputs / "ref.png", "--pose", inputs / "pose.mp4")
    assert code == 2 and "--prompts-file" in err


def test_help_texts(capsys):
    for script in ("infer.py", "sample_long.py"):
        code, out, _ = call(capsys, script, "--help")
        assert code == 0 and "--anchor-every" in out and "--offload" in out and "--model" in out


def test_demo_uses_the_embedded_model_when_present(tmp_path, capsys, monkeypatch):
    import dynamictrl.cli.animation as cli
    from dynamictrl.assets import DEMO_DIR

    monkeypatch.setattr(cli, "EMBEDDED_MODEL_DIR", tmp_path / "missing")
    code, out, err = call(capsys, "infer.py", "--demo", "--steps", 1, "--out", tmp_path / "random.mp4")
    assert code == 0, err
    assert "RANDOM tiny weights" in out
    demo_frames = len(read_video(DEMO_DIR / "pose.mp4")[0])
    assert read_video(tmp_path / "random.mp4")[0].shape == (demo_frames, 64, 64, 3)
    assert (tmp_path / "random.png").is_file()

    DynamiCtrlPipeline(**build_tiny_components("tiny", seed=1)).save_pretrained(tmp_path / "embedded")
    monkeypatch.setattr(cli, "EMBEDDED_MODEL_DIR", tmp_path / "embedded")
    code, out, err = call(
        capsys, "infer.py", "--demo", "--steps", 1, "--max-frames", 9, "--out", tmp_path / "trained.mp4"
    )
    assert code == 0, err
    assert "RANDOM" not in out and f"model: {tmp_path / 'embedded'}" in out


def test_pose_style_reaches_the_pose_loader(inputs, tmp_path, capsys, monkeypatch):
    """--pose-style dynamictrl (official checkpoints) is passed to load_pose_input for keypoints / raw videos."""
    import dynamictrl.pose.inputs as pose_inputs

    seen = {}
    real = pose_inputs.load_pose_input

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(pose_inputs, "load_pose_input", spy)
    out = tmp_path / "styled.mp4"
    code, _, err = call(
        capsys, "infer.py", "--model", inputs / "model", "--ref", inputs / "ref.png", "--pose", inputs / "pose.mp4",
        "--prompt", "a dancer", "--frames", 9, "--max-frames", 9, "--out", out, "--pose-style", "dynamictrl", *COMMON,
    )  # fmt: skip
    assert code == 0, err
    assert seen["pose_style"] == "dynamictrl"
    assert out.is_file()
