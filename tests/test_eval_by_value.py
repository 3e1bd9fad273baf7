"""The evaluation harness checked by value: video-metric preprocessing against hand-computed numbers with a linear
stand-in backbone, frame vs video pooling with clips of different lengths, the clean PSNR, wrong-size predictions,
the few-samples Frechet distance, and FID-VID / FID end to end through scripts/evaluate.py on stand-in weights."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dynamictrl.data.io import write_video
from dynamictrl.eval.frechet import feature_stats, frechet_distance, frechet_distance_from_stats
from dynamictrl.eval.image_metrics import video_metrics
from dynamictrl.eval.resnet3d import FIDVID_MEAN
from dynamictrl.eval.runner import EvalConfig, evaluate
from dynamictrl.eval.video_metrics import fid_features, fidvid_features, fvd_features

ROOT = Path(__file__).resolve().parents[1]
MEAN = np.asarray(FIDVID_MEAN)


class LinearStandIn(nn.Module):
    """A linear backbone: the per-channel mean of its input over every axis but batch and channel. Records inputs."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(3, dtype=torch.float64))
        self.inputs = []

    def features(self, x):
        self.inputs.append(x.clone())
        return x.double().mean(dim=tuple(range(2, x.ndim))) @ self.weight.T

    forward = features


def constant_frames(values, height, width):
    """uint8 (T, H, W, 3) frames, frame t filled with values[t] in every channel."""
    return np.stack([np.full((height, width, 3), v, np.uint8) for v in values])


def test_fidvid_resizes_bicubic_to_a_square_then_subtracts_the_mean():
    frame = np.zeros((1, 1, 2, 3), np.uint8)  # one 1x2 frame: black | white
    frame[:, :, 1] = 255
    model = LinearStandIn()
    feat = fidvid_features(model, frame, size=4)
    (clip,) = model.inputs
    assert clip.shape == (1, 3, 16, 4, 4)  # a square (aspect not kept), the one frame padded to 16
    # PIL bicubic (Keys, a = -0.5) of [0, 255] to 4 pixels, by hand: output x samples the input at (x + 0.5) / 2 - 0.5;
    # x = 1: weights K(0.25) = 0.8671875 on 0 and K(0.75) = 0.2265625 on 255, normalised: 255 * 0.2266 / 1.0938
    # = 52.8 -> 53; x = 2 mirrors it (202); x = 0, 3 overshoot and clip to 0, 255. Bilinear would give 64 and 191.
    row = np.array([0.0, 53.0, 202.0, 255.0])
    for c in range(3):
        np.testing.assert_allclose(clip[0, c, 0].numpy(), np.tile(row - MEAN[c], (4, 1)), atol=1e-4)
    np.testing.assert_allclose(feat, row.mean() - MEAN, atol=1e-4)


def test_fidvid_sixteen_frame_segments_last_padded_features_averaged():
    values = [10 * t for t in range(20)]  # 20 frames: segments 0-15 and 16-19 padded with frame 19
    model = LinearStandIn()
    feat = fidvid_features(model, constant_frames(values, 6, 10), size=8)
    assert [tuple(x.shape) for x in model.inputs] == [(1, 3, 16, 8, 8)] * 2
    # segment means by hand: (0 + ... + 150) / 16 = 75; (160 + 170 + 180 + 13 * 190) / 16 = 186.25
    np.testing.assert_allclose(
        model.inputs[1][0, 0, :, 0, 0].numpy() + MEAN[0], [160, 170, 180] + [190] * 13, atol=1e-4
    )
    np.testing.assert_allclose(feat, (75.0 + 186.25) / 2 - MEAN, atol=1e-4)  # not the frame mean 95 - MEAN


