"""The synthetic puppet world: determinism, split disjointness, exact masks, keypoints on the puppet, captions."""

import numpy as np
import pytest

from dynamictrl.pose.keypoints import BODY_INDEX
from dynamictrl.pose.render import render_pose_sequence
from dynamictrl.puppet import (
    MOTION_FAMILIES,
    SPLITS,
    PuppetWorld,
    background_from_caption,
    make_sample,
    split_families,
    tempo_bands,
)
from dynamictrl.puppet.draw import PART_LABELS
from dynamictrl.puppet.motion import sample_motion
from dynamictrl.puppet.palette import COLORS

SIZE, FRAMES = 48, 7


def _arrays(s):
    return [
        s.video,
        s.pose_video,
        s.keypoints.body,
        s.keypoints.body_score,
        s.reference,
        s.reference_mask,
        s.masks,
        s.background,
        s.reference_pose.body,
        s.parts,
        s.reference_parts,
    ]


def test_same_seed_gives_identical_sample_and_other_seeds_differ():
    a = make_sample(3, size=SIZE, frames=FRAMES)
    b = make_sample(3, size=SIZE, frames=FRAMES)
    for x, y in zip(_arrays(a), _arrays(b)):
        np.testing.assert_array_equal(x, y)
    assert a.caption == b.caption and a.meta == b.meta
    other_seed = make_sample(4, size=SIZE, frames=FRAMES)
    other_split = make_sample(3, split="test", size=SIZE, frames=FRAMES)
    assert not np.array_equal(a.video, other_seed.video)
    assert not np.array_equal(a.video, other_split.video)


def test_shapes_and_dtypes():
    s = make_sample(0, size=SIZE, frames=FRAMES, height=40)
    h, w = 40, SIZE
    assert s.video.shape == s.pose_video.shape == s.background.shape == (FRAMES, h, w, 3)
    assert s.video.dtype == s.pose_video.dtype == s.background.dtype == np.uint8
    assert s.masks.shape == (FRAMES, h, w) and s.masks.dtype == bool
    assert s.reference.shape == (h, w, 3) and s.reference_mask.shape == (h, w)
    assert len(s.keypoints) == FRAMES and (s.keypoints.height, s.keypoints.width) == (h, w)
    assert len(s.reference_pose) == 1
    assert s.masks.any(axis=(1, 2)).all() and s.reference_mask.any()


def test_scene_does_not_depend_on_resolution():
    small = make_sample(11, size=32, frames=5)
    big = make_sample(11, size=64, frames=5)
    assert small.caption == big.caption
    assert small.meta["motion"] == big.meta["motion"]
    np.testing.assert_allclose(big.keypoints.body, 2 * small.keypoints.body, atol=1e-3)


@pytest.mark.parametrize(
    "bad", [dict(split="training"), dict(style="hard"), dict(size=8), dict(frames=0), dict(seed=-1)]
)
def test_bad_arguments_raise_value_error(bad):
    kwargs = dict(seed=0, size=SIZE, frames=FRAMES) | bad
    with pytest.raises(ValueError):
        make_sample(**kwargs)


def test_motion_split_is_disjoint():
    families = {s: set(split_families(s)) for s in SPLITS}
    assert {"side_step", "arm_circles"} <= families["val"] - families["train"] - families["test"]
    assert {"jumping_jack", "kick"} <= families["test"] - families["train"] - families["val"]
    for name in MOTION_FAMILIES:
        bands = {s: tempo_bands(name, s) for s in SPLITS}
        for s1, s2 in (("train", "val"), ("train", "test"), ("val", "test")):
            for lo1, hi1 in bands[s1]:
                for lo2, hi2 in bands[s2]:
                    assert hi1 <= lo2 or hi2 <= lo1, (name, s1, s2)
    # Drawn motions: no test/val motion has a (family, tempo) that training can produce.
    train_bands = {n: tempo_bands(n, "train") for n in MOTION_FAMILIES}
    seen = {s: set() for s in SPLITS}
    for split in SPLITS:
        for seed in range(300):
            _, info = sample_motion(np.random.default_rng([seed, SPLITS.index(split)]), split)
            seen[split].add(info["family"])
            in_train = any(lo <= info["tempo_hz"] < hi for lo, hi in train_bands[info["family"]])
            assert in_train == (split == "train"), (split, info)
    assert seen["test"] - seen["train"] and seen["val"] - seen["train"]
    meta = make_sample(5, split="test", size=SIZE, frames=3).meta["motion"]
    assert not any(lo <= meta["tempo_hz"] < hi for lo, hi in train_bands[meta["family"]])


