"""Captions for training clips: the official ``prompts.txt`` format, template captions and a Qwen2-VL captioner.

``prompts.txt`` holds one line per clip, ``NAME.mp4#####caption`` (the clip's file name, five ``#``, the caption).
Reading and writing it (``write_prompts`` / ``read_prompts``, which round-trip exactly) is
:mod:`dynamictrl.data.prompts`.

The paper's captions describe the person's appearance and the background, e.g. "The person in the image is
wearing a traditional outfit ... The background is dark and blurred ...". :func:`template_caption` builds one
from given fields; :class:`QwenCaptioner` asks Qwen2-VL (transformers, from a local folder) for one per clip.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.prompts import SEPARATOR
from ..devices import default_device

logger = logging.getLogger(__name__)

CAPTION_QUESTION = (
    "These frames come from one video of a person. Describe the person's appearance and clothing, then the "
    "background, then the lighting, in one paragraph of plain sentences. Start with 'The person in the image is "
    "wearing', and include a sentence starting with 'The background'. Do not describe the motion."
)


# ---------------------------------------------------------------- template captions
def _sentence(text: str) -> str:
    text = " ".join(text.split()).rstrip(".")
    return text[:1].upper() + text[1:] + "." if text else ""


def template_caption(
    clothing: str,
    background: str,
    person: str | None = None,
    lighting: str | None = None,
    extra: str | None = None,
) -> str:
    """A paper-style caption from fields, e.g. ``clothing="a red dress"``, ``background="a sunny beach"``."""
    if not clothing.strip() or not background.strip():
        raise ValueError("template_caption needs non-empty clothing and background descriptions")
    parts = []
    if person:
        parts.append(_sentence(f"the person in the image is {person}"))
        parts.append(_sentence(f"they are wearing {clothing}"))
    else:
        parts.append(_sentence(f"the person in the image is wearing {clothing}"))
    parts.append(_sentence(f"the background is {background}"))
    if lighting:
        parts.append(_sentence(f"the lighting is {lighting}"))
    if extra:
        parts.append(_sentence(extra))
    return " ".join(parts)


def clean_caption(text: str) -> str:
    """One line: whitespace collapsed, separators and chat artefacts removed, ending with a full stop."""
    text = text.replace(SEPARATOR, " ")
    text = re.sub(r"<\|[^|>]*\|>", " ", text)  # stray special tokens
    text = " ".join(text.split()).strip(" \"'")
    if text and text[-1] not in ".!?":
        text += "."
    return text


def sample_frame_indices(num_frames: int, count: int) -> np.ndarray:
    """``count`` evenly spaced indices covering the clip (fewer if the clip is shorter)."""
    if num_frames <= 0:
        raise ValueError(f"cannot sample frames from a clip of {num_frames} frames")
    count = max(1, min(count, num_frames))
    return np.linspace(0, num_frames - 1, count).round().astype(int)


# ---------------------------------------------------------------- Qwen2-VL
class QwenCaptioner:
    """Qwen2-VL captions from a few frames per clip, in batches.

    Args:
        model_dir: a local Qwen2-VL folder (``Qwen2VLForConditionalGeneration`` + processor files), e.g. a copy of
            ``Qwen/Qwen2-VL-7B-Instruct``. Ignored when ``model`` and ``processor`` are given.
        model, processor: already-built objects (for tests or custom loading).
        frames_per_clip: frames sampled evenly from each clip and shown as separate images.
        max_side: frames are downscaled so their longer side is at most this (fewer vision tokens).
        question: the instruction; the default asks for the paper-style appearance + background caption.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        device: str | None = None,
        dtype: str = "auto",
        model=None,
        processor=None,
        frames_per_clip: int = 3,
        max_side: int = 448,
        max_new_tokens: int = 160,
        question: str = CAPTION_QUESTION,
    ) -> None:
        if model is None or processor is None:
            if model_dir is None:
                raise ValueError("QwenCaptioner needs model_dir (a local Qwen2-VL folder) or model and processor")
            model, processor = self._load(Path(model_dir), device, dtype)
        self.model, self.processor = model, processor
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"  # batched generation continues from the right end
        self.frames_per_clip, self.max_side = frames_per_clip, max_side
        self.max_new_tokens, self.question = max_new_tokens, question

    @staticmethod
    def _load(model_dir: Path, device: str | None, dtype: str):
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"{model_dir} is not a Qwen2-VL model folder (no config.json); download e.g. "
                "https://huggingface.co/Qwen/Qwen2-VL-7B-Instruct and pass its local path"
            )
        try:
            import torch  # noqa: F401  (checked here: the message names both)
            from transformers import AutoProcessor, Qwen2VLForConditionalGeneration
        except ImportError as err:
            raise ImportError(
                f'captioning needs transformers and torch: pip install "dynamictrl[caption]" ({err})'
            ) from err
        try:
            processor = AutoProcessor.from_pretrained(model_dir)
        except (ImportError, AttributeError) as err:
            raise ImportError(
                f"loading the Qwen2-VL processor failed ({err}); its image/video processors need torchvision: "
                "pip install torchvision (matching your torch build)"
            ) from err
        if device is None:
            device = default_device()
        model = Qwen2VLForConditionalGeneration.from_pretrained(model_dir, dtype=dtype).to(device).eval()
        logger.info("loaded Qwen2-VL from %s on %s", model_dir, device)
        return model, processor

    def _frames_to_images(self, frames: np.ndarray) -> list:
        from PIL import Image

        images = []
        for i in sample_frame_indices(len(frames), self.frames_per_clip):
            image = Image.fromarray(np.asarray(frames[i], dtype=np.uint8))
            scale = self.max_side / max(image.size)
            if scale < 1:
                image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
            images.append(image)
        return images

    def build_messages(self, num_images: int) -> list[dict]:
        content = [{"type": "image"} for _ in range(num_images)] + [{"type": "text", "text": self.question}]
        return [{"role": "user", "content": content}]

    def caption_batch(self, clips: Sequence[np.ndarray]) -> list[str]:
        """Captions for clips given as frame arrays ``(T, H, W, 3)`` uint8, in one generate call."""
        import torch

        texts, images = [], []
        for frames in clips:
            clip_images = self._frames_to_images(frames)
            images.extend(clip_images)
            texts.append(
                self.processor.apply_chat_template(
                    self.build_messages(len(clip_images)), tokenize=False, add_generation_prompt=True
                )
            )
        inputs = self.processor(text=texts, images=images, padding=True, return_tensors="pt")
        device = next(self.model.parameters()).device
        inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        decoded = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        return [clean_caption(text) for text in decoded]
