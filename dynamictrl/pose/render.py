"""DWPose / OpenPose-style pose rendering with numpy and PIL (no OpenCV).

Conventions follow the DWPose annotator used by the official release (at its reference size, 512 px):

- body joints: filled circles of radius 4 in :data:`JOINT_COLORS`, drawn first;
- body limbs: ellipses along each bone (semi-minor axis = stick width 4) in :data:`LIMB_COLORS`, alpha-blended at
  0.6 over what is beneath (so a limb on black is ``0.6 * colour``);
- hands: 20 bones as lines of width 2 coloured by hue (``hsv(i / 20, 1, 1)``), then blue ``(0, 0, 255)`` dots of
  radius 4;
- face: white dots of radius 3.

Every size scales with ``min(height, width) / 512`` (never below 1 px), so a 64x64 render still shows every limb.
Joints whose confidence is below ``threshold``, and limbs/bones touching them, are not drawn. This renderer is the
single one used by the synthetic world, the tools and inference.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

from dynamictrl.pose.keypoints import NUM_BODY, NUM_FACE, NUM_HAND, PoseSequence

#: The 17 drawn body limbs as (start, end) indices into BODY_KEYPOINTS (OpenPose order).
LIMB_SEQ: tuple[tuple[int, int], ...] = (
    (1, 2),  # neck - right shoulder
    (1, 5),  # neck - left shoulder
    (2, 3),  # right upper arm
    (3, 4),  # right forearm
    (5, 6),  # left upper arm
    (6, 7),  # left forearm
    (1, 8),  # neck - right hip
    (8, 9),  # right thigh
    (9, 10),  # right shin
    (1, 11),  # neck - left hip
    (11, 12),  # left thigh
    (12, 13),  # left shin
    (1, 0),  # neck - nose
    (0, 14),  # nose - right eye
    (14, 16),  # right eye - right ear
    (0, 15),  # nose - left eye
    (15, 17),  # left eye - left ear
)

_OPENPOSE_PALETTE = np.array(
    [
        [255, 0, 0],
        [255, 85, 0],
        [255, 170, 0],
        [255, 255, 0],
        [170, 255, 0],
        [85, 255, 0],
        [0, 255, 0],
        [0, 255, 85],
        [0, 255, 170],
        [0, 255, 255],
        [0, 170, 255],
        [0, 85, 255],
        [0, 0, 255],
        [85, 0, 255],
        [170, 0, 255],
        [255, 0, 255],
        [255, 0, 170],
        [255, 0, 85],
    ],
    dtype=np.uint8,
)
#: (18, 3) uint8 RGB colour of each body joint, in BODY_KEYPOINTS order.
JOINT_COLORS: np.ndarray = _OPENPOSE_PALETTE.copy()
#: (17, 3) uint8 RGB colour of each limb in LIMB_SEQ (drawn blended at LIMB_ALPHA).
LIMB_COLORS: np.ndarray = _OPENPOSE_PALETTE[: len(LIMB_SEQ)].copy()
#: Opacity of limbs over the canvas (DWPose blends each limb 0.4 canvas + 0.6 colour).
LIMB_ALPHA = 0.6

#: The 20 hand bones as (start, end) indices into the 21 hand keypoints (wrist = 0, then 4 per finger).
HAND_EDGES: tuple[tuple[int, int], ...] = tuple(
    pair for finger in range(5) for pair in ((0 if k == 0 else 4 * finger + k, 4 * finger + k + 1) for k in range(4))
)
#: (20, 3) uint8 RGB colour of each hand bone: hue i / 20 at full saturation and value.
HAND_EDGE_COLORS: np.ndarray = np.array(
    [[round(c * 255) for c in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0)] for i in range(len(HAND_EDGES))],
    dtype=np.uint8,
)
HAND_POINT_COLOR: tuple[int, int, int] = (0, 0, 255)
FACE_POINT_COLOR: tuple[int, int, int] = (255, 255, 255)

#: Image size at which the DWPose sizes below hold; other sizes scale linearly with min(height, width).
REFERENCE_SIZE = 512
_STICK_WIDTH, _JOINT_RADIUS, _HAND_LINE, _HAND_RADIUS, _FACE_RADIUS = 4, 4, 2, 4, 3

# Unit ellipse outline (cos, sin) used to draw limbs as polygons.
_ELLIPSE_POINTS = 24
_ELLIPSE_COS = np.cos(np.linspace(0, 2 * np.pi, _ELLIPSE_POINTS, endpoint=False))
_ELLIPSE_SIN = np.sin(np.linspace(0, 2 * np.pi, _ELLIPSE_POINTS, endpoint=False))
_LIMB_A = np.array([a for a, _ in LIMB_SEQ])
_LIMB_B = np.array([b for _, b in LIMB_SEQ])
_LIMB_RGBA = [(*map(int, c), round(255 * LIMB_ALPHA)) for c in LIMB_COLORS]
_JOINT_RGB = [tuple(map(int, c)) for c in JOINT_COLORS]
_HAND_RGB = [tuple(map(int, c)) for c in HAND_EDGE_COLORS]


def default_sizes(height: int, width: int) -> dict[str, int]:
    """Stick width and dot radii (pixels) for an image of this size."""
    s = min(height, width) / REFERENCE_SIZE
    return {
        "stick_width": max(1, round(_STICK_WIDTH * s)),
        "joint_radius": max(1, round(_JOINT_RADIUS * s)),
        "hand_line": max(1, round(_HAND_LINE * s)),
        "hand_radius": max(1, round(_HAND_RADIUS * s)),
        "face_radius": max(1, round(_FACE_RADIUS * s)),
    }


def _visible(points: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) bool: confident and finite."""
    return (scores >= threshold) & np.isfinite(points).all(-1)


