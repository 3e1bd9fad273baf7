"""A real photo and a real raw dance video (``../shared/real/`` next to the clone; skipped without it) through
infer.py: with DWPose ONNX files (tiny graphs with the real I/O shapes: the real weights are not available here)
the photo + raw video give a pose video and an animation; without them, one error line names the flag."""

from pathlib import Path

import pytest
from test_infer_cli import COMMON
from test_pose_cli import run_infer, spy_sampler
from test_pose_dwpose import make_tiny_dwpose_models

from dynamictrl.data.io import read_video
from dynamictrl.models.tiny import build_tiny_components
from dynamictrl.pipelines import DynamiCtrlPipeline
from dynamictrl.pose import looks_like_rendered_pose

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"
PHOTO, DANCE = REAL / "human3.jpg", REAL / "motion3.mp4"
pytestmark = pytest.mark.skipif(
    not (PHOTO.is_file() and DANCE.is_file()),
    reason=f"no real inputs at {REAL} (human3.jpg, motion3.mp4): they are not part of the repository",
)
# COCO-WholeBody index -> SimCC peak (x bin of 576, y bin of 768, score): a standing figure in the person box
PEAKS = {
    0: (288, 100, 0.9), 5: (340, 220, 0.9), 6: (236, 220, 0.9), 7: (360, 330, 0.8), 8: (216, 330, 0.8),
    11: (320, 420, 0.9), 12: (256, 420, 0.9), 13: (322, 560, 0.9), 14: (254, 560, 0.9), 15: (324, 700, 0.9),
    16: (252, 700, 0.9), 1: (300, 90, 0.9), 2: (276, 90, 0.9),
}  # fmt: skip


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("real") / "model"
    DynamiCtrlPipeline(**build_tiny_components("tiny-1.5")).save_pretrained(path)
    return path


def _infer(capsys, model, out, *flags):
    args = ("--model", model, "--ref", PHOTO, "--pose", DANCE, "--prompt", "a dancer", "--out", out, "--frames", 5)
    return run_infer(capsys, *args, *COMMON, *flags)


def test_real_photo_and_raw_dance_video_animate_with_dwpose_onnx_files(model, tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnxruntime")
    make_tiny_dwpose_models(tmp_path, PEAKS)
    seen = spy_sampler(monkeypatch)
    out = tmp_path / "real.mp4"
    flags = ("--pose-models", tmp_path, "--pose-style", "dynamictrl", "--max-frames", 5)
    code, _, err = _infer(capsys, model, out, *flags)
    assert code == 0, err
    poses = seen[0]
    assert poses.shape == (5, 32, 32, 3) and looks_like_rendered_pose(poses)  # the reference's pose + 4 driving
    assert read_video(out)[0].shape == (5, 32, 32, 3)


def test_real_dance_video_without_dwpose_models_is_one_error_line_naming_the_flag(model, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DYNAMICTRL_DWPOSE_DIR", raising=False)
    code, out, err = _infer(capsys, model, tmp_path / "none.mp4", "--pose-style", "dynamictrl")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "--pose-models" in lines[0] and "yolox_l.onnx" in lines[0]
    assert "Traceback" not in out + err and not (tmp_path / "none.mp4").exists()
