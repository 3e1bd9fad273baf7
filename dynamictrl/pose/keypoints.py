"""Keypoint format for pose sequences: 18 OpenPose body points, optional hands (2x21) and face (68).

Coordinates are pixels ``(x, y)`` in an image of size ``width x height``; every point has a confidence in
``[0, 1]``. A joint that was not found has confidence 0 (its coordinates are then meaningless, usually 0).

A :class:`PoseSequence` is saved as ``.npz`` (compact, exact) or ``.json`` (readable, exact for float32) chosen
by the file suffix.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: The 18 OpenPose / DWPose body keypoints, in the order used everywhere in this package.
BODY_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
#: Name -> index into :data:`BODY_KEYPOINTS`.
BODY_INDEX: dict[str, int] = {name: i for i, name in enumerate(BODY_KEYPOINTS)}
NUM_BODY = len(BODY_KEYPOINTS)
#: Order of the two hands in ``PoseSequence.hands`` (the DWPose order: left hand first).
HAND_SIDES: tuple[str, str] = ("left", "right")
NUM_HAND = 21
NUM_FACE = 68

_FORMAT_VERSION = 1
_FIELDS = ("body", "body_score", "hands", "hands_score", "face", "face_score")


def _check(name: str, array: np.ndarray | None, shape: tuple) -> np.ndarray | None:
    """Cast ``array`` to float32 and check its shape; ``None`` in ``shape`` matches any length."""
    if array is None:
        return None
    array = np.asarray(array, dtype=np.float32)
    ok = array.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, array.shape))
    if not ok:
        want = "(" + ", ".join("T" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"PoseSequence.{name} must have shape {want}, got {tuple(array.shape)}")
    return array


@dataclass
class PoseSequence:
    """One person's keypoints over ``T`` frames.

    Attributes:
        body: ``(T, 18, 2)`` float32 pixel ``x, y`` in :data:`BODY_KEYPOINTS` order.
        body_score: ``(T, 18)`` float32 confidences in ``[0, 1]``.
        width, height: size in pixels of the image the coordinates refer to.
        hands: optional ``(T, 2, 21, 2)`` pixel coordinates, hands in :data:`HAND_SIDES` order.
        hands_score: ``(T, 2, 21)``; present exactly when ``hands`` is.
        face: optional ``(T, 68, 2)`` pixel coordinates (the 68 iBUG face landmarks).
        face_score: ``(T, 68)``; present exactly when ``face`` is.
    """

    body: np.ndarray  # (T, 18, 2)
    body_score: np.ndarray  # (T, 18)
    width: int
    height: int
    hands: np.ndarray | None = None  # (T, 2, 21, 2)
    hands_score: np.ndarray | None = None  # (T, 2, 21)
    face: np.ndarray | None = None  # (T, 68, 2)
    face_score: np.ndarray | None = None  # (T, 68)

    def __post_init__(self) -> None:
        self.body = _check("body", self.body, (None, NUM_BODY, 2))
        t = self.body.shape[0]
        self.body_score = _check("body_score", self.body_score, (t, NUM_BODY))
        for part, shape in (("hands", (t, 2, NUM_HAND)), ("face", (t, NUM_FACE))):
            points, scores = getattr(self, part), getattr(self, f"{part}_score")
            if (points is None) != (scores is None):
                raise ValueError(f"PoseSequence.{part} and {part}_score must both be given or both be None")
            setattr(self, part, _check(part, points, (*shape, 2)))
            setattr(self, f"{part}_score", _check(f"{part}_score", scores, shape))
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
                raise ValueError(f"PoseSequence.{name} must be a positive integer, got {value!r}")
            setattr(self, name, int(value))
        for name in ("body_score", "hands_score", "face_score"):
            scores = getattr(self, name)
            if scores is not None and scores.size and not (np.all(scores >= 0) and np.all(scores <= 1)):
                raise ValueError(
                    f"PoseSequence.{name} must lie in [0, 1], got values in [{scores.min()}, {scores.max()}]"
                )

    def __len__(self) -> int:
        return self.body.shape[0]

    def __getitem__(self, index) -> PoseSequence:
        """Frames ``index`` (a slice, an int, or an integer array) as a new sequence; an int keeps a 1-frame axis."""
        if isinstance(index, int | np.integer):
            n = len(self)
            if not -n <= index < n:
                raise IndexError(f"frame {index} out of range for a PoseSequence of {n} frames")
            index = slice(int(index) % n, int(index) % n + 1)
        return PoseSequence(
            **{f: None if getattr(self, f) is None else getattr(self, f)[index] for f in _FIELDS},
            width=self.width,
            height=self.height,
        )

    @property
    def has_hands(self) -> bool:
        return self.hands is not None

    @property
    def has_face(self) -> bool:
        return self.face is not None

    def resized(self, height: int, width: int) -> PoseSequence:
        """The same pose in an image of ``height x width`` (coordinates scaled independently on each axis)."""
        scale = np.array([width / self.width, height / self.height], dtype=np.float32)
        out = {f: getattr(self, f) for f in _FIELDS}
        for f in ("body", "hands", "face"):
            if out[f] is not None:
                out[f] = out[f] * scale
        return PoseSequence(**out, width=width, height=height)

    # ------------------------------------------------------------------ IO
    def to_dict(self) -> dict:
        """Plain-Python dict (lists, ints, floats, None) for JSON."""
        out: dict = {
            "format": "dynamictrl-pose",
            "version": _FORMAT_VERSION,
            "width": self.width,
            "height": self.height,
        }
        for f in _FIELDS:
            value = getattr(self, f)
            out[f] = None if value is None else value.tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> PoseSequence:
        missing = [k for k in ("body", "body_score", "width", "height") if k not in data]
        if missing:
            raise ValueError(f"pose data lacks the keys {missing}")
        kwargs = {f: None if data.get(f) is None else np.asarray(data[f], dtype=np.float32) for f in _FIELDS}
        # An empty list loses its trailing dimensions; restore them so T=0 sequences round-trip.
        if kwargs["body"].size == 0:
            kwargs["body"] = kwargs["body"].reshape(0, NUM_BODY, 2)
            kwargs["body_score"] = kwargs["body_score"].reshape(0, NUM_BODY)
            for f, shape in (("hands", (0, 2, NUM_HAND, 2)), ("face", (0, NUM_FACE, 2))):
                if kwargs[f] is not None:
                    kwargs[f] = kwargs[f].reshape(shape)
                    kwargs[f"{f}_score"] = kwargs[f"{f}_score"].reshape(shape[:-1])
        return cls(**kwargs, width=int(data["width"]), height=int(data["height"]))

    def save(self, path: str | Path) -> Path:
        """Write to ``path``; the suffix (``.npz`` or ``.json``) chooses the format."""
        path = Path(path)
        suffix = path.suffix.lower()
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".npz":
            arrays = {f: getattr(self, f) for f in _FIELDS if getattr(self, f) is not None}
            np.savez_compressed(
                path, **arrays, size=np.array([self.width, self.height]), version=np.array(_FORMAT_VERSION)
            )
        elif suffix == ".json":
            path.write_text(json.dumps(self.to_dict()))
        else:
            raise ValueError(f"unknown pose file suffix {path.suffix!r} in {path}; use .npz or .json")
        logger.debug("saved %d-frame pose sequence to %s", len(self), path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PoseSequence:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pose file not found: {path}")
        suffix = path.suffix.lower()
        if suffix == ".npz":
            with np.load(path) as data:
                if "body" not in data or "size" not in data:
                    raise ValueError(f"{path} is not a dynamictrl pose file (needs arrays 'body' and 'size')")
                width, height = (int(v) for v in data["size"])
                kwargs = {f: (data[f] if f in data else None) for f in _FIELDS}
            return cls(**kwargs, width=width, height=height)
        if suffix == ".json":
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} is not valid JSON: {err}") from err
            return cls.from_dict(data)
        raise ValueError(f"unknown pose file suffix {path.suffix!r} in {path}; use .npz or .json")
