"""--parallel: two gloo ranks (torchrun on the CPU) give the video of one process.

The subprocess tests launch ``torchrun --standalone --nproc_per_node 2`` on tests/fixtures/parallel_worker.py (a
tiny random pipeline with non-zero pose branches, 3 steps, guidance on) or on scripts/infer.py itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynamictrl.acceleration.parallel import check_parallel
from dynamictrl.errors import UserError

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "fixtures" / "parallel_worker.py"
# 7 text tokens: an uneven split over 2 ranks (4 + 3), like CogVideoX's 226 over 4 or 8
TEXT_LEN = 7
# decoded frames in [0, 1]; measured differences are below 1e-5 (float32 sums in another order)
FRAME_ATOL = 1e-4


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _torchrun(*args: str, ranks: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks), *args]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600)


def _worker_frames(tmp_path: Path, pose_control: str, variant: str, mode: str, heads: int = 2) -> np.ndarray:
    out = tmp_path / f"{pose_control}_{variant}_{heads}_{mode}.npy"
    args = [str(WORKER), str(out), pose_control, variant, str(TEXT_LEN), mode, str(heads)]
    proc = _run(_torchrun(*args) if mode != "none" else [sys.executable, *args])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out)


@pytest.mark.slow
@pytest.mark.parametrize(
    "pose_control, variant",
    [("padaln", "tiny-1.5"), ("uvt", "tiny-1.5"), ("cross_attn", "tiny-1.5"), ("padaln", "tiny")],
)
def test_ulysses_on_two_ranks_gives_the_video_of_one_process_with_an_uneven_text_split(tmp_path, pose_control, variant):
    single = _worker_frames(tmp_path, pose_control, variant, "none")
    parallel = _worker_frames(tmp_path, pose_control, variant, "ulysses")
    assert single.std() > 0.05  # a real video, not a constant that would match anything
    np.testing.assert_allclose(parallel, single, rtol=0, atol=FRAME_ATOL)


@pytest.mark.slow
def test_ulysses_on_two_ranks_gives_the_video_of_one_process_with_a_head_count_that_does_not_divide(tmp_path):
    # 3 heads over 2 ranks (like 30 heads over 4 GPUs): diffusers' ulysses_anything pads the heads
    single = _worker_frames(tmp_path, "cross_attn", "tiny-1.5", "none", heads=3)
    parallel = _worker_frames(tmp_path, "cross_attn", "tiny-1.5", "ulysses", heads=3)
    np.testing.assert_allclose(parallel, single, rtol=0, atol=FRAME_ATOL)


@pytest.mark.slow
def test_ulysses_on_more_ranks_than_heads_is_refused(tmp_path):
    args = [str(WORKER), str(tmp_path / "x.npy"), "padaln", "tiny-1.5", str(TEXT_LEN), "ulysses", "2"]
    proc = _run(_torchrun(*args, ranks=3))
    assert proc.returncode != 0
    assert "--parallel ulysses on 3 processes: this model has only 2 attention heads (at most 2" in proc.stderr


@pytest.mark.slow
def test_cfg_parallel_on_two_ranks_gives_the_video_of_one_process(tmp_path):
    single = _worker_frames(tmp_path, "padaln", "tiny-1.5", "none")
    parallel = _worker_frames(tmp_path, "padaln", "tiny-1.5", "cfg")
    np.testing.assert_allclose(parallel, single, rtol=0, atol=FRAME_ATOL)


@pytest.mark.slow
def test_infer_demo_with_ulysses_on_two_ranks_writes_the_frames_of_one_process_once(tmp_path):
    one = _run([sys.executable, "scripts/infer.py", "--demo", "--out", str(tmp_path / "one" / "demo.mp4")])
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run(
        _torchrun("scripts/infer.py", "--demo", "--parallel", "ulysses", "--out", str(tmp_path / "two/demo.mp4"))
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("wrote ") == 1  # rank 0 only
    # the contact sheet (PNG, lossless) holds the decoded frames; MP4 is lossy. Frames agree to ~1e-6 before
    # rounding, so a value on a .5 boundary may round the other way: at most 1 level, on a few pixels
    a = np.asarray(Image.open(tmp_path / "one" / "demo.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "two" / "demo.png")).astype(int)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1
    assert (a != b).mean() < 1e-3


@pytest.mark.slow
def test_ring_on_the_cpu_is_refused_in_one_error_line(tmp_path):
    proc = _run(_torchrun("scripts/infer.py", "--demo", "--parallel", "ring", "--out", str(tmp_path / "x.mp4")))
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: --parallel ring")]
    assert errors and "log-sum-exp" in errors[0] and "--parallel ulysses" in errors[0]
    assert not (tmp_path / "x.mp4").exists()


def test_parallel_mode_without_torchrun_is_refused(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UserError, match="torchrun --nproc_per_node 2"):
        check_parallel("ulysses")
    check_parallel("none")


def test_several_processes_without_a_parallel_mode_are_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="each would compute the same video"):
        check_parallel("none")
    check_parallel("ulysses")
    check_parallel("cfg")


def test_cfg_parallel_needs_exactly_two_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(UserError, match="exactly 2"):
        check_parallel("cfg")
