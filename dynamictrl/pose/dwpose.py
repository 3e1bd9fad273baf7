"""DWPose whole-body keypoint extraction through ONNX Runtime, with all pre/post-processing in numpy + PIL.

Two ONNX models from the DWPose release (https://huggingface.co/yzd-v/DWPose), kept in one folder given by
``models_dir`` or the environment variable ``DYNAMICTRL_DWPOSE_DIR``:

- ``yolox_l.onnx``: YOLOX-L person detector, input ``(1, 3, 640, 640)`` (letterboxed, pad value 114, top-left
  placement, raw 0-255 BGR), output ``(1, 8400, 85)`` raw grid predictions (cx, cy, w, h, objectness, 80 classes);
- ``dw-ll_ucoco_384.onnx``: DWPose (RTMPose-L distilled) whole-body model, input ``(1, 3, 384, 288)`` (an affine
  crop around the person box enlarged 1.25x, ImageNet-normalised RGB), outputs ``simcc_x (1, 133, 576)`` and
  ``simcc_y (1, 133, 768)`` (1-D classification over 2x sub-pixel bins).

The 133 COCO-WholeBody points (17 body, 6 feet, 68 face, 21 left hand, 21 right hand) are mapped to the 18-point
OpenPose body (neck = mean of the shoulders, confidence = the smaller shoulder confidence) plus hands (left, right)
and face. One person per frame is kept: the largest confident detection, which is the subject in the
single-person videos this project animates.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dynamictrl.pose.keypoints import BODY_KEYPOINTS, NUM_BODY, PoseSequence

logger = logging.getLogger(__name__)

DETECTOR_FILE = "yolox_l.onnx"
POSE_FILE = "dw-ll_ucoco_384.onnx"
MODELS_ENV_VAR = "DYNAMICTRL_DWPOSE_DIR"
WEIGHTS_URL = "https://huggingface.co/yzd-v/DWPose"

DETECTOR_INPUT_SIZE = (640, 640)  # (H, W)
POSE_INPUT_SIZE = (384, 288)  # (H, W)
SIMCC_SPLIT_RATIO = 2.0
BBOX_PADDING = 1.25
YOLOX_STRIDES = (8, 16, 32)
_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)

# COCO-WholeBody layout.
_COCO_BODY = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
FACE_SLICE = slice(23, 91)
LEFT_HAND_SLICE = slice(91, 112)
RIGHT_HAND_SLICE = slice(112, 133)
NUM_WHOLEBODY = 133


def _install_hint() -> str:
    return 'pip install "dynamictrl[pose]"  (or: pip install onnxruntime, or onnxruntime-gpu on CUDA machines)'


def import_onnxruntime():
    """Import onnxruntime lazily, with an error that says how to install it."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(f"DWPose extraction needs onnxruntime: {_install_hint()}") from err
    return onnxruntime


