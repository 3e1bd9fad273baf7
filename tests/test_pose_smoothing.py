"""One-Euro smoothing reduces jitter with bounded lag; gap filling interpolates short dropouts only."""

import numpy as np
import pytest

from dynamictrl.pose.keypoints import PoseSequence
from dynamictrl.pose.smoothing import fill_gaps, one_euro_filter, smooth_pose_sequence

FPS = 30.0


def _trajectory(t=300, seed=0):
    time = np.arange(t) / FPS
    truth = np.stack([100 + 40 * np.sin(2 * np.pi * 0.5 * time), 80 + 20 * np.cos(2 * np.pi * 0.3 * time)], -1)
    noisy = truth + np.random.default_rng(seed).normal(0, 2.0, truth.shape)
    return truth, noisy


def _jitter(x):
    return np.std(np.diff(x, n=2, axis=0))


def _lag(signal, truth, max_shift=15):
    """Shift (frames) of signal behind truth that best aligns them."""
    errs = [np.mean((signal[s:] - truth[: len(truth) - s]) ** 2) for s in range(max_shift)]
    return int(np.argmin(errs))


def test_one_euro_reduces_jitter_with_bounded_lag():
    truth, noisy = _trajectory()
    out = one_euro_filter(noisy, fps=FPS, min_cutoff=1.0, beta=0.01, d_cutoff=1.0)
    assert out.shape == noisy.shape and out.dtype == np.float32
    # Jitter = spread of second differences (the true path's are < 0.5 px, the noise's ~ 4.9 px).
    assert _jitter(out) < 0.35 * _jitter(noisy)
    assert _lag(out, truth) <= 2  # at most 2 frames (67 ms) behind
    assert np.sqrt(np.mean((out - truth)[30:] ** 2)) < 2.5 * 2.0  # RMS error within 2.5 noise sigmas


def test_beta_reduces_lag_on_fast_motion():
    time = np.arange(120) / FPS
    truth = np.stack([300 * time, np.zeros_like(time)], -1)  # constant fast motion, 300 px/s
    slow = one_euro_filter(truth, fps=FPS, min_cutoff=0.5, beta=0.0)
    fast = one_euro_filter(truth, fps=FPS, min_cutoff=0.5, beta=0.05)
    assert np.abs(fast - truth)[60:, 0].max() < 0.25 * np.abs(slow - truth)[60:, 0].max()


def test_invalid_samples_pass_through_and_restart():
    x = np.concatenate([np.zeros(10), np.full(10, 50.0)])[:, None]
    valid = np.ones(20, bool)
    valid[10] = False  # the jump happens during a dropout: the filter restarts, no smear
    out = one_euro_filter(x, fps=FPS, valid=valid)
    assert out[10, 0] == 50 and out[11, 0] == 50
    smeared = one_euro_filter(x, fps=FPS)
    assert smeared[11, 0] < 40
    with pytest.raises(ValueError, match="min_cutoff"):
        one_euro_filter(x, min_cutoff=0)


def test_fill_gaps_short_only():
    t = 12
    pts = np.zeros((t, 2, 2), np.float32)
    pts[:, :, 0] = np.arange(t)[:, None] * 2.0
    scores = np.ones((t, 2), np.float32)
    scores[3:5, 0] = 0  # 2-frame gap: filled
    scores[6:11, 1] = 0  # 5-frame gap: too long
    pts[3:5, 0] = -99
    pts_f, scores_f = fill_gaps(pts, scores, max_gap=3)
    np.testing.assert_allclose(pts_f[3:5, 0, 0], [6, 8])
    assert np.all(scores_f[3:5, 0] == 1)
    assert np.all(scores_f[6:11, 1] == 0)
    assert scores[3, 0] == 0  # inputs not modified
    scores[0, 0] = 0  # leading gap stays missing
    assert fill_gaps(pts, scores, max_gap=3)[1][0, 0] == 0


def test_smooth_pose_sequence():
    truth, noisy = _trajectory(t=90)
    body = np.repeat(noisy[:, None], 18, 1)
    score = np.ones((90, 18))
    score[40:42, 3] = 0
    seq = PoseSequence(body, score, width=200, height=200)
    out = smooth_pose_sequence(seq, fps=FPS, max_gap=2)
    assert len(out) == 90 and out.hands is None
    assert np.all(out.body_score[40:42, 3] == 1)
    assert _jitter(out.body[:, 0]) < 0.5 * _jitter(body[:, 0])
