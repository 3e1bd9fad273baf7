"""Motion families (joint-angle curves over time) and the train / val / test split of motions.

A family draws its random parameters once and returns a function ``pose(t)`` that maps times in seconds (T,)
to joint-angle channels (see :data:`~dynamictrl.puppet.skeleton.POSE_CHANNELS`). Every curve is a
smooth function of time built from sinusoids, so motions are smooth at any frame rate and the reference image
can show the same motion at another moment.

Split rule (what guarantees that test motions are never seen in training):

* Held-out families: ``side_step`` and ``arm_circles`` appear only in ``val``; ``jumping_jack`` and ``kick``
  only in ``test``.
* Shared families (walk, wave, jump, squat, spin, dance) appear in every split, but each family's tempo range
  (cycles per second) is cut into 5 equal bands assigned train, val, train, test, train; a sample's tempo is
  drawn inside its split's bands only, so no test tempo lies in a training band.
* Seeds: the random stream is seeded with ``(seed, split)``, so the same integer seed gives unrelated samples in
  different splits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Which split owns each of the 5 tempo bands of a shared family.
BAND_SPLITS: tuple[str, ...] = ("train", "val", "train", "test", "train")

PoseFn = Callable[[np.ndarray], dict[str, np.ndarray]]
TAU = 2.0 * np.pi


def _smooth_open(phase: np.ndarray) -> np.ndarray:
    """0 -> 1 -> 0 once per cycle, smoothly."""
    return 0.5 - 0.5 * np.cos(phase)


def _drift(rng: np.random.Generator, amp: float) -> Callable[[np.ndarray], np.ndarray]:
    """A slow random wobble (two low-frequency sines) for natural-looking secondary motion."""
    f = rng.uniform(0.1, 0.4, 2)
    ph = rng.uniform(0, TAU, 2)
    a = rng.uniform(0.3, 1.0, 2) * amp
    return lambda t: a[0] * np.sin(TAU * f[0] * t + ph[0]) + a[1] * np.sin(TAU * f[1] * t + ph[1])


def _rest_arms(rng: np.random.Generator) -> dict[str, float]:
    return {
        "r_sh_abd": rng.uniform(0.08, 0.25),
        "l_sh_abd": rng.uniform(0.08, 0.25),
        "r_elbow": rng.uniform(0.1, 0.4),
        "l_elbow": rng.uniform(0.1, 0.4),
        "r_knee": 0.05,
        "l_knee": 0.05,
    }


def _facing(rng: np.random.Generator, travel: bool, direction: float) -> float:
    """Body yaw: towards the travel direction (three-quarter to profile view) or roughly towards the camera."""
    return direction * rng.uniform(0.9, 1.4) if travel else rng.uniform(-0.6, 0.6)


def walk(rng: np.random.Generator, tempo: float, travel: bool, direction: float) -> PoseFn:
    swing, knee, arm = rng.uniform(0.3, 0.5), rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.9)
    ph0, yaw, rest, head = rng.uniform(0, TAU), _facing(rng, travel, direction), _rest_arms(rng), _drift(rng, 0.15)
    speed = 0.8 * tempo * np.sin(swing) if travel else 0.0

    def pose(t):
        ph = TAU * tempo * t + ph0
        s, c = np.sin(ph), np.cos(ph)
        return {
            **rest,
            "x": direction * speed * t,
            "yaw": yaw,
            "lean": 0.06,
            "head_yaw": head(t),
            "r_hip_flex": swing * s,
            "l_hip_flex": -swing * s,
            "r_knee": 0.08 + knee * (0.5 + 0.5 * c) ** 2,
            "l_knee": 0.08 + knee * (0.5 - 0.5 * c) ** 2,
            "r_sh_flex": -arm * swing * s,
            "l_sh_flex": arm * swing * s,
            "r_elbow": rest["r_elbow"] + 0.25 * (0.5 - 0.5 * s),
            "l_elbow": rest["l_elbow"] + 0.25 * (0.5 + 0.5 * s),
        }

    return pose


def wave(rng: np.random.Generator, tempo: float, travel: bool, direction: float) -> PoseFn:
    sides = [("r",), ("l",), ("r", "l")][int(rng.integers(3))]
    abd, e0, ea = rng.uniform(1.9, 2.5), rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.5)
    ph0, yaw, rest, head = rng.uniform(0, TAU), _facing(rng, False, direction), _rest_arms(rng), _drift(rng, 0.2)

    def pose(t):
        ph = TAU * tempo * t + ph0
        out = {**rest, "yaw": yaw, "head_yaw": head(t), "side_lean": 0.04 * np.sin(ph)}
        for k, s in enumerate(sides):
            out[f"{s}_sh_abd"] = abd + 0.1 * np.sin(ph + k * np.pi)
            out[f"{s}_sh_rot"] = 1.5
            out[f"{s}_elbow"] = e0 + ea * np.sin(ph + k * np.pi)
        return out

    return pose


def jump(rng: np.random.Generator, tempo: float, travel: bool, direction: float) -> PoseFn:
    height, crouch, arms_up = rng.uniform(0.06, 0.13), rng.uniform(0.5, 1.0), rng.uniform(0.6, 2.0)
    ph0, yaw, rest = rng.uniform(0, TAU), _facing(rng, travel, direction), _rest_arms(rng)
    hop = rng.uniform(0.1, 0.22) if travel else 0.0

    def pose(t):
        ph = TAU * tempo * t + ph0
        s = np.sin(ph)
        air, ground = np.maximum(s, 0.0), np.maximum(-s, 0.0)
        # Forward progress happens only in the air: integral of max(sin, 0), 2 per cycle.
        cyc, frac = np.floor(ph / TAU), np.mod(ph, TAU)
        progress = 2.0 * cyc + np.where(frac < np.pi, 1.0 - np.cos(frac), 2.0)
        return {
            **rest,
            "x": direction * hop * progress / 2.0,
            "lift": height * air**1.3,
            "yaw": yaw,
            "lean": 0.35 * crouch * ground,
            "r_hip_flex": 0.05 + 0.8 * crouch * ground + 0.25 * air,
            "l_hip_flex": 0.05 + 0.8 * crouch * ground + 0.25 * air,
            "r_knee": 0.08 + 1.4 * crouch * ground + 0.35 * air,
            "l_knee": 0.08 + 1.4 * crouch * ground + 0.35 * air,
            "r_sh_flex": -0.4 * ground + arms_up * air,
            "l_sh_flex": -0.4 * ground + arms_up * air,
        }

    return pose


def squat(rng: np.random.Generator, tempo: float, travel: bool, direction: float) -> PoseFn:
    depth, arms = rng.uniform(0.6, 1.0), rng.uniform(1.0, 1.6)
    ph0, yaw, rest, head = rng.uniform(0, TAU), rng.uniform(-0.9, 0.9), _rest_arms(rng), _drift(rng, 0.1)

    def pose(t):
        d = depth * _smooth_open(TAU * tempo * t + ph0)
        return {
            **rest,
            "yaw": yaw,
            "head_pitch": head(t),
            "lean": 0.5 * d,
            "r_hip_flex": 0.05 + 1.45 * d,
            "l_hip_flex": 0.05 + 1.45 * d,
            "r_hip_abd": 0.08 + 0.1 * d,
            "l_hip_abd": 0.08 + 0.1 * d,
            "r_knee": 0.05 + 1.9 * d,
            "l_knee": 0.05 + 1.9 * d,
            "r_sh_flex": 0.1 + arms * d,
            "l_sh_flex": 0.1 + arms * d,
        }

    return pose


def spin(rng: np.random.Generator, tempo: float, travel: bool, direction: float) -> PoseFn:
    yaw0, abd, step = rng.uniform(0, TAU), rng.uniform(0.3, 1.4), rng.uniform(0.1, 0.3)
    rest = _rest_arms(rng)

    def pose(t):
        ph = TAU * tempo * t
        return {
            **rest,
            "yaw": yaw0 + direction * ph,
            "r_sh_abd": abd,
            "l_sh_abd": abd,
            "r_knee": 0.1 + step * (0.5 + 0.5 * np.sin(3 * ph)),
            "l_knee": 0.1 + step * (0.5 - 0.5 * np.sin(3 * ph)),
            "r_hip_flex": 0.5 * step * (0.5 + 0.5 * np.sin(3 * ph)),
            "l_hip_flex": 0.5 * step * (0.5 - 0.5 * np.sin(3 * ph)),
        }

    return pose


def dance(rng: np.random.Generator, tempo: float, travel: bool, direction: float) -> PoseFn:
    """A mix of 3-4 of: knee bounce, hip sway, arm pumps, arm waves, torso twist, side taps, head bob, blended
    between two random arm base poses."""
    parts = set(
        rng.choice(["bounce", "sway", "pump", "arm_wave", "twist", "tap", "bob"], int(rng.integers(3, 5)), False)
    )
    bases = [
        {
            f"{s}_{j}": rng.uniform(lo, hi)
            for s in "rl"
            for j, lo, hi in (("sh_abd", 0.1, 1.6), ("sh_flex", -0.2, 1.2), ("elbow", 0.2, 1.6))
        }
        for _ in range(2)
    ]
    amp = rng.uniform(0.6, 1.0)
    ph0, yaw = rng.uniform(0, TAU), rng.uniform(-0.6, 0.6)

    def pose(t):
        b = TAU * tempo * t + ph0
        w = _smooth_open(0.25 * b)  # drift between the two base poses every 4 beats
        out = {k: (1 - w) * bases[0][k] + w * bases[1][k] for k in bases[0]}
        out.update(yaw=yaw + (0.4 * amp * np.sin(0.5 * b) if "twist" in parts else 0.0), r_knee=0.1, l_knee=0.1)
        if "bounce" in parts:
            for s in "rl":
                out[f"{s}_knee"] = out[f"{s}_knee"] + 0.5 * amp * _smooth_open(b)
                out[f"{s}_hip_flex"] = 0.3 * amp * _smooth_open(b)
        if "sway" in parts:
            out["side_lean"] = 0.18 * amp * np.sin(0.5 * b)
            out["x"] = 0.04 * amp * np.sin(0.5 * b)
        if "pump" in parts:
            out["r_sh_flex"] = out["r_sh_flex"] + 0.7 * amp * np.sin(b)
            out["l_sh_flex"] = out["l_sh_flex"] - 0.7 * amp * np.sin(b)
        if "arm_wave" in parts:
            out["r_sh_abd"] = out["r_sh_abd"] + 0.6 * amp * np.sin(b)
            out["l_sh_abd"] = out["l_sh_abd"] + 0.6 * amp * np.sin(b + 1.0)
        if "tap" in parts:
            out["r_hip_abd"] = 0.35 * amp * np.maximum(np.sin(0.5 * b), 0.0)
            out["l_hip_abd"] = 0.35 * amp * np.maximum(-np.sin(0.5 * b), 0.0)
        if "bob" in parts:
            out["head_pitch"] = 0.2 * amp * np.sin(b)
        return out

    return pose


def side_step(rng: np.random.Generator, tempo: float, travel: bool, direction: float) -> PoseFn:
    spread, arms = rng.uniform(0.2, 0.4), rng.uniform(0.2, 0.8)
    ph0, yaw, rest = rng.uniform(0, TAU), rng.uniform(-0.3, 0.3), _rest_arms(rng)
    speed = tempo * rng.uniform(0.12, 0.2)

    def pose(t):
        o = _smooth_open(TAU * tempo * t + ph0)
        return {
            **rest,
            "x": direction * speed * t,
            "yaw": yaw,
            "r_hip_abd": spread * o,
            "l_hip_abd": spread * o,
            "r_knee": 0.1 + 0.2 * o,
            "l_knee": 0.1 + 0.2 * o,
            "r_sh_abd": 0.15 + arms * o,
            "l_sh_abd": 0.15 + arms * o,
        }

    return pose


def arm_circles(rng: np.random.Generator, tempo: float, travel: bool, direction: float) -> PoseFn:
    radius, ph0, yaw, rest = rng.uniform(0.25, 0.5), rng.uniform(0, TAU), rng.uniform(-0.7, 0.7), _rest_arms(rng)

    def pose(t):
        ph = TAU * tempo * t * direction + ph0
        return {
            **rest,
            "yaw": yaw,
            "r_sh_abd": 1.45 + radius * np.cos(ph),
            "l_sh_abd": 1.45 + radius * np.cos(ph),
            "r_sh_flex": radius * np.sin(ph),
            "l_sh_flex": radius * np.sin(ph),
            "r_elbow": 0.1,
            "l_elbow": 0.1,
        }

    return pose


def jumping_jack(rng: np.random.Generator, tempo: float, travel: bool, direction: float) -> PoseFn:
    height, legs, ph0 = rng.uniform(0.03, 0.07), rng.uniform(0.3, 0.45), rng.uniform(0, TAU)
    yaw = rng.uniform(-0.5, 0.5)

    def pose(t):
        ph = TAU * tempo * t + ph0
        o = _smooth_open(ph)
        return {
            "yaw": yaw,
            "lift": height * np.sin(ph) ** 2,
            "r_sh_abd": 0.15 + 2.6 * o,
            "l_sh_abd": 0.15 + 2.6 * o,
            "r_elbow": 0.15,
            "l_elbow": 0.15,
            "r_hip_abd": 0.03 + legs * o,
            "l_hip_abd": 0.03 + legs * o,
            "r_knee": 0.1 + 0.2 * np.cos(ph) ** 2,
            "l_knee": 0.1 + 0.2 * np.cos(ph) ** 2,
        }

    return pose


def kick(rng: np.random.Generator, tempo: float, travel: bool, direction: float) -> PoseFn:
    high, ph0, yaw = rng.uniform(0.9, 1.5), rng.uniform(0, TAU), direction * rng.uniform(0.5, 1.3)
    alternate = bool(rng.random() < 0.5)

    def pose(t):
        s = np.sin(TAU * tempo * t + ph0)
        kr = np.maximum(s, 0.0) ** 2
        kl = np.maximum(-s, 0.0) ** 2 if alternate else np.zeros_like(s)
        out = {"yaw": yaw, "lean": -0.15 * (kr + kl)}
        for side, k in (("r", kr), ("l", kl)):
            out[f"{side}_hip_flex"] = 0.05 + high * k
            out[f"{side}_knee"] = 0.12 + 1.6 * k * (1.0 - k)
            out[f"{side}_sh_flex"] = 1.0
            out[f"{side}_sh_abd"] = 0.3
            out[f"{side}_elbow"] = 2.0
        return out

    return pose


@dataclass(frozen=True)
class Family:
    """A motion family: its pose-curve builder, tempo range (Hz), owner split and travel probability."""

    build: Callable[..., PoseFn]
    tempo: tuple[float, float]
    owner: str  # "shared" or the only split that uses it
    travel_prob: float = 0.0
    anchor_feet: bool = True  # keep the feet in place (in-place motions)


MOTION_FAMILIES: dict[str, Family] = {
    "walk": Family(walk, (0.5, 1.0), "shared", travel_prob=0.5),
    "wave": Family(wave, (0.6, 1.8), "shared"),
    "jump": Family(jump, (0.35, 0.8), "shared", travel_prob=0.4),
    "squat": Family(squat, (0.25, 0.7), "shared"),
    "spin": Family(spin, (0.12, 0.5), "shared"),
    "dance": Family(dance, (0.5, 1.2), "shared", anchor_feet=False),
    "side_step": Family(side_step, (0.6, 1.2), "val", travel_prob=1.0, anchor_feet=False),
    "arm_circles": Family(arm_circles, (0.4, 1.2), "val"),
    "jumping_jack": Family(jumping_jack, (0.4, 0.8), "test"),
    "kick": Family(kick, (0.3, 0.6), "test", anchor_feet=False),
}


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {SPLITS}")
    return split


def split_families(split: str) -> list[str]:
    """Families that occur in ``split`` (shared ones plus those held out for it)."""
    check_split(split)
    return [n for n, f in MOTION_FAMILIES.items() if f.owner in ("shared", split)]


def tempo_bands(family: str, split: str) -> list[tuple[float, float]]:
    """Tempo intervals [lo, hi) of ``family`` that belong to ``split`` (empty if the family is not in it)."""
    check_split(split)
    fam = MOTION_FAMILIES[family]
    if fam.owner != "shared":
        return [fam.tempo] if fam.owner == split else []
    edges = np.linspace(*fam.tempo, len(BAND_SPLITS) + 1)
    return [(float(edges[i]), float(edges[i + 1])) for i, s in enumerate(BAND_SPLITS) if s == split]


def sample_motion(rng: np.random.Generator, split: str, allow_travel: bool = True) -> tuple[PoseFn, dict]:
    """Draw a motion for ``split``; returns the pose function and its JSON-ready description.

    ``allow_travel=False`` keeps every motion in place (the "demo" style); the random stream is the same either way.
    """
    held_out = [n for n in split_families(split) if MOTION_FAMILIES[n].owner == split]
    shared = [n for n in split_families(split) if MOTION_FAMILIES[n].owner == "shared"]
    pool = held_out if held_out and rng.random() < 0.5 else shared
    name = str(rng.choice(pool))
    fam = MOTION_FAMILIES[name]
    bands = tempo_bands(name, split)
    lo, hi = bands[int(rng.integers(len(bands)))]
    tempo = float(rng.uniform(lo, hi))
    travel = bool(rng.random() < fam.travel_prob) and (allow_travel or fam.travel_prob >= 1.0)
    direction = float(rng.choice([-1.0, 1.0]))
    fn = fam.build(rng, tempo, travel, direction)
    info = {"family": name, "tempo_hz": tempo, "tempo_band": [lo, hi], "travel": travel, "direction": direction}
    return fn, info
