"""One synthetic sample: puppet + motion + background -> video, pose video, masks, reference and caption."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from dynamictrl.pose.keypoints import NUM_BODY, PoseSequence
from dynamictrl.pose.render import render_pose_sequence
from dynamictrl.puppet.background import render_background, sample_background
from dynamictrl.puppet.clothing import make_caption, pick_contrasting, sample_appearance
from dynamictrl.puppet.draw import EYE_VISIBLE, build_parts, rasterize
from dynamictrl.puppet.motion import MOTION_FAMILIES, SPLITS, check_split, sample_motion
from dynamictrl.puppet.palette import BACKGROUND_COLORS_DEMO, BACKGROUND_COLORS_FULL
from dynamictrl.puppet.skeleton import K, face_facing, forward_kinematics, sample_proportions, standing_height
from dynamictrl.puppet.styles import WORLD_STYLES, stick_width_for

logger = logging.getLogger(__name__)

STYLES: tuple[str, ...] = ("full", "demo", "wide", "heldout")
#: Minimum camera-facing of a face point for its keypoint to count as detected (score 1, else 0).
_FACE_THRESHOLDS = {
    "nose": -0.05,
    "right_eye": EYE_VISIBLE,
    "left_eye": EYE_VISIBLE,
    "right_ear": -0.35,
    "left_ear": -0.35,
}


@dataclass
class SyntheticSample:
    """Everything one clip of the puppet world provides (shapes for T frames of H x W)."""

    video: np.ndarray  # (T, H, W, 3) uint8
    pose_video: np.ndarray | None  # (T, H, W, 3) uint8, DWPose-style render of ``keypoints`` (None if not rendered)
    keypoints: PoseSequence  # T frames
    reference: np.ndarray  # (H, W, 3) uint8, same puppet in another pose
    reference_pose: PoseSequence  # 1 frame
    reference_mask: np.ndarray  # (H, W) bool
    masks: np.ndarray  # (T, H, W) bool, exact person masks
    background: np.ndarray  # (T, H, W, 3) uint8, the background alone
    caption: str
    meta: dict = field(default_factory=dict)
    parts: np.ndarray | None = None  # (T, H, W) uint8 part labels (draw.PART_LABELS; 0 = background)
    reference_parts: np.ndarray | None = None  # (H, W) uint8, the same for the reference


def _check_args(seed, split, height, width, frames, style, fps) -> None:
    check_split(split)
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; allowed: {STYLES}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if height < 16 or width < 16:
        raise ValueError(f"height and width must be at least 16 pixels, got {height}x{width}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")


def _keypoint_scores(pixels: np.ndarray, head_rot: np.ndarray, height: int, width: int) -> np.ndarray:
    """(T, 18) scores: 1 for body joints and camera-facing face points inside the frame, else 0."""
    score = np.ones(pixels.shape[:1] + (NUM_BODY,), dtype=np.float32)
    for name, facing in face_facing(head_rot).items():
        score[:, K[name]] = (facing > _FACE_THRESHOLDS[name]).astype(np.float32)
    body = pixels[:, :NUM_BODY]
    inside = (body[..., 0] >= 0) & (body[..., 0] <= width - 1) & (body[..., 1] >= 0) & (body[..., 1] <= height - 1)
    return score * inside


def _composite(puppet: np.ndarray, mask: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Puppet over background; a puppet pixel that happens to equal the background is nudged by one level in
    red, so ``video != background`` exactly where the mask is set."""
    out = np.where(mask[..., None], puppet, background)
    same = mask & (out == background).all(-1)
    out[..., 0][same] ^= 1
    return out


