"""The puppet's kinematic tree: body proportions, joint angles -> 3D joint positions (forward kinematics).

Body frame: ``x`` = the person's left, ``y`` = up, ``z`` = forward (towards the camera at yaw 0). The camera is
orthographic and looks along ``-z``, so image x = world x and image y = -world y. Lengths are in units of
roughly one body height. Every function is vectorised over the ``T`` frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dynamictrl.pose.keypoints import BODY_INDEX, NUM_BODY
from dynamictrl.puppet.styles import WORLD_STYLES

#: Joint-angle channels (radians) of a pose, plus the root channels ``x`` (lateral position) and ``lift``
#: (height above the ground, for jumps). Missing channels default to 0.
POSE_CHANNELS: tuple[str, ...] = (
    "x",
    "lift",
    "yaw",
    "lean",
    "side_lean",
    "head_yaw",
    "head_pitch",
    *(f"{s}_{j}" for s in ("r", "l") for j in ("sh_flex", "sh_abd", "sh_rot", "elbow", "hip_flex", "hip_abd", "knee")),
)
#: Joint limits (radians) applied before forward kinematics, so every motion stays anatomically plausible.
JOINT_LIMITS: dict[str, tuple[float, float]] = {
    "lean": (-0.4, 1.0),
    "side_lean": (-0.45, 0.45),
    "head_yaw": (-1.2, 1.2),
    "head_pitch": (-0.5, 0.6),
    **{f"{s}_sh_flex": (-0.9, 3.1) for s in "rl"},
    **{f"{s}_sh_abd": (-0.1, 3.0) for s in "rl"},
    **{f"{s}_sh_rot": (-0.3, 1.7) for s in "rl"},
    **{f"{s}_elbow": (0.0, 2.5) for s in "rl"},
    **{f"{s}_hip_flex": (-0.6, 2.0) for s in "rl"},
    **{f"{s}_hip_abd": (-0.15, 0.8) for s in "rl"},
    **{f"{s}_knee": (0.0, 2.4) for s in "rl"},
}

# Extra points after the 18 OpenPose keypoints (used for drawing only).
PELVIS, HEAD, R_TOE, L_TOE, HAIR_END, NECK_TOP = range(NUM_BODY, NUM_BODY + 6)
NUM_POINTS = NUM_BODY + 6
K = BODY_INDEX
#: Face keypoints as offsets from the head centre in head-frame units of the head radius (left, up, forward).
FACE_POINTS: dict[str, tuple[float, float, float]] = {
    "nose": (0.0, -0.2, 1.0),
    "right_eye": (-0.38, 0.15, 0.9),
    "left_eye": (0.38, 0.15, 0.9),
    "right_ear": (-1.0, 0.0, -0.05),
    "left_ear": (1.0, 0.0, -0.05),
}


@dataclass(frozen=True)
class Proportions:
    """Segment lengths and radii of one puppet (units: about one body height)."""

    head_r: float
    neck_len: float
    torso_len: float
    shoulder_half: float
    hip_half: float
    torso_depth: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    foot_len: float
    upper_arm_r: float
    forearm_r: float
    thigh_r: float
    shin_r: float
    hand_r: float
    foot_r: float

    def to_meta(self) -> dict:
        return {k: round(v, 5) for k, v in asdict(self).items()}


def sample_proportions(rng: np.random.Generator, style: str) -> Proportions:
    """Random but human-like proportions; the ``"demo"`` style is a little stockier (thicker limbs), a table style
    (:data:`~dynamictrl.puppet.styles.WORLD_STYLES`) draws a limb thickness from its range."""
    u = rng.uniform
    thick = 1.25 if style == "demo" else 1.0
    if style in WORLD_STYLES:
        thick = u(*WORLD_STYLES[style].limb_thickness)
    return Proportions(
        head_r=u(0.062, 0.076),
        neck_len=u(0.03, 0.045),
        torso_len=u(0.27, 0.32),
        shoulder_half=u(0.08, 0.11),
        hip_half=u(0.05, 0.07),
        torso_depth=u(0.045, 0.06) * thick,
        upper_arm=u(0.15, 0.18),
        forearm=u(0.13, 0.16),
        thigh=u(0.21, 0.25),
        shin=u(0.2, 0.24),
        foot_len=u(0.055, 0.075),
        upper_arm_r=u(0.026, 0.034) * thick,
        forearm_r=u(0.021, 0.028) * thick,
        thigh_r=u(0.038, 0.05) * thick,
        shin_r=u(0.029, 0.038) * thick,
        hand_r=u(0.024, 0.03) * thick,
        foot_r=u(0.02, 0.025) * thick,
    )


def _rot(axis: str, angle: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotation matrices about a body axis."""
    c, s = np.cos(angle), np.sin(angle)
    o, z = np.ones_like(angle), np.zeros_like(angle)
    rows = {
        "x": ((o, z, z), (z, c, -s), (z, s, c)),
        "y": ((c, z, s), (z, o, z), (-s, z, c)),
        "z": ((c, -s, z), (s, c, z), (z, z, o)),
    }[axis]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def _apply(r: np.ndarray, v) -> np.ndarray:
    """Rotate vector(s) ``v`` (3,) or (T, 3) by (T, 3, 3) matrices -> (T, 3)."""
    v = np.broadcast_to(np.asarray(v, dtype=np.float64), (r.shape[0], 3))
    return np.einsum("tij,tj->ti", r, v)


