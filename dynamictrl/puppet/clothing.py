"""Puppet appearance (skin, hair, clothing) and the Qwen2-VL-style caption built from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dynamictrl.puppet.background import BackgroundSpec
from dynamictrl.puppet.palette import COLORS, DEMO_COLORS, HAIR_COLORS, SKIN_TONES, color_distance
from dynamictrl.puppet.styles import WORLD_STYLES

SHIRT_PATTERNS: tuple[str, ...] = ("solid", "stripes", "checks")
_MIN_CONTRAST = 90.0  # minimum RGB distance between a garment and the wall / the neighbouring garment


@dataclass(frozen=True)
class Appearance:
    """How the puppet looks. Colour fields are names from :data:`COLORS` (hair: :data:`HAIR_COLORS`)."""

    skin: tuple[int, int, int]
    hair_color: str
    hair_style: str  # "short" | "long"
    shirt_color: str
    shirt_pattern: str  # one of SHIRT_PATTERNS
    shirt_secondary: str | None  # stripe / check colour, None for solid
    sleeves: str  # "short" | "long"
    bottom: str  # "trousers" | "shorts"
    bottom_color: str
    shoes_color: str

    def to_meta(self) -> dict:
        meta = asdict(self)
        meta["skin"] = list(self.skin)
        return meta


def pick_contrasting(rng: np.random.Generator, names, avoid: list[str]) -> str:
    """A colour from ``names`` that is at least _MIN_CONTRAST away from every colour in ``avoid``."""
    ok = [n for n in names if all(color_distance(n, a) >= _MIN_CONTRAST for a in avoid)]
    return str(rng.choice(ok if ok else list(names)))


def sample_appearance(rng: np.random.Generator, style: str, background: BackgroundSpec) -> Appearance:
    """Draw a puppet look that stands out from ``background`` ("demo": solid, bold colours; "wide" / "heldout":
    their table's clothing colours)."""
    names = DEMO_COLORS if style == "demo" else tuple(COLORS)
    if style in WORLD_STYLES:
        names = WORLD_STYLES[style].clothing_colors
    wall = [background.color] + ([background.secondary] if background.secondary in COLORS else [])
    skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
    hair_color = str(rng.choice(list(HAIR_COLORS)))
    hair_style = str(rng.choice(["short", "long"]))
    shirt = pick_contrasting(rng, names, wall)
    pattern = "solid" if style == "demo" else str(rng.choice(SHIRT_PATTERNS, p=[0.5, 0.25, 0.25]))
    secondary = None if pattern == "solid" else pick_contrasting(rng, names, [shirt])
    sleeves = str(rng.choice(["short", "long"]))
    bottom = str(rng.choice(["trousers", "shorts"], p=[0.7, 0.3]))
    bottom_color = pick_contrasting(rng, names, [*wall, shirt])
    shoe_colors = ("black", "white", "brown", "red", "blue")
    if style in WORLD_STYLES:  # a table style's shoes stay inside its palette (held-out colours stay held out)
        shoe_colors = tuple(c for c in shoe_colors if c in names or c in ("black", "white"))
    shoes = pick_contrasting(rng, shoe_colors, [bottom_color])
    return Appearance(skin, hair_color, hair_style, shirt, pattern, secondary, sleeves, bottom, bottom_color, shoes)


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def describe_clothing(look: Appearance) -> str:
    """E.g. ``"a red t-shirt with white stripes, blue trousers and black shoes"``."""
    garment = "t-shirt" if look.sleeves == "short" else "long-sleeved shirt"
    if look.shirt_pattern == "solid":
        shirt = _article(f"{look.shirt_color} {garment}")
    elif look.shirt_pattern == "stripes":
        shirt = _article(f"{look.shirt_color} {garment} with {look.shirt_secondary} stripes")
    else:
        shirt = _article(f"{look.shirt_color} and {look.shirt_secondary} checked {garment}")
    return f"{shirt}, {look.bottom_color} {look.bottom} and {look.shoes_color} shoes"


def make_caption(look: Appearance, background: BackgroundSpec) -> str:
    """The paper's Qwen2-VL caption style: clothing first, then the background."""
    return (
        f"The person in the image is wearing {describe_clothing(look)}. "
        f"They have {look.hair_style} {look.hair_color} hair. "
        f"The background is {background.name}."
    )


def replace_background(caption: str, background: str) -> str:
    """``caption`` with its "The background is ..." sentence naming ``background`` (e.g. "a plain red wall")."""
    head, sep, _ = caption.partition("The background is ")
    if not sep:
        raise ValueError(f"caption has no 'The background is ...' sentence to replace: {caption!r}")
    return f"{head}The background is {background}."
