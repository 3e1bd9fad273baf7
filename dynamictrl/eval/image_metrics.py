"""Per-frame image metrics (L1, SSIM, PSNR, PSNR*, legacy uint8 PSNR) in the ``disco`` and ``clean`` profiles.

The protocol is described in ``docs/evaluation.md``. ``disco`` reproduces DisCo's ``tool/metrics`` definitions
(the protocol behind the published TikTok tables); ``clean`` is what a careful user expects. All functions take
uint8 RGB frames.

| metric | disco | clean |
|---|---|---|
| L1 | mean abs error on 0-255, divided by H*W | mean abs error on [0, 1] |
| SSIM | scikit-image, greyscale uint8, uniform 7x7, data range 255 | RGB, Gaussian 11x11 (sigma 1.5), [0, 1], torchmetrics' reflect-padded borders |
| PSNR* / PSNR | per frame: 20 log10(255 / sqrt(MSE)), float64, 100 when MSE = 0 | per video: 10 log10(1 / MSE) on [0, 1] with the MSE averaged over the video's frames, inf only when every frame is identical |
| PSNR (legacy) | MSE on uint8 arrays (wraps modulo 256) | not reported |
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

PROFILES = ("disco", "clean")
DISCO_SIZE = 256


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown metric profile {profile!r}; allowed: {list(PROFILES)}")
    return profile


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> None:
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth and prediction shapes differ: {gt.shape} vs {pred.shape}")
    if gt.dtype != np.uint8 or pred.dtype != np.uint8:
        raise ValueError(f"metrics expect uint8 frames, got {gt.dtype} and {pred.dtype}")


# ---------------------------------------------------------------- preprocessing


def center_crop_square(frames: np.ndarray) -> np.ndarray:
    """Crop (T, H, W, C) frames to the central min(H, W) square."""
    height, width = frames.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return frames[:, top : top + side, left : left + side]


def resize_frames(frames: np.ndarray, height: int, width: int, resample=Image.BILINEAR) -> np.ndarray:
    """Resize uint8 (T, H, W, 3) frames with PIL (bilinear by default); a no-op when the size already matches."""
    if frames.shape[1:3] == (height, width):
        return frames
    out = [np.asarray(Image.fromarray(frame).resize((width, height), resample)) for frame in frames]
    return np.stack(out)  # (T, height, width, 3)


def disco_preprocess(frames: np.ndarray, size: int = DISCO_SIZE) -> np.ndarray:
    """The disco protocol's frame preparation: centre crop to a square, bilinear resize to ``size``."""
    return resize_frames(center_crop_square(frames), size, size)