def complete_pose(pose: dict[str, np.ndarray], frames: int) -> dict[str, np.ndarray]:
    """Fill missing channels with 0, broadcast to (T,), clip to :data:`JOINT_LIMITS`; unknown names raise."""
    unknown = set(pose) - set(POSE_CHANNELS)
    if unknown:
        raise ValueError(f"unknown pose channels {sorted(unknown)}; known channels: {POSE_CHANNELS}")
    out = {}
    for name in POSE_CHANNELS:
        value = np.broadcast_to(np.asarray(pose.get(name, 0.0), dtype=np.float64), (frames,)).copy()
        if name in JOINT_LIMITS:
            value = np.clip(value, *JOINT_LIMITS[name])
        out[name] = value
    return out


def forward_kinematics(body: Proportions, pose: dict[str, np.ndarray], frames: int) -> tuple[np.ndarray, np.ndarray]:
    """3D points of the puppet, standing on the ground plane ``y = 0`` (then lifted by ``pose["lift"]``).

    Returns ``points`` (T, NUM_POINTS, 3) (18 OpenPose keypoints then PELVIS, HEAD, R_TOE, L_TOE, HAIR_END,
    NECK_TOP) and ``head_rot`` (T, 3, 3), the head's orientation (columns: head left, up, forward).
    """
    p = complete_pose(pose, frames)
    b = body
    pts = np.zeros((frames, NUM_POINTS, 3))
    r_body = _rot("y", p["yaw"])
    r_spine = r_body @ _rot("x", p["lean"]) @ _rot("z", -p["side_lean"])
    pelvis = np.zeros((frames, 3))
    pelvis[:, 0] = p["x"]
    neck = pelvis + _apply(r_spine, (0.0, b.torso_len, 0.0))
    pts[:, PELVIS], pts[:, K["neck"]] = pelvis, neck
    down = (0.0, -1.0, 0.0)
    for side, sign in (("right", -1.0), ("left", 1.0)):
        s = side[0]
        shoulder = neck + _apply(r_spine, (sign * b.shoulder_half, -0.025, 0.0))
        r_sh = r_spine @ _rot("z", sign * p[f"{s}_sh_abd"]) @ _rot("x", -p[f"{s}_sh_flex"])
        elbow = shoulder + _apply(r_sh, (0.0, -b.upper_arm, 0.0))
        r_el = r_sh @ _rot("y", sign * p[f"{s}_sh_rot"]) @ _rot("x", -p[f"{s}_elbow"])
        wrist = elbow + _apply(r_el, (0.0, -b.forearm, 0.0))
        hip = pelvis + _apply(r_body, (sign * b.hip_half, 0.0, 0.0))
        r_hip = r_body @ _rot("z", sign * p[f"{s}_hip_abd"]) @ _rot("x", -p[f"{s}_hip_flex"])
        knee = hip + _apply(r_hip, (0.0, -b.thigh, 0.0))
        r_knee = r_hip @ _rot("x", p[f"{s}_knee"])
        ankle = knee + _apply(r_knee, down) * b.shin
        toe = ankle + _apply(r_body, (0.0, -0.3 * b.foot_r, b.foot_len))
        for name, value in (("shoulder", shoulder), ("elbow", elbow), ("wrist", wrist)):
            pts[:, K[f"{side}_{name}"]] = value
        for name, value in (("hip", hip), ("knee", knee), ("ankle", ankle)):
            pts[:, K[f"{side}_{name}"]] = value
        pts[:, R_TOE if s == "r" else L_TOE] = toe

    head_rot = r_spine @ _rot("y", p["head_yaw"]) @ _rot("x", -p["head_pitch"])
    neck_top = neck + _apply(r_spine, (0.0, b.neck_len, 0.0))
    head = neck_top + _apply(head_rot, (0.0, 0.8 * b.head_r, 0.0))
    pts[:, NECK_TOP], pts[:, HEAD] = neck_top, head
    for name, direction in FACE_POINTS.items():
        pts[:, K[name]] = head + _apply(head_rot, np.asarray(direction) * b.head_r)
    pts[:, HAIR_END] = head + _apply(head_rot, (0.0, -1.7 * b.head_r, -0.45 * b.head_r))

    # Stand on the ground: the lowest foot point touches y = 0 (feet have radius foot_r), then add the jump lift.
    feet = pts[:, [K["right_ankle"], K["left_ankle"], R_TOE, L_TOE], 1]  # (T, 4)
    pts[..., 1] += (b.foot_r - feet.min(axis=1) + np.maximum(p["lift"], 0.0))[:, None]
    return pts, head_rot


def face_facing(head_rot: np.ndarray) -> dict[str, np.ndarray]:
    """How much each face point's surface faces the camera: camera-z of its unit direction, (T,) in [-1, 1]."""
    out = {}
    for name, direction in FACE_POINTS.items():
        d = np.asarray(direction) / np.linalg.norm(direction)
        out[name] = head_rot[:, 2, :] @ d
    return out


def standing_height(body: Proportions) -> float:
    """Height of the neutral standing puppet (ground to the top of the head)."""
    pts, _ = forward_kinematics(body, {}, 1)
    return float(pts[0, HEAD, 1] + body.head_r)