@pytest.mark.parametrize("style", ["demo", "full"])
def test_masks_cover_exactly_the_pixels_that_differ_from_the_background(style):
    for seed in range(3):
        s = make_sample(seed, size=SIZE, frames=FRAMES, style=style)
        differs = (s.video != s.background).any(-1)
        np.testing.assert_array_equal(differs, s.masks)
        if style == "demo":  # plain wall: every background pixel is the named colour
            assert s.meta["background"]["pattern"] == "plain"
            assert (s.background == np.array(COLORS[s.meta["background"]["color"]], np.uint8)).all()
            np.testing.assert_array_equal((s.reference != s.background[0]).any(-1), s.reference_mask)


@pytest.mark.parametrize("style", ["demo", "full", "wide", "heldout"])
def test_part_labels_cover_exactly_the_person_and_the_joints_lie_on_their_own_limbs(style):
    own = {"wrist": ("hand",), "elbow": ("upper_arm", "forearm"), "knee": ("thigh", "shin")}
    hits, counts = dict.fromkeys(own, 0), dict.fromkeys(own, 0)
    for seed in range(4):
        s = make_sample(seed, size=SIZE, frames=FRAMES, style=style)
        assert s.parts.shape == s.masks.shape and s.parts.dtype == np.uint8
        np.testing.assert_array_equal(s.parts > 0, s.masks)
        np.testing.assert_array_equal(s.reference_parts > 0, s.reference_mask)
        assert s.parts.max() < len(PART_LABELS)
        for t in range(FRAMES):
            for side in ("right", "left"):
                for joint, limbs in own.items():
                    x, y = np.rint(s.keypoints.body[t, BODY_INDEX[f"{side}_{joint}"]]).astype(int)
                    if 0 <= x < SIZE and 0 <= y < SIZE:
                        counts[joint] += 1
                        hits[joint] += PART_LABELS[s.parts[t, y, x]] in {f"{side}_{limb}" for limb in limbs}
    # a joint may be hidden behind the torso or the other limb, but mostly it shows its own limb (left is left)
    assert hits["knee"] >= 0.9 * counts["knee"], (hits, counts)
    assert hits["wrist"] >= 0.6 * counts["wrist"] and hits["elbow"] >= 0.6 * counts["elbow"], (hits, counts)


def test_pose_video_is_the_renderer_output_and_keypoints_lie_on_the_puppet():
    joints = [
        BODY_INDEX[n]
        for n in (
            "neck",
            "nose",
            "right_shoulder",
            "left_shoulder",
            "right_elbow",
            "left_elbow",
            "right_wrist",
            "left_wrist",
            "right_hip",
            "left_hip",
            "right_knee",
            "left_knee",
            "right_ankle",
            "left_ankle",
        )
    ]
    checked = 0
    for seed in range(4):
        s = make_sample(seed, size=64, frames=5)
        np.testing.assert_array_equal(s.pose_video, render_pose_sequence(s.keypoints))
        for t in range(len(s.keypoints)):
            for j in joints:
                if s.keypoints.body_score[t, j] < 0.3:
                    continue
                x, y = np.rint(s.keypoints.body[t, j]).astype(int)
                # the joint is on the drawn person (within one pixel) and the renderer drew colour there
                assert s.masks[t, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].any(), (seed, t, j)
                assert s.pose_video[t, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].max() > 0, (seed, t, j)
                checked += 1
        # pose strokes only where the puppet is (up to the stroke width)
        drawn = s.pose_video.max(-1) > 0
        near = (
            s.masks
            | np.roll(s.masks, 2, 1)
            | np.roll(s.masks, -2, 1)
            | np.roll(s.masks, 2, 2)
            | np.roll(s.masks, -2, 2)
        )
        assert (drawn & ~near).mean() < 0.002
    assert checked > 200


def test_face_keypoints_follow_the_head_turn():
    # Facing away from the camera hides the eyes and nose; facing it shows them.
    scores = []
    for seed in range(40):
        s = make_sample(seed, size=32, frames=9, render_pose=False)
        scores.append(s.keypoints.body_score[:, [BODY_INDEX["nose"], BODY_INDEX["right_eye"]]])
    scores = np.concatenate(scores)
    assert (scores == 1).any() and (scores == 0).any()