def to_grey_uint8(frame: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma as uint8, exactly PIL's ``convert("L")`` (what image-folder metric scripts use)."""
    return np.asarray(Image.fromarray(frame).convert("L"))


# ---------------------------------------------------------------- L1 / PSNR


def l1(gt: np.ndarray, pred: np.ndarray, profile: str = "disco") -> float:
    """L1 of one frame pair (H, W, 3) uint8; ``disco`` divides the 0-255 mean by H*W, ``clean`` is on [0, 1]."""
    _check_pair(gt, pred)
    mean_abs = float(np.abs(gt.astype(np.float64) - pred.astype(np.float64)).mean())
    if check_profile(profile) == "disco":
        return mean_abs / (gt.shape[0] * gt.shape[1])
    return mean_abs / 255.0


def mse_clean(gt: np.ndarray, pred: np.ndarray) -> float:
    """Mean squared error of one frame pair on [0, 1]."""
    _check_pair(gt, pred)
    return float(np.mean((gt.astype(np.float64) / 255.0 - pred.astype(np.float64) / 255.0) ** 2))


def psnr_from_mse(mse: float) -> float:
    """10 log10(1 / MSE) for an MSE on [0, 1]; inf when the MSE is 0."""
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def psnr(gt: np.ndarray, pred: np.ndarray, profile: str = "disco") -> float:
    """PSNR of one frame pair: ``disco`` is PSNR* (100 when identical), ``clean`` is on [0, 1] (inf when identical).

    The ``clean`` profile reports a video's PSNR from its mean MSE (:func:`pool_video`), not the mean of this."""
    _check_pair(gt, pred)
    if check_profile(profile) == "disco":
        mse = float(np.mean((gt.astype(np.float64) - pred.astype(np.float64)) ** 2))
        return 100.0 if mse == 0 else 20.0 * math.log10(255.0 / math.sqrt(mse))
    return psnr_from_mse(mse_clean(gt, pred))


def psnr_legacy_uint8(gt: np.ndarray, pred: np.ndarray) -> float:
    """The legacy PSNR some papers report: the MSE is computed on uint8 arrays, so the difference and its square
    wrap modulo 256 (e.g. a difference of 16 squares to 256 = 0). Reported only with the 'legacy' label."""
    _check_pair(gt, pred)
    diff = gt - pred  # uint8: wraps modulo 256
    mse = float(np.mean(diff * diff))  # the square wraps too; the mean is float64
    return 100.0 if mse == 0 else 20.0 * math.log10(255.0 / math.sqrt(mse))


# ---------------------------------------------------------------- SSIM


def ssim_disco(gt: np.ndarray, pred: np.ndarray) -> float:
    """scikit-image SSIM on greyscale uint8 (uniform 7x7 window, data range 255), DisCo's definition."""
    from skimage.metrics import structural_similarity

    _check_pair(gt, pred)
    return float(structural_similarity(to_grey_uint8(gt), to_grey_uint8(pred), data_range=255))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 2-D Gaussian window (size, size) in float64."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim_map_clean(gt: np.ndarray, pred: np.ndarray, window: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Per-pixel SSIM map (H, W, C) with a Gaussian window on [0, 1] floats.

    Borders follow torchmetrics' ``structural_similarity_index_measure``: frames are reflect-padded by
    ``window // 2`` and the map covers the whole frame (scikit-image instead drops a border of that width).
    """
    _check_pair(gt, pred)
    pad = window // 2
    if min(gt.shape[:2]) <= pad:
        raise ValueError(
            f"clean SSIM needs frames larger than {pad}x{pad} (window {window}x{window}), got {gt.shape[:2]}"
        )
    x = torch.from_numpy(gt).to(torch.float64).permute(2, 0, 1)[:, None] / 255.0  # (C, 1, H, W)
    y = torch.from_numpy(pred).to(torch.float64).permute(2, 0, 1)[:, None] / 255.0
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    y = F.pad(y, (pad, pad, pad, pad), mode="reflect")
    kernel = gaussian_window(window, sigma)[None, None]  # (1, 1, k, k)
    mu_x, mu_y = F.conv2d(x, kernel), F.conv2d(y, kernel)
    var_x = (F.conv2d(x * x, kernel) - mu_x**2).clamp(min=0)
    var_y = (F.conv2d(y * y, kernel) - mu_y**2).clamp(min=0)
    cov = F.conv2d(x * y, kernel) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim[:, 0].permute(1, 2, 0).numpy()  # (H, W, C)


def ssim(gt: np.ndarray, pred: np.ndarray, profile: str = "disco") -> float:
    """SSIM of one frame pair in the given profile."""
    if check_profile(profile) == "disco":
        return ssim_disco(gt, pred)
    return float(ssim_map_clean(gt, pred).mean())


# ---------------------------------------------------------------- per-video

#: Metrics of each profile pooled over frames: their dataset value is the mean over all frames of all videos.
FRAME_POOLED = {"disco": ("l1", "ssim", "psnr_star", "psnr_legacy"), "clean": ("l1", "ssim")}
#: Metrics pooled per video: one value per video, and their dataset value is the mean over videos.
VIDEO_POOLED = {"disco": (), "clean": ("psnr",)}


def frame_metrics(gt: np.ndarray, pred: np.ndarray, profile: str) -> dict[str, np.ndarray]:
    """Per-frame values of two (T, H, W, 3) uint8 videos (already preprocessed for the profile).

    Returns arrays of shape (T,) keyed by metric name: ``disco`` gives l1, ssim, psnr_star, psnr_legacy;
    ``clean`` gives l1, ssim and mse (the per-frame MSE on [0, 1] that the video's PSNR is computed from,
    see :func:`video_metrics`).
    """
    _check_pair(gt, pred)
    check_profile(profile)
    keys = ("l1", "ssim", "psnr_star", "psnr_legacy") if profile == "disco" else ("l1", "ssim", "mse")
    out: dict[str, list[float]] = {k: [] for k in keys}
    for g, p in zip(gt, pred):
        out["l1"].append(l1(g, p, profile))
        out["ssim"].append(ssim(g, p, profile))
        if profile == "disco":
            out["psnr_star"].append(psnr(g, p, profile))
            out["psnr_legacy"].append(psnr_legacy_uint8(g, p))
        else:
            out["mse"].append(mse_clean(g, p))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def pool_video(per_frame: dict[str, np.ndarray], profile: str) -> dict[str, float]:
    """One value per metric for a whole video from :func:`frame_metrics`' output: the frame mean of the
    frame-pooled metrics, and for ``clean`` the PSNR of the mean MSE over the video's frames (so one identical
    frame does not make a video's PSNR infinite)."""
    out = {k: float(np.mean(per_frame[k])) for k in FRAME_POOLED[check_profile(profile)]}
    if profile == "clean":
        out["psnr"] = psnr_from_mse(float(np.mean(per_frame["mse"])))
    return out


def video_metrics(gt: np.ndarray, pred: np.ndarray, profile: str) -> dict[str, float]:
    """L1 / SSIM / PSNR(s) of a whole (T, H, W, 3) uint8 video pair, pooled as the profile defines."""
    return pool_video(frame_metrics(gt, pred, profile), profile)
