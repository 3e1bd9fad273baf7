"""OpenPose-style pose rendering with numpy and PIL (no OpenCV), in two styles.

``style="dwpose"`` (the default) draws the standard DWPose / ControlNet annotator look, with every size given at
a reference size of 512 px:

- body joints: filled circles of radius 4 in :data:`JOINT_COLORS`, drawn first;
- body limbs: ellipses along each bone (semi-minor axis = stick width 4) in :data:`LIMB_COLORS`, alpha-blended at
  0.6 over what is beneath (so a limb on black is ``0.6 * colour``);
- hands: 20 bones as lines of width 2 coloured by hue (``hsv(i / 20, 1, 1)``), then blue ``(0, 0, 255)`` dots of
  radius 4;
- face: white dots of radius 3.

Every size scales with ``min(height, width) / 512`` (never below 1 px), so a 64x64 render still shows every limb.
Joints whose confidence is below ``threshold``, and limbs/bones touching them, are not drawn. This is the style of
the synthetic world and of our own training data.

``style="dynamictrl"`` reproduces the pose videos of the official DynamiCtrl release (``dwpose/util.py``), on
which its checkpoints were trained; use it whenever official weights run. Differences from ``"dwpose"``:

- **red and blue swapped**: the official code fills an array with RGB colour lists and then converts it as if it
  were BGR, so the neck-right-shoulder limb is blue, hand dots are red, and hue-coded hand bones come out with R
  and B exchanged (:data:`DYNAMICTRL_LIMB_COLORS`, :data:`DYNAMICTRL_JOINT_COLORS`, ...);
- **confidence-weighted colours**: a limb is ``colour * s_a * s_b``, a joint ``colour * s``, a hand bone
  ``hue * s_a * s_b``, a hand dot ``(s, 0, 0)`` and a face dot ``(s, s, s)`` (times 255), truncated to integers;
- **opaque limbs, then dimmed**: limbs overwrite each other in order and the whole limb layer is then multiplied by
  0.6 (on black: ``0.6 * colour``); joints are drawn *after* that, on top, at full strength;
- **drawn large, then shrunk**: everything is drawn on a canvas whose short side is :data:`DYNAMICTRL_CANVAS`
  (2160 px) with fixed sizes (stick half-width 4, joint radius 4, hand lines 2 px wide, hand dots radius 4, face
  dots radius 3) and resized to the output with OpenCV-style bilinear sampling (pixel-centre aligned, no
  anti-aliasing). At 768x1360 a stick is about 3 px wide, at 256 px about 1 px; below ~128 px sticks start to
  break up, as in the official renders;
- **hands and face regardless of score**: their points are drawn whatever their confidence (a low score only makes
  them darker), skipping points that land left of / above the first canvas pixel, as the official code does;
- **body visibility**: a joint is drawn when its score is *above* ``threshold`` (0.3 in the release) and a limb when
  both its joints are; the neck is drawn at full strength (the official extractor gives the neck score 1 when both
  shoulders pass 0.3, where ours keeps the smaller shoulder score).

``canvas`` (drawing over an image) is only available in the ``"dwpose"`` style: the official drawing is defined on
black only. Only one person is drawn per frame.

The ``"dynamictrl"`` style never allocates the 2160-px canvas: the bilinear resize reads only two canvas rows and
two canvas columns per output row / column, so the shapes are rasterised at exactly those samples (a few thousand
points per shape) and the result equals drawing the whole canvas with the same shape rules and resizing it (OpenCV's own rasterisation
of each ellipse / circle / line may differ from ours by a canvas pixel at the edges, about 0.1 output pixel).
"""

from __future__ import annotations

import colorsys
import functools

import numpy as np
from PIL import Image, ImageDraw

from dynamictrl.pose.keypoints import BODY_INDEX, NUM_BODY, NUM_FACE, NUM_HAND, PoseSequence

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

#: Allowed values of ``style``.
STYLES: tuple[str, ...] = ("dwpose", "dynamictrl")

