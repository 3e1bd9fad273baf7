"""tools/extract_pose.py end to end with tiny ONNX models; help text and missing-model errors."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from test_pose_dwpose import make_tiny_dwpose_models

from dynamictrl.data.io import read_video, write_video
from dynamictrl.pose import PoseSequence, fit_to_frame, looks_like_rendered_pose, render_pose_sequence

ROOT = Path(__file__).resolve().parents[1]


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help(capsys):
    tool = _load_tool("extract_pose")
    with pytest.raises(SystemExit) as err:
        tool.main(["--help"])
    assert err.value.code == 0
    out = capsys.readouterr().out
    assert "--models-dir" in out and "yzd-v/DWPose" in out and "--pose-style" in out


def test_bad_pose_style(tmp_path, capsys):
    tool = _load_tool("extract_pose")
    with pytest.raises(SystemExit) as err:
        tool.main([str(tmp_path / "in.mp4"), "--out", str(tmp_path / "o.mp4"), "--pose-style", "openpose"])
    assert err.value.code == 2
    assert "'dwpose', 'dynamictrl'" in capsys.readouterr().err


def test_extract_end_to_end(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    models = tmp_path / "models"
    models.mkdir()
    make_tiny_dwpose_models(models, {6: (200, 300, 0.8), 5: (380, 300, 0.7), 12: (250, 600, 0.9), 0: (288, 100, 1)})
    video = write_video(tmp_path / "in.mp4", np.random.default_rng(0).integers(0, 255, (3, 320, 480, 3), np.uint8))
    tool = _load_tool("extract_pose")
    rc = tool.main(
        [str(video), "--out", str(tmp_path / "pose.mp4"), "--keypoints", str(tmp_path / "kp.npz")]
        + ["--models-dir", str(models), "--height", "64", "--width", "96", "--cpu"]
    )
    assert rc == 0
    frames, _ = read_video(tmp_path / "pose.mp4")
    assert frames.shape == (3, 64, 96, 3) and looks_like_rendered_pose(frames)
    seq = PoseSequence.load(tmp_path / "kp.npz")
    assert len(seq) == 3 and (seq.width, seq.height) == (480, 320) and seq.hands is not None
    assert seq.body_score[:, 1].min() == pytest.approx(0.7)  # the neck from both shoulders


def test_missing_models_message(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DYNAMICTRL_DWPOSE_DIR", raising=False)
    video = write_video(tmp_path / "in.mp4", np.zeros((1, 32, 32, 3), np.uint8))
    tool = _load_tool("extract_pose")
    assert tool.main([str(video), "--out", str(tmp_path / "o.mp4"), "--models-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "yolox_l.onnx" in err and "dw-ll_ucoco_384.onnx" in err and "huggingface.co/yzd-v/DWPose" in err


def test_extract_official_style(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    models = tmp_path / "models"
    models.mkdir()
    make_tiny_dwpose_models(models, {6: (200, 300, 0.8), 5: (380, 300, 0.7), 12: (250, 600, 0.9), 0: (288, 100, 1)})
    video = write_video(tmp_path / "in.mp4", np.random.default_rng(0).integers(0, 255, (2, 320, 480, 3), np.uint8))
    tool = _load_tool("extract_pose")
    rc = tool.main(
        [str(video), "--out", str(tmp_path / "pose.mp4"), "--keypoints", str(tmp_path / "kp.npz")]
        + ["--models-dir", str(models), "--height", "256", "--width", "384", "--cpu"]
        + ["--pose-style", "dynamictrl", "--lossless"]
    )
    assert rc == 0 and "dynamictrl style" in capsys.readouterr().out
    frames, _ = read_video(tmp_path / "pose.mp4")
    seq = fit_to_frame(PoseSequence.load(tmp_path / "kp.npz"), 256, 384)
    np.testing.assert_array_equal(frames, render_pose_sequence(seq, style="dynamictrl"))
    assert frames.any() and not np.array_equal(frames, render_pose_sequence(seq))