def make_sample(
    seed: int,
    split: str = "train",
    size: int = 64,
    frames: int = 13,
    style: str = "full",
    height: int | None = None,
    width: int | None = None,
    fps: float = 8.0,
    render_pose: bool = True,
    swap_background: bool = False,
) -> SyntheticSample:
    """Generate one clip of the puppet world, fully determined by ``(seed, split, style)``.

    ``size`` gives a square frame unless ``height`` / ``width`` are set. The puppet, clothing, background and
    motion do not depend on the size or frame count (only the rendering does), so the same seed at 64 px and at
    256 px shows the same scene. ``render_pose=False`` skips the pose video (faster; ``pose_video`` is None).

    ``swap_background=True`` gives the same clip (puppet, motion, reference) on a wall of another colour, named by
    the caption, while the reference keeps the original wall: the ground truth of the background-control
    protocol (mask the reference to the person, prompt for the new wall). ``meta["background_swapped_from"]``
    records the original wall.
    """
    height = int(size if height is None else height)
    width = int(size if width is None else width)
    _check_args(seed, split, height, width, frames, style, fps)
    # an 8th stream for draws only the table styles make (spawn(8) starts with the same 7 as spawn(7))
    streams = np.random.SeedSequence([int(seed), SPLITS.index(split), STYLES.index(style)]).spawn(8)
    bg_rng, look_rng, body_rng, motion_rng, layout_rng, ref_rng, swap_rng, style_rng = (
        np.random.default_rng(s) for s in streams
    )
    table = WORLD_STYLES.get(style)

    background = sample_background(bg_rng, style)
    noise_seed = int(bg_rng.integers(2**31))
    look = sample_appearance(look_rng, style, background)
    body = sample_proportions(body_rng, style)
    motion, motion_info = sample_motion(motion_rng, split, allow_travel=style != "demo")
    person = layout_rng.uniform(0.7, 0.8) if style == "demo" else layout_rng.uniform(0.58, 0.8)
    ground = layout_rng.uniform(0.9, 0.96)
    stick_width = None  # the renderer's default for the frame size
    if table is not None:
        person, ground = style_rng.uniform(*table.person_height), style_rng.uniform(*table.ground)
        stick_width = stick_width_for(table, int(style_rng.integers(len(table.pose_stick_widths))), min(height, width))
    place, t0 = layout_rng.uniform(), layout_rng.uniform(0.0, 20.0)
    t_ref, ref_yaw, ref_place = ref_rng.uniform(0.0, 20.0), ref_rng.uniform(-0.6, 0.6), ref_rng.uniform(0.3, 0.7)
    ref_background = background
    # a reference in front of another wall (text must name the clip's wall); never in the held-out test style,
    # whose protocol checks that the reference's wall and clothes are kept
    if style not in ("demo", "heldout") and ref_rng.random() < 0.3:
        ref_background = sample_background(ref_rng, style, allow_pan=False)
    swapped_from = None
    if swap_background:  # a new wall colour that differs from the old one and stands out from the clothes
        if table is not None:
            colors = table.wall_colors
        else:
            colors = BACKGROUND_COLORS_DEMO if style == "demo" else BACKGROUND_COLORS_FULL
        walls = [c for c in colors if c != background.color]
        new_color = pick_contrasting(swap_rng, walls, [look.shirt_color, look.bottom_color])
        swapped_from, background = background, background.with_color(new_color)

    scale = person * height / standing_height(body)  # pixels per body unit
    ground_px = ground * height
    margin = 0.3 * scale
    parts = build_parts(body, look)
    anchor = MOTION_FAMILIES[motion_info["family"]].anchor_feet and not motion_info["travel"]

    # Target clip: joint angles -> 3D -> pixels.
    pose = motion(t0 + np.arange(frames) / fps)
    x = np.broadcast_to(np.asarray(pose.get("x", 0.0), dtype=np.float64), (frames,))
    span, room = float(np.ptp(x)) * scale, max(width - 2 * margin, 0.0)
    if span > room:  # travel slower than the legs say rather than leave the frame
        x = (x - x[0]) * room / span + x[0]
    pose["x"] = x - x.min()
    points, head_rot = forward_kinematics(body, pose, frames)
    if anchor:  # in-place motions keep the feet where they are
        ankles = points[:, [K["right_ankle"], K["left_ankle"]], 0].mean(1)
        points[..., 0] -= (ankles - ankles[0])[:, None]
    lo, hi = margin - points[:, :, 0].min() * scale, width - margin - points[:, :, 0].max() * scale
    cx = lo + place * (hi - lo) if hi >= lo else 0.5 * (width - (points[:, :, 0].min() + points[:, :, 0].max()) * scale)
    pixels = np.stack([cx + scale * points[..., 0], ground_px - scale * points[..., 1]], -1)  # (T, P, 2)
    puppet, masks, parts_video = rasterize(
        pixels, points[..., 2], head_rot, parts, look, body, scale, height, width, style != "demo"
    )
    bg_video = render_background(background, height, width, frames, noise_seed)
    video = _composite(puppet, masks, bg_video)
    keypoints = PoseSequence(
        body=pixels[:, :NUM_BODY],
        body_score=_keypoint_scores(pixels, head_rot, height, width),
        width=width,
        height=height,
    )

    # Reference: the same puppet at another moment of the motion, facing roughly towards the camera.
    ref_pose = dict(motion(np.array([t_ref])))
    ref_pose.update(x=0.0, lift=0.0, yaw=ref_yaw)
    ref_points, ref_rot = forward_kinematics(body, ref_pose, 1)
    ref_cx = ref_place * width - 0.5 * (ref_points[0, :, 0].min() + ref_points[0, :, 0].max()) * scale
    ref_pixels = np.stack([ref_cx + scale * ref_points[..., 0], ground_px - scale * ref_points[..., 1]], -1)
    ref_rgb, ref_mask, ref_parts = rasterize(
        ref_pixels, ref_points[..., 2], ref_rot, parts, look, body, scale, height, width, style != "demo"
    )
    ref_bg = render_background(ref_background, height, width, 1, noise_seed)
    reference = _composite(ref_rgb, ref_mask, ref_bg)[0]
    reference_pose = PoseSequence(
        body=ref_pixels[:, :NUM_BODY],
        body_score=_keypoint_scores(ref_pixels, ref_rot, height, width),
        width=width,
        height=height,
    )

    caption = make_caption(look, background)
    meta = {
        "seed": int(seed),
        "split": split,
        "style": style,
        "height": height,
        "width": width,
        "frames": int(frames),
        "fps": float(fps),
        "caption": caption,
        "motion": motion_info,
        "background": background.to_meta(),
        **({"background_swapped_from": swapped_from.to_meta()} if swapped_from else {}),
        "reference_background": ref_background.to_meta(),
        "clothing": look.to_meta(),
        "body": body.to_meta(),
        "layout": {"person_height_px": float(person * height), "ground_y": float(ground_px), "t0_s": float(t0)},
        "pose_stick_width": stick_width,
    }
    pose_video = render_pose_sequence(keypoints, stick_width=stick_width) if render_pose else None
    return SyntheticSample(
        video=video,
        pose_video=pose_video,
        keypoints=keypoints,
        reference=reference,
        reference_pose=reference_pose,
        reference_mask=ref_mask[0],
        masks=masks,
        background=bg_video,
        caption=caption,
        meta=meta,
        parts=parts_video,
        reference_parts=ref_parts[0],
    )


class PuppetWorld:
    """An indexable collection of samples: ``world[i]`` is ``make_sample(base_seed + i, ...)``.

    Args mirror :func:`make_sample`; ``num`` is the length (for use as a map-style dataset).
    """

    def __init__(
        self,
        num: int,
        split: str = "train",
        size: int = 64,
        frames: int = 13,
        style: str = "full",
        base_seed: int = 0,
        fps: float = 8.0,
        render_pose: bool = True,
    ) -> None:
        if num < 0:
            raise ValueError(f"num must be >= 0, got {num}")
        _check_args(base_seed, split, size, size, frames, style, fps)
        self.num, self.split, self.size, self.frames, self.style = num, split, size, frames, style
        self.base_seed, self.fps, self.render_pose = base_seed, fps, render_pose

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, index: int) -> SyntheticSample:
        if not -self.num <= index < self.num:
            raise IndexError(f"index {index} out of range for a PuppetWorld of {self.num} samples")
        return make_sample(
            self.base_seed + index % self.num,
            split=self.split,
            size=self.size,
            frames=self.frames,
            style=self.style,
            fps=self.fps,
            render_pose=self.render_pose,
        )

    def __iter__(self):
        return (self[i] for i in range(self.num))
