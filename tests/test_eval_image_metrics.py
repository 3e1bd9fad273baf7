"""Image metrics in both profiles on hand-made cases, against scikit-image and torchmetrics references."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from dynamictrl.eval.image_metrics import (
    disco_preprocess,
    frame_metrics,
    l1,
    psnr,
    psnr_legacy_uint8,
    ssim,
)
from dynamictrl.eval.lpips import lpips_inputs


def smooth_video(rng, t=3, h=40, w=56):
    """Random but smooth RGB frames (SSIM on pure noise is uninformative)."""
    base = rng.integers(0, 256, (t, h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in base])


def noisy(video, rng, amp=30):
    return np.clip(video.astype(int) + rng.integers(-amp, amp + 1, video.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("profile", ["disco", "clean"])
def test_identical_frames(profile):
    frame = smooth_video(np.random.default_rng(0))[0]
    assert l1(frame, frame, profile) == 0.0
    assert ssim(frame, frame, profile) == pytest.approx(1.0, abs=1e-12)
    expected = 100.0 if profile == "disco" else math.inf
    assert psnr(frame, frame, profile) == expected
    metrics = frame_metrics(frame[None], frame[None], profile)
    assert metrics["l1"][0] == 0.0
    if profile == "disco":
        assert metrics["psnr_star"][0] == 100.0 and metrics["psnr_legacy"][0] == 100.0
    else:
        assert metrics["mse"][0] == 0.0 and "psnr_legacy" not in metrics


@pytest.mark.parametrize("profile", ["disco", "clean"])
def test_constant_shift_gives_known_psnr_and_l1(profile):
    gt = np.full((16, 24, 3), 100, dtype=np.uint8)
    pred = gt + 10
    assert psnr(gt, pred, profile) == pytest.approx(20 * math.log10(255 / 10), abs=1e-9)
    expected_l1 = 10 / (16 * 24) if profile == "disco" else 10 / 255
    assert l1(gt, pred, profile) == pytest.approx(expected_l1, rel=1e-12)


def test_disco_l1_depends_on_resolution():
    small = np.zeros((8, 8, 3), np.uint8)
    big = np.zeros((16, 16, 3), np.uint8)
    assert l1(small, small + 15, "disco") == pytest.approx(4 * l1(big, big + 15, "disco"))
    assert l1(small, small + 15, "clean") == pytest.approx(l1(big, big + 15, "clean"))


def test_legacy_uint8_psnr_wraps_around():
    gt = np.zeros((8, 8, 3), np.uint8)
    # difference 16: 0 - 16 wraps to 240, and 240**2 = 57600 = 225 * 256 wraps to 0 -> "perfect" 100 dB
    assert psnr_legacy_uint8(gt, gt + 16) == 100.0
    assert psnr(gt, gt + 16, "disco") == pytest.approx(20 * math.log10(255 / 16))
    # difference 17: 17**2 = 289 wraps to 33
    assert psnr_legacy_uint8(gt + 17, gt) == pytest.approx(20 * math.log10(255 / math.sqrt(33)))
    # small differences do not wrap: legacy equals PSNR*
    assert psnr_legacy_uint8(gt + 5, gt) == pytest.approx(psnr(gt + 5, gt, "disco"))


def test_disco_ssim_is_scikit_image_on_grey_uint8_after_crop_and_resize():
    rng = np.random.default_rng(1)
    gt = smooth_video(rng)  # (3, 40, 56, 3): not square, so the crop matters
    pred = noisy(gt, rng)
    ours = frame_metrics(disco_preprocess(gt), disco_preprocess(pred), "disco")["ssim"]
    for t in range(len(gt)):
        # independent path: PIL crop box -> bilinear 256 -> PIL greyscale -> scikit-image defaults
        ref = [
            Image.fromarray(v[t]).crop((8, 0, 48, 40)).resize((256, 256), Image.BILINEAR).convert("L")
            for v in (gt, pred)
        ]
        expected = structural_similarity(np.asarray(ref[0]), np.asarray(ref[1]), data_range=255)
        assert ours[t] == pytest.approx(expected, abs=1e-6)
    assert disco_preprocess(gt).shape == (3, 256, 256, 3)


def reference_clean_ssim(a, b):
    """Independent clean SSIM: numpy reflect padding, scipy correlation with an 11x11 Gaussian (sigma 1.5)."""
    from scipy.ndimage import correlate

    g1 = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    win = np.outer(g1, g1) / np.outer(g1, g1).sum()
    vals = []
    for c in range(3):
        x = np.pad(a[..., c] / 255.0, 5, mode="reflect")
        y = np.pad(b[..., c] / 255.0, 5, mode="reflect")

        def filt(z):
            return correlate(z, win, mode="constant")[5:-5, 5:-5]

        mx, my = filt(x), filt(y)
        vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
        s = ((2 * mx * my + 1e-4) * (2 * cxy + 9e-4)) / ((mx**2 + my**2 + 1e-4) * (vx + vy + 9e-4))
        vals.append(s)
    return float(np.mean(vals))


def test_clean_ssim_matches_independent_reference():
    rng = np.random.default_rng(2)
    gt = smooth_video(rng, t=1, h=32, w=40)[0]
    pred = noisy(gt, rng)
    assert ssim(gt, pred, "clean") == pytest.approx(reference_clean_ssim(gt, pred), abs=1e-6)


def test_clean_ssim_matches_torchmetrics():
    tm = pytest.importorskip("torchmetrics.functional.image", reason="torchmetrics (the [dev] extra) not installed")
    rng = np.random.default_rng(3)
    gt = smooth_video(rng, t=1, h=48, w=64)[0]
    pred = noisy(gt, rng, amp=40)

    def to_t(a):
        return torch.from_numpy(a).permute(2, 0, 1)[None].double() / 255.0

    expected = tm.structural_similarity_index_measure(to_t(pred), to_t(gt), data_range=1.0).item()
    assert ssim(gt, pred, "clean") == pytest.approx(expected, abs=1e-4)
    assert ssim(gt, pred, "disco") != pytest.approx(expected, abs=1e-3)  # the profiles really differ


def test_clean_ssim_rejects_tiny_frames_and_bad_profile():
    tiny = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="larger than"):
        ssim(tiny, tiny, "clean")
    with pytest.raises(ValueError, match="allowed"):
        l1(tiny, tiny, "careful")
    with pytest.raises(ValueError, match="shapes differ"):
        l1(tiny, np.zeros((4, 5, 3), np.uint8))


def test_lpips_input_quirk():
    frames = np.array([[[[0, 128, 255]]]], dtype=np.uint8)  # (1, 1, 1, 3)
    disco, clean = lpips_inputs(frames, "disco"), lpips_inputs(frames, "clean")
    assert disco.shape == (1, 3, 1, 1)
    assert disco.flatten().tolist() == pytest.approx([0.0, 128 / 255, 1.0], abs=1e-6)
    assert clean.flatten().tolist() == pytest.approx([-1.0, 2 * 128 / 255 - 1, 1.0], abs=1e-6)
