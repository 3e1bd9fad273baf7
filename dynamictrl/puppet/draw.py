"""Rasterise the puppet with numpy: capsule limbs, a rounded-quad torso and a spherical head with hair and eyes.

Every part gets a signed inside-distance per pixel; the covering part nearest the camera wins (painter's order
from the parts' 3D depth), so arms pass in front of / behind the torso correctly while the puppet turns. Edges
are hard (no anti-aliasing), so the person mask is exact. The same choice gives the exact part labels
(:data:`PART_LABELS`): every person pixel is labelled with the part drawn on top there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynamictrl.puppet.clothing import Appearance
from dynamictrl.puppet.palette import COLORS, HAIR_COLORS
from dynamictrl.puppet.skeleton import HAIR_END, HEAD, L_TOE, NECK_TOP, R_TOE, K, Proportions, face_facing

SKIN, SHIRT, BOTTOM, SHOES, HAIR, EYE = range(6)
_EYE_RGB = (20, 18, 25)
_STRIPE_HALF_PERIOD = 0.022  # body-height units: one stripe / check cell
_WAIST = 0.86  # fraction of the torso axis below which the torso shows the trousers' colour
_MAX_WORK = 3_000_000
_TORSO_CORNERS = [K["right_shoulder"], K["left_shoulder"], K["left_hip"], K["right_hip"]]
#: A face point is visible (drawn, and given a keypoint score) when its surface faces the camera this much.
EYE_VISIBLE = 0.1  # pixels x parts x frames handled per numpy batch

#: Part labels of the label maps (``SyntheticSample.parts``): the id is the index. 0 is no person; left and right
#: are the puppet's own, as in the keypoint names; ``head`` includes the hair and eyes drawn on the head,
#: ``hair`` is the long hair hanging behind it.
PART_LABELS: tuple[str, ...] = (
    "background",
    "head",
    "hair",
    "neck",
    "torso",
    *(f"{s}_{p}" for s in ("right", "left") for p in ("upper_arm", "forearm", "hand")),
    *(f"{s}_{p}" for s in ("right", "left") for p in ("thigh", "shin", "foot")),
)
#: Label ids of the arms (upper arms, forearms, hands of both sides).
ARM_LABELS: tuple[int, ...] = tuple(
    i for i, n in enumerate(PART_LABELS) if n.endswith(("_upper_arm", "_forearm", "_hand"))
)


@dataclass(frozen=True)
class PartTable:
    """Drawing parts: capsules (point a -> point b), then the torso quad, then the head circle."""

    a: np.ndarray  # (C,) point index
    b: np.ndarray  # (C,) point index
    radius: np.ndarray  # (C,) body units
    material: np.ndarray  # (P,) material of every part (capsules, torso, head)
    bias: np.ndarray  # (P,) depth bias added to the part's mean depth
    names: tuple[str, ...]

    @property
    def torso(self) -> int:
        return len(self.a)

    @property
    def head(self) -> int:
        return len(self.a) + 1

    @property
    def labels(self) -> np.ndarray:
        """(P,) uint8 :data:`PART_LABELS` id of every part."""
        rename = {"long_hair": "hair"}
        return np.array([PART_LABELS.index(rename.get(n, n)) for n in self.names], dtype=np.uint8)


def build_parts(body: Proportions, look: Appearance) -> PartTable:
    """The parts of this puppet and what each is made of (sleeve and trouser lengths follow ``look``)."""
    fore = SHIRT if look.sleeves == "long" else SKIN
    shin = BOTTOM if look.bottom == "trousers" else SKIN
    caps = [("neck", K["neck"], NECK_TOP, 0.45 * body.head_r, SKIN, -0.02)]
    for s in ("right", "left"):
        caps += [
            (f"{s}_upper_arm", K[f"{s}_shoulder"], K[f"{s}_elbow"], body.upper_arm_r, SHIRT, 0.015),
            (f"{s}_forearm", K[f"{s}_elbow"], K[f"{s}_wrist"], body.forearm_r, fore, 0.016),
            (f"{s}_hand", K[f"{s}_wrist"], K[f"{s}_wrist"], body.hand_r, SKIN, 0.017),
            (f"{s}_thigh", K[f"{s}_hip"], K[f"{s}_knee"], body.thigh_r, BOTTOM, -0.01),
            (f"{s}_shin", K[f"{s}_knee"], K[f"{s}_ankle"], body.shin_r, shin, -0.009),
            (f"{s}_foot", K[f"{s}_ankle"], R_TOE if s == "right" else L_TOE, body.foot_r, SHOES, -0.008),
        ]
    if look.hair_style == "long":
        caps.append(("long_hair", HEAD, HAIR_END, 0.8 * body.head_r, HAIR, 0.0))
    names = tuple(c[0] for c in caps) + ("torso", "head")
    return PartTable(
        a=np.array([c[1] for c in caps]),
        b=np.array([c[2] for c in caps]),
        radius=np.array([c[3] for c in caps]),
        material=np.array([c[4] for c in caps] + [SHIRT, SKIN]),
        bias=np.array([c[5] for c in caps] + [0.0, 0.02]),
        names=names,
    )


def material_colors(look: Appearance) -> np.ndarray:
    """(6, 3) float32 RGB per material, plus the shirt's secondary colour as row 6."""
    rows = [
        look.skin,
        COLORS[look.shirt_color],
        COLORS[look.bottom_color],
        COLORS[look.shoes_color],
        HAIR_COLORS[look.hair_color],
        _EYE_RGB,
        COLORS[look.shirt_secondary] if look.shirt_secondary else COLORS[look.shirt_color],
    ]
    return np.asarray(rows, dtype=np.float32)


