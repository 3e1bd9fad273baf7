"""Backgrounds a caption can describe exactly: a named colour times a named pattern, optionally panning.

Patterns are analytic functions of wall coordinates measured in frame heights, so a background looks the same
at every resolution and a pan is just an offset of those coordinates (sub-pixel, no resampling).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

import numpy as np

from dynamictrl.puppet.palette import BACKGROUND_COLORS_DEMO, BACKGROUND_COLORS_FULL, COLORS
from dynamictrl.puppet.styles import WORLD_STYLES

#: Pattern -> caption template ({a}: "a" or "an" for the main colour, {c}: main colour, {c2}: secondary colour).
BACKGROUND_TEMPLATES: dict[str, str] = {
    "plain": "a plain {c} wall",
    "vstripes": "{a} {c} wall with {c2} vertical stripes",
    "hstripes": "{a} {c} wall with {c2} horizontal stripes",
    "checks": "{a} {c} and {c2} checkered wall",
    "brick": "{a} {c} brick wall",
    "dots": "{a} {c} wall with {c2} polka dots",
    "sky": "a blue sky with white clouds",
    "grass": "green grass",
}
#: Sampling weights of the patterns in the "full" style (the "demo" style uses "plain" only).
_PATTERN_WEIGHTS = {
    "plain": 0.22,
    "vstripes": 0.1,
    "hstripes": 0.1,
    "checks": 0.1,
    "brick": 0.16,
    "dots": 0.1,
    "sky": 0.06,
    "grass": 0.06,
}
_GRASS_BLADE = (25, 105, 35)  # darker green of grass blades
_NOISE_TILE = 61  # period (pixels) of the static texture noise of "full" backgrounds


@dataclass(frozen=True)
class BackgroundSpec:
    """What a background is; ``name`` is the exact phrase captions use."""

    pattern: str
    color: str
    secondary: str | None
    pan: float  # wall shift per frame, in frame heights (signed; 0 = static)
    noise: int  # amplitude (uint8 levels) of the static per-pixel texture; 0 = flat colours
    phase: tuple[float, float]  # pattern offset (x, y) in frame heights, so walls are not all aligned

    @property
    def name(self) -> str:
        article = "an" if self.color[0] in "aeiou" else "a"
        return BACKGROUND_TEMPLATES[self.pattern].format(a=article, c=self.color, c2=self.secondary)

    @property
    def color_rgb(self) -> tuple[int, int, int]:
        return COLORS[self.color]

    @property
    def secondary_rgb(self) -> tuple[int, int, int] | None:
        if self.pattern == "grass":
            return _GRASS_BLADE
        if self.pattern == "brick":
            return _MORTAR[self.secondary]
        return None if self.secondary is None else COLORS[self.secondary]

    def with_color(self, color: str) -> BackgroundSpec:
        """This background with another main colour, still exactly what its caption names: sky and grass (whose
        captions fix their colour) become a plain wall, a brick wall takes that colour's mortar."""
        pattern = "plain" if self.pattern in ("sky", "grass") else self.pattern
        secondary = {"plain": None, "brick": mortar_for(color)}.get(pattern, self.secondary)
        return replace(self, pattern=pattern, color=color, secondary=secondary)

    def to_meta(self) -> dict:
        """JSON-ready attributes (what the evaluation harness checks a generated background against)."""
        meta = asdict(self)
        meta["phase"] = list(self.phase)
        meta.update(name=self.name, color_rgb=list(self.color_rgb))
        sec = self.secondary_rgb
        meta["secondary_rgb"] = None if sec is None else list(sec)
        return meta


_MORTAR = {"white": (225, 222, 215), "grey": (150, 150, 150)}


def mortar_for(color: str) -> str:
    """Mortar colour of a brick wall of this colour (not named in captions, so fixed by the brick colour)."""
    return "grey" if color in ("white", "beige", "yellow") else "white"


def background_from_caption(text: str) -> BackgroundSpec | None:
    """Recover the background a caption names ("... The background is a red brick wall."), or None.

    Inverse of :attr:`BackgroundSpec.name` for every pattern and colour; pan, texture noise and phase are not in
    captions and come back as 0. Useful to check a generated background against its prompt.
    """
    colors = "|".join(sorted(COLORS, key=len, reverse=True))
    for pattern, template in BACKGROUND_TEMPLATES.items():
        regex = re.escape(template).replace(r"\{a\}", "(?:a|an)")
        regex = regex.replace(r"\{c\}", f"(?P<c>{colors})").replace(r"\{c2\}", f"(?P<c2>{colors})")
        match = re.search(r"[Tt]he background is " + regex + r"\.", text)
        if match:
            groups = match.groupdict()
            color = groups.get("c") or ("blue" if pattern == "sky" else "green")
            secondary = groups.get("c2")
            if pattern == "sky":
                secondary = "white"
            elif pattern == "brick":
                secondary = mortar_for(color)
            return BackgroundSpec(pattern, color, secondary, 0.0, 0, (0.0, 0.0))
    return None


