"""Download-free metrics that use the synthetic world's exact ground truth (masks, clean backgrounds, meta).

All values are computed at the videos' native resolution on [0, 1] floats (the ``clean`` conventions), from
uint8 (T, H, W, 3) videos and boolean person masks (T, H, W).

- Foreground / background split: PSNR, SSIM (Gaussian 11x11 map, averaged over the region) and L1 inside and
  outside the true person mask.
- Silhouette IoU (pose following): the generated person region is every pixel whose largest per-channel
  difference from the known clean background exceeds ``threshold`` (default 32/255); IoU with the true mask,
  per frame, averaged (a frame where both are empty counts as 1).
- Arm IoU (do the arms follow; needs the puppet world's part labels, ``parts/NAME.npz``): every pixel that is not
  a true non-arm body part (head, hair, neck, torso, legs) is given to the nearest true body part (Euclidean
  distance transform); the *arm zone* is the true arm pixels (upper arms, forearms, hands) plus the pixels nearer
  to them than to any other part. Per frame, the IoU of the predicted silhouette inside the arm zone with the true
  arm pixels, averaged over the frames that show an arm (NaN when none does). Person pixels drawn where no arm is
  (an arm at the wrong angle, a person in the wrong place) lower it; a blurred or fattened torso or leg does not
  (its halo lies nearer to the torso or legs), so it measures the arms rather than the body's outline.
- Arm keypoint hits (a simpler, recall-only number): the fraction of true elbow and wrist points whose pixel shows
  a true arm part (visible, not behind the torso) where the predicted silhouette is on. A fattened prediction
  scores high; read it with arm IoU.
- Background adherence (text-controlled backgrounds), both in [0, 1] with 1 = perfect:
  * ``bg_stats_adherence``: predicted background pixels (outside the true mask) against the clean background
    the prompt describes (the GT background video). Per frame we take three statistics of the pixels outside
    the mask: the RGB mean (colour), the RGB standard deviation (pattern contrast) and the mean absolute
    horizontal and vertical grey-level gradients (pattern structure: stripes, bricks and checks differ there).
    Distances, each normalised to [0, 1] by its largest possible value, are d_colour = |dmean| / (255 sqrt 3),
    d_contrast = |dstd| / (127.5 sqrt 3), d_structure = |dgrad| / (255 sqrt 2); the score is
    1 - (d_colour + d_contrast + d_structure) / 3, averaged over frames.
  * ``bg_palette_adherence``: only the named colours are known (meta.jsonl ``color_rgb`` / ``secondary_rgb``):
    the fraction of background pixels within ``tolerance`` (Euclidean RGB, default 48 levels) of a named colour.
- Temporal drift (long videos): the video is cut into clips of ``clip_frames``; per clip, the person region's
  RGB mean (colour) and its 4x4x4-bin colour histogram (a simple identity statistic: clothing and skin colours)
  are compared with the first clip's: colour drift |dmean| / (255 sqrt 3), identity drift 1 - histogram
  intersection. Both 0 = no drift; we report the maximum over clips and the value of the last clip.
- Frame-to-frame consistency: ``frame_diff`` = mean |P_t - P_(t-1)| and ``temporal_error`` =
  mean |(P_t - P_(t-1)) - (G_t - G_(t-1))|, i.e. flicker or jumps not present in the ground truth.
"""

from __future__ import annotations

import math

import numpy as np

from dynamictrl.pose.keypoints import BODY_INDEX
from dynamictrl.puppet.draw import ARM_LABELS

from .image_metrics import ssim_map_clean

_ARM_POINTS = tuple(BODY_INDEX[f"{s}_{j}"] for s in ("right", "left") for j in ("elbow", "wrist"))


def _float(video: np.ndarray) -> np.ndarray:
    return video.astype(np.float64) / 255.0


def _check(video: np.ndarray, mask: np.ndarray | None = None, other: np.ndarray | None = None) -> None:
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"expected a uint8 video (T, H, W, 3), got {video.dtype} {video.shape}")
    if other is not None and other.shape != video.shape:
        raise ValueError(f"video shapes differ: {video.shape} vs {other.shape}")
    if mask is not None and mask.shape != video.shape[:3]:
        raise ValueError(f"mask shape {mask.shape} does not match the video's (T, H, W) = {video.shape[:3]}")


def mask_from_video(mask_video: np.ndarray, threshold: int = 127) -> np.ndarray:
    """Boolean (T, H, W) person mask from a mask video (T, H, W, 3) or (T, H, W): white person on black."""
    grey = mask_video.mean(axis=-1) if mask_video.ndim == 4 else mask_video
    return grey > threshold


