"""Video and image IO shared by inference, training, tools and evaluation.

Reading tries decord first (fast random access) and falls back to PyAV when decord is missing or fails.
Writing uses PyAV: H.264 (``libx264``, yuv420p, even sizes) for viewing, or a lossless RGB H.264
(``libx264rgb``, crf 0) for ground truth, masks and pose videos so metrics see exact pixels.

Resize policy (one place, used by inference and training alike): scale so the frame *covers* the target
size while keeping its aspect ratio (bilinear), then crop the centre. Nothing is ever stretched.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from dynamictrl.errors import UserError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class VideoReadError(UserError, RuntimeError):
    """A video or image file could not be read; the message names the file."""


@contextmanager
def _native_stderr_silenced():
    """Mute C-level writes to stderr: decord logs a failed open itself, before PyAV gets its turn."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _read_with_decord(path: Path) -> tuple[np.ndarray, float]:
    import decord  # optional: installed with the [train] extra on x86_64 Linux

    decord.logging.set_level(decord.logging.QUIET)  # ffmpeg's own messages
    with _native_stderr_silenced():
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    if len(reader) == 0:
        raise VideoReadError(f"{path}: the video has no frames")
    frames = reader.get_batch(list(range(len(reader)))).asnumpy()  # (T, H, W, 3)
    return frames, float(reader.get_avg_fps())


def _read_with_pyav(path: Path) -> tuple[np.ndarray, float]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoReadError(f"{path}: the file has no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else 8.0
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    if not frames:
        raise VideoReadError(f"{path}: the video has no frames")
    return np.stack(frames), fps


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Read every frame of a video as RGB uint8.

    Returns ``(frames, fps)`` with frames of shape (T, H, W, 3). A missing, empty or corrupt file raises
    :class:`VideoReadError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"{path}: no such video file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return read_image(path)[None], 8.0
    errors = []
    for reader in (_read_with_decord, _read_with_pyav):
        try:
            return reader(path)
        except ImportError:
            continue
        except VideoReadError:
            raise
        except Exception as err:  # decord/av raise many unrelated types for broken files
            errors.append(f"{reader.__name__[11:]}: {err}")
            logger.debug("reading %s with %s failed: %s", path, reader.__name__, err)
    raise VideoReadError(f"{path}: cannot decode the video ({'; '.join(errors) or 'no video reader installed'})")


def write_video(path: str | Path, frames: np.ndarray, fps: float = 8.0, lossless: bool = False) -> Path:
    """Write RGB frames (T, H, W, 3) uint8 (or float in [0, 1]) to an MP4 file and return its path.

    ``lossless=True`` stores exact RGB values (libx264rgb, crf 0); otherwise H.264 yuv420p (crf 18), which
    needs even sizes, so odd sizes are padded by one edge pixel.
    """
    import av

    frames = to_uint8(np.asarray(frames))
    if frames.ndim == 3:  # (T, H, W) greyscale, e.g. masks
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"write_video expects frames of shape (T, H, W, 3) with T >= 1, got {frames.shape}")
    if not lossless and (frames.shape[1] % 2 or frames.shape[2] % 2):
        frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as container:
        if lossless:
            stream = container.add_stream("libx264rgb", rate=rate)
            stream.pix_fmt = "rgb24"
            stream.options = {"crf": "0", "preset": "ultrafast"}
        else:
            stream = container.add_stream("libx264", rate=rate)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18", "preset": "fast"}
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return path


def read_image(path: str | Path, mode: str = "RGB") -> np.ndarray:
    """Read an image as uint8; RGBA, palette and greyscale files are converted to ``mode`` (RGB or L)."""
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"{path}: no such image file")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode))
    except Exception as err:
        raise VideoReadError(f"{path}: cannot decode the image ({err})") from err


def write_image(path: str | Path, array: np.ndarray) -> Path:
    """Write an (H, W, 3) or (H, W) array (uint8, or float in [0, 1]) as an image file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(np.asarray(array))).save(path)
    return path


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] and bools become uint8 in [0, 255]; uint8 passes through unchanged."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ValueError(f"cannot convert an array of dtype {array.dtype} to uint8; give uint8, bool or float in [0, 1]")


def resize_and_center_crop(frames: np.ndarray, height: int, width: int, resample: int = Image.BILINEAR) -> np.ndarray:
    """Scale frames to cover (height, width) keeping the aspect ratio, then crop the centre.

    One image is (H, W) or (H, W, C); a video is (T, H, W, C) (mask videos: (T, H, W, 1)).
    Returns uint8 in the same layout.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"target size must be positive, got height={height}, width={width}")
    frames = to_uint8(np.asarray(frames))
    single = frames.ndim in (2, 3)
    batch = frames[None] if single else frames
    src_h, src_w = batch.shape[1], batch.shape[2]
    if (src_h, src_w) == (height, width):
        return frames
    scale = max(height / src_h, width / src_w)
    new_h, new_w = max(height, round(src_h * scale)), max(width, round(src_w * scale))
    top, left = (new_h - height) // 2, (new_w - width) // 2
    out = []
    for frame in batch:
        squeeze = frame.ndim == 3 and frame.shape[-1] == 1
        image = Image.fromarray(frame[..., 0] if squeeze else frame).resize((new_w, new_h), resample)
        cropped = np.asarray(image)[top : top + height, left : left + width]
        out.append(cropped[..., None] if squeeze else cropped)
    result = np.stack(out)
    return result[0] if single else result


def video_fps(path: str | Path, default: float = 8.0) -> float:
    """Frame rate of a video file without decoding it (``default`` for images, keypoint files and unknown rates)."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        return default
    import av

    try:
        with av.open(str(path)) as container:
            rate = container.streams.video[0].average_rate if container.streams.video else None
    except Exception as err:
        raise VideoReadError(f"{path}: cannot open the video ({err})") from err
    return float(rate) if rate else default


def make_contact_sheet(reference: np.ndarray, pose: np.ndarray, result: np.ndarray, rows: int = 6) -> np.ndarray:
    """A quick-look image: ``rows`` evenly spaced frames, each row ``reference | pose[t] | result[t]``.

    ``reference`` is (H, W, 3); ``pose`` and ``result`` are (T, H, W, 3) (the pose is resized to the result's size).
    Returns uint8 (rows·H, 3·W, 3).
    """
    result = to_uint8(np.asarray(result))
    height, width = result.shape[1:3]
    reference = resize_and_center_crop(to_uint8(np.asarray(reference)), height, width)
    pose = resize_and_center_crop(to_uint8(np.asarray(pose)), height, width)
    count = min(len(result), len(pose))
    picks = np.unique(np.linspace(0, count - 1, min(rows, count)).round().astype(int))
    return np.concatenate([np.concatenate([reference, pose[t], result[t]], axis=1) for t in picks], axis=0)