def _dot(draw: ImageDraw.ImageDraw, x: float, y: float, r: int, color) -> None:
    draw.ellipse((x - r, y - r, x + r, y + r), fill=color)


def draw_pose(
    body: np.ndarray,  # (18, 2) pixel x, y
    body_score: np.ndarray,  # (18,)
    height: int,
    width: int,
    hands: np.ndarray | None = None,  # (2, 21, 2)
    hands_score: np.ndarray | None = None,  # (2, 21)
    face: np.ndarray | None = None,  # (68, 2)
    face_score: np.ndarray | None = None,  # (68,)
    threshold: float = 0.3,
    stick_width: int | None = None,
    canvas: np.ndarray | None = None,  # (H, W, 3) uint8
) -> np.ndarray:
    """Render one frame's pose; returns ``(height, width, 3)`` uint8 RGB (black background unless ``canvas``).

    ``stick_width`` overrides the limb half-width (default: 4 px at 512 px, scaled with the image). ``canvas``
    (not modified) is drawn over instead of black.
    """
    body = np.asarray(body, dtype=np.float32).reshape(-1, 2)
    body_score = np.asarray(body_score, dtype=np.float32).reshape(-1)
    if body.shape[0] != NUM_BODY or body_score.shape[0] != NUM_BODY:
        raise ValueError(f"draw_pose needs 18 body points and 18 scores, got {body.shape[0]} and {body_score.shape[0]}")
    if canvas is not None:
        canvas = np.asarray(canvas)
        if canvas.shape != (height, width, 3) or canvas.dtype != np.uint8:
            raise ValueError(f"canvas must be ({height}, {width}, 3) uint8, got {canvas.shape} {canvas.dtype}")
        image = Image.fromarray(canvas, "RGB")
    else:
        image = Image.new("RGB", (width, height))
    sizes = default_sizes(height, width)
    sw = sizes["stick_width"] if stick_width is None else int(stick_width)
    draw = ImageDraw.Draw(image, "RGBA")  # RGBA mode blends fills with alpha over the RGB image

    ok = _visible(body, body_score, threshold)  # (18,)
    r = sizes["joint_radius"]
    for j in np.flatnonzero(ok):
        _dot(draw, body[j, 0], body[j, 1], r, _JOINT_RGB[j])

    limb_ok = ok[_LIMB_A] & ok[_LIMB_B]  # (17,)
    if limb_ok.any():
        idx = np.flatnonzero(limb_ok)
        p, q = body[_LIMB_A[idx]], body[_LIMB_B[idx]]  # (L, 2)
        center = (p + q) / 2
        d = q - p
        half = np.hypot(d[:, 0], d[:, 1]) / 2  # (L,)
        angle = np.arctan2(d[:, 1], d[:, 0])
        ca, sa = np.cos(angle)[:, None], np.sin(angle)[:, None]
        ex, ey = half[:, None] * _ELLIPSE_COS, sw * _ELLIPSE_SIN  # (L, P)
        xs = center[:, :1] + ca * ex - sa * ey
        ys = center[:, 1:] + sa * ex + ca * ey
        poly = np.stack([xs, ys], -1).reshape(len(idx), -1)  # (L, 2P) flat x0, y0, x1, y1, ...
        for k, limb in enumerate(idx):
            draw.polygon(poly[k].tolist(), fill=_LIMB_RGBA[limb])

    if hands is not None:
        if hands_score is None:
            raise ValueError("hands given without hands_score")
        hands = np.asarray(hands, dtype=np.float32).reshape(-1, NUM_HAND, 2)
        hands_score = np.asarray(hands_score, dtype=np.float32).reshape(-1, NUM_HAND)
        lw, hr = sizes["hand_line"], sizes["hand_radius"]
        for hand, score in zip(hands, hands_score):
            hok = _visible(hand, score, threshold)
            for e, (a, b) in enumerate(HAND_EDGES):
                if hok[a] and hok[b]:
                    draw.line((*hand[a].tolist(), *hand[b].tolist()), fill=_HAND_RGB[e], width=lw)
            for j in np.flatnonzero(hok):
                _dot(draw, hand[j, 0], hand[j, 1], hr, HAND_POINT_COLOR)

    if face is not None:
        if face_score is None:
            raise ValueError("face given without face_score")
        face = np.asarray(face, dtype=np.float32).reshape(NUM_FACE, 2)
        face_score = np.asarray(face_score, dtype=np.float32).reshape(NUM_FACE)
        fr = sizes["face_radius"]
        for j in np.flatnonzero(_visible(face, face_score, threshold)):
            _dot(draw, face[j, 0], face[j, 1], fr, FACE_POINT_COLOR)

    return np.asarray(image)


def render_pose_sequence(
    seq: PoseSequence, height: int | None = None, width: int | None = None, threshold: float = 0.3
) -> np.ndarray:
    """Render every frame; returns ``(T, H, W, 3)`` uint8. Keypoints are rescaled when the size differs."""
    height = seq.height if height is None else int(height)
    width = seq.width if width is None else int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f"render size must be positive, got height={height}, width={width}")
    if (height, width) != (seq.height, seq.width):
        seq = seq.resized(height, width)
    out = np.zeros((len(seq), height, width, 3), dtype=np.uint8)
    for t in range(len(seq)):
        out[t] = draw_pose(
            seq.body[t],
            seq.body_score[t],
            height,
            width,
            hands=None if seq.hands is None else seq.hands[t],
            hands_score=None if seq.hands_score is None else seq.hands_score[t],
            face=None if seq.face is None else seq.face[t],
            face_score=None if seq.face_score is None else seq.face_score[t],
            threshold=threshold,
        )
    return out