def _segment_distance(px, py, a, b):
    """Distance from pixels to segments. px, py: (N,); a, b: (T, S, 2) -> dist, along (px), across (px), len."""
    ab = b - a  # (T, S, 2)
    length = np.sqrt((ab**2).sum(-1))  # (T, S)
    inv = 1.0 / np.maximum(length, 1e-6)
    dx = px - a[..., 0:1]  # (T, S, N)
    dy = py - a[..., 1:2]
    ux, uy = (ab[..., 0] * inv)[..., None], (ab[..., 1] * inv)[..., None]
    along = dx * ux + dy * uy
    t = np.clip(along, 0.0, length[..., None])
    across = dy * ux - dx * uy
    dist = np.sqrt((dx - t * ux) ** 2 + (dy - t * uy) ** 2)
    return dist, along, across, length


def _torso_field(px, py, quad, round_px):
    """Signed inside-distance of a rounded convex quad (T, 4, 2); also along/across the torso axis."""
    edges_b = np.roll(quad, -1, axis=1)
    dist, _, across, _ = _segment_distance(px, py, quad, edges_b)  # (T, 4, N)
    inside = (across >= 0).all(1) | (across <= 0).all(1)  # (T, N)
    dmin = dist.min(1)
    d_in = np.where(inside, dmin, -dmin) + round_px[:, None]
    top = 0.5 * (quad[:, 0] + quad[:, 1])  # shoulders midpoint
    bottom = 0.5 * (quad[:, 2] + quad[:, 3])  # hips midpoint
    _, along, across, length = _segment_distance(px, py, top[:, None], bottom[:, None])
    return d_in, along[:, 0], across[:, 0], length[:, 0]


