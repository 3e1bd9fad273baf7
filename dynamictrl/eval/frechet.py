"""Frechet distance between two sets of features, as in FID / FID-VID / FVD.

d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), with the matrix square root from ``scipy.linalg.sqrtm``.
Sample covariances use N - 1 (numpy's default), so each set needs at least 2 samples. With fewer samples than
feature dimensions the covariances are rank-deficient: the value is still defined but biased, and is not
comparable with numbers computed on many more samples; :func:`frechet_distance` reports this in its notes.

In that few-samples case :func:`frechet_distance` computes the trace term exactly from the small cross-Gram
matrix of the centred features instead of a D x D ``sqrtm`` (for 2048-d features ``sqrtm`` takes about a minute
on one CPU core and needs a regularising epsilon on singular products): with X1 (N1, D) and X2 (N2, D) centred,
S_i = X_i^T X_i / (N_i - 1) and Tr (S1 S2)^(1/2) = ||X1 X2^T||_* / sqrt((N1 - 1)(N2 - 1)) (nuclear norm), because
both sides are the sum of the singular values of S1^(1/2) S2^(1/2).
"""

from __future__ import annotations

import logging
import math

import numpy as np

logger = logging.getLogger(__name__)


def _as_features(features: np.ndarray) -> np.ndarray:
    """float64 (N, D) features with N >= 2, or a ValueError saying why not."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got {features.shape}")
    if features.shape[0] < 2:
        raise ValueError(
            f"a Frechet distance needs at least 2 feature vectors per set to estimate a covariance, got "
            f"{features.shape[0]} (video metrics give one vector per video: evaluate at least 2 videos)"
        )
    return features


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and sample covariance (D, D) of features (N, D); N must be at least 2."""
    features = _as_features(features)
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], features.shape[1])


def frechet_distance_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    If the product's square root is not finite (singular covariances), ``eps`` is added to both diagonals, as
    pytorch-fid does; a small imaginary part from numerical error is dropped, a large one raises.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        logger.warning("Frechet distance: singular product of covariances; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Frechet distance: sqrtm has a large imaginary part ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)  # tiny negative values are round-off


def frechet_distance_low_rank(features1: np.ndarray, features2: np.ndarray) -> float:
    """The Frechet distance of two feature sets computed without D x D matrices (exact; fast when N1, N2 << D)."""
    x1, x2 = _as_features(features1), _as_features(features2)
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"mismatched feature sizes: {x1.shape} vs {x2.shape}")
    n1, n2 = len(x1), len(x2)
    mu1, mu2 = x1.mean(axis=0), x2.mean(axis=0)
    c1, c2 = x1 - mu1, x2 - mu2
    trace1, trace2 = float((c1**2).sum()) / (n1 - 1), float((c2**2).sum()) / (n2 - 1)
    tr_covmean = float(np.linalg.svd(c1 @ c2.T, compute_uv=False).sum()) / math.sqrt((n1 - 1) * (n2 - 1))
    diff = mu1 - mu2
    return max(float(diff @ diff) + trace1 + trace2 - 2.0 * tr_covmean, 0.0)  # tiny negatives are round-off


def frechet_distance(features1: np.ndarray, features2: np.ndarray) -> tuple[float, list[str]]:
    """Frechet distance between two feature sets (N1, D) and (N2, D); returns (value, notes).

    With fewer samples than dimensions in either set the trace term comes from :func:`frechet_distance_low_rank`
    (exact, see the module docstring), otherwise from ``sqrtm`` of the D x D covariances."""
    features1, features2 = _as_features(features1), _as_features(features2)
    dim = features1.shape[1]
    notes = []
    n = min(len(features1), len(features2))
    if n <= dim:
        notes.append(
            f"only {n} samples for {dim}-d features: the covariance is rank-deficient, so the value is "
            f"biased and not comparable with published numbers"
        )
        return frechet_distance_low_rank(features1, features2), notes
    mu1, s1 = feature_stats(features1)
    mu2, s2 = feature_stats(features2)
    return frechet_distance_from_stats(mu1, s1, mu2, s2), notes
