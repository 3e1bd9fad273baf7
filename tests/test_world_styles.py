"""The table-defined puppet styles: "wide" (training) never draws what "heldout" (test) is made of."""

import numpy as np
import pytest

from dynamictrl.puppet import make_sample
from dynamictrl.puppet.background import background_from_caption
from dynamictrl.puppet.styles import HELD_OUT_COLORS, HELD_OUT_PATTERNS, WORLD_STYLES
from dynamictrl.puppet.vae import VAETrainConfig


def _colours_of(sample) -> set[str]:
    meta = sample.meta
    clothes = meta["clothing"]
    walls = [meta["background"], meta["reference_background"]]
    return {clothes["shirt_color"], clothes["shirt_secondary"], clothes["bottom_color"], clothes["shoes_color"]} | {
        c for w in walls for c in (w["color"], w["secondary"])
    }


def test_wide_style_draws_no_held_out_pattern_or_colour_in_60_clips():
    for seed in range(60):
        s = make_sample(seed, split="train", size=32, frames=1, style="wide", render_pose=False)
        assert s.meta["background"]["pattern"] not in HELD_OUT_PATTERNS
        assert s.meta["reference_background"]["pattern"] not in HELD_OUT_PATTERNS
        assert not _colours_of(s) & set(HELD_OUT_COLORS), (seed, s.caption)


def test_heldout_style_walls_are_held_out_colours_and_the_reference_keeps_the_clip_wall():
    patterns = set()
    for seed in range(40):
        s = make_sample(seed, split="test", size=32, frames=1, style="heldout", render_pose=False)
        assert s.meta["background"]["color"] in HELD_OUT_COLORS
        assert s.meta["reference_background"] == s.meta["background"]
        assert background_from_caption(s.caption).pattern == s.meta["background"]["pattern"]
        patterns.add(s.meta["background"]["pattern"])
    assert set(HELD_OUT_PATTERNS) <= patterns


def test_wide_style_varies_person_size_and_pose_stick_width():
    samples = [make_sample(seed, split="train", size=64, frames=1, style="wide") for seed in range(30)]
    heights = [s.meta["layout"]["person_height_px"] for s in samples]
    widths = {s.meta["pose_stick_width"] for s in samples}
    lo, hi = WORLD_STYLES["wide"].person_height
    assert min(heights) < (lo + 0.1) * 64 and max(heights) > (hi - 0.1) * 64
    assert widths == {1, 2}
    drawn = {
        w: np.mean([(s.pose_video.max(-1) > 40).mean() for s in samples if s.meta["pose_stick_width"] == w])
        for w in widths
    }
    assert drawn[2] > 1.2 * drawn[1]  # thicker sticks cover more of the frame


def test_original_styles_keep_the_renderer_default_stick_width():
    for style in ("demo", "full"):
        assert make_sample(0, split="train", size=64, frames=1, style=style).meta["pose_stick_width"] is None


def test_vae_config_rejects_an_unknown_broad_style():
    with pytest.raises(ValueError, match="unknown style 'wild'"):
        VAETrainConfig(out_dir="x", broad_style="wild")


@pytest.mark.parametrize("style", ["full", "wide"])
def test_swapped_background_is_the_wall_its_caption_names(style):
    for seed in range(40):
        s = make_sample(seed, split="test", size=32, frames=1, style=style, render_pose=False, swap_background=True)
        named = background_from_caption(s.caption)
        wall = s.meta["background"]
        assert (named.pattern, named.color, named.secondary) == (wall["pattern"], wall["color"], wall["secondary"]), (
            seed,
            s.caption,
            wall,
        )


def test_recoloured_background_keeps_its_pattern_unless_the_caption_fixes_the_colour():
    from dynamictrl.puppet.background import BackgroundSpec, mortar_for

    stripes = BackgroundSpec("vstripes", "red", "white", 0.01, 5, (0.1, 0.2))
    assert stripes.with_color("blue") == BackgroundSpec("vstripes", "blue", "white", 0.01, 5, (0.1, 0.2))
    sky = BackgroundSpec("sky", "blue", "white", 0.0, 3, (0.0, 0.0))
    assert (sky.with_color("pink").pattern, sky.with_color("pink").secondary) == ("plain", None)
    assert BackgroundSpec("brick", "red", "white", 0.0, 3, (0.0, 0.0)).with_color("white").secondary == mortar_for(
        "white"
    )