def rasterize(
    points: np.ndarray,  # (T, P, 2) pixel x, y of the skeleton points
    depth: np.ndarray,  # (T, P) towards the camera
    head_rot: np.ndarray,  # (T, 3, 3)
    parts: PartTable,
    look: Appearance,
    body: Proportions,
    scale: float,  # pixels per body unit
    height: int,
    width: int,
    shading: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the puppet; returns ``rgb`` (T, H, W, 3) uint8 (black where empty), ``mask`` (T, H, W) bool and
    ``labels`` (T, H, W) uint8: the :data:`PART_LABELS` id of the part on top per pixel (0 where empty)."""
    frames = points.shape[0]
    rgb = np.zeros((frames, height, width, 3), dtype=np.uint8)
    mask = np.zeros((frames, height, width), dtype=bool)
    labels = np.zeros((frames, height, width), dtype=np.uint8)
    reach = scale * max(body.head_r, body.torso_depth, float(parts.radius.max())) + 2.0
    x0 = int(np.clip(np.floor(points[..., 0].min() - reach), 0, width))
    x1 = int(np.clip(np.ceil(points[..., 0].max() + reach) + 1, 0, width))
    y0 = int(np.clip(np.floor(points[..., 1].min() - reach), 0, height))
    y1 = int(np.clip(np.ceil(points[..., 1].max() + reach) + 1, 0, height))
    if x1 <= x0 or y1 <= y0:
        return rgb, mask, labels
    gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    px, py = gx.ravel(), gy.ravel()  # (N,)
    chunk = max(1, _MAX_WORK // (px.size * (len(parts.material))))
    colors, part_labels = material_colors(look), parts.labels
    for s in range(0, frames, chunk):
        sl = slice(s, min(frames, s + chunk))
        c_rgb, c_mask, c_top = _raster_chunk(
            px, py, points[sl].astype(np.float32), depth[sl], head_rot[sl], parts, look, body, scale, colors, shading
        )
        rgb[sl, y0:y1, x0:x1] = c_rgb.reshape(-1, y1 - y0, x1 - x0, 3)
        mask[sl, y0:y1, x0:x1] = c_mask.reshape(-1, y1 - y0, x1 - x0)
        labels[sl, y0:y1, x0:x1] = np.where(c_mask, part_labels[c_top], 0).reshape(-1, y1 - y0, x1 - x0)
    return rgb, mask, labels


def _raster_chunk(px, py, pts, depth, head_rot, parts, look, body, scale, colors, shading):
    t = pts.shape[0]
    # Capsules.
    dist, along, across, _ = _segment_distance(px, py, pts[:, parts.a], pts[:, parts.b])  # (t, C, N)
    cap_r = (parts.radius * scale).astype(np.float32)  # (C,)
    d_cap = cap_r[None, :, None] - dist
    # Torso: right shoulder, left shoulder, left hip, right hip.
    quad = pts[:, _TORSO_CORNERS]
    round_px = np.full(t, body.torso_depth * scale, dtype=np.float32)
    d_tor, u_tor, v_tor, len_tor = _torso_field(px, py, quad, round_px)
    # Head.
    head_r = body.head_r * scale
    hx, hy = pts[:, HEAD, 0:1], pts[:, HEAD, 1:2]  # (t, 1)
    nx, ny = (px - hx) / head_r, (hy - py) / head_r  # (t, N), y up
    d_head = head_r * (1.0 - np.sqrt(nx**2 + ny**2))

    d_in = np.concatenate([d_cap, d_tor[:, None], d_head[:, None]], 1)  # (t, P, N)
    u = np.concatenate([along, u_tor[:, None], np.zeros_like(d_head)[:, None]], 1)
    v = np.concatenate([across, v_tor[:, None], np.zeros_like(d_head)[:, None]], 1)
    part_depth = (
        np.concatenate(
            [
                0.5 * (depth[:, parts.a] + depth[:, parts.b]),
                depth[:, _TORSO_CORNERS].mean(1, keepdims=True),
                depth[:, HEAD : HEAD + 1],
            ],
            1,
        )
        + parts.bias
    )  # (t, P)
    covered = d_in >= 0
    score = np.where(covered, part_depth[..., None], -np.inf)
    top = score.argmax(1)  # (t, N)
    mask = covered.any(1)
    d_top = np.take_along_axis(d_in, top[:, None], 1)[:, 0]
    u_top = np.take_along_axis(u, top[:, None], 1)[:, 0]
    v_top = np.take_along_axis(v, top[:, None], 1)[:, 0]

    mat = parts.material[top]  # (t, N)
    is_torso, is_head = top == parts.torso, top == parts.head
    mat = np.where(is_torso & (u_top > _WAIST * len_tor[:, None]), BOTTOM, mat)
    # Head: hair on the back and top of the sphere, eyes at the eye keypoints when they face the camera.
    nz = np.sqrt(np.clip(1.0 - nx**2 - ny**2, 0.0, 1.0))
    n_cam = np.stack([nx, ny, nz], -1)  # (t, N, 3)
    n_head = np.einsum("tij,tni->tnj", head_rot, n_cam)  # head-frame normal: left, up, forward
    front = -0.05 if look.hair_style == "short" else 0.05
    hair = (n_head[..., 2] < front) | (n_head[..., 1] > 0.55)
    mat = np.where(is_head & hair, HAIR, mat)
    eye_r = max(0.75, 0.15 * head_r)
    facing_cam = face_facing(head_rot)
    for name in ("right_eye", "left_eye"):
        eye, facing = K[name], facing_cam[name] > EYE_VISIBLE
        ex, ey = pts[:, eye, 0:1], pts[:, eye, 1:2]
        near = (px - ex) ** 2 + (py - ey) ** 2 <= eye_r**2
        mat = np.where(is_head & near & facing[:, None] & ~hair, EYE, mat)

    color = colors[mat]  # (t, N, 3)
    if look.shirt_pattern != "solid":
        half = _STRIPE_HALF_PERIOD * scale
        bit = np.floor(u_top / half)
        if look.shirt_pattern == "checks":
            bit = bit + np.floor(v_top / half)
        color = np.where(((mat == SHIRT) & (bit % 2 == 1))[..., None], colors[6], color)
    if shading:
        thick = np.concatenate([cap_r, [2.0 * body.torso_depth * scale, head_r]])[top]  # (t, N) part size
        light = 0.8 + 0.2 * np.sqrt(np.clip(d_top / np.maximum(thick, 1e-3), 0.0, 1.0))
        color = color * light[..., None]
    out = np.clip(np.rint(color), 0, 255).astype(np.uint8)
    out[~mask] = 0
    return out, mask, top