def resolve_models_dir(models_dir: str | Path | None = None) -> Path:
    """The folder holding both ONNX files (argument, else ``$DYNAMICTRL_DWPOSE_DIR``); raises if files are missing."""
    if models_dir is None:
        models_dir = os.environ.get(MODELS_ENV_VAR)
    if models_dir is None:
        raise FileNotFoundError(
            f"DWPose models not configured: pass --pose-models DIR (--models-dir DIR in tools/), or set "
            f"{MODELS_ENV_VAR}, to a folder holding {DETECTOR_FILE} and {POSE_FILE}; download both from {WEIGHTS_URL}"
        )
    models_dir = Path(models_dir)
    missing = [name for name in (DETECTOR_FILE, POSE_FILE) if not (models_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"DWPose model file(s) {missing} not found in {models_dir}; it must hold {DETECTOR_FILE} and "
            f"{POSE_FILE}, from {WEIGHTS_URL}"
        )
    return models_dir


# ---------------------------------------------------------------- detector pre/post-processing
def letterbox(
    image: np.ndarray, size: tuple[int, int] = DETECTOR_INPUT_SIZE, pad_value: int = 114
) -> tuple[np.ndarray, float]:
    """Resize ``image`` (H, W, 3) uint8 to fit ``size`` (H, W) keeping its aspect, pad bottom/right.

    Returns the ``(size_h, size_w, 3)`` uint8 canvas and the ratio (canvas pixels per image pixel).
    """
    h, w = image.shape[:2]
    ratio = min(size[0] / h, size[1] / w)
    new_w, new_h = max(1, int(w * ratio)), max(1, int(h * ratio))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    canvas = np.full((*size, 3), pad_value, dtype=np.uint8)
    canvas[:new_h, :new_w] = resized
    return canvas, ratio


def letterbox_inverse(points: np.ndarray, ratio: float) -> np.ndarray:
    """Map coordinates (..., 2k) on the letterboxed canvas back to the original image."""
    return np.asarray(points, dtype=np.float32) / ratio


def decode_yolox(
    raw: np.ndarray, input_size: tuple[int, int] = DETECTOR_INPUT_SIZE, strides=YOLOX_STRIDES
) -> tuple[np.ndarray, np.ndarray]:
    """Decode raw YOLOX grid predictions ``(N, 5 + C)`` into person boxes ``(N, 4)`` xyxy and scores ``(N,)``.

    Box centres are ``(offset + grid cell) * stride``, sizes ``exp(log size) * stride``; the person score is
    objectness x class-0 probability (the exported model already applies the sigmoids).
    """
    raw = np.asarray(raw, dtype=np.float32)
    grids, cell_strides = [], []
    for stride in strides:
        gh, gw = input_size[0] // stride, input_size[1] // stride
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        grids.append(np.stack([xs, ys], -1).reshape(-1, 2))
        cell_strides.append(np.full((gh * gw, 1), stride))
    grid = np.concatenate(grids).astype(np.float32)  # (N, 2)
    stride = np.concatenate(cell_strides).astype(np.float32)  # (N, 1)
    if raw.shape[0] != grid.shape[0]:
        raise ValueError(
            f"YOLOX output has {raw.shape[0]} rows, expected {grid.shape[0]} for input {input_size} and strides {strides}"
        )
    centre = (raw[:, :2] + grid) * stride
    size = np.exp(raw[:, 2:4]) * stride
    boxes = np.concatenate([centre - size / 2, centre + size / 2], -1)
    scores = raw[:, 4] * raw[:, 5]
    return boxes, scores


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.45) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best first."""
    order = np.argsort(-scores)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.array(keep, dtype=np.int64)


# ---------------------------------------------------------------- pose model pre/post-processing
def box_to_center_scale(
    box: np.ndarray, padding: float = BBOX_PADDING, aspect: float = POSE_INPUT_SIZE[1] / POSE_INPUT_SIZE[0]
) -> tuple[np.ndarray, np.ndarray]:
    """Box xyxy -> centre (2,) and crop size (2,) (w, h), enlarged by ``padding`` and widened/heightened to ``aspect``."""
    box = np.asarray(box, dtype=np.float32)
    center = (box[:2] + box[2:]) / 2
    w, h = (box[2:] - box[:2]) * padding
    if w > h * aspect:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h], dtype=np.float32)


def crop_affine(center: np.ndarray, scale: np.ndarray, output_size: tuple[int, int] = POSE_INPUT_SIZE) -> np.ndarray:
    """(2, 3) matrix mapping image pixel coordinates to crop coordinates (pixel centres at integers)."""
    sx = output_size[1] / scale[0]
    sy = output_size[0] / scale[1]
    return np.array(
        [[sx, 0, -(center[0] - scale[0] / 2) * sx], [0, sy, -(center[1] - scale[1] / 2) * sy]], dtype=np.float64
    )


def warp_crop(
    image: np.ndarray, center: np.ndarray, scale: np.ndarray, output_size: tuple[int, int] = POSE_INPUT_SIZE
) -> np.ndarray:
    """Bilinear crop of ``image`` (H, W, 3) uint8 to ``output_size`` (H, W) per :func:`crop_affine` (zeros outside)."""
    m = crop_affine(center, scale, output_size)
    a, e = 1 / m[0, 0], 1 / m[1, 1]  # crop -> image
    c, f = -m[0, 2] * a, -m[1, 2] * e
    # PIL samples at pixel centres x + 0.5 in continuous coordinates; shift so integer pixel centres map exactly.
    data = (a, 0.0, c + 0.5 * (1 - a), 0.0, e, f + 0.5 * (1 - e))
    out = Image.fromarray(image).transform((output_size[1], output_size[0]), Image.AFFINE, data, Image.BILINEAR)
    return np.asarray(out)


def decode_simcc(
    simcc_x: np.ndarray,  # (K, Wx)
    simcc_y: np.ndarray,  # (K, Hy)
    split_ratio: float = SIMCC_SPLIT_RATIO,
) -> tuple[np.ndarray, np.ndarray]:
    """Arg-max decoding: keypoints ``(K, 2)`` in model-input pixels and scores ``(K,)`` = min of the two maxima."""
    simcc_x, simcc_y = np.asarray(simcc_x), np.asarray(simcc_y)
    if simcc_x.ndim != 2 or simcc_y.ndim != 2 or simcc_x.shape[0] != simcc_y.shape[0]:
        raise ValueError(f"simcc_x/simcc_y must be (K, W) and (K, H), got {simcc_x.shape} and {simcc_y.shape}")
    k = np.arange(simcc_x.shape[0])
    ix, iy = simcc_x.argmax(1), simcc_y.argmax(1)
    scores = np.minimum(simcc_x[k, ix], simcc_y[k, iy]).astype(np.float32)
    points = np.stack([ix, iy], -1).astype(np.float32) / split_ratio
    points[scores <= 0] = -1
    return points, scores


def crop_to_image(points: np.ndarray, center: np.ndarray, scale: np.ndarray, input_size=POSE_INPUT_SIZE) -> np.ndarray:
    """Inverse of :func:`crop_affine` for keypoints ``(K, 2)`` decoded in the crop."""
    m = crop_affine(center, scale, input_size)
    return ((points - m[:, 2]) / np.array([m[0, 0], m[1, 1]])).astype(np.float32)


_OPENPOSE_FROM_COCO = [None if n == "neck" else _COCO_BODY.index(n) for n in BODY_KEYPOINTS]


@dataclass
class FramePose:
    """One frame's keypoints in image pixels (OpenPose layout)."""

    body: np.ndarray  # (18, 2)
    body_score: np.ndarray  # (18,)
    hands: np.ndarray  # (2, 21, 2) left, right
    hands_score: np.ndarray  # (2, 21)
    face: np.ndarray  # (68, 2)
    face_score: np.ndarray  # (68,)

    @classmethod
    def empty(cls) -> FramePose:
        z = np.zeros
        return cls(z((18, 2)), z(18), z((2, 21, 2)), z((2, 21)), z((68, 2)), z(68))


