"""The synthetic puppet world: procedurally drawn people with exact ground truth (pose, masks, background, caption).

``make_sample(seed, split, size, frames, style)`` gives one clip; ``PuppetWorld`` indexes many;
``tools/make_synthetic.py`` writes them in the official training-data layout.
"""

from dynamictrl.puppet.background import (
    BACKGROUND_TEMPLATES,
    BackgroundSpec,
    background_from_caption,
    render_background,
)
from dynamictrl.puppet.clothing import Appearance, make_caption, replace_background
from dynamictrl.puppet.motion import MOTION_FAMILIES, SPLITS, split_families, tempo_bands
from dynamictrl.puppet.world import STYLES, PuppetWorld, SyntheticSample, make_sample

__all__ = [
    "BACKGROUND_TEMPLATES",
    "MOTION_FAMILIES",
    "SPLITS",
    "STYLES",
    "Appearance",
    "BackgroundSpec",
    "PuppetWorld",
    "SyntheticSample",
    "background_from_caption",
    "make_caption",
    "make_sample",
    "replace_background",
    "render_background",
    "split_families",
    "tempo_bands",
]
