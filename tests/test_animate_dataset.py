"""tools/animate_dataset.py: every clip of a dataset folder animated into NAME.mp4 files for evaluate.py."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dynamictrl.data.io import read_video
from dynamictrl.models.tiny import build_tiny_components
from dynamictrl.pipelines import DynamiCtrlPipeline
from dynamictrl.puppet.export import write_dataset

ROOT = Path(__file__).resolve().parents[1]


def load_tool():
    spec = importlib.util.spec_from_file_location("animate_dataset", ROOT / "dynamictrl" / "cli" / "animate_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def still_pipe(seen: list):
    """Stands in for the pipeline: records each call's arguments in ``seen``, returns the reference as a still video."""

    def spy(**kwargs):
        seen.append(kwargs)
        frames = np.repeat(kwargs["image"][None].astype(np.float32) / 255, kwargs["num_frames"], axis=0)
        return SimpleNamespace(frames=frames[None])

    return spy


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("animate")
    write_dataset(root / "data", num=2, split="test", size=64, frames=9, style="demo", seed=0, progress=False)
    return root / "data"


def test_animates_every_clip_with_its_first_frame_and_caption(dataset, tmp_path):
    tool = load_tool()
    pipe = DynamiCtrlPipeline(**build_tiny_components())
    pipe.set_progress_bar_config(disable=True)
    seen = []
    call = pipe.__call__

    def spy(**kwargs):
        seen.append(kwargs)
        return call(**kwargs)

    names = tool.animate_dataset(spy, dataset, tmp_path, steps=1, contact_sheets=1, prompt_override="a blue wall")
    assert len(names) == 2
    for name, kwargs in zip(names, seen):
        video, _ = read_video(dataset / "videos" / f"{name}.mp4")
        assert (kwargs["image"] == video[0]).all()  # the reference is the clip's first frame
        assert kwargs["prompt"] == "a blue wall"
        pred, _ = read_video(tmp_path / f"{name}.mp4")
        assert pred.shape == video.shape
    assert (tmp_path / f"{names[0]}.png").is_file() and not (tmp_path / f"{names[1]}.png").exists()


def test_other_pose_reference_starts_from_the_reference_pose(dataset, tmp_path):
    from dynamictrl.data.io import read_image

    tool = load_tool()
    seen = []
    spy = still_pipe(seen)

    names = tool.animate_dataset(spy, dataset, tmp_path, steps=1, reference="other-pose")
    for name, kwargs in zip(names, seen):
        poses, _ = read_video(dataset / "poses" / f"{name}.mp4")
        assert (kwargs["image"] == read_image(dataset / "references" / f"{name}.png")).all()
        assert (kwargs["pose_video"][0] == read_image(dataset / "reference_poses" / f"{name}.png")).all()
        assert (kwargs["pose_video"][1:] == poses[1:]).all()
    with pytest.raises(ValueError, match="reference must be one of"):
        tool.animate_dataset(spy, dataset, tmp_path, reference="random")


@pytest.mark.parametrize("reference", ["first-frame", "other-pose"])
def test_mask_reference_uses_the_mask_of_the_image_it_masks(dataset, tmp_path, reference):
    from dynamictrl.data.io import read_image

    tool = load_tool()
    seen = []
    spy = still_pipe(seen)

    names = tool.animate_dataset(spy, dataset, tmp_path, steps=1, mask_reference=True, reference=reference)
    for name, kwargs in zip(names, seen):
        if reference == "other-pose":
            expected = read_image(dataset / "reference_masks" / f"{name}.png", mode="L")
        else:
            expected = read_video(dataset / "masks" / f"{name}.mp4")[0][0, ..., 0]
        assert kwargs["reference_mask"].shape == kwargs["image"].shape[:2]
        assert ((kwargs["reference_mask"] > 127) == (expected > 127)).all()
        assert (kwargs["reference_mask"] > 127).any()
    # the reference is not in the pose of the clip's frame 0: the two masks differ
    if reference == "other-pose":
        first = read_video(dataset / "masks" / f"{names[0]}.mp4")[0][0, ..., 0]
        assert ((seen[0]["reference_mask"] > 127) != (first > 127)).any()


def test_long_videos_chain_clips_with_a_background_per_clip(tmp_path):
    data = tmp_path / "long"
    write_dataset(data, num=1, split="test", size=32, frames=17, style="demo", seed=0, progress=False)
    tool = load_tool()
    seen = []
    spy = still_pipe(seen)

    backgrounds = ["a plain red wall", "a plain blue wall"]
    names = tool.animate_dataset(
        spy, data, tmp_path / "out", steps=1, mask_reference=True, clip_frames=9, backgrounds=backgrounds,
        color_match=False,
    )  # fmt: skip
    assert len(seen) == 2 and [k["num_frames"] for k in seen] == [9, 9]
    for kwargs, background in zip(seen, backgrounds):
        assert kwargs["prompt"].endswith(f"The background is {background}.")
        assert kwargs["prompt"].startswith("The person in the image is wearing")
        assert kwargs["reference_mask"] is not None  # chained references are masked too
    pred, _ = read_video(tmp_path / "out" / f"{names[0]}.mp4")
    assert len(pred) == 17
    with pytest.raises(ValueError, match="need clip_frames"):
        tool.animate_dataset(spy, data, tmp_path / "x", backgrounds=backgrounds)


def test_replace_background_names_the_new_wall():
    from dynamictrl.puppet import replace_background

    caption = "The person in the image is wearing a red t-shirt. The background is a plain blue wall."
    assert replace_background(caption, "a plain red wall").endswith("The background is a plain red wall.")
    with pytest.raises(ValueError, match="no 'The background is"):
        replace_background("a person dancing", "a plain red wall")
