"""Drawing styles of the puppet world that are defined by a table: the broad training world and its held-out test.

``"demo"`` (bold colours, plain walls) and ``"full"`` (every pattern and colour) are the original styles, drawn by
the code paths in :mod:`.background`, :mod:`.clothing` and :mod:`.world` and kept bit-identical. The two styles
here split the world so that generalisation can be measured:

* ``"wide"`` (train): every background kind except the held-out ones, every colour except the held-out ones,
  people from small to large, thin to stocky, anywhere on the floor, pose sticks 1 or 2 px wide (64 px frames).
* ``"heldout"`` (test only): backgrounds and clothes the ``"wide"`` world never draws (the held-out patterns, the
  held-out colours), a small, thin person and the thinnest pose sticks (the DWPose default at 64 px).
"""

from __future__ import annotations

from dataclasses import dataclass

from dynamictrl.puppet.palette import BACKGROUND_COLORS_FULL, COLORS

#: Background patterns and colours that only the "heldout" style draws.
HELD_OUT_PATTERNS: tuple[str, ...] = ("dots", "hstripes")
HELD_OUT_COLORS: tuple[str, ...] = ("teal", "navy", "beige", "brown")


@dataclass(frozen=True)
class WorldStyle:
    """What one table-defined style draws. Ranges are ``(low, high)`` for a uniform draw."""

    patterns: dict[str, float]  # background pattern -> sampling weight
    wall_colors: tuple[str, ...]
    secondary_colors: tuple[str, ...]  # stripe / check / dot colours of patterned walls
    clothing_colors: tuple[str, ...]
    person_height: tuple[float, float]  # standing height, fraction of the frame height
    limb_thickness: tuple[float, float]  # factor on every limb radius
    ground: tuple[float, float]  # feet line, fraction of the frame height
    pose_stick_widths: tuple[int, ...]  # half-width of pose-video sticks at 64 px (scaled with the frame size)


_WIDE_PATTERNS = {"plain": 0.24, "vstripes": 0.14, "checks": 0.14, "brick": 0.2, "sky": 0.14, "grass": 0.14}
_TRAIN_COLORS = tuple(c for c in COLORS if c not in HELD_OUT_COLORS)

WORLD_STYLES: dict[str, WorldStyle] = {
    "wide": WorldStyle(
        patterns=_WIDE_PATTERNS,
        wall_colors=tuple(c for c in BACKGROUND_COLORS_FULL if c not in HELD_OUT_COLORS),
        secondary_colors=("white", "black", "yellow", "blue", "red", "green", "grey"),
        clothing_colors=_TRAIN_COLORS,
        person_height=(0.45, 0.85),
        limb_thickness=(0.8, 1.3),
        ground=(0.82, 0.97),
        pose_stick_widths=(1, 1, 2),
    ),
    "heldout": WorldStyle(
        patterns={"dots": 0.4, "hstripes": 0.4, "plain": 0.2},
        wall_colors=HELD_OUT_COLORS,
        secondary_colors=("white", "black", "yellow", "orange", "pink"),
        clothing_colors=HELD_OUT_COLORS + ("orange", "pink", "white"),
        person_height=(0.45, 0.6),
        limb_thickness=(0.75, 0.9),
        ground=(0.85, 0.95),
        pose_stick_widths=(1,),
    ),
}


def stick_width_for(style: WorldStyle, draw: int, size: int) -> int:
    """Pose-video stick half-width (pixels) for choice index ``draw`` of ``style`` at frame size ``size``."""
    return max(1, round(style.pose_stick_widths[draw] * size / 64))