def wholebody_to_openpose(points: np.ndarray, scores: np.ndarray, threshold: float = 0.3) -> FramePose:
    """Map 133 COCO-WholeBody points ``(133, 2)`` / scores ``(133,)`` to the OpenPose 18-point body + hands + face.

    The neck is the mean of the shoulders; its score is the smaller shoulder score, or 0 when either shoulder is
    below ``threshold``. Scores are clipped to [0, 1].
    """
    points = np.asarray(points, dtype=np.float32)
    scores = np.clip(np.asarray(scores, dtype=np.float32), 0, 1)
    if points.shape != (NUM_WHOLEBODY, 2) or scores.shape != (NUM_WHOLEBODY,):
        raise ValueError(f"expected (133, 2) points and (133,) scores, got {points.shape} and {scores.shape}")
    body = np.zeros((NUM_BODY, 2), np.float32)
    body_score = np.zeros(NUM_BODY, np.float32)
    for i, j in enumerate(_OPENPOSE_FROM_COCO):
        if j is not None:
            body[i], body_score[i] = points[j], scores[j]
    ls, rs = _COCO_BODY.index("left_shoulder"), _COCO_BODY.index("right_shoulder")
    neck = BODY_KEYPOINTS.index("neck")
    body[neck] = (points[ls] + points[rs]) / 2
    both = scores[ls] >= threshold and scores[rs] >= threshold
    body_score[neck] = min(scores[ls], scores[rs]) if both else 0.0
    return FramePose(
        body=body,
        body_score=body_score,
        hands=np.stack([points[LEFT_HAND_SLICE], points[RIGHT_HAND_SLICE]]),
        hands_score=np.stack([scores[LEFT_HAND_SLICE], scores[RIGHT_HAND_SLICE]]),
        face=points[FACE_SLICE].copy(),
        face_score=scores[FACE_SLICE].copy(),
    )