def sample_background(rng: np.random.Generator, style: str, allow_pan: bool = True) -> BackgroundSpec:
    """Draw a background for ``style`` ("full": every pattern, texture, optional pan; "demo": plain, bold; "wide"
    and "heldout": the patterns and colours of their :data:`~dynamictrl.puppet.styles.WORLD_STYLES` entry)."""
    if style == "demo":
        color = str(rng.choice(BACKGROUND_COLORS_DEMO))
        return BackgroundSpec("plain", color, None, 0.0, 0, (0.0, 0.0))
    table = WORLD_STYLES.get(style)
    pattern_weights = _PATTERN_WEIGHTS if table is None else table.patterns
    names = list(pattern_weights)
    weights = np.array([pattern_weights[n] for n in names])
    pattern = str(rng.choice(names, p=weights / weights.sum()))
    color = str(rng.choice(BACKGROUND_COLORS_FULL if table is None else table.wall_colors))
    secondaries = (
        ("white", "black", "yellow", "blue", "red", "green", "grey") if table is None else table.secondary_colors
    )
    others = [c for c in secondaries if c != color]
    secondary = str(rng.choice(others))
    if pattern == "sky":
        color, secondary = "blue", "white"
    elif pattern == "grass":
        color, secondary = "green", None
    elif pattern == "brick":
        secondary = mortar_for(color)
    elif pattern == "plain":
        secondary = None
    pan = 0.0
    if allow_pan and rng.random() < 0.3:
        pan = float(rng.uniform(0.006, 0.02) * rng.choice([-1.0, 1.0]))
    phase = (float(rng.uniform(0, 1)), float(rng.uniform(0, 1)))
    return BackgroundSpec(pattern, color, secondary, pan, int(rng.integers(3, 8)), phase)


def _pattern_mix(spec: BackgroundSpec, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fraction of the secondary colour at wall coordinates ``x, y`` (frame heights); same shape as ``x``."""
    p = spec.pattern
    if p == "plain":
        return np.zeros_like(x)
    if p == "vstripes":
        return (np.floor(x / 0.09) % 2).astype(np.float32)
    if p == "hstripes":
        return (np.floor(y / 0.09) % 2).astype(np.float32)
    if p == "checks":
        return ((np.floor(x / 0.14) + np.floor(y / 0.14)) % 2).astype(np.float32)
    if p == "brick":
        bh, bw, m = 0.1, 0.22, 0.02
        row = np.floor(y / bh)
        xs = x + 0.5 * bw * (row % 2)
        return ((y % bh < m) | (xs % bw < m)).astype(np.float32)
    if p == "dots":
        s, r = 0.2, 0.045
        row = np.floor(y / s)
        xs = x + 0.5 * s * (row % 2)
        dx, dy = xs % s - s / 2, y % s - s / 2
        return (dx * dx + dy * dy < r * r).astype(np.float32)
    if p == "sky":  # soft-edged clouds: a few ellipses repeating every 1.6 frame heights
        xc = x % 1.6
        mix = np.zeros_like(x)
        for cx, cy, rx, ry in ((0.3, 0.18, 0.22, 0.07), (0.95, 0.32, 0.28, 0.08), (1.35, 0.12, 0.16, 0.05)):
            for shift in (-1.6, 0.0, 1.6):
                d = ((xc - cx - shift) / rx) ** 2 + ((y - cy) / ry) ** 2
                mix = np.maximum(mix, np.clip((1.0 - d) * 3.0, 0.0, 1.0))
        return mix
    if p == "grass":  # short vertical blades in columns of varying height
        col = np.floor(x / 0.018)
        h = (np.sin(col * 12.9898) * 43758.5453) % 1.0
        return ((np.floor(y / (0.05 + 0.05 * h)) + col) % 3 == 0).astype(np.float32)
    raise ValueError(f"unknown background pattern {p!r}; known patterns: {sorted(BACKGROUND_TEMPLATES)}")


def render_background(spec: BackgroundSpec, height: int, width: int, frames: int, noise_seed: int = 0) -> np.ndarray:
    """Render ``frames`` frames of the background; returns (T, H, W, 3) uint8. Frame ``t`` shows the wall
    shifted by ``t * spec.pan`` frame heights."""
    if height <= 0 or width <= 0 or frames <= 0:
        raise ValueError(f"height, width and frames must be positive, got {height}, {width}, {frames}")
    n = frames if spec.pan != 0.0 else 1
    offset = (np.arange(n, dtype=np.float32) * spec.pan * height)[:, None, None]  # (n, 1, 1) pixels
    px = np.arange(width, dtype=np.float32)[None, None, :] + offset  # (n, 1, W) wall pixel x
    py = np.arange(height, dtype=np.float32)[None, :, None]  # (1, H, 1)
    x = px / height + spec.phase[0]
    y = py / height + spec.phase[1]
    mix = _pattern_mix(spec, np.broadcast_to(x, (n, height, width)), np.broadcast_to(y, (n, height, width)))
    base = np.asarray(spec.color_rgb, dtype=np.float32)
    sec = spec.secondary_rgb
    image = base + mix[..., None] * ((np.asarray(sec, dtype=np.float32) - base) if sec is not None else 0.0)
    if spec.noise:
        tile = np.random.default_rng(noise_seed).integers(-spec.noise, spec.noise + 1, (_NOISE_TILE, _NOISE_TILE))
        ix = np.floor(px).astype(np.int64) % _NOISE_TILE  # (n, 1, W)
        iy = np.arange(height)[None, :, None] % _NOISE_TILE  # (1, H, 1)
        image = image + tile[iy, ix][..., None].astype(np.float32)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)  # (n, H, W, 3)
    if n == 1:
        image = np.repeat(image, frames, axis=0)
    return image
