"""Feature extraction for the distribution metrics: FID-VID (3D ResNet-50), FVD (I3D) and FID (Inception).

Preprocessing follows the protocol described in ``docs/evaluation.md``. The input sizes are arguments (and
``scripts/evaluate.py --input-size``) only for quick checks and tests on small inputs; they default to the
protocol's (:data:`PROTOCOL_INPUT_SIZES`), and numbers computed at other sizes are not comparable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .i3d import InceptionI3D
from .inception import FIDInceptionV3
from .resnet3d import FIDVID_MEAN, ResNet3D50
from .weights import load_into, load_state_dict_file, resolve_weight, sha256_file

CLIP_FRAMES = 16
FIDVID_SIZE = 112
FVD_SIZE = 224
FID_SIZE = 299
#: The protocol's backbone input sizes (square, pixels) of each distribution metric.
PROTOCOL_INPUT_SIZES = {"fid_vid": FIDVID_SIZE, "fvd": FVD_SIZE, "fid": FID_SIZE}


def _resize_bicubic(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (T, H, W, 3) -> float32 (T, size, size, 3) on 0-255; PIL bicubic, aspect ratio not kept."""
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BICUBIC)) for f in frames]).astype(
        np.float32
    )


def _segments(frames: np.ndarray, length: int = CLIP_FRAMES) -> list[np.ndarray]:
    """Split (T, ...) into consecutive segments of ``length``; the last is padded by repeating its final frame."""
    out = []
    for start in range(0, len(frames), length):
        seg = frames[start : start + length]
        if len(seg) < length:
            seg = np.concatenate([seg, np.repeat(seg[-1:], length - len(seg), axis=0)])
        out.append(seg)
    return out


def load_backbone(kind: str, weights_dir: str | Path | None) -> tuple[torch.nn.Module, dict[str, str]]:
    """Build one of ``fid_vid`` / ``fvd`` / ``fid`` backbones from its published file; returns (model, sha256s)."""
    table = {
        "fid_vid": ("resnet3d_kinetics", ResNet3D50),
        "fvd": ("i3d_kinetics", InceptionI3D),
        "fid": ("inception_fid", FIDInceptionV3),
    }
    if kind not in table:
        raise ValueError(f"unknown backbone {kind!r}; allowed: {sorted(table)}")
    key, cls = table[kind]
    path = resolve_weight(key, weights_dir)
    model = cls()
    load_into(model, load_state_dict_file(path), str(path))
    return model.eval(), {path.name: sha256_file(path)}


@torch.no_grad()
def fidvid_features(model: ResNet3D50, frames: np.ndarray, size: int = FIDVID_SIZE) -> np.ndarray:
    """One 2048-d feature per video: the mean over 16-frame segments of the 3D ResNet's pooled features."""
    device = next(model.parameters()).device
    x = _resize_bicubic(frames, size) - np.asarray(FIDVID_MEAN, dtype=np.float32)  # (T, s, s, 3)
    feats = []
    for seg in _segments(x):
        clip = torch.from_numpy(np.ascontiguousarray(seg)).permute(3, 0, 1, 2)[None].to(device)  # (1, 3, 16, s, s)
        feats.append(model.features(clip).double().cpu().numpy()[0])
    return np.mean(feats, axis=0)  # (2048,)


@torch.no_grad()
def fvd_features(model: InceptionI3D, frames: np.ndarray, size: int = FVD_SIZE) -> np.ndarray:
    """One 400-d logit vector per video from its first 16 frames (padded by repeating the last if shorter)."""
    device = next(model.parameters()).device
    seg = _segments(frames[:CLIP_FRAMES])[0]
    x = _resize_bicubic(seg, size) / 127.5 - 1.0  # (16, s, s, 3) in [-1, 1]
    clip = torch.from_numpy(np.ascontiguousarray(x)).permute(3, 0, 1, 2)[None].to(device)  # (1, 3, 16, s, s)
    return model(clip).double().cpu().numpy()[0]


@torch.no_grad()
def fid_features(model: FIDInceptionV3, frames: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Inception pool3 features (T, 2048) of every frame."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(frames), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(frames[start : start + batch_size])).permute(0, 3, 1, 2)
        out.append(model.features(x.float().div(255.0).to(device)).double().cpu().numpy())
    return np.concatenate(out)
