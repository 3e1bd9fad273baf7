"""Temporal clean-up of keypoint tracks: gap filling for short dropouts and One-Euro smoothing.

The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) is an adaptive low-pass filter: its cutoff frequency
grows with the speed of the signal, ``cutoff = min_cutoff + beta * |dx/dt|``, so slow motion (where jitter is
visible) is smoothed strongly and fast motion keeps little lag. ``min_cutoff`` (Hz) sets the smoothing at rest,
``beta`` how quickly the cutoff rises with speed, ``d_cutoff`` (Hz) the low-pass on the speed estimate.

A joint missing for a few frames (confidence below the threshold) is linearly interpolated between the frames
around the gap when the gap is at most ``max_gap`` frames; its confidence becomes the smaller of the two ends.
Longer gaps, and gaps at the start or end of the sequence, are left missing. The filter then restarts after a
remaining gap instead of dragging the joint across it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from dynamictrl.pose.keypoints import PoseSequence

_PARTS = (("body", "body_score"), ("hands", "hands_score"), ("face", "face_score"))


def _alpha(cutoff: np.ndarray | float, rate: float) -> np.ndarray | float:
    """Exponential-smoothing factor for a first-order low-pass at ``cutoff`` Hz sampled at ``rate`` Hz."""
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau * rate)


def one_euro_filter(
    x: np.ndarray,  # (T, ...) signal
    fps: float = 30.0,
    min_cutoff: float = 1.0,
    beta: float = 0.0,
    d_cutoff: float = 1.0,
    valid: np.ndarray | None = None,  # (T, ...) bool, broadcastable to x without its trailing coordinate axis
) -> np.ndarray:
    """One-Euro filter along axis 0, element-wise over the other axes; returns an array like ``x`` (float32).

    Where ``valid`` is False the input is passed through and the filter state restarts at the next valid sample.
    """
    for name, value in (("fps", fps), ("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff)):
        if not value > 0:
            raise ValueError(f"one_euro_filter: {name} must be > 0, got {value}")
    if beta < 0:
        raise ValueError(f"one_euro_filter: beta must be >= 0, got {beta}")
    x = np.asarray(x, dtype=np.float64)
    out = x.copy()
    if x.shape[0] == 0:
        return out.astype(np.float32)
    if valid is None:
        valid = np.ones(x.shape, dtype=bool)
    else:
        valid = np.asarray(valid, dtype=bool)
        while valid.ndim < x.ndim:
            valid = valid[..., None]
        valid = np.broadcast_to(valid, x.shape)
    a_d = _alpha(d_cutoff, fps)
    prev = x[0].copy()
    dprev = np.zeros_like(prev)
    started = valid[0].copy()
    for t in range(1, x.shape[0]):
        v = valid[t]
        cont = v & started  # filter continues; elsewhere it (re)starts from the raw value
        dx = (x[t] - prev) * fps
        dhat = a_d * dx + (1 - a_d) * dprev
        a = _alpha(min_cutoff + beta * np.abs(dhat), fps)
        xhat = a * x[t] + (1 - a) * prev
        out[t] = np.where(cont, xhat, x[t])
        prev = np.where(v, out[t], prev)
        dprev = np.where(cont, dhat, np.where(v, 0.0, dprev))
        started = v
    return out.astype(np.float32)


def fill_gaps(
    points: np.ndarray,  # (T, ..., 2)
    scores: np.ndarray,  # (T, ...)
    max_gap: int = 4,
    threshold: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate joints missing for at most ``max_gap`` consecutive frames between two confident frames.

    Returns new ``(points, scores)``; filled frames get the smaller confidence of the two ends.
    """
    if max_gap < 0:
        raise ValueError(f"fill_gaps: max_gap must be >= 0, got {max_gap}")
    points = np.array(points, dtype=np.float32)
    scores = np.array(scores, dtype=np.float32)
    t_len = points.shape[0]
    flat_p = points.reshape(t_len, -1, 2)  # views into the copies
    flat_s = scores.reshape(t_len, -1)
    ok = flat_s >= threshold
    for j in range(flat_s.shape[1]):
        good = np.flatnonzero(ok[:, j])
        for a, b in zip(good[:-1], good[1:]):
            gap = b - a - 1
            if 0 < gap <= max_gap:
                w = (np.arange(1, gap + 1, dtype=np.float32) / (gap + 1))[:, None]  # (gap, 1)
                flat_p[a + 1 : b, j] = (1 - w) * flat_p[a, j] + w * flat_p[b, j]
                flat_s[a + 1 : b, j] = min(flat_s[a, j], flat_s[b, j])
    return points, scores


def smooth_pose_sequence(
    seq: PoseSequence,
    fps: float = 30.0,
    min_cutoff: float = 1.0,
    beta: float = 0.05,
    d_cutoff: float = 1.0,
    max_gap: int = 4,
    threshold: float = 0.3,
) -> PoseSequence:
    """Fill short dropouts, then One-Euro smooth every confident joint track (body, hands, face)."""
    out = {}
    for pts_name, score_name in _PARTS:
        pts, scores = getattr(seq, pts_name), getattr(seq, score_name)
        if pts is None:
            out[pts_name] = out[score_name] = None
            continue
        pts, scores = fill_gaps(pts, scores, max_gap=max_gap, threshold=threshold)
        out[pts_name] = one_euro_filter(
            pts, fps=fps, min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff, valid=scores >= threshold
        )
        out[score_name] = scores
    return dataclasses.replace(seq, **out)
