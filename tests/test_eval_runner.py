"""End-to-end: scripts/evaluate.py on a generated mini set, on baselines, with and without weight files."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dynamictrl.data.io import write_image, write_video
from dynamictrl.eval.runner import EvalConfig, evaluate, markdown_table

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("clip_a", "clip_b")
T, H, W = 8, 32, 32
COLORS = {"clip_a": ((200, 30, 30), (240, 240, 240)), "clip_b": ((40, 80, 210), (250, 220, 40))}


def make_clip(name, shift=0):
    """Striped wall in the clip's colour, a box 'person' moving right; returns video, mask, background, reference."""
    wall, person = COLORS[name]
    bg = np.empty((T, H, W, 3), np.uint8)
    bg[:] = wall
    bg[:, ::4] = (60, 60, 60)  # horizontal stripes
    video, mask = bg.copy(), np.zeros((T, H, W), bool)
    for t in range(T):
        mask[t, 8:24, 4 + 2 * t + shift : 12 + 2 * t + shift] = True
    video[mask] = person
    reference = bg[0].copy()
    reference[8:24, 20:28] = person  # same puppet, another pose
    return video, mask, bg, reference


@pytest.fixture(scope="module")
def mini_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_mini")
    gt, pred = root / "gt", root / "pred"
    prompts, meta = [], []
    for name in NAMES:
        video, mask, bg, ref = make_clip(name)
        write_video(gt / "videos" / f"{name}.mp4", video, lossless=True)
        write_video(gt / "masks" / f"{name}.mp4", mask.astype(np.uint8) * 255, lossless=True)
        write_video(gt / "backgrounds" / f"{name}.mp4", bg, lossless=True)
        write_image(gt / "references" / f"{name}.png", ref)
        write_video(pred / f"{name}.mp4", video, lossless=True)  # a perfect "model"
        prompts.append(f"{name}.mp4#####The person is dancing. The background is a striped wall.")
        meta.append(
            json.dumps(
                {
                    "name": name,
                    "background": {
                        "name": "a striped wall",
                        "color": "red",
                        "color_rgb": list(COLORS[name][0]),
                        "secondary_rgb": [60, 60, 60],
                    },
                }
            )
        )
    (gt / "prompts.txt").write_text("\n".join(prompts) + "\n")
    (gt / "meta.jsonl").write_text("\n".join(meta) + "\n")
    return root


