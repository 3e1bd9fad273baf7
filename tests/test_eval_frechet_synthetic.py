"""Frechet distance and the synthetic-world metrics on hand-made cases."""

import math

import numpy as np
import pytest

from dynamictrl.eval import synthetic_metrics as sm
from dynamictrl.eval.frechet import feature_stats, frechet_distance, frechet_distance_from_stats


def test_frechet_identical_sets_is_zero():
    x = np.random.default_rng(0).normal(size=(50, 4))
    value, notes = frechet_distance(x, x)
    assert value == pytest.approx(0.0, abs=1e-8) and notes == []


def test_frechet_known_gaussians():
    # diagonal covariances: d^2 = |dmu|^2 + sum(s1 + s2 - 2 sqrt(s1 s2))
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 5.0 + (1 + 4 - 4) + (4 + 1 - 4) + (9 + 1 - 6)
    assert frechet_distance_from_stats(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)
    # a full (non-diagonal) case: rotating both covariances by the same rotation changes nothing
    rot = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))[0]
    rotated = frechet_distance_from_stats(rot @ mu1, rot @ np.diag(s1) @ rot.T, rot @ mu2, rot @ np.diag(s2) @ rot.T)
    assert rotated == pytest.approx(expected, rel=1e-6)


def test_frechet_from_samples_uses_sample_statistics():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 2))
    shift = np.array([3.0, 0.0])
    b = 2.0 * a + shift  # mean moves by mean(a) + shift, covariance x4: trace term tr(S + 4S - 2 * 2S) = tr(S)
    value, _ = frechet_distance(a, b)
    expected = np.sum((a.mean(axis=0) + shift) ** 2) + np.trace(np.cov(a, rowvar=False))
    assert value == pytest.approx(expected, rel=1e-6)


def test_frechet_tiny_sample_counts():
    with pytest.raises(ValueError, match="at least 2"):
        feature_stats(np.zeros((1, 8)))
    value, notes = frechet_distance(
        np.random.default_rng(3).normal(size=(3, 8)), np.random.default_rng(4).normal(size=(3, 8))
    )
    assert math.isfinite(value) and value > 0
    assert notes and "rank-deficient" in notes[0]


def scene(t=6, h=24, w=32, shift=0):
    """A striped background with a white box 'person' moving right one pixel per frame."""
    bg = np.zeros((t, h, w, 3), np.uint8)
    bg[..., 0] = 200
    bg[:, :, ::4, 1] = 120  # vertical stripes
    video, mask = bg.copy(), np.zeros((t, h, w), bool)
    for i in range(t):
        x = 4 + i + shift
        mask[i, 6:18, x : x + 6] = True
    video[mask] = (240, 240, 240)
    return video, mask, bg


def test_silhouette_iou_perfect_and_shifted():
    gt, mask, bg = scene()
    assert sm.silhouette_iou(gt, bg, mask) == 1.0
    shifted, _, _ = scene(shift=3)
    iou = sm.silhouette_iou(shifted, bg, mask)
    assert iou == pytest.approx(3 / 9)  # 6-wide boxes overlapping by 3 columns: 3 / (6 + 6 - 3)
    assert sm.silhouette_iou(bg, bg, mask) == 0.0


def test_region_metrics_split_foreground_and_background():
    gt, mask, bg = scene()
    pred = gt.copy()
    pred[~mask] = np.clip(pred[~mask].astype(int) + 10, 0, 255).astype(np.uint8)  # only the background changes
    out = sm.region_metrics(gt, pred, mask)
    assert out["psnr_fg"] == math.inf and out["l1_fg"] == 0.0
    assert out["psnr_bg"] == pytest.approx(20 * math.log10(255 / 10), abs=1e-6)
    assert out["l1_bg"] == pytest.approx(10 / 255)
    assert out["ssim_fg"] > out["ssim_bg"]


def test_background_adherence_scores():
    gt, mask, bg = scene()
    assert sm.background_stats_adherence(gt, mask, bg) == pytest.approx(1.0)
    wrong = gt.copy()
    wrong[~mask] = (30, 60, 200)  # a plain blue wall instead of red with stripes
    score = sm.background_stats_adherence(wrong, mask, bg)
    assert 0.0 <= score < 0.8
    plain_red = gt.copy()
    plain_red[~mask] = (200, 0, 0)  # right colour family, pattern missing: in between
    assert score < sm.background_stats_adherence(plain_red, mask, bg) < 1.0
    named = [[200, 0, 0], [200, 120, 0]]
    assert sm.background_palette_adherence(gt, mask, named) == 1.0
    assert sm.background_palette_adherence(wrong, mask, named) == 0.0


def test_temporal_drift_and_consistency():
    gt, mask, _ = scene(t=8)
    still = sm.temporal_drift(gt, mask, clip_frames=4)
    assert still["drift_color_max"] == pytest.approx(0.0) and still["drift_identity_max"] == pytest.approx(0.0)
    drifting = gt.copy()
    drifting[4:][mask[4:]] = (240, 20, 20)  # the person turns red in the second clip
    out = sm.temporal_drift(drifting, mask, clip_frames=4)
    assert out["drift_color_last"] > 0.3 and out["drift_identity_last"] == pytest.approx(1.0)
    assert math.isnan(sm.temporal_drift(gt, mask, clip_frames=8)["drift_color_max"])  # one clip only

    assert sm.frame_consistency(gt, gt)["temporal_error"] == 0.0
    frozen = np.repeat(gt[:1], len(gt), axis=0)
    cons = sm.frame_consistency(gt, frozen)
    assert cons["frame_diff"] == 0.0 and cons["temporal_error"] > 0