#: Short side (px) of the canvas the official release draws on before resizing to the output size.
DYNAMICTRL_CANVAS = 2160
#: Official sizes, in canvas pixels: stick half-width, joint radius, hand line width, hand dot and face dot radius.
_DT_STICK, _DT_JOINT_RADIUS, _DT_HAND_LINE, _DT_HAND_RADIUS, _DT_FACE_RADIUS = 4, 4, 2, 4, 3
#: Factor applied to the whole limb layer before joints are drawn.
_DT_LIMB_DIM = 0.6
#: (17, 3) uint8 limb colours as they appear in official renders (R and B swapped), before confidence weighting.
DYNAMICTRL_LIMB_COLORS: np.ndarray = LIMB_COLORS[:, ::-1].copy()
#: (18, 3) uint8 joint colours as they appear in official renders, before confidence weighting.
DYNAMICTRL_JOINT_COLORS: np.ndarray = JOINT_COLORS[:, ::-1].copy()
#: (20, 3) float hand bone colours in [0, 1] as they appear in official renders (hue-coded, R and B swapped).
DYNAMICTRL_HAND_EDGE_COLORS: np.ndarray = np.array(
    [colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0)[::-1] for i in range(len(HAND_EDGES))], dtype=np.float64
)
#: Channel that carries the hand dot confidence in official renders (red; blue before the swap).
DYNAMICTRL_HAND_POINT_CHANNEL = 0
_NECK = BODY_INDEX["neck"]

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


def check_style(style: str) -> str:
    """Return ``style`` if it is one of :data:`STYLES`, else raise ``ValueError`` naming the allowed values."""
    if style not in STYLES:
        raise ValueError(f"pose style must be one of {STYLES}, got {style!r}")
    return style


def _draw_dwpose(body, body_score, height, width, hands, hands_score, face, face_score, threshold, stick_width, canvas):
    """The standard DWPose look (module docstring); arguments already validated by :func:`draw_pose`."""
    if canvas is not None:
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
        lw, hr = sizes["hand_line"], sizes["hand_radius"]
        for hand, score in zip(hands, hands_score):
            hok = _visible(hand, score, threshold)
            for e, (a, b) in enumerate(HAND_EDGES):
                if hok[a] and hok[b]:
                    draw.line((*hand[a].tolist(), *hand[b].tolist()), fill=_HAND_RGB[e], width=lw)
            for j in np.flatnonzero(hok):
                _dot(draw, hand[j, 0], hand[j, 1], hr, HAND_POINT_COLOR)

    if face is not None:
        fr = sizes["face_radius"]
        for j in np.flatnonzero(_visible(face, face_score, threshold)):
            _dot(draw, face[j, 0], face[j, 1], fr, FACE_POINT_COLOR)

    return np.asarray(image)


def _resize_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV ``INTER_LINEAR`` taps along one axis: source indices i0, i1 (n_out,) and the 11-bit weight of i1."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    i0 = np.floor(src)
    frac = src - i0
    frac[i0 < 0] = 0.0
    i0 = np.clip(i0, 0, n_in - 1).astype(np.int64)
    frac[i0 >= n_in - 1] = 0.0
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = 2048 - np.round((1.0 - frac) * 2048).astype(np.int64)
    return i0, i1, w1