def test_caption_names_background_and_clothing_from_meta():
    for seed in range(6):
        for style in ("full", "demo"):
            s = make_sample(seed, size=32, frames=2, style=style, render_pose=False)
            bg, cl = s.meta["background"], s.meta["clothing"]
            assert s.caption.startswith("The person in the image is wearing ")
            assert s.caption.endswith(f"The background is {bg['name']}.")
            assert bg["color"] in bg["name"]
            for key in ("shirt_color", "bottom_color", "shoes_color", "hair_color", "bottom"):
                assert cl[key] in s.caption
            if cl["shirt_pattern"] != "solid":
                assert cl["shirt_secondary"] in s.caption
            if style == "demo":
                assert cl["shirt_pattern"] == "solid" and bg["pattern"] == "plain"


@pytest.mark.parametrize("split", SPLITS)
def test_motion_is_smooth(split):
    # Joints move less than a quarter frame per frame and accelerate smoothly (no jumps or wrap-arounds).
    for seed in range(12):
        s = make_sample(seed, split=split, size=64, frames=13, render_pose=False)
        body = s.keypoints.body[:, :14]  # (T, 14, 2) body joints
        step = np.linalg.norm(np.diff(body, axis=0), axis=-1)
        assert step.max() < 0.25 * 64, (seed, s.meta["motion"], step.max())
        jerk = np.linalg.norm(np.diff(body, 2, axis=0), axis=-1)
        assert jerk.max() < 0.25 * 64, (seed, s.meta["motion"], jerk.max())


def test_background_is_recovered_from_the_caption():
    patterns = set()
    for seed in range(60):
        s = make_sample(seed, size=16, frames=1, render_pose=False)
        spec = background_from_caption(s.caption)
        bg = s.meta["background"]
        assert spec is not None, s.caption
        assert (spec.pattern, spec.color, spec.secondary, spec.name) == (
            bg["pattern"],
            bg["color"],
            bg["secondary"],
            bg["name"],
        )
        assert list(spec.color_rgb) == bg["color_rgb"]
        assert (None if spec.secondary_rgb is None else list(spec.secondary_rgb)) == bg["secondary_rgb"]
        patterns.add(spec.pattern)
    assert len(patterns) >= 6
    assert background_from_caption("The person is dancing. The background is a plain mauve wall.") is None


def test_demo_style_is_in_place_with_solid_clothes_on_plain_walls():
    for seed in range(20):
        s = make_sample(seed, size=16, frames=1, style="demo", render_pose=False)
        assert s.meta["background"]["pattern"] == "plain" and s.meta["background"]["pan"] == 0.0
        assert s.meta["clothing"]["shirt_pattern"] == "solid"
        assert not s.meta["motion"]["travel"] or s.meta["motion"]["family"] == "side_step"


def test_reference_is_the_same_puppet_in_another_pose():
    for seed in range(4):
        s = make_sample(seed, size=SIZE, frames=3, style="demo", render_pose=False)
        assert np.abs(s.reference_pose.body[0] - s.keypoints.body[0]).max() > 1.0
        # same clothes: the person's most common colour in the reference is among the clip's person colours
        ref_colors, counts = np.unique(s.reference[s.reference_mask], axis=0, return_counts=True)
        clip_colors = {tuple(c) for c in np.unique(s.video[s.masks], axis=0)}
        assert tuple(ref_colors[counts.argmax()]) in clip_colors


def test_puppet_world_indexes_make_sample():
    world = PuppetWorld(3, split="val", size=24, frames=2, style="demo", base_seed=10)
    assert len(world) == 3 and len(list(world)) == 3
    np.testing.assert_array_equal(world[1].video, make_sample(11, split="val", size=24, frames=2, style="demo").video)
    with pytest.raises(IndexError):
        world[3]


@pytest.mark.parametrize("style", ["demo", "full"])
def test_swap_background_changes_only_the_wall_of_the_clip(style):
    for seed in range(4):
        a = make_sample(seed, split="test", size=SIZE, frames=FRAMES, style=style)
        b = make_sample(seed, split="test", size=SIZE, frames=FRAMES, style=style, swap_background=True)
        old, new = a.meta["background"], b.meta["background"]
        assert new["color"] != old["color"] and b.meta["background_swapped_from"] == old
        assert f"{new['color']} " in b.caption.split("background")[-1]
        assert b.caption.split(". The background")[0] == a.caption.split(". The background")[0]  # same clothes
        # same puppet, motion and reference; the person's pixels may differ by the one-level nudge of _composite
        assert (a.masks == b.masks).all() and (a.reference == b.reference).all()
        assert (a.keypoints.body == b.keypoints.body).all()
        diff = np.abs(a.video.astype(int) - b.video.astype(int))
        assert diff[a.masks].max() <= 1
        assert (diff[~a.masks].sum(-1) > 0).mean() > 0.5  # the wall changed (patterns keep their second colour)
        assert "background_swapped_from" not in a.meta
