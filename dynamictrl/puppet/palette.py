"""Named colours of the puppet world: every colour a caption mentions maps to one exact RGB value.

Captions and evaluation both go through these tables, so "a red brick wall" always means the same pixels.
"""

from __future__ import annotations

import numpy as np

#: Colour name -> RGB. Used for clothing and backgrounds; names are what captions say.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (205, 35, 35),
    "orange": (240, 125, 20),
    "yellow": (245, 215, 40),
    "green": (45, 160, 60),
    "blue": (35, 80, 210),
    "purple": (125, 55, 170),
    "pink": (245, 135, 180),
    "teal": (20, 145, 145),
    "white": (242, 242, 242),
    "black": (28, 28, 28),
    "grey": (128, 128, 128),
    "brown": (125, 75, 35),
    "navy": (25, 35, 95),
    "beige": (215, 195, 155),
}

#: Bold, saturated colours used by the ``"demo"`` style (easy for a tiny model to learn).
DEMO_COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white", "black")

#: Colours a wall may have in the ``"full"`` style, and in the ``"demo"`` style.
BACKGROUND_COLORS_FULL: tuple[str, ...] = (
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "teal",
    "white",
    "grey",
    "brown",
    "beige",
)
BACKGROUND_COLORS_DEMO: tuple[str, ...] = ("red", "yellow", "green", "blue", "purple", "white", "grey")

#: Skin tones (not named in captions).
SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (245, 215, 190),
    (230, 185, 150),
    (200, 150, 110),
    (160, 110, 75),
    (110, 75, 50),
)

#: Hair colour name -> RGB.
HAIR_COLORS: dict[str, tuple[int, int, int]] = {
    "black": (30, 25, 22),
    "brown": (95, 60, 30),
    "blonde": (225, 190, 110),
    "red": (170, 65, 30),
    "grey": (160, 160, 160),
}


def rgb(name: str) -> np.ndarray:
    """(3,) float32 RGB of a named colour; unknown names raise ``ValueError`` listing the known ones."""
    if name not in COLORS:
        raise ValueError(f"unknown colour {name!r}; known colours: {sorted(COLORS)}")
    return np.asarray(COLORS[name], dtype=np.float32)


def color_distance(a, b) -> float:
    """Euclidean RGB distance between two colours given as names or RGB triples."""
    a = rgb(a) if isinstance(a, str) else np.asarray(a, dtype=np.float32)
    b = rgb(b) if isinstance(b, str) else np.asarray(b, dtype=np.float32)
    return float(np.linalg.norm(a - b))