class _AxisSamples:
    """One axis of a bilinear resize from ``n_in`` canvas pixels to ``n_out`` output pixels.

    ``coords`` (S,) are the canvas pixels the resize reads (sorted, unique). Sample ``s`` feeds the output pixels
    ``out[start[s]:start[s + 1]]`` with 11-bit weights ``weight[start[s]:start[s + 1]]`` (zero weights dropped).
    """

    def __init__(self, n_out: int, n_in: int) -> None:
        i0, i1, w1 = _resize_taps(n_out, n_in)
        self.coords = np.unique(np.concatenate([i0, i1]))  # (S,)
        self.coords_f = self.coords.astype(np.float64)
        sample = np.searchsorted(self.coords, np.concatenate([i0, i1]))  # (2 n_out,)
        out = np.concatenate([np.arange(n_out), np.arange(n_out)])
        weight = np.concatenate([2048 - w1, w1])
        keep = weight > 0
        order = np.argsort(sample[keep], kind="stable")
        self.out, self.weight = out[keep][order], weight[keep][order]  # (P,)
        self.start = np.searchsorted(sample[keep][order], np.arange(len(self.coords) + 1))  # (S + 1,)

    def expand(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For sample indices (N,): which input entry, output pixel and weight each (entry, tap) pair has."""
        count = self.start[samples + 1] - self.start[samples]  # (N,)
        entry = np.repeat(np.arange(len(samples)), count)  # (M,)
        first = np.repeat(np.cumsum(count) - count, count)
        pair = np.repeat(self.start[samples], count) + np.arange(len(entry)) - first
        return entry, self.out[pair], self.weight[pair]


@functools.lru_cache(maxsize=8)
def _layout(height: int, width: int, canvas_h: int, canvas_w: int) -> tuple[_AxisSamples, _AxisSamples]:
    return _AxisSamples(height, canvas_h), _AxisSamples(width, canvas_w)


class _SampledCanvas:
    """The pixels of a ``canvas_h x canvas_w`` canvas that a bilinear resize to ``height x width`` reads.

    Shapes are painted by testing the centres of the sampled canvas rows x columns only; each paint is recorded as
    (sample index, packed colour) and a later paint wins, as on a real canvas. :meth:`resize` turns the painted
    samples into the output image.
    """

    def __init__(self, height: int, width: int, canvas_h: int, canvas_w: int) -> None:
        self.height, self.width = height, width
        self.ys, self.xs = _layout(height, width, canvas_h, canvas_w)
        self.rows_f, self.cols_f = self.ys.coords_f, self.xs.coords_f
        self._painted: list[tuple[np.ndarray, int]] = []  # (flat sample indices, 0xRRGGBB) in paint order

    def _window(self, y_lo, y_hi, x_lo, x_hi):
        """Sample index ranges covering canvas box [y_lo, y_hi] x [x_lo, x_hi], or None when no sample is inside."""
        a, b = int(np.searchsorted(self.rows_f, y_lo, "left")), int(np.searchsorted(self.rows_f, y_hi, "right"))
        c, d = int(np.searchsorted(self.cols_f, x_lo, "left")), int(np.searchsorted(self.cols_f, x_hi, "right"))
        if a >= b or c >= d:
            return None
        return a, b, c, d

    def _paint(self, win, mask, color) -> None:
        a, _, c, _ = win
        ri, ci = np.nonzero(mask)
        if len(ri):
            r, g, b = (int(v) for v in color)
            self._painted.append(((ri + a) * len(self.cols_f) + (ci + c), (r << 16) | (g << 8) | b))

    def disc(self, cx: float, cy: float, radius: float, color) -> None:
        """Filled circle: samples within ``radius + 0.5`` of the centre (matches a filled midpoint circle)."""
        r = radius + 0.5
        win = self._window(cy - r, cy + r, cx - r, cx + r)
        if win is None:
            return
        a, b, c, d = win
        dy, dx = self.rows_f[a:b, None] - cy, self.cols_f[None, c:d] - cx
        self._paint(win, dx * dx + dy * dy <= r * r, color)

    def ellipse(self, cx: float, cy: float, half_len: float, half_width: float, angle: float, color) -> None:
        """Filled ellipse with semi-axes ``half_len`` along ``angle`` (radians) and ``half_width`` across it."""
        ra, rb = half_len + 0.5, half_width + 0.5
        ca, sa = np.cos(angle), np.sin(angle)
        ex, ey = np.hypot(ra * ca, rb * sa), np.hypot(ra * sa, rb * ca)
        win = self._window(cy - ey, cy + ey, cx - ex, cx + ex)
        if win is None:
            return
        a, b, c, d = win
        dy, dx = self.rows_f[a:b, None] - cy, self.cols_f[None, c:d] - cx
        u, v = (dx * ca + dy * sa) / ra, (dy * ca - dx * sa) / rb
        self._paint(win, u * u + v * v <= 1.0, color)

    def segment(self, x0: float, y0: float, x1: float, y1: float, half_width: float, color) -> None:
        """Thick line with round caps: samples within ``half_width`` of the segment."""
        hw = half_width
        win = self._window(min(y0, y1) - hw, max(y0, y1) + hw, min(x0, x1) - hw, max(x0, x1) + hw)
        if win is None:
            return
        a, b, c, d = win
        py, px = self.rows_f[a:b, None] - y0, self.cols_f[None, c:d] - x0
        vx, vy = x1 - x0, y1 - y0
        n2 = vx * vx + vy * vy
        t = np.clip((px * vx + py * vy) / n2, 0.0, 1.0) if n2 > 0 else 0.0
        ex, ey = px - t * vx, py - t * vy
        self._paint(win, ex * ex + ey * ey <= hw * hw, color)

    def resize(self) -> np.ndarray:
        """Bilinear resize (11-bit fixed point, like OpenCV) of the painted canvas; (height, width, 3) uint8.

        Only painted samples contribute, so the cost follows the drawn area, not the image size.
        """
        out = np.zeros((self.height * self.width, 3), dtype=np.uint8)
        if not self._painted:
            return out.reshape(self.height, self.width, 3)
        flat = np.concatenate([f for f, _ in self._painted])  # (P,) in paint order
        packed = np.concatenate([np.full(len(f), v, np.int64) for f, v in self._painted])
        # Last paint wins: first occurrence in the reversed order.
        flat, first = np.unique(flat[::-1], return_index=True)
        packed = packed[::-1][first]
        lit = packed != 0
        flat, packed = flat[lit], packed[lit]  # (N,)
        values = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1).astype(np.float64)
        rr, cc = np.divmod(flat, len(self.cols_f))
        entry, out_y, wy = self.ys.expand(rr)  # (M,): one per (sample, output row) pair
        entry2, out_x, wx = self.xs.expand(cc[entry])  # (K,): one per (sample, output row, output column)
        pixel, where = np.unique(out_y[entry2] * self.width + out_x, return_inverse=True)  # (U,), (K,)
        weight = (wy[entry2] * wx).astype(np.float64)  # exact: at most 2048 * 2048
        src = entry[entry2]
        acc = np.stack([np.bincount(where, values[src, k] * weight, minlength=len(pixel)) for k in range(3)], -1)
        out[pixel] = ((acc.astype(np.int64) + (1 << 21)) >> 22).astype(np.uint8)  # (U, 3)
        return out.reshape(self.height, self.width, 3)


def _weighted(color, weight) -> tuple[int, int, int]:
    """``int(c * weight)`` per channel, saturated to [0, 255] (the official colour weighting)."""
    return tuple(int(v) for v in np.clip(np.trunc(np.asarray(color, np.float64) * weight), 0, 255))


def _draw_dynamictrl(body, body_score, height, width, hands, hands_score, face, face_score, threshold, stick_width):
    """The official release's look (module docstring); arguments already validated by :func:`draw_pose`."""
    scale = DYNAMICTRL_CANVAS / min(height, width)
    canvas_h, canvas_w = int(height * scale), int(width * scale)
    sx, sy = canvas_w / width, canvas_h / height
    paint = _SampledCanvas(height, width, canvas_h, canvas_w)
    stick = _DT_STICK if stick_width is None else int(stick_width)

    pts = body.astype(np.float64) * (sx, sy)  # (18, 2) canvas coordinates
    score = body_score.astype(np.float64)
    ok = (score > threshold) & np.isfinite(pts).all(-1)  # (18,)
    weight = score.copy()
    weight[_NECK] = 1.0  # the official neck score is 1 whenever the neck is drawn at all

    for k, (a, b) in enumerate(LIMB_SEQ):  # opaque limbs in order, then the whole layer dimmed
        if not (ok[a] and ok[b]):
            continue
        (xa, ya), (xb, yb) = pts[a], pts[b]
        half_len = np.trunc(np.hypot(xa - xb, ya - yb) / 2)
        angle = np.deg2rad(np.trunc(np.degrees(np.arctan2(ya - yb, xa - xb))))
        color = np.trunc(np.asarray(_weighted(DYNAMICTRL_LIMB_COLORS[k], weight[a] * weight[b])) * _DT_LIMB_DIM)
        paint.ellipse(np.trunc((xa + xb) / 2), np.trunc((ya + yb) / 2), half_len, stick, angle, color.astype(np.uint8))
    for j in np.flatnonzero(ok):
        x, y = np.trunc(pts[j])
        paint.disc(x, y, _DT_JOINT_RADIUS, _weighted(DYNAMICTRL_JOINT_COLORS[j], weight[j]))

    if hands is not None:
        for hand, hscore in zip(hands, hands_score):
            hp = np.trunc(hand.astype(np.float64) * (sx, sy))  # (21, 2)
            hs = np.clip(hscore.astype(np.float64), 0.0, None)
            on = np.isfinite(hp).all(-1) & (np.nan_to_num(hp, nan=0.0) >= 1).all(-1)  # official: int coords > 0.01
            for e, (a, b) in enumerate(HAND_EDGES):
                if on[a] and on[b]:
                    level = int(hs[a] * hs[b] * 255)
                    color = np.clip(np.rint(DYNAMICTRL_HAND_EDGE_COLORS[e] * level), 0, 255).astype(np.uint8)
                    paint.segment(*hp[a], *hp[b], _DT_HAND_LINE / 2, color)
            for j in np.flatnonzero(on):
                color = [0, 0, 0]
                color[DYNAMICTRL_HAND_POINT_CHANNEL] = min(255, int(hs[j] * 255))
                paint.disc(*hp[j], _DT_HAND_RADIUS, color)

    if face is not None:
        fp = np.trunc(face.astype(np.float64) * (sx, sy))  # (68, 2)
        fs = np.clip(face_score.astype(np.float64), 0.0, None)
        on = np.isfinite(fp).all(-1) & (np.nan_to_num(fp, nan=0.0) >= 1).all(-1)
        for j in np.flatnonzero(on):
            level = min(255, int(fs[j] * 255))
            paint.disc(*fp[j], _DT_FACE_RADIUS, (level, level, level))

    return paint.resize()


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
    style: str = "dwpose",
) -> np.ndarray:
    """Render one frame's pose; returns ``(height, width, 3)`` uint8 RGB (black background unless ``canvas``).

    ``style`` is ``"dwpose"`` (standard DWPose colours) or ``"dynamictrl"`` (the official release's pose videos,
    for its checkpoints); see the module docstring. ``stick_width`` overrides the limb half-width: in output
    pixels for ``"dwpose"`` (default 4 px at 512 px, scaled with the image), in pixels of the 2160-px drawing
    canvas for ``"dynamictrl"`` (default 4). ``canvas`` (not modified, ``"dwpose"`` only) is drawn over instead of
    black.
    """
    check_style(style)
    if height <= 0 or width <= 0:
        raise ValueError(f"render size must be positive, got height={height}, width={width}")
    body = np.asarray(body, dtype=np.float32).reshape(-1, 2)
    body_score = np.asarray(body_score, dtype=np.float32).reshape(-1)
    if body.shape[0] != NUM_BODY or body_score.shape[0] != NUM_BODY:
        raise ValueError(f"draw_pose needs 18 body points and 18 scores, got {body.shape[0]} and {body_score.shape[0]}")
    if canvas is not None:
        if style != "dwpose":
            raise ValueError(f"canvas is only supported with style='dwpose', got style={style!r}")
        canvas = np.asarray(canvas)
        if canvas.shape != (height, width, 3) or canvas.dtype != np.uint8:
            raise ValueError(f"canvas must be ({height}, {width}, 3) uint8, got {canvas.shape} {canvas.dtype}")
    if hands is not None:
        if hands_score is None:
            raise ValueError("hands given without hands_score")
        hands = np.asarray(hands, dtype=np.float32).reshape(-1, NUM_HAND, 2)
        hands_score = np.asarray(hands_score, dtype=np.float32).reshape(-1, NUM_HAND)
    if face is not None:
        if face_score is None:
            raise ValueError("face given without face_score")
        face = np.asarray(face, dtype=np.float32).reshape(NUM_FACE, 2)
        face_score = np.asarray(face_score, dtype=np.float32).reshape(NUM_FACE)
    args = (body, body_score, height, width, hands, hands_score, face, face_score, threshold, stick_width)
    if style == "dynamictrl":
        return _draw_dynamictrl(*args)
    return _draw_dwpose(*args, canvas)


def render_pose_sequence(
    seq: PoseSequence,
    height: int | None = None,
    width: int | None = None,
    threshold: float = 0.3,
    style: str = "dwpose",
    stick_width: int | None = None,
) -> np.ndarray:
    """Render every frame in ``style`` (see :func:`draw_pose`); returns ``(T, H, W, 3)`` uint8.

    Keypoints are rescaled when the size differs from the sequence's. ``stick_width``: as in :func:`draw_pose`.
    """
    check_style(style)
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
            stick_width=stick_width,
            style=style,
        )
    return out
