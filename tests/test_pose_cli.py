"""infer.py's official-preprocessing flags reach the pose video the sampler gets (keypoints input, tiny model)."""

import numpy as np
import pytest
from test_infer_cli import COMMON, main_of
from test_pose_render import BODY

from dynamictrl.data.io import write_image
from dynamictrl.models.tiny import build_tiny_components
from dynamictrl.pipelines import DynamiCtrlPipeline
from dynamictrl.pose import PoseSequence, fit_to_frame, render_pose_sequence, retarget

DRIVER = PoseSequence(np.stack([BODY * 1.5 + [10 * i, 0] for i in range(8)]), np.ones((8, 18)), width=400, height=400)
REFERENCE = PoseSequence((BODY * 0.75 + [40, 50])[None], np.ones((1, 18)), width=320, height=256)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("pose_cli")
    DynamiCtrlPipeline(**build_tiny_components("tiny-1.5")).save_pretrained(root / "model")
    write_image(root / "ref.png", np.zeros((256, 320, 3), np.uint8))
    DRIVER.save(root / "drive.npz")
    REFERENCE.save(root / "ref_pose.npz")
    return root


def run_infer(capsys, *args) -> tuple[int, str, str]:
    """infer.py's main in-process: (exit status, stdout, stderr), whether main returns its status or exits."""
    try:
        code = main_of("infer.py")([str(a) for a in args]) or 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def spy_sampler(monkeypatch) -> list:
    """Collects the pose video infer.py hands to the long-video sampler, in each call."""
    import dynamictrl.cli.animation as cli
    import dynamictrl.pipelines.long_video as long_video

    seen = []
    real = long_video.sample_long_video

    def spy(pipe, reference, poses, *args, **kwargs):
        seen.append(poses)
        return real(pipe, reference, poses, *args, **kwargs)

    monkeypatch.setattr(long_video, "sample_long_video", spy)
    if hasattr(cli, "sample_long_video"):  # imported at module level by older versions of the CLI
        monkeypatch.setattr(cli, "sample_long_video", spy)
    return seen


@pytest.fixture
def sampled(monkeypatch):
    return spy_sampler(monkeypatch)


def _infer(capsys, files, tmp_path, *flags):
    args = ("--model", files / "model", "--ref", files / "ref.png", "--pose", files / "drive.npz", "--prompt", "a")
    code, _, err = run_infer(capsys, *args, "--out", tmp_path / "out.mp4", "--frames", 9, *COMMON, *flags)
    assert code == 0, err


def test_pose_style_dynamictrl_prepends_the_reference_pose_and_retargets(files, tmp_path, capsys, sampled):
    _infer(capsys, files, tmp_path, "--pose-style", "dynamictrl", "--ref-pose", files / "ref_pose.npz")
    first = render_pose_sequence(fit_to_frame(REFERENCE, 32, 32), style="dynamictrl")
    rest = render_pose_sequence(fit_to_frame(retarget(DRIVER, REFERENCE, mode="global"), 32, 32), style="dynamictrl")
    np.testing.assert_array_equal(sampled[0], np.concatenate([first, rest]))  # 9 frames: reference + 8 driving


def test_official_preprocessing_flags_turn_it_off_and_max_frames_counts_the_reference(files, tmp_path, capsys, sampled):
    flags = ("--pose-style", "dynamictrl", "--no-reference-pose-first", "--no-retarget")
    _infer(capsys, files, tmp_path, *flags)
    np.testing.assert_array_equal(sampled[0], render_pose_sequence(fit_to_frame(DRIVER, 32, 32), style="dynamictrl"))
    _infer(capsys, files, tmp_path, "--ref-pose", files / "ref_pose.npz", "--reference-pose-first", "--max-frames", 5)
    first = render_pose_sequence(fit_to_frame(REFERENCE, 32, 32))  # dwpose style, no retargeting
    np.testing.assert_array_equal(
        sampled[1], np.concatenate([first, render_pose_sequence(fit_to_frame(DRIVER[:4], 32, 32))])
    )
