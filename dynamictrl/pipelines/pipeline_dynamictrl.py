"""DynamiCtrlPipeline: reference image + pose video + prompt -> one animated clip.

Structured like diffusers' ``CogVideoXImageToVideoPipeline`` (numbered steps in ``__call__``), with the conventions of
the official DynamiCtrl release so its checkpoints behave as trained:

* the pose video's first frame is the pose of the reference image, then the driving poses (the output's frame 0 is
  the reference itself);
* transformer input = noisy latents ‖ reference latent (frame 0, zeros after) on channels; the pose latents go in
  separately (× the VAE scaling factor), duplicated with the image latents for classifier-free guidance;
* guidance is on text only: the unconditional branch keeps the reference and the pose and uses the negative prompt;
* CogVideoX 1.5 transformers get ``ofs`` (2.0) and latent frames padded at the front to a multiple of
  ``patch_size_t``, dropped before decoding.

Inputs are resized with the shared policy (:func:`dynamictrl.data.io.resize_and_center_crop`: cover, then centre
crop).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  (lets from_pretrained load our transformer)
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import retrieve_timesteps
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers import CogVideoXDPMScheduler
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor

from dynamictrl.acceleration.vae_tiling import check_vae_tiling, enable_vae_tiling
from dynamictrl.data.frames import latent_frame_count
from dynamictrl.data.io import resize_and_center_crop, to_uint8
from dynamictrl.errors import check_local_model_folder, looks_like_local_path
from dynamictrl.models.transformer import DynamiCtrlTransformer3DModel

from .conditioning import (
    TransformerCall,
    apply_reference_mask,
    encode_pose,
    encode_prompt,
    encode_reference,
    frames_to_tensor,
    latent_frame_padding,
    num_latent_frames,
    official_reference_scaling,
    tensor_to_frames,
)
from .model_index import check_pose_weights, normalize_component_names

logger = logging.getLogger(__name__)

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class DynamiCtrlPipelineOutput(BaseOutput):
    """``frames``: list (batch) of lists of PIL images, an array (B, T, H, W, 3) in [0, 1], a tensor (B, T, 3, H, W)
    in [0, 1], or latents (B, F', C, H', W'), depending on ``output_type``."""

    frames: Any


class DynamiCtrlPipeline(DiffusionPipeline):
    """Human image animation with DynamiCtrl.

    Components: ``vae`` (``AutoencoderKLCogVideoX``), ``text_encoder`` + ``tokenizer`` (T5), ``transformer``
    (:class:`~dynamictrl.models.DynamiCtrlTransformer3DModel`), ``scheduler`` (``CogVideoXDPMScheduler`` or
    ``CogVideoXDDIMScheduler``).

    Args:
        scale_reference_latents: multiply the reference latent by the VAE scaling factor. ``None`` (default) follows
            the official release: scaled, except for VAEs with ``invert_scale_latents`` (CogVideoX 1.5), where the
            official code (and so its checkpoints) uses 1.0. Saved in ``model_index.json``.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components = []
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self, tokenizer, text_encoder, vae, transformer, scheduler, scale_reference_latents: bool | None = None
    ):
        super().__init__()
        self.register_modules(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
        )
        self.register_to_config(scale_reference_latents=scale_reference_latents)
        if isinstance(transformer, DynamiCtrlTransformer3DModel):
            # diffusers resolves a component from a module that also exposes ModelMixin; this one does (see imports)
            self.register_to_config(transformer=(__name__, type(transformer).__name__))
        self.vae_scale_factor_spatial = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.vae_scale_factor_temporal = self.vae.config.temporal_compression_ratio
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor_spatial)
        # Optional dynamictrl.acceleration.ConditionCache: prompt embeddings and the reference / pose VAE posteriors
        # reused across calls, keyed by content (the long-video sampler sets one for the video: each distinct prompt,
        # reference and pose segment is encoded once, not once per clip). Exact: a hit is the value of an uncached call.
        self.condition_cache = None
        self._current_timestep = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs: Any) -> DynamiCtrlPipeline:
        """diffusers' loader, local only: a missing folder or model_index.json is named instead of a Hub lookup."""
        kwargs.setdefault("local_files_only", True)
        if looks_like_local_path(pretrained_model_name_or_path):
            check_local_model_folder(pretrained_model_name_or_path, "pipeline", needs=("model_index.json",))
            if "transformer" not in kwargs:  # refused by the strict load too, but only after the text encoder loaded
                check_pose_weights(os.path.join(pretrained_model_name_or_path, "transformer"))
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def load_config(cls, pretrained_model_name_or_path, return_unused_kwargs=False, return_commit_hash=False, **kwargs):
        """diffusers' reader of ``model_index.json``, with the component names of the official release and of
        diffusers' CogVideoX mapped to our classes (see :mod:`dynamictrl.pipelines.model_index`): whatever a folder
        calls its transformer, :meth:`from_pretrained` loads it as a :class:`DynamiCtrlTransformer3DModel`."""
        loaded = super().load_config(pretrained_model_name_or_path, return_unused_kwargs, return_commit_hash, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        config.update(normalize_component_names(config, (__name__, DynamiCtrlTransformer3DModel.__name__)))
        return loaded

    # ------------------------------------------------------------------ memory helpers

    def enable_vae_slicing(self) -> None:
        """Decode the batch one video at a time (less memory)."""
        self.vae.enable_slicing()

    def disable_vae_slicing(self) -> None:
        self.vae.disable_slicing()

    def enable_vae_tiling(self, **tiling) -> None:
        """Encode/decode in overlapping spatial tiles (much less memory at high resolution). Keyword arguments as in
        diffusers' ``vae.enable_tiling``; the overlaps are rounded to whole latents so the tiles add up for any VAE
        (:mod:`dynamictrl.acceleration.vae_tiling`); raises ``ValueError`` where this VAE cannot tile."""
        enable_vae_tiling(self.vae, **tiling)

    def disable_vae_tiling(self) -> None:
        self.vae.disable_tiling()

    # ------------------------------------------------------------------ properties

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (VAE spatial factor × transformer patch size)."""
        return self.vae_scale_factor_spatial * self.transformer.config.patch_size

    @property
    def default_num_frames(self) -> int:
        return int(self.transformer.config.sample_frames)

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1.0 and self.transformer.config.use_text

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    @property
    def current_timestep(self):
        """The timestep being denoised (None outside the denoising loop), as in diffusers' pipelines."""
        return self._current_timestep

    @property
    def attention_kwargs(self) -> dict[str, Any] | None:
        return self._attention_kwargs

    # ------------------------------------------------------------------ input handling

    def check_inputs(
        self,
        image,
        pose_video,
        prompt,
        negative_prompt,
        reference_mask,
        num_frames: int,
        height: int,
        width: int,
        output_type: str,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] | None = None,
    ) -> None:
        """Raise ``ValueError`` naming the bad value and what is allowed; called before any encoding or denoising."""
        if image is None:
            raise ValueError("image is required: the reference image (PIL image, uint8 array (H, W, 3) or tensor)")
        if not isinstance(image, (PIL.Image.Image, np.ndarray, torch.Tensor)):
            raise ValueError(f"image must be a PIL image, a numpy array or a torch tensor, got {type(image).__name__}")
        if isinstance(image, torch.Tensor):
            tensor = image[None] if image.ndim == 3 else image
            if tensor.ndim != 4 or tensor.shape[1] not in (1, 3):
                raise ValueError(
                    f"a tensor image must be (3, H, W) or (1, 3, H, W) in [-1, 1], got {tuple(image.shape)}"
                )
        elif isinstance(image, np.ndarray) and not (
            image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 3, 4))
        ):
            raise ValueError(f"an image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {image.shape}")
        mult = self.size_multiple
        for name, value in (("height", height), ("width", width)):
            if not isinstance(value, int) or value <= 0 or value % mult:
                raise ValueError(
                    f"{name}={value!r} must be a positive multiple of {mult} (VAE factor "
                    f"{self.vae_scale_factor_spatial} × patch size {self.transformer.config.patch_size})"
                )
        cfg = self.transformer.config
        if cfg.use_learned_positional_embeddings:
            fixed = (
                cfg.sample_height * self.vae_scale_factor_spatial,
                cfg.sample_width * self.vae_scale_factor_spatial,
            )
            if (height, width) != fixed:
                raise ValueError(
                    f"height x width = {height}x{width}, but this transformer has learned positional embeddings "
                    f"(CogVideoX 1.0 I2V) and only generates {fixed[0]}x{fixed[1]}"
                )
        num_latent_frames(num_frames, self.vae_scale_factor_temporal)  # raises for frame counts that are not 4k+1
        check_vae_tiling(self.vae, height, width)  # tiles that would not add up to this frame size
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r} is not one of {OUTPUT_TYPES}")
        if self.transformer.config.pose_control != "none":
            if pose_video is None:
                raise ValueError(
                    f"pose_video is required for pose_control={self.transformer.config.pose_control!r}: rendered pose "
                    "frames, first the reference image's pose, then the driving poses"
                )
            if isinstance(pose_video, torch.Tensor):
                video = pose_video[None] if pose_video.ndim == 4 else pose_video
                if video.ndim != 5 or video.shape[1] != 3:
                    raise ValueError(
                        f"a tensor pose_video must be (3, F, H, W) or (1, 3, F, H, W), got {tuple(pose_video.shape)}"
                    )
            available = _num_frames(pose_video)
            if available == 0:
                raise ValueError("pose_video is empty (0 frames)")
            if available < num_frames:
                raise ValueError(
                    f"pose_video has {available} frames but num_frames={num_frames} were asked for; pass "
                    f"num_frames <= {available} (a k*{self.vae_scale_factor_temporal}+1 count), or animate the whole "
                    "video with the long-video sampler (dynamictrl.pipelines.long_video.sample_long_video, "
                    "scripts/sample_long.py)"
                )
        if reference_mask is not None:
            mask_hw = _spatial_size(reference_mask, is_mask=True)
            image_hw = _spatial_size(image)
            if mask_hw != image_hw:
                raise ValueError(f"reference_mask has size {mask_hw} (H, W) but the image has size {image_hw}")
            if not isinstance(reference_mask, PIL.Image.Image):
                mask = reference_mask.detach().cpu() if isinstance(reference_mask, torch.Tensor) else reference_mask
                squeezed = np.asarray(mask).squeeze()
                if not (squeezed.ndim == 2 or (squeezed.ndim == 3 and squeezed.shape[-1] in (3, 4))):
                    raise ValueError(f"reference_mask must be one (H, W) mask, got shape {np.asarray(mask).shape}")
        if self.transformer.config.use_text:
            if prompt is None and prompt_embeds is None:
                raise ValueError("give prompt (str or list of str) or prompt_embeds; this model uses text")
            if prompt is not None and prompt_embeds is not None:
                raise ValueError("give prompt or prompt_embeds, not both")
            if prompt is not None and not (
                isinstance(prompt, str)
                or (isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt))
            ):
                raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
            if negative_prompt is not None and negative_prompt_embeds is not None:
                raise ValueError("give negative_prompt or negative_prompt_embeds, not both")
            if negative_prompt is not None and not (
                isinstance(negative_prompt, str)
                or (isinstance(negative_prompt, list) and all(isinstance(p, str) for p in negative_prompt))
            ):
                raise ValueError(f"negative_prompt must be a string or a list of strings, got {negative_prompt!r}")
            batch_size = self._batch_size(prompt, prompt_embeds)
            if isinstance(negative_prompt, list) and len(negative_prompt) != batch_size:
                raise ValueError(f"negative_prompt has {len(negative_prompt)} entries but prompt has {batch_size}")
            if prompt_embeds is not None and negative_prompt_embeds is not None:
                if prompt_embeds.shape != negative_prompt_embeds.shape:
                    raise ValueError(
                        f"prompt_embeds {tuple(prompt_embeds.shape)} and negative_prompt_embeds "
                        f"{tuple(negative_prompt_embeds.shape)} must have the same shape"
                    )
        if latents is not None:
            shape = (
                self._batch_size(prompt, prompt_embeds),
                num_latent_frames(num_frames, self.vae_scale_factor_temporal, cfg.patch_size_t),
                self.vae.config.latent_channels,
                height // self.vae_scale_factor_spatial,
                width // self.vae_scale_factor_spatial,
            )
            if tuple(latents.shape) != shape:
                raise ValueError(f"latents has shape {tuple(latents.shape)}; expected {shape}")
        if callback_on_step_end_tensor_inputs is not None:
            bad = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
            if bad:
                raise ValueError(f"callback_on_step_end_tensor_inputs {bad} not in {self._callback_tensor_inputs}")

    def _prepare_image(self, image, height: int, width: int, reference_mask=None) -> torch.Tensor:
        """Reference (1, 3, H, W) in [-1, 1], resized with the shared policy and masked when a mask is given."""
        if isinstance(image, torch.Tensor):
            tensor = image.detach().float()
            if tensor.ndim == 3:
                tensor = tensor[None]
            tensor = tensor.expand(-1, 3, -1, -1) if tensor.shape[1] == 1 else tensor
            if tuple(tensor.shape[-2:]) != (height, width):
                frames = tensor_to_frames(tensor[0][:, None])[0]
                tensor = frames_to_tensor(resize_and_center_crop(frames, height, width))[:, :, 0]
        else:
            tensor = frames_to_tensor(resize_and_center_crop(_image_to_uint8(image), height, width))[:, :, 0]
        if reference_mask is not None:
            mask = resize_and_center_crop(_mask_to_uint8(reference_mask), height, width, resample=PIL.Image.NEAREST)
            tensor = apply_reference_mask(tensor, torch.from_numpy(mask.astype(np.float32) / 255.0))
        return tensor  # (1, 3, H, W)

    def _prepare_pose(self, pose_video, num_frames: int, height: int, width: int) -> torch.Tensor:
        """Pose video (1, 3, F, H, W) in [-1, 1]: its first ``num_frames`` frames, resized with the shared policy."""
        if isinstance(pose_video, torch.Tensor):
            video = pose_video.detach().float()
            video = video[None] if video.ndim == 4 else video
            video = video[:, :, :num_frames]
            if tuple(video.shape[-2:]) != (height, width):
                frames = tensor_to_frames(video[0])
                video = frames_to_tensor(resize_and_center_crop(frames, height, width))
            return video
        if isinstance(pose_video, np.ndarray):
            frames = to_uint8(pose_video)[:num_frames]
        else:
            frames = np.stack([_image_to_uint8(f) for f in list(pose_video)[:num_frames]])
        if frames.ndim == 3:
            frames = np.repeat(frames[..., None], 3, axis=-1)
        elif frames.shape[-1] == 4:
            frames = frames[..., :3]
        return frames_to_tensor(resize_and_center_crop(frames, height, width))

    def _batch_size(self, prompt, prompt_embeds) -> int:
        """Videos per call: one per prompt (a string is one), or the rows of ``prompt_embeds``."""
        if isinstance(prompt, list):
            return len(prompt)
        if prompt is None and prompt_embeds is not None and self.transformer.config.use_text:
            return int(prompt_embeds.shape[0])
        return 1

    def _encode_text(self, texts: list[str], max_sequence_length: int, device, dtype) -> torch.Tensor:
        """T5 embeddings of ``texts``, through :attr:`condition_cache` when one is set."""

        def compute() -> torch.Tensor:
            return encode_prompt(self.tokenizer, self.text_encoder, texts, max_sequence_length, device, dtype)

        if self.condition_cache is None:
            return compute()
        key = (tuple(texts), max_sequence_length, str(device), str(dtype))
        return self.condition_cache.get("prompt", key, compute)

    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        negative_prompt: str | list[str] | None = None,
        do_classifier_free_guidance: bool = True,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        max_sequence_length: int | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(prompt_embeds, negative_prompt_embeds)`` (B, L, D), as diffusers' CogVideoX pipelines return them.

        Embeddings passed in are returned as they are; the negative ones are computed only with classifier-free
        guidance (``negative_prompt`` defaults to ""). ``max_sequence_length`` defaults to the transformer's
        ``max_text_seq_length``. A model trained without text (``use_text=False``) gets ``(None, None)``.
        """
        if not self.transformer.config.use_text:
            return None, None
        max_sequence_length = max_sequence_length or self.transformer.config.max_text_seq_length
        device = device or self._execution_device
        dtype = dtype or self.text_encoder.dtype
        if prompt_embeds is None:
            prompt_embeds = self._encode_text(
                [prompt] if isinstance(prompt, str) else list(prompt), max_sequence_length, device, dtype
            )
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            batch_size = prompt_embeds.shape[0]
            negative = negative_prompt or ""
            negative = [negative] * batch_size if isinstance(negative, str) else list(negative)
            if len(negative) != batch_size:
                raise ValueError(f"negative_prompt has {len(negative)} entries but prompt has {batch_size}")
            negative_prompt_embeds = self._encode_text(negative, max_sequence_length, device, dtype)
        return prompt_embeds, negative_prompt_embeds

    def prepare_latents(
        self,
        image: torch.Tensor,
        pose_video: torch.Tensor | None,
        batch_size: int,
        num_channels_latents: int,
        num_frames: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        scale_reference_latents: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(latents, image_latents, pose_latents)``, each (batch_size, F', C, H', W'), as in diffusers'
        ``CogVideoXImageToVideoPipeline.prepare_latents`` plus the pose.

        ``image`` (1, 3, H, W) and ``pose_video`` (1, 3, F, H, W) are in [-1, 1] at the output size; ``num_frames``
        counts pixel frames. The reference latent is frame 0 of the image latents (zeros after); with CogVideoX 1.5
        the pose latents are padded at the front to a multiple of ``patch_size_t``. Noise is drawn last (after the
        two encodings), from ``generator``, unless ``latents`` are given. With a :attr:`condition_cache`, a reference
        or pose video equal to an earlier one reuses its VAE posterior (the samples are still drawn from
        ``generator``, so the result is that of an uncached call).
        """
        cfg = self.transformer.config
        frames = num_latent_frames(num_frames, self.vae_scale_factor_temporal, cfg.patch_size_t)
        image_latents = encode_reference(
            self.vae,
            image,  # moved to the VAE's device by the encoder; a cache keys on it here, on the CPU
            frames,
            generator=_first(generator),
            scale_latents=self._reference_scaling(scale_reference_latents),
            cache=self.condition_cache,
        ).to(device, dtype)  # (1, F', C, H', W')
        image_latents = image_latents.expand(batch_size, -1, -1, -1, -1)
        pose_latents = None
        if pose_video is not None:
            pose_latents = encode_pose(
                self.vae,
                pose_video,
                generator=_first(generator),
                patch_size_t=cfg.patch_size_t,
                cache=self.condition_cache,
            ).to(device, dtype)
            pose_latents = pose_latents.expand(batch_size, -1, -1, -1, -1)
        shape = (
            batch_size,
            frames,
            num_channels_latents,
            height // self.vae_scale_factor_spatial,
            width // self.vae_scale_factor_spatial,
        )
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        latents = latents.to(device, dtype) * self.scheduler.init_noise_sigma
        return latents, image_latents, pose_latents

    def _reference_scaling(self, override: bool | None) -> bool:
        if override is not None:
            return override
        if self.config.get("scale_reference_latents") is not None:
            return bool(self.config.scale_reference_latents)
        return official_reference_scaling(self.vae)

    def prepare_extra_step_kwargs(self, generator, eta: float) -> dict[str, Any]:
        params = set(inspect.signature(self.scheduler.step).parameters)
        kwargs = {}
        if "eta" in params:
            kwargs["eta"] = eta
        if "generator" in params:
            kwargs["generator"] = generator
        return kwargs

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, F', C, H', W') scaled latents -> (B, 3, F, H, W) in [-1, 1]."""
        latents = latents.permute(0, 2, 1, 3, 4) / self.vae.config.scaling_factor
        return self.vae.decode(latents.to(self.vae.dtype)).sample

    # ------------------------------------------------------------------ call

    @torch.no_grad()
    def __call__(
        self,
        image=None,
        pose_video=None,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        reference_mask=None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 25,
        timesteps: list[int] | None = None,
        guidance_scale: float = 3.0,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        max_sequence_length: int | None = None,
        ofs: float = 2.0,
        scale_reference_latents: bool | None = None,
    ):
        """Animate ``image`` with ``pose_video``.

        Args:
            image: reference image (PIL, uint8 array (H, W[, 3|4]), or tensor (3, H, W) in [-1, 1]); RGBA and
                greyscale are converted.
            pose_video: rendered pose frames (uint8 (T, H, W, 3), list of PIL images, or tensor (3, T, H, W) in
                [-1, 1]); frame 0 should be the reference image's pose. Its first ``num_frames`` frames are used.
            prompt / negative_prompt: text; ignored by ``use_text=False`` models.
            reference_mask: person mask of the reference (same size as ``image``; uint8, bool or float in [0, 1]);
                the background becomes grey so the prompt alone draws it.
            num_frames: ``k*4+1`` frames (default: the transformer's ``sample_frames``).
            height, width: output size, multiples of :attr:`size_multiple` (default: the transformer's sample size).
            guidance_scale: text classifier-free guidance; ``<= 1`` turns it off (one transformer pass per step).
            output_type: ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"``.
            callback_on_step_end: ``fn(pipe, step, timestep, tensors) -> dict`` after every step, as in diffusers.
            ofs: CogVideoX 1.5's ofs condition, used only when the transformer has an ofs embedding.
            scale_reference_latents: see the class docstring; ``None`` uses the pipeline's setting.
        Returns:
            :class:`DynamiCtrlPipelineOutput` (or a tuple when ``return_dict=False``).
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        cfg = self.transformer.config
        height = height or cfg.sample_height * self.vae_scale_factor_spatial
        width = width or cfg.sample_width * self.vae_scale_factor_spatial
        num_frames = num_frames or self.default_num_frames
        max_sequence_length = max_sequence_length or cfg.max_text_seq_length

        # 1. Check inputs
        self.check_inputs(
            image,
            pose_video,
            prompt,
            negative_prompt,
            reference_mask,
            num_frames,
            height,
            width,
            output_type,
            latents,
            prompt_embeds,
            negative_prompt_embeds,
            callback_on_step_end_tensor_inputs,
        )
        self._guidance_scale = guidance_scale
        self._attention_kwargs = attention_kwargs
        self._current_timestep = None
        self._interrupt = False
        device = self._execution_device
        dtype = self.transformer.dtype
        do_cfg = self.do_classifier_free_guidance
        batch_size = self._batch_size(prompt, prompt_embeds)

        # 2. Encode the prompt (use_text=False models skip the text encoder)
        if not cfg.use_text:
            if prompt is not None or prompt_embeds is not None:
                logger.info("this model was trained without text (use_text=False): the prompt is ignored")
            if guidance_scale > 1.0:
                logger.info("guidance is on text only, and this model uses none: guidance_scale is ignored")
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt,
            negative_prompt,
            do_cfg,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            max_sequence_length=max_sequence_length,
            device=device,
            dtype=dtype,
        )
        if do_cfg:
            prompt_embeds = torch.cat([negative_prompt_embeds.to(device, dtype), prompt_embeds.to(device, dtype)])

        # 3. Timesteps
        timesteps, num_inference_steps = retrieve_timesteps(self.scheduler, num_inference_steps, device, timesteps)
        self._num_timesteps = len(timesteps)

        # 4. Latents: reference (frame 0, zeros after) and pose from the one VAE, then the initial noise
        reference = self._prepare_image(image, height, width, reference_mask)
        pose = None if cfg.pose_control == "none" else self._prepare_pose(pose_video, num_frames, height, width)
        latents, image_latents, pose_latents = self.prepare_latents(
            reference,
            pose,
            batch_size,
            self.vae.config.latent_channels,
            num_frames,
            height,
            width,
            dtype,
            device,
            generator,
            latents,
            scale_reference_latents,
        )
        padding = latent_frame_padding(latent_frame_count(num_frames, self.vae_scale_factor_temporal), cfg.patch_size_t)

        # 5. The transformer call (channel-concatenated reference, pose, rotary, ofs), scheduler kwargs
        copies = 2 if do_cfg else 1
        call = TransformerCall.build(
            self.transformer,
            torch.cat([image_latents] * copies),
            None if pose_latents is None else torch.cat([pose_latents] * copies),
            prompt_embeds,
            ofs=ofs,
            ofs_batch_size=1,
            attention_kwargs=attention_kwargs,
        )
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)

        # 6. Denoising loop
        old_pred_original_sample = None
        num_warmup_steps = max(len(timesteps) - num_inference_steps * self.scheduler.order, 0)
        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t
                model_input = self.scheduler.scale_model_input(torch.cat([latents] * copies), t)
                noise_pred = call(self.transformer, model_input, t.expand(model_input.shape[0])).float()
                if do_cfg:
                    uncond, cond = noise_pred.chunk(2)
                    noise_pred = uncond + guidance_scale * (cond - uncond)
                if isinstance(self.scheduler, CogVideoXDPMScheduler):
                    latents, old_pred_original_sample = self.scheduler.step(
                        noise_pred,
                        old_pred_original_sample,
                        t,
                        timesteps[i - 1] if i > 0 else None,
                        latents,
                        **extra_step_kwargs,
                        return_dict=False,
                    )
                else:
                    latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[0]
                latents = latents.to(dtype)

                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "prompt_embeds": prompt_embeds}
                    tensors["negative_prompt_embeds"] = negative_prompt_embeds
                    outputs = callback_on_step_end(
                        self, i, t, {k: tensors[k] for k in callback_on_step_end_tensor_inputs}
                    )
                    latents = outputs.pop("latents", latents)
                    prompt_embeds = outputs.pop("prompt_embeds", prompt_embeds)
                    call.prompt_embeds = prompt_embeds
                if i == len(timesteps) - 1 or ((i + 1) > num_warmup_steps and (i + 1) % self.scheduler.order == 0):
                    progress_bar.update()

        self._current_timestep = None

        # 7. Decode (dropping CogVideoX 1.5's padding frames)
        latents = latents[:, padding:]
        if output_type == "latent":
            video = latents
        else:
            # an even latent count decodes to 4·F' frames (the VAE's first-frame rule applies to odd counts only);
            # like the official release, keep the first num_frames
            decoded = self.decode_latents(latents)[:, :, :num_frames]  # (B, 3, F, H, W)
            video = self.video_processor.postprocess_video(decoded, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (video,)
        return DynamiCtrlPipelineOutput(frames=video)


# ---------------------------------------------------------------------- input conversion helpers


def _first(generator):
    return generator[0] if isinstance(generator, list) else generator


def _num_frames(video) -> int:
    if isinstance(video, torch.Tensor):
        return int(video.shape[-3]) if video.ndim >= 4 else 0
    if isinstance(video, np.ndarray):
        return int(video.shape[0]) if video.ndim >= 3 else 0
    return len(video)


def _image_to_uint8(image) -> np.ndarray:
    """PIL or array image -> uint8 (H, W, 3); RGBA, palette and greyscale are converted."""
    if isinstance(image, PIL.Image.Image):
        return np.asarray(image.convert("RGB"))
    array = to_uint8(np.asarray(image))
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"an image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    if array.shape[-1] == 1:
        return np.repeat(array, 3, axis=-1)
    return array[..., :3]


def _mask_to_uint8(mask) -> np.ndarray:
    """Mask (PIL, array or tensor; bool, uint8 or float in [0, 1]; greyscale, RGB or RGBA) -> uint8 (H, W)."""
    if isinstance(mask, PIL.Image.Image):
        return np.asarray(mask.convert("L"))
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().float().cpu().numpy()
    array = to_uint8(np.asarray(mask).squeeze())
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3].max(axis=-1)
    if array.ndim != 2:
        raise ValueError(f"reference_mask must be one (H, W) mask, got shape {np.asarray(mask).shape}")
    return array


def _spatial_size(value, is_mask: bool = False) -> tuple[int, int]:
    if isinstance(value, PIL.Image.Image):
        return value.height, value.width
    if isinstance(value, torch.Tensor):
        return tuple(int(s) for s in value.shape[-2:])
    array = np.asarray(value)
    if is_mask:
        array = array.squeeze()
    return (array.shape[0], array.shape[1]) if array.ndim in (2, 3) else tuple(array.shape[-2:])