def test_fvd_first_sixteen_frames_scaled_to_minus_one_one():
    model = LinearStandIn()
    long = fvd_features(model, constant_frames([10 * t for t in range(20)], 6, 10), size=8)
    short = fvd_features(model, constant_frames([0, 10, 20, 30, 40], 6, 10), size=8)
    assert [tuple(x.shape) for x in model.inputs] == [(1, 3, 16, 8, 8)] * 2  # one clip per video
    np.testing.assert_allclose(long, [75.0 / 127.5 - 1] * 3, atol=1e-6)  # frames 16-19 ignored
    np.testing.assert_allclose(short, [(100 + 11 * 40) / 16 / 127.5 - 1] * 3, atol=1e-6)  # 11 copies of frame 4


def test_fid_features_one_row_per_frame_on_zero_one():
    model = LinearStandIn()
    feats = fid_features(model, constant_frames([0, 51, 255], 5, 7), batch_size=2)
    assert feats.shape == (3, 3) and [tuple(x.shape) for x in model.inputs] == [(2, 3, 5, 7), (1, 3, 5, 7)]
    np.testing.assert_allclose(feats[:, 0], [0.0, 0.2, 1.0], atol=1e-7)


def test_clean_psnr_is_the_psnr_of_the_mean_mse_of_a_video():
    gt = constant_frames([100, 100, 100], 8, 8)
    pred = constant_frames([100, 110, 130], 8, 8)  # one identical frame: per-frame PSNR would average in inf
    mse = (0 + 10**2 + 30**2) / 3 / 255**2
    out = video_metrics(gt, pred, "clean")
    assert out["psnr"] == pytest.approx(10 * math.log10(1 / mse), abs=1e-9)
    assert out["l1"] == pytest.approx(40 / 3 / 255, abs=1e-12)
    assert video_metrics(gt, gt, "clean")["psnr"] == math.inf  # only a video identical in every frame
    disco = video_metrics(gt, pred, "disco")  # PSNR* stays per frame, 100 for the identical one
    assert disco["psnr_star"] == pytest.approx((100 + 20 * math.log10(25.5) + 20 * math.log10(8.5)) / 3, abs=1e-9)


def write_set(root, videos):
    """``videos``: {name: (gt frames, pred frames)} -> root/gt/videos/NAME.mp4 and root/pred/NAME.mp4 (lossless)."""
    for name, (gt, pred) in videos.items():
        write_video(root / "gt" / "videos" / f"{name}.mp4", gt, lossless=True)
        write_video(root / "pred" / f"{name}.mp4", pred, lossless=True)
    return root / "gt", root / "pred"


def test_frame_pooled_and_video_pooled_metrics_told_apart_by_clip_lengths(tmp_path):
    # clip a: 2 frames, error 10 each; clip b: 6 frames, frame 0 exact, then error 20
    videos = {
        "a": (constant_frames([100] * 2, 16, 16), constant_frames([110] * 2, 16, 16)),
        "b": (constant_frames([100] * 6, 16, 16), constant_frames([100] + [120] * 5, 16, 16)),
    }
    gt, pred = write_set(tmp_path, videos)
    res = evaluate(gt, pred, cfg=EvalConfig(disco_size=16, show_progress=False))
    out = res["sources"]["pred"]
    assert res["frame_count"] == 8
    # L1: mean over all 8 frames (120 / 8 = 15), not the mean of the two videos' means ((10 + 100 / 6) / 2 = 13.3)
    assert out["clean"]["l1"] == pytest.approx(15 / 255, abs=1e-12)
    assert out["disco"]["l1"] == pytest.approx(15 / 256, abs=1e-12)
    # PSNR* per frame, averaged over all frames; clip b's exact frame counts 100
    psnr10, psnr20 = 20 * math.log10(25.5), 20 * math.log10(12.75)
    assert out["disco"]["psnr_star"] == pytest.approx((2 * psnr10 + 100 + 5 * psnr20) / 8, abs=1e-9)
    # clean PSNR per video from its mean MSE, then averaged over videos (finite despite the exact frame)
    psnr_b = 10 * math.log10(255**2 / (5 / 6 * 20**2))
    assert out["per_video"]["b"]["clean"]["psnr"] == pytest.approx(psnr_b, abs=1e-9)
    assert out["clean"]["psnr"] == pytest.approx((psnr10 + psnr_b) / 2, abs=1e-9)