# ---------------------------------------------------------------- the extractor
class DWPoseExtractor:
    """YOLOX + DWPose whole-body keypoints for one person per frame.

    Args:
        models_dir: folder with ``yolox_l.onnx`` and ``dw-ll_ucoco_384.onnx`` (default ``$DYNAMICTRL_DWPOSE_DIR``).
        providers: ONNX Runtime execution providers (default: CUDA when available, else CPU).
        det_threshold: minimum person score (objectness x class) for a detection.
        nms_threshold: IoU above which overlapping detections are suppressed.
        kpt_threshold: confidence used for the neck (both shoulders must reach it).
    """

    def __init__(
        self,
        models_dir: str | Path | None = None,
        providers: list[str] | None = None,
        det_threshold: float = 0.3,
        nms_threshold: float = 0.45,
        kpt_threshold: float = 0.3,
    ) -> None:
        ort = import_onnxruntime()
        models_dir = resolve_models_dir(models_dir)
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.detector = ort.InferenceSession(str(models_dir / DETECTOR_FILE), providers=providers)
        self.pose = ort.InferenceSession(str(models_dir / POSE_FILE), providers=providers)
        self.det_threshold, self.nms_threshold, self.kpt_threshold = det_threshold, nms_threshold, kpt_threshold
        self._det_input = self.detector.get_inputs()[0].name
        self._pose_input = self.pose.get_inputs()[0].name
        names = [o.name for o in self.pose.get_outputs()]
        self._pose_outputs = ["simcc_x", "simcc_y"] if {"simcc_x", "simcc_y"} <= set(names) else names[:2]
        logger.info("DWPose models loaded from %s with providers %s", models_dir, providers)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes ``(N, 4)`` xyxy in image pixels and scores ``(N,)``, best first, after NMS."""
        canvas, ratio = letterbox(image[..., ::-1].copy())  # YOLOX was trained on BGR images
        x = canvas.transpose(2, 0, 1)[None].astype(np.float32)  # (1, 3, 640, 640)
        raw = self.detector.run(None, {self._det_input: x})[0]  # (1, N, 85)
        boxes, scores = decode_yolox(raw[0], DETECTOR_INPUT_SIZE)
        ok = scores > self.det_threshold
        boxes, scores = boxes[ok], scores[ok]
        keep = nms(boxes, scores, self.nms_threshold)
        return letterbox_inverse(boxes[keep], ratio), scores[keep]

    def keypoints(self, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """133 whole-body keypoints ``(133, 2)`` in image pixels and scores ``(133,)`` for the person in ``box``."""
        center, scale = box_to_center_scale(box)
        crop = warp_crop(image, center, scale)  # (384, 288, 3)
        x = ((crop.astype(np.float32) - _MEAN) / _STD).transpose(2, 0, 1)[None]  # (1, 3, 384, 288)
        simcc_x, simcc_y = self.pose.run(self._pose_outputs, {self._pose_input: x})
        points, scores = decode_simcc(simcc_x[0], simcc_y[0])
        return crop_to_image(points, center, scale), scores

    def __call__(self, image: np.ndarray) -> FramePose:
        """Keypoints of the largest detected person in an RGB uint8 image (H, W, 3); zero scores if nobody."""
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"DWPoseExtractor expects an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        boxes, _ = self.detect(image)
        if len(boxes) == 0:
            return FramePose.empty()
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        points, scores = self.keypoints(image, boxes[int(np.argmax(areas))])
        return wholebody_to_openpose(points, scores, self.kpt_threshold)

    def extract_video(self, frames: np.ndarray, progress: bool = True) -> PoseSequence:
        """Keypoints of every frame of ``frames`` (T, H, W, 3) uint8 as a :class:`PoseSequence`."""
        from tqdm.auto import tqdm

        frames = np.asarray(frames)
        if frames.ndim != 4:
            raise ValueError(f"extract_video expects frames (T, H, W, 3), got shape {frames.shape}")
        poses = [self(f) for f in tqdm(frames, desc="DWPose", unit="frame", disable=not progress)]
        return frames_to_sequence(poses, height=frames.shape[1], width=frames.shape[2])


def frames_to_sequence(poses: list[FramePose], height: int, width: int) -> PoseSequence:
    """Stack per-frame results into a :class:`PoseSequence`."""

    def stack(name: str, shape: tuple) -> np.ndarray:
        return np.stack([getattr(p, name) for p in poses]) if poses else np.zeros((0, *shape), np.float32)

    return PoseSequence(
        body=stack("body", (18, 2)),
        body_score=stack("body_score", (18,)),
        hands=stack("hands", (2, 21, 2)),
        hands_score=stack("hands_score", (2, 21)),
        face=stack("face", (68, 2)),
        face_score=stack("face_score", (68,)),
        width=width,
        height=height,
    )