def _psnr_from_mse(mse: float) -> float:
    if math.isnan(mse):
        return math.nan
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def region_metrics(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR / SSIM / L1 inside (``_fg``) and outside (``_bg``) the person mask; NaN for an empty region."""
    _check(gt, mask, pred)
    g, p = _float(gt), _float(pred)
    sq, ab = ((g - p) ** 2).mean(axis=-1), np.abs(g - p).mean(axis=-1)  # (T, H, W)
    ssim_sum = {"fg": 0.0, "bg": 0.0}
    ssim_count = {"fg": 0, "bg": 0}
    for t in range(len(gt)):
        smap = ssim_map_clean(gt[t], pred[t]).mean(axis=-1)  # (H, W)
        m = mask[t]
        ssim_sum["fg"] += float(smap[m].sum())
        ssim_count["fg"] += int(m.sum())
        ssim_sum["bg"] += float(smap[~m].sum())
        ssim_count["bg"] += int((~m).sum())
    out = {}
    for region, sel in (("fg", mask), ("bg", ~mask)):
        n = int(sel.sum())
        mse = float(sq[sel].mean()) if n else math.nan
        out[f"psnr_{region}"] = _psnr_from_mse(mse)
        out[f"l1_{region}"] = float(ab[sel].mean()) if n else math.nan
        out[f"ssim_{region}"] = ssim_sum[region] / ssim_count[region] if ssim_count[region] else math.nan
    return out


def predicted_silhouette(pred: np.ndarray, background: np.ndarray, threshold: float = 32 / 255) -> np.ndarray:
    """Pixels of ``pred`` far from the known clean ``background``: (T, H, W) bool."""
    _check(pred, other=background)
    return np.abs(_float(pred) - _float(background)).max(axis=-1) > threshold


def silhouette_iou(
    pred: np.ndarray, background: np.ndarray, true_mask: np.ndarray, threshold: float = 32 / 255
) -> float:
    """Mean per-frame IoU between the predicted silhouette and the true person mask."""
    _check(pred, true_mask, background)
    sil = predicted_silhouette(pred, background, threshold)
    inter = np.logical_and(sil, true_mask).sum(axis=(1, 2))
    union = np.logical_or(sil, true_mask).sum(axis=(1, 2))
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return float(iou.mean())


def _check_parts(pred: np.ndarray, parts: np.ndarray) -> None:
    if parts.shape != pred.shape[:3] or not np.issubdtype(parts.dtype, np.integer):
        raise ValueError(
            f"part labels must be an integer (T, H, W) array matching the video's {pred.shape[:3]}, "
            f"got {parts.dtype} {parts.shape}"
        )


def arm_zone(parts: np.ndarray, arm_labels=ARM_LABELS) -> tuple[np.ndarray, np.ndarray]:
    """``(arm, zone)``: the true arm pixels and the arm zone (arm pixels and the pixels outside the body nearer to
    an arm than to any other body part), both (T, H, W) bool, from (T, H, W) part labels (0 = no person)."""
    from scipy.ndimage import distance_transform_edt

    arm = np.isin(parts, arm_labels)
    other = (parts > 0) & ~arm
    zone = np.zeros_like(arm)
    for t in range(len(parts)):
        if not arm[t].any():
            continue
        if not other[t].any():
            zone[t] = True
            continue
        zone[t] = distance_transform_edt(~arm[t]) <= distance_transform_edt(~other[t])
    return arm, zone & ~other


def arm_iou(
    pred: np.ndarray, background: np.ndarray, parts: np.ndarray, threshold: float = 32 / 255, arm_labels=ARM_LABELS
) -> float:
    """Mean IoU, over frames that show an arm, of the predicted silhouette inside the arm zone with the true arms."""
    _check(pred, other=background)
    _check_parts(pred, parts)
    arm, zone = arm_zone(parts, arm_labels)
    sil = predicted_silhouette(pred, background, threshold) & zone
    shown = arm.any(axis=(1, 2))
    if not shown.any():
        return math.nan
    inter = (sil & arm).sum(axis=(1, 2))[shown]
    union = (sil | arm).sum(axis=(1, 2))[shown]
    return float((inter / union).mean())


def arm_keypoint_hits(
    pred: np.ndarray,
    background: np.ndarray,
    parts: np.ndarray,
    keypoints: np.ndarray,
    threshold: float = 32 / 255,
    arm_labels=ARM_LABELS,
) -> float:
    """Fraction of visible true elbow and wrist points (``keypoints``: (T, 18, 2) pixel x, y) on the predicted
    silhouette; a point counts when it lies in the frame on a pixel labelled as an arm (NaN when none does)."""
    _check(pred, other=background)
    _check_parts(pred, parts)
    if keypoints.ndim != 3 or keypoints.shape[0] != len(pred) or keypoints.shape[2] != 2:
        raise ValueError(f"keypoints must be (T, 18, 2) with T = {len(pred)}, got {keypoints.shape}")
    sil = predicted_silhouette(pred, background, threshold)
    height, width = parts.shape[1:]
    xy = np.rint(keypoints[:, _ARM_POINTS]).astype(np.int64)  # (T, 4, 2)
    t = np.broadcast_to(np.arange(len(pred))[:, None], xy.shape[:2])
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < width) & (xy[..., 1] >= 0) & (xy[..., 1] < height)
    t, x, y = t[inside], xy[..., 0][inside], xy[..., 1][inside]
    visible = np.isin(parts[t, y, x], arm_labels)
    if not visible.any():
        return math.nan
    return float(sil[t, y, x][visible].mean())


def _bg_stats(frame: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(RGB mean, RGB std, [mean |d/dx|, mean |d/dy|] of grey) over pixels where ``keep`` is True; 0-255 scale."""
    if keep.sum() < 2:
        return None
    f = frame.astype(np.float64)
    pix = f[keep]  # (N, 3)
    grey = f.mean(axis=-1)
    keep_x = keep[:, 1:] & keep[:, :-1]
    keep_y = keep[1:, :] & keep[:-1, :]
    gx = np.abs(np.diff(grey, axis=1))[keep_x].mean() if keep_x.any() else 0.0
    gy = np.abs(np.diff(grey, axis=0))[keep_y].mean() if keep_y.any() else 0.0
    return pix.mean(axis=0), pix.std(axis=0), np.array([gx, gy])


def background_stats_adherence(pred: np.ndarray, true_mask: np.ndarray, target_background: np.ndarray) -> float:
    """Colour / contrast / structure agreement of the background outside the true mask, in [0, 1] (1 = perfect)."""
    _check(pred, true_mask, target_background)
    scores = []
    for t in range(len(pred)):
        keep = ~true_mask[t]
        a, b = _bg_stats(pred[t], keep), _bg_stats(target_background[t], keep)
        if a is None or b is None:
            continue
        d_colour = np.linalg.norm(a[0] - b[0]) / (255.0 * math.sqrt(3))
        d_contrast = np.linalg.norm(a[1] - b[1]) / (127.5 * math.sqrt(3))
        d_structure = np.linalg.norm(a[2] - b[2]) / (255.0 * math.sqrt(2))
        scores.append(1.0 - (d_colour + d_contrast + d_structure) / 3.0)
    return float(np.clip(np.mean(scores), 0.0, 1.0)) if scores else math.nan


def background_palette_adherence(pred: np.ndarray, true_mask: np.ndarray, colors, tolerance: float = 48.0) -> float:
    """Fraction of background pixels (outside the true mask) within ``tolerance`` RGB levels of a named colour."""
    _check(pred, true_mask)
    palette = np.asarray([c for c in colors if c is not None], dtype=np.float64).reshape(-1, 3)
    if len(palette) == 0:
        raise ValueError("background_palette_adherence needs at least one named RGB colour")
    pix = pred[~true_mask].astype(np.float64)  # (N, 3)
    if len(pix) == 0:
        return math.nan
    dist = np.linalg.norm(pix[:, None, :] - palette[None], axis=-1).min(axis=1)
    return float((dist <= tolerance).mean())


def _person_stats(video: np.ndarray, mask: np.ndarray, bins: int = 4) -> tuple[np.ndarray, np.ndarray] | None:
    pix = video[mask].astype(np.int64)  # (N, 3)
    if len(pix) == 0:
        return None
    idx = (pix * bins // 256) @ np.array([bins * bins, bins, 1])
    hist = np.bincount(idx, minlength=bins**3).astype(np.float64)
    return pix.mean(axis=0), hist / hist.sum()


def temporal_drift(video: np.ndarray, mask: np.ndarray, clip_frames: int) -> dict[str, float]:
    """Colour and identity drift of the person region of each clip against the first clip (0 = none).

    Returns ``drift_color_max``, ``drift_color_last``, ``drift_identity_max``, ``drift_identity_last``; NaN when
    the video has fewer than two clips or the first clip shows no person.
    """
    _check(video, mask)
    if clip_frames < 1:
        raise ValueError(f"clip_frames must be >= 1, got {clip_frames}")
    clips = [(s, min(s + clip_frames, len(video))) for s in range(0, len(video), clip_frames)]
    nan = {k: math.nan for k in ("drift_color_max", "drift_color_last", "drift_identity_max", "drift_identity_last")}
    if len(clips) < 2:
        return nan
    stats = [_person_stats(video[a:b], mask[a:b]) for a, b in clips]
    if stats[0] is None:
        return nan
    colour, ident = [], []
    for st in stats[1:]:
        if st is None:
            colour.append(math.nan)
            ident.append(math.nan)
            continue
        colour.append(float(np.linalg.norm(st[0] - stats[0][0]) / (255.0 * math.sqrt(3))))
        ident.append(float(1.0 - np.minimum(st[1], stats[0][1]).sum()))
    return {
        "drift_color_max": float(np.nanmax(colour)) if not np.isnan(colour).all() else math.nan,
        "drift_color_last": colour[-1],
        "drift_identity_max": float(np.nanmax(ident)) if not np.isnan(ident).all() else math.nan,
        "drift_identity_last": ident[-1],
    }


def frame_consistency(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """``frame_diff`` (mean |P_t - P_(t-1)|) and ``temporal_error`` against the GT's own frame differences."""
    _check(gt, other=pred)
    if len(pred) < 2:
        return {"frame_diff": math.nan, "temporal_error": math.nan}
    dp, dg = np.diff(_float(pred), axis=0), np.diff(_float(gt), axis=0)
    return {"frame_diff": float(np.abs(dp).mean()), "temporal_error": float(np.abs(dp - dg).mean())}