def test_runner_pools_fidvid_per_video_and_fid_per_frame(tmp_path, monkeypatch):
    from dynamictrl.eval import runner
    from dynamictrl.eval.weights import MissingWeightError

    def stand_in(kind, weights_dir):
        if kind == "fvd":
            raise MissingWeightError("no FVD stand-in in this test")
        return LinearStandIn(), {f"{kind}-stand-in": "0"}

    monkeypatch.setattr(runner, "load_backbone", stand_in)
    videos = {
        "a": (constant_frames([100] * 2, 16, 16), constant_frames([110] * 2, 16, 16)),
        "b": (constant_frames([100] * 6, 16, 16), constant_frames([100] + [120] * 5, 16, 16)),
    }
    gt, pred = write_set(tmp_path, videos)
    out = evaluate(gt, pred, cfg=EvalConfig(profiles=("clean",), show_progress=False))["sources"]["pred"]["clean"]
    # FID-VID, one vector per video (16-frame segment, padded): pred 110 and (100 + 15 * 120) / 16 = 118.75, gt 100
    # and 100, minus the same mean. d^2 = |114.375 - 100|^2 + var(110, 118.75) (N - 1), per channel, x 3 channels
    assert out["fid_vid"] == pytest.approx(3 * (14.375**2 + 8.75**2 / 2), rel=1e-9)
    # FID, one vector per frame on [0, 1]: the 8 prediction frames against the 8 ground-truth frames
    pred_rows = np.repeat(np.array([110, 110, 100, 120, 120, 120, 120, 120])[:, None] / 255, 3, axis=1)
    assert out["fid"] == pytest.approx(
        frechet_distance(pred_rows, np.full((8, 3), 100 / 255))[0], rel=1e-6
    )  # float32 frames


def run_evaluate_cli(*args):
    env = {k: v for k, v in os.environ.items() if k != "DYNAMICTRL_METRIC_WEIGHTS"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_wrong_size_prediction_is_resized_as_the_protocol_does(tmp_path):
    # constant frames resize exactly, so the metrics must equal those of a same-size prediction of that colour
    videos = {name: (constant_frames([100] * 3, 16, 16), constant_frames([110] * 3, 24, 40)) for name in ("a", "b")}
    gt, pred = write_set(tmp_path, videos)
    out = tmp_path / "res.json"
    run_evaluate_cli("--gt", gt, "--pred", pred, "--profile", "clean", "--out", out)
    res = json.loads(out.read_text())
    assert res["sources"]["pred"]["clean"]["l1"] == pytest.approx(10 / 255, abs=1e-12)
    assert res["sources"]["pred"]["clean"]["psnr"] == pytest.approx(20 * math.log10(25.5), abs=1e-9)
    assert any(note.startswith("2 prediction(s) resized") and "a.mp4 (40x24)" in note for note in res["notes"])
    with pytest.raises(ValueError, match=r"frame size 40x24.*is 16x16.*--no-resize-pred"):
        evaluate(gt, pred, cfg=EvalConfig(resize_pred=False, show_progress=False))


def test_frechet_with_fewer_samples_than_dimensions_matches_sqrtm():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 24)), 2.0 * rng.normal(size=(7, 24)) + 0.3
    value, notes = frechet_distance(a, b)
    assert notes and "only 5 samples for 24-d" in notes[0]
    assert value == pytest.approx(frechet_distance_from_stats(*feature_stats(a), *feature_stats(b)), rel=1e-6)
    assert frechet_distance(a, a)[0] == pytest.approx(0.0, abs=1e-9)


def random_weights(module, seed):
    """Stand-in weights: the module's own initialisation under a fixed seed, BatchNorm statistics kept sane."""
    torch.manual_seed(seed)
    state = module.state_dict()
    for key, value in state.items():
        if key.endswith("running_mean"):
            value.normal_(0, 0.05)
        elif key.endswith("running_var"):
            value.uniform_(0.5, 1.5)
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


