"""tools/make_synthetic.py and the dataset layout it writes (read back exactly, lossless)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from dynamictrl.data.io import read_image, read_video
from dynamictrl.puppet import make_sample
from dynamictrl.puppet.draw import PART_LABELS
from dynamictrl.puppet.export import read_parts, write_dataset

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("make_synthetic", ROOT / "tools" / "make_synthetic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_synthetic_writes_the_official_layout(tmp_path):
    out = tmp_path / "synth"
    rc = _tool().main(
        [
            "--out",
            str(out),
            "--num",
            "2",
            "--size",
            "32",
            "--frames",
            "5",
            "--split",
            "test",
            "--seed",
            "7",
            "--style",
            "demo",
        ]
    )
    assert rc == 0
    names = ["synth_test_000007", "synth_test_000008"]
    prompts = (out / "prompts.txt").read_text().splitlines()
    assert [p.split("#####")[0] for p in prompts] == [f"{n}.mp4" for n in names]
    assert (out / "videos.txt").read_text().splitlines() == [f"videos/{n}.mp4" for n in names]
    metas = [json.loads(line) for line in (out / "meta.jsonl").read_text().splitlines()]
    assert [m["name"] for m in metas] == names
    for name, prompt, meta in zip(names, prompts, metas):
        sample = make_sample(meta["seed"], split="test", size=32, frames=5, style="demo")
        assert prompt.split("#####", 1)[1] == sample.caption == meta["caption"]
        assert meta["split"] == "test" and meta["motion"] == json.loads(json.dumps(sample.meta["motion"]))
        for sub, expected in (
            ("videos", sample.video),
            ("poses", sample.pose_video),
            ("backgrounds", sample.background),
        ):
            frames, fps = read_video(out / sub / f"{name}.mp4")
            assert frames.shape == (5, 32, 32, 3) and fps == pytest.approx(8.0)
            np.testing.assert_array_equal(frames, expected)  # lossless round trip
        masks, _ = read_video(out / "masks" / f"{name}.mp4")
        assert masks.shape == (5, 32, 32, 3)
        np.testing.assert_array_equal(masks[..., 0] > 127, sample.masks)
        assert set(np.unique(masks)) <= {0, 255}
        np.testing.assert_array_equal(read_image(out / "references" / f"{name}.png"), sample.reference)
        ref_mask = read_image(out / "reference_masks" / f"{name}.png", mode="L")
        np.testing.assert_array_equal(ref_mask > 127, sample.reference_mask)
        parts = read_parts(out / "parts" / f"{name}.npz")
        np.testing.assert_array_equal(parts["labels"], sample.parts)
        np.testing.assert_array_equal(parts["reference_labels"], sample.reference_parts)
        assert tuple(parts["names"]) == PART_LABELS
        np.testing.assert_array_equal(parts["keypoints"], sample.keypoints.body.astype(np.float32))


def test_existing_dataset_needs_overwrite(tmp_path):
    write_dataset(tmp_path, 1, size=16, frames=2, progress=False)
    with pytest.raises(FileExistsError):
        write_dataset(tmp_path, 1, size=16, frames=2, progress=False)
    write_dataset(tmp_path, 1, size=16, frames=2, seed=3, overwrite=True, progress=False)
    assert (tmp_path / "prompts.txt").read_text().startswith("synth_train_000003.mp4#####")


def test_bad_arguments_fail_before_writing(tmp_path):
    with pytest.raises(ValueError, match="style"):
        write_dataset(tmp_path / "x", 1, style="fancy", progress=False)
    assert not (tmp_path / "x").exists()
    assert _tool().main(["--out", str(tmp_path / "y"), "--num", "0"]) == 2


def test_swapped_twin_keeps_names_references_and_masks(tmp_path):
    plain = write_dataset(tmp_path / "a", num=2, split="test", size=32, frames=5, style="demo", progress=False)
    swapped = write_dataset(
        tmp_path / "b", num=2, split="test", size=32, frames=5, style="demo", progress=False, swap_background=True
    )
    assert plain == swapped
    metas = [json.loads(line) for line in (tmp_path / "b" / "meta.jsonl").read_text().splitlines()]
    for name, meta in zip(swapped, metas):
        assert meta["background"]["color"] != meta["background_swapped_from"]["color"]
        a, b = tmp_path / "a", tmp_path / "b"
        for sub in ("references", "reference_masks"):
            assert (read_image(a / sub / f"{name}.png") == read_image(b / sub / f"{name}.png")).all()
        assert (read_video(a / "masks" / f"{name}.mp4")[0] == read_video(b / "masks" / f"{name}.mp4")[0]).all()
        assert (read_video(a / "videos" / f"{name}.mp4")[0] != read_video(b / "videos" / f"{name}.mp4")[0]).any()