def run_cli(argv):
    spec = importlib.util.spec_from_file_location("evaluate_script", ROOT / "scripts" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def test_cli_perfect_prediction_and_baselines(mini_set, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DYNAMICTRL_METRIC_WEIGHTS", raising=False)
    out = tmp_path / "results.json"
    rc = run_cli(
        [
            "--pred",
            str(mini_set / "pred"),
            "--gt",
            str(mini_set / "gt"),
            "--baseline",
            "repeat-reference",
            "--baseline",
            "gt-background",
            "--drift-clip-frames",
            "4",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    table = capsys.readouterr().out
    assert "### `disco` profile" in table and "### `clean` profile" in table and "baseline:gt-background" in table
    assert "skipped*" in table and "vgg16-397923af.pth" in table and "i3d_pretrained_400.pt" in table

    res = json.loads(out.read_text())
    assert res["frame_count"] == 2 * T and res["videos"] == 2 and res["weights"] == {}
    assert res["profiles"]["disco"]["resolution"] == [[256, 256]]
    assert res["profiles"]["clean"]["resolution"] == [[H, W]]
    assert set(res["skipped"]) == {"lpips", "fid_vid", "fvd", "fid"}

    pred = res["sources"]["pred"]
    assert pred["disco"]["psnr_star"] == 100.0 and pred["disco"]["ssim"] == pytest.approx(1.0)
    assert pred["disco"]["l1"] == 0.0 and pred["clean"]["psnr"] == "inf"
    syn = pred["synthetic"]
    assert syn["silhouette_iou"] == 1.0 and syn["bg_stats_adherence"] == pytest.approx(1.0)
    assert syn["bg_palette_adherence"] == 1.0 and syn["temporal_error"] == 0.0
    assert pred["per_video"]["clip_a"]["prompt"].startswith("The person is dancing")

    ref, bgb = res["sources"]["baseline:repeat-reference"], res["sources"]["baseline:gt-background"]
    for base in (ref, bgb):
        assert base["disco"]["psnr_star"] < 100 and base["synthetic"]["silhouette_iou"] < 1
    assert bgb["synthetic"]["silhouette_iou"] == 0.0 and bgb["synthetic"]["bg_stats_adherence"] == pytest.approx(1.0)
    assert ref["synthetic"]["frame_diff"] == 0.0 and ref["synthetic"]["temporal_error"] > 0
    # disco SSIM is computed on the 256x256 greyscale frames, clean SSIM on native RGB: they must differ
    assert ref["disco"]["ssim"] != pytest.approx(ref["clean"]["ssim"], abs=1e-3)


def test_baseline_only_single_profile(mini_set, tmp_path):
    res = evaluate(mini_set / "gt", None, ["gt-background"], EvalConfig(profiles=("clean",), show_progress=False))
    assert list(res["profiles"]) == ["clean"] and list(res["sources"]) == ["baseline:gt-background"]
    assert "psnr_legacy" not in res["sources"]["baseline:gt-background"]["clean"]


def random_state(model):
    gen = torch.Generator().manual_seed(0)
    return {
        k: (torch.rand(v.shape, generator=gen) * 0.1 + 0.5)
        if "running_var" in k or "bn.weight" in k
        else torch.randn(v.shape, generator=gen) * 0.05
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }


def test_weights_recorded_and_lpips_fvd_computed(mini_set, tmp_path):
    from dynamictrl.eval.i3d import InceptionI3D
    from dynamictrl.eval.lpips import VGG16Features
    from dynamictrl.eval.weights import sha256_file

    wdir = tmp_path / "weights"
    wdir.mkdir()
    torch.save(random_state(VGG16Features()), wdir / "vgg16-397923af.pth")
    torch.save(
        {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((64, 128, 256, 512, 512))},
        wdir / "vgg.pth",
    )
    torch.save(random_state(InceptionI3D()), wdir / "i3d_pretrained_400.pt")
    cfg = EvalConfig(weights_dir=wdir, disco_size=64, input_sizes={"fvd": 32}, show_progress=False)
    res = evaluate(mini_set / "gt", mini_set / "pred", ["repeat-reference"], cfg)
    assert res["weights"] == {
        f: sha256_file(wdir / f) for f in ("i3d_pretrained_400.pt", "vgg.pth", "vgg16-397923af.pth")
    }
    assert set(res["skipped"]) == {"fid_vid", "fid"}
    pred, ref = res["sources"]["pred"], res["sources"]["baseline:repeat-reference"]
    for profile in ("disco", "clean"):
        assert pred[profile]["lpips"] == pytest.approx(0.0, abs=1e-6) and ref[profile]["lpips"] > 0
        assert pred[profile]["fvd"] == pytest.approx(0.0, abs=1e-3) and ref[profile]["fvd"] > pred[profile]["fvd"]
    assert any("rank-deficient" in n for n in res["notes"])  # 2 videos for 400-d features
    table = markdown_table(res)
    assert "Weight files (sha256)" in table and "resnet-50-kinetics.pth" in table


def test_mismatched_frames_and_size_name_the_file(mini_set, tmp_path):
    video, *_ = make_clip("clip_a")
    bad = tmp_path / "bad"
    write_video(bad / "clip_a.mp4", video[:-1], lossless=True)
    write_video(bad / "videos" / "clip_b.mp4", video, lossless=True)  # also accepted under videos/
    with pytest.raises(ValueError, match=r"bad/clip_a\.mp4: 7 frames.*has 8"):
        evaluate(mini_set / "gt", bad, cfg=EvalConfig(show_progress=False))

    big = tmp_path / "big"
    for name in NAMES:
        v, *_ = make_clip(name)
        write_video(big / f"{name}.mp4", np.repeat(np.repeat(v, 2, axis=1), 2, axis=2), lossless=True)
    with pytest.raises(ValueError, match=r"big/clip_a\.mp4: frame size 64x64.*is 32x32.*--no-resize-pred"):
        evaluate(mini_set / "gt", big, cfg=EvalConfig(resize_pred=False, show_progress=False))
    res = evaluate(mini_set / "gt", big, cfg=EvalConfig(profiles=("clean",), show_progress=False))  # the default
    assert res["sources"]["pred"]["clean"]["psnr"] > 20  # upsampled then resized back: close to the truth
    assert any("2 prediction(s) resized" in note and "big/clip_a.mp4 (64x64)" in note for note in res["notes"])

    with pytest.raises(FileNotFoundError, match=r"missing/clip_a\.mp4"):
        evaluate(mini_set / "gt", tmp_path / "missing", cfg=EvalConfig(show_progress=False))


def test_repeat_first_frame_baseline(tmp_path):
    from dynamictrl.data.io import write_video
    from dynamictrl.eval.baselines import make_baseline

    frames = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    write_video(tmp_path / "videos" / "clip.mp4", frames, lossless=True)
    out = make_baseline("repeat-first-frame", tmp_path, "clip", 5, 8, 8)
    assert out.shape == (5, 8, 8, 3)
    assert (out == frames[0]).all()


def test_arm_metrics_read_the_part_labels_and_are_skipped_with_a_note_without_them(tmp_path):
    import shutil

    from dynamictrl.puppet.export import write_dataset

    gt = tmp_path / "gt"
    names = write_dataset(gt, 2, split="val", size=48, frames=5, style="demo", seed=200001, progress=False)
    cfg = EvalConfig(profiles=("clean",), show_progress=False)
    res = evaluate(gt, gt / "videos", ["repeat-reference"], cfg)  # the ground truth as the prediction
    pred, ref = res["sources"]["pred"]["synthetic"], res["sources"]["baseline:repeat-reference"]["synthetic"]
    assert pred["arm_iou"] == 1.0 and pred["arm_keypoint_hits"] == 1.0
    assert ref["arm_iou"] < 0.5
    assert "arm IoU ↑" in markdown_table(res) and not any("part labels" in n for n in res["notes"])

    (gt / "parts" / f"{names[1]}.npz").unlink()  # a dataset written before part labels existed
    res = evaluate(gt, None, ["repeat-reference"], cfg)
    per_video = res["sources"]["baseline:repeat-reference"]["per_video"]
    assert "arm_iou" in per_video[names[0]]["synthetic"] and "arm_iou" not in per_video[names[1]]["synthetic"]
    assert any(f"no part labels in {gt / 'parts'} for 1 of 2 videos ({names[1]})" in n for n in res["notes"])

    shutil.rmtree(gt / "parts")
    res = evaluate(gt, None, ["repeat-reference"], cfg)
    assert "arm_iou" not in res["sources"]["baseline:repeat-reference"]["synthetic"]
    assert "arm IoU ↑" not in markdown_table(res)