@pytest.mark.slow
def test_fidvid_and_fid_end_to_end_through_the_cli_on_stand_in_weights(tmp_path):
    from dynamictrl.eval.baselines import make_baseline
    from dynamictrl.eval.inception import FIDInceptionV3
    from dynamictrl.eval.resnet3d import ResNet3D50
    from dynamictrl.eval.video_metrics import load_backbone
    from dynamictrl.eval.weights import sha256_file

    rng = np.random.default_rng(0)
    videos = {}
    for name, length in (("a", 3), ("b", 5)):  # different lengths: 2 per-video features, 8 per-frame ones
        frames = np.repeat(rng.integers(0, 256, (length, 8, 8, 3), dtype=np.uint8), 4, axis=1).repeat(4, axis=2)
        videos[name] = (frames, frames)  # a perfect prediction
    gt, pred = write_set(tmp_path, videos)
    wdir = tmp_path / "weights"
    wdir.mkdir()
    # the published layouts: resnet-50-kinetics.pth wraps a DataParallel state dict; the Inception file is plain
    resnet = {"module." + k: v for k, v in random_weights(ResNet3D50(), 0).items()}
    torch.save({"arch": "resnet-50", "state_dict": resnet}, wdir / "resnet-50-kinetics.pth")
    torch.save(random_weights(FIDInceptionV3(), 1), wdir / "pt_inception-2015-12-05-6726825d.pth")
    del resnet

    out = tmp_path / "res.json"
    proc = run_evaluate_cli(
        "--gt",
        gt,
        "--pred",
        pred,
        "--baseline",
        "repeat-first-frame",
        "--profile",
        "clean",
        "--weights-dir",
        wdir,
        "--input-size",  # the real architectures on small inputs: seconds instead of minutes
        "fid_vid=32",
        "--input-size",
        "fid=75",
        "--out",
        out,
    )
    res = json.loads(out.read_text())
    assert "FID-VID" in proc.stdout
    assert res["weights"] == {
        f: sha256_file(wdir / f) for f in ("pt_inception-2015-12-05-6726825d.pth", "resnet-50-kinetics.pth")
    }
    assert set(res["skipped"]) == {"lpips", "fvd"} and res["input_sizes"] == {"fid_vid": 32, "fvd": 224, "fid": 75}
    assert any(n.startswith("backbone input sizes changed") and "fid_vid 32 (protocol 112)" in n for n in res["notes"])
    assert "fid_vid (clean): only 2 samples for 2048-d features" in " ".join(res["notes"])  # one per video
    assert "fid (clean): only 8 samples for 2048-d features" in " ".join(res["notes"])  # one per frame
    perfect, base = res["sources"]["pred"]["clean"], res["sources"]["baseline:repeat-first-frame"]["clean"]
    assert perfect["fid_vid"] == pytest.approx(0.0, abs=1e-6) and perfect["fid"] == pytest.approx(0.0, abs=1e-6)

    # the same numbers recomputed here from the protocol's steps (native frames for `clean`), at the same sizes
    fidvid_model, _ = load_backbone("fid_vid", wdir)
    fid_model, _ = load_backbone("fid", wdir)
    fid_model.input_size = 75
    gts = [videos[n][0] for n in ("a", "b")]
    bases = [make_baseline("repeat-first-frame", gt, n, len(v[0]), 32, 32) for n, v in videos.items()]
    expected_fidvid, _ = frechet_distance(
        np.stack([fidvid_features(fidvid_model, v, size=32) for v in bases]),
        np.stack([fidvid_features(fidvid_model, v, size=32) for v in gts]),
    )
    expected_fid, _ = frechet_distance(
        np.concatenate([fid_features(fid_model, v) for v in bases]),
        np.concatenate([fid_features(fid_model, v) for v in gts]),
    )
    assert base["fid_vid"] == pytest.approx(expected_fidvid, rel=1e-6) and base["fid_vid"] > 0
    assert base["fid"] == pytest.approx(expected_fid, rel=1e-6) and base["fid"] > 0
