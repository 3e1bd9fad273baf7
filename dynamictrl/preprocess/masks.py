"""Person masks for masked-reference training and inference.

Two sources:

- :class:`SamMasker`: Segment Anything (``transformers.SamModel`` + ``SamProcessor``) from a local folder (e.g. a
  copy of ``facebook/sam-vit-base`` / ``-large`` / ``-huge``), prompted with the confident body keypoints as
  positive points and their padded extent as a box. Why SAM v1 through transformers: it is maintained in
  transformers, loads from a plain local folder with ``from_pretrained``, accepts point prompts (which the pose
  gives for free), and its processor has a PIL backend, so it runs on CPU-only installs without torchvision
  (SAM 2's transformers processor needs torchvision, which this project cannot install next to its CPU torch).
- :func:`pose_masks`: a no-weights fallback drawn from the keypoints: thick round-capped limbs, a filled torso
  polygon (shoulders + hips, widened), a head disc around the nose sized from the nose-neck distance, hands as
  thick bones; all sizes scale with the person's torso length, then a dilation and a temporal majority vote over
  a few frames remove flicker. It is coarse (a silhouette envelope, not the clothing outline), which is what a
  masked reference needs: the background outside it is blanked.

Masks are ``(T, H, W)`` bool; :func:`mask_to_uint8` gives white-on-black frames for videos / PNGs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from dynamictrl.devices import default_device
from dynamictrl.pose.keypoints import BODY_INDEX, PoseSequence
from dynamictrl.pose.render import HAND_EDGES, LIMB_SEQ

logger = logging.getLogger(__name__)

_B = BODY_INDEX
_TORSO = (_B["right_shoulder"], _B["left_shoulder"], _B["left_hip"], _B["right_hip"])
_HEAD_LIMBS = {(1, 0), (0, 14), (14, 16), (0, 15), (15, 17)}
_BODY_LIMBS = [limb for limb in LIMB_SEQ if limb not in _HEAD_LIMBS]


def _torso_length(body: np.ndarray, ok: np.ndarray) -> float | None:
    neck = _B["neck"]
    hips = [j for j in (_B["right_hip"], _B["left_hip"]) if ok[j]]
    if ok[neck] and hips:
        return float(np.linalg.norm(body[neck] - body[hips].mean(0)))
    shoulders = [j for j in (_B["right_shoulder"], _B["left_shoulder"]) if ok[j]]
    if len(shoulders) == 2:  # half-body view: shoulder width ~ 0.8 torso length
        return float(np.linalg.norm(body[shoulders[0]] - body[shoulders[1]])) / 0.8
    return None


def pose_mask(
    body: np.ndarray,  # (18, 2)
    body_score: np.ndarray,  # (18,)
    height: int,
    width: int,
    hands: np.ndarray | None = None,  # (2, 21, 2)
    hands_score: np.ndarray | None = None,  # (2, 21)
    threshold: float = 0.3,
    limb_width: float = 0.2,
    head_radius: float = 0.75,
    dilation: float = 0.03,
) -> np.ndarray:
    """One frame's silhouette envelope ``(H, W)`` bool from keypoints.

    ``limb_width`` (x torso length) is the limb thickness, ``head_radius`` (x nose-neck distance) the head disc
    radius, ``dilation`` (x torso length) a final grow. Empty when no torso scale can be estimated.
    """
    body = np.asarray(body, dtype=np.float32)
    ok = (np.asarray(body_score) >= threshold) & np.isfinite(body).all(-1)
    image = Image.new("L", (width, height))
    torso = _torso_length(body, ok)
    if torso is None or torso <= 0:
        return np.zeros((height, width), dtype=bool)
    draw = ImageDraw.Draw(image)
    w = max(1.0, limb_width * torso)

    def disc(p, r):
        draw.ellipse((p[0] - r, p[1] - r, p[0] + r, p[1] + r), fill=255)

    corners = [j for j in _TORSO if ok[j]]
    if len(corners) >= 3:
        pts = body[corners]
        centre = pts.mean(0)
        grown = centre + (pts - centre) * 1.15  # the torso is wider than the joint centres
        draw.polygon([tuple(p) for p in grown.tolist()], fill=255)
    for a, b in _BODY_LIMBS:
        if ok[a] and ok[b]:
            draw.line((*body[a].tolist(), *body[b].tolist()), fill=255, width=max(1, round(w)))
            disc(body[a], w / 2)
            disc(body[b], w / 2)
    for j in np.flatnonzero(ok):
        disc(body[j], w / 2)
    nose, neck = _B["nose"], _B["neck"]
    if ok[nose]:
        r = head_radius * (np.linalg.norm(body[nose] - body[neck]) if ok[neck] else 0.35 * torso)
        disc(body[nose], max(r, w / 2))
    if ok[nose] and ok[neck]:
        draw.line((*body[nose].tolist(), *body[neck].tolist()), fill=255, width=max(1, round(w)))
    if hands is not None and hands_score is not None:
        hw = max(1, round(0.35 * w))
        for hand, score in zip(np.asarray(hands), np.asarray(hands_score)):
            hok = score >= threshold
            for a, b in HAND_EDGES:
                if hok[a] and hok[b]:
                    draw.line((*hand[a].tolist(), *hand[b].tolist()), fill=255, width=hw)
    grow = int(round(dilation * torso))
    if grow > 0:
        image = image.filter(ImageFilter.MaxFilter(2 * grow + 1))
    return np.asarray(image) > 127


def temporal_vote(masks: np.ndarray, window: int = 3) -> np.ndarray:
    """Majority vote of each pixel over a centred window of frames (edges use the frames available)."""
    if window <= 1 or len(masks) <= 1:
        return masks.copy()
    m = masks.astype(np.float32)
    csum = np.concatenate([np.zeros_like(m[:1]), np.cumsum(m, 0)])
    half = window // 2
    t = np.arange(len(m))
    lo, hi = np.clip(t - half, 0, len(m)), np.clip(t + half + 1, 0, len(m))
    mean = (csum[hi] - csum[lo]) / (hi - lo)[:, None, None]
    return mean >= 0.5


def pose_masks(
    seq: PoseSequence,
    height: int | None = None,
    width: int | None = None,
    threshold: float = 0.3,
    window: int = 3,
    **kwargs,
) -> np.ndarray:
    """Fallback masks ``(T, H, W)`` bool for a whole sequence (see :func:`pose_mask` for ``kwargs``)."""
    height = seq.height if height is None else height
    width = seq.width if width is None else width
    if (height, width) != (seq.height, seq.width):
        seq = seq.resized(height, width)
    out = np.zeros((len(seq), height, width), dtype=bool)
    for t in range(len(seq)):
        out[t] = pose_mask(
            seq.body[t],
            seq.body_score[t],
            height,
            width,
            hands=None if seq.hands is None else seq.hands[t],
            hands_score=None if seq.hands_score is None else seq.hands_score[t],
            threshold=threshold,
            **kwargs,
        )
    return temporal_vote(out, window)


def mask_to_uint8(masks: np.ndarray) -> np.ndarray:
    """Bool masks ``(..., H, W)`` -> white-on-black RGB uint8 ``(..., H, W, 3)``."""
    return np.repeat((np.asarray(masks, dtype=bool) * np.uint8(255))[..., None], 3, axis=-1)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean arrays (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


class SamMasker:
    """Segment Anything person masks prompted by pose keypoints.

    Args:
        model_dir: local SAM folder (``SamModel`` weights + processor files), e.g. ``facebook/sam-vit-base``.
        model, processor: already-built objects (tests, custom loading); ``model_dir`` is then ignored.
        device: torch device (default: CUDA when available, else CPU).
        max_points: at most this many confident body joints are used as positive points.
    """

    def __init__(self, model_dir=None, device: str | None = None, model=None, processor=None, max_points: int = 8):
        if model is None or processor is None:
            if model_dir is None:
                raise ValueError("SamMasker needs model_dir (a local SAM folder) or model and processor")
            model_dir = Path(model_dir)
            if not (model_dir / "config.json").is_file():
                raise FileNotFoundError(
                    f"{model_dir} is not a SAM model folder (no config.json); download e.g. "
                    "https://huggingface.co/facebook/sam-vit-base and pass its local path, or use the pose fallback"
                )
            from transformers import SamModel, SamProcessor

            processor = SamProcessor.from_pretrained(model_dir)
            model = SamModel.from_pretrained(model_dir)
        if device is None:
            device = default_device()
        self.model, self.processor, self.device = model.to(device).eval(), processor, device
        self.max_points = max_points

    def prompts(
        self, body: np.ndarray, body_score: np.ndarray, height: int, width: int, threshold: float = 0.3
    ) -> tuple[list, list]:
        """Positive points (the most confident joints, spread over the body) and a padded keypoint box."""
        ok = np.flatnonzero(body_score >= threshold)
        if ok.size == 0:
            return [], []
        order = ok[np.argsort(-body_score[ok])]
        picks = order[np.linspace(0, len(order) - 1, min(self.max_points, len(order))).round().astype(int)]
        points = [[float(body[j, 0]), float(body[j, 1])] for j in picks]
        lo, hi = body[ok].min(0), body[ok].max(0)
        pad = 0.15 * (hi - lo) + 4
        box = [
            float(max(0, lo[0] - pad[0])),
            float(max(0, lo[1] - 1.5 * pad[1])),  # more room above the nose for the top of the head
            float(min(width - 1, hi[0] + pad[0])),
            float(min(height - 1, hi[1] + pad[1])),
        ]
        return points, box

    def __call__(self, image: np.ndarray, body: np.ndarray, body_score: np.ndarray, threshold: float = 0.3):
        """Mask ``(H, W)`` bool of the person whose keypoints are given, in ``image`` (H, W, 3) uint8."""
        import torch

        height, width = image.shape[:2]
        points, box = self.prompts(np.asarray(body), np.asarray(body_score), height, width, threshold)
        if not points:
            return np.zeros((height, width), dtype=bool)
        inputs = self.processor(
            images=image,
            input_points=[[points]],
            input_labels=[[[1] * len(points)]],
            input_boxes=[[box]],
            return_tensors="pt",
        )
        inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        with torch.no_grad():
            out = self.model(**inputs, multimask_output=True)
        best = int(out.iou_scores[0, 0].argmax())
        masks = self.processor.image_processor.post_process_masks(
            out.pred_masks.cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu()
        )[0]  # (1, 3, H, W)
        return masks[0, best].numpy().astype(bool)

    def video_masks(self, frames: np.ndarray, seq: PoseSequence, threshold: float = 0.3, progress: bool = True):
        """Masks ``(T, H, W)`` bool for every frame, prompted by ``seq`` (rescaled to the frames' size)."""
        from tqdm.auto import tqdm

        if len(frames) != len(seq):
            raise ValueError(f"{len(frames)} frames but {len(seq)} pose frames")
        h, w = frames.shape[1:3]
        if (seq.height, seq.width) != (h, w):
            seq = seq.resized(h, w)
        return np.stack(
            [
                self(f, seq.body[t], seq.body_score[t], threshold)
                for t, f in enumerate(tqdm(frames, desc="SAM", unit="frame", disable=not progress))
            ]
        )
