"""Pixels and text -> what the DynamiCtrl transformer consumes, and the transformer call itself.

The one description of DynamiCtrl's conditions, shared by the pipeline, the trainer (``training/spec.py``) and the
latent-cache tool (``tools/prepare_dataset.py``): :func:`encode_clip` (target, pose, reference of a training clip),
:func:`encode_pose` / :func:`encode_reference` (inference), :func:`encode_prompt`, and :class:`TransformerCall`
(``cat([noisy, reference])`` on channels, pose latents, rotary embedding, ofs).

Conventions (those of the official DynamiCtrl release, which follow diffusers' CogVideoX image-to-video pipeline):

* Videos are tensors (B, 3, F, H, W) in [-1, 1]; latents are (B, F', C, H', W') (frames before channels, as the
  transformer takes them), multiplied by the VAE's ``scaling_factor``.
* Frame counts: the causal VAE keeps the first frame and compresses every further ``temporal_compression_ratio``
  frames into one latent frame, so ``num_frames`` must be ``k * ratio + 1`` (49, 37, 13, 9, ... for ratio 4) and
  ``F' = (num_frames - 1) // ratio + 1``.
* CogVideoX 1.5 (``patch_size_t`` set) patches latents in pairs of frames, so F' must be a multiple of ``patch_size_t``.
  As in diffusers' 1.5 image-to-video pipeline, an odd count is padded *at the front* (the extra latent frames are
  denoised with the rest and dropped before decoding): :func:`latent_frame_padding` says how many.
* The reference image is encoded as a one-frame video; its latent is frame 0 of a sequence padded with zeros over the
  remaining latent frames (channel-concatenated with the noise by the caller).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import retrieve_latents
from PIL import Image

from ..data.frames import is_frame_count, latent_frame_count
from ..data.pixels import apply_reference_mask as apply_reference_mask  # re-exported
from ..data.pixels import signed_to_uint8, uint8_to_signed

logger = logging.getLogger(__name__)
_WARNED_TRUNCATION: set[tuple] = set()


def num_latent_frames(num_frames: int, temporal_compression_ratio: int, patch_size_t: int | None = None) -> int:
    """Latent frames the transformer sees for a clip of ``num_frames`` pixel frames.

    ``num_frames`` must be ``k * temporal_compression_ratio + 1`` (k >= 0). With ``patch_size_t`` (CogVideoX 1.5) the
    count is rounded up to a multiple of it: e.g. ratio 4, 37 frames -> 10; 49 frames -> 13, or 14 with
    ``patch_size_t=2`` (one padding frame, see :func:`latent_frame_padding`).
    """
    check_num_frames(num_frames, temporal_compression_ratio)
    frames = latent_frame_count(num_frames, temporal_compression_ratio)
    return frames + latent_frame_padding(frames, patch_size_t)


def check_num_frames(num_frames: int, temporal_compression_ratio: int) -> int:
    """Raise ``ValueError`` unless ``num_frames`` is ``k * ratio + 1``; returns it unchanged."""
    ratio = int(temporal_compression_ratio)
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
    if not is_frame_count(num_frames, ratio):
        lower = (num_frames - 1) // ratio * ratio + 1
        raise ValueError(
            f"num_frames={num_frames} is not k*{ratio}+1 (the VAE compresses {ratio} frames into one after the first); "
            f"use {lower} or {lower + ratio}"
        )
    return int(num_frames)


def latent_frame_padding(latent_frames: int, patch_size_t: int | None) -> int:
    """How many latent frames must be prepended so that ``latent_frames`` is a multiple of ``patch_size_t``."""
    if not patch_size_t:
        return 0
    return (-latent_frames) % patch_size_t


def pad_latent_frames(latents: torch.Tensor, patch_size_t: int | None) -> tuple[torch.Tensor, int]:
    """Prepend copies of latent frame 0 so the count is a multiple of ``patch_size_t``; returns (latents, padding).

    ``latents`` is (B, F', C, H', W'). Drop ``latents[:, padding:]``-style after denoising.
    """
    padding = latent_frame_padding(latents.shape[1], patch_size_t)
    if padding:
        latents = torch.cat([latents[:, :1].expand(-1, padding, -1, -1, -1), latents], dim=1)
    return latents, padding


def _vae_settings(vae) -> tuple:
    """What, besides the input, decides ``vae.encode``'s result: the module, its dtype, the device it computes on,
    slicing and tiling."""
    # under accelerate's model offload the weights sit on the CPU or the GPU depending on what ran last; the hook's
    # execution device is where the encoder runs either way
    device = getattr(getattr(vae, "_hf_hook", None), "execution_device", None)
    tiling = ("use_tiling", "tile_sample_min_height", "tile_sample_min_width")
    tiling += ("tile_overlap_factor_height", "tile_overlap_factor_width")
    return (id(vae), str(vae.dtype), str(vae.device if device is None else device)) + tuple(
        getattr(vae, name, None) for name in ("use_slicing", *tiling)
    )


def vae_encode(vae, x: torch.Tensor, cache=None, kind: str = "vae"):
    """``vae.encode`` of ``x`` (moved to the VAE's device and dtype): the posterior, not yet sampled.

    ``cache``: a :class:`~dynamictrl.acceleration.ConditionCache` (or None). An input equal in content to an earlier
    one of the same ``kind``, for the same VAE in the same settings, reuses that posterior instead of running the
    encoder. Sampling stays with the caller's generator, so the latents, and the generator's state afterwards, are
    those of an uncached call: the cache is exact.
    """

    def encode():
        return vae.encode(x.to(device=vae.device, dtype=vae.dtype))

    if cache is None:
        return encode()

    def compute():
        output = encode()
        posterior = getattr(output, "latent_dist", None)
        # keep only the encoder's output: the posterior's std/var are recomputed from it bit for bit (half the memory)
        return posterior.parameters if isinstance(posterior, DiagonalGaussianDistribution) else output

    value = cache.get(kind, (x, _vae_settings(vae)), compute)
    if isinstance(value, torch.Tensor):
        return AutoencoderKLOutput(latent_dist=DiagonalGaussianDistribution(value))
    return value


def encode_video(
    vae, video: torch.Tensor, generator: torch.Generator | None = None, sample: bool = True, cache=None
) -> torch.Tensor:
    """Encode a video (B, 3, F, H, W) in [-1, 1] to latents (B, F', C, H', W') × the VAE scaling factor.

    ``sample=False`` takes the posterior mode instead of a sample (deterministic; used for caching). ``cache``: see
    :func:`vae_encode`.
    """
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"encode_video expects (B, 3, F, H, W), got shape {tuple(video.shape)}")
    check_num_frames(video.shape[2], vae.config.temporal_compression_ratio)
    posterior = vae_encode(vae, video, cache, kind="video")
    latents = retrieve_latents(posterior, generator, "sample" if sample else "argmax")  # (B, C, F', H', W')
    return latents.permute(0, 2, 1, 3, 4) * vae.config.scaling_factor  # (B, F', C, H', W')


def encode_reference(
    vae,
    image: torch.Tensor,
    num_latent_frames: int,
    generator: torch.Generator | None = None,
    scale_latents: bool = True,
    sample: bool = True,
    cache=None,
) -> torch.Tensor:
    """Encode the reference image (B, 3, H, W) in [-1, 1] into the image-latent sequence (B, F', C, H', W').

    Frame 0 is the reference latent, frames 1.. are zeros. ``scale_latents=False`` leaves the latent unscaled (×1.0):
    this is what the official DynamiCtrl code does for VAEs with ``invert_scale_latents`` (CogVideoX 1.5), so its
    1.5 checkpoints need it; see :func:`official_reference_scaling`. ``cache``: see :func:`vae_encode`.
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"encode_reference expects (B, 3, H, W), got shape {tuple(image.shape)}")
    if num_latent_frames < 1:
        raise ValueError(f"num_latent_frames must be >= 1, got {num_latent_frames}")
    posterior = vae_encode(vae, image.unsqueeze(2), cache, kind="reference")  # of (B, 3, 1, H, W)
    latent = retrieve_latents(posterior, generator, "sample" if sample else "argmax")  # (B, C, 1, H', W')
    latent = latent.permute(0, 2, 1, 3, 4)  # (B, 1, C, H', W')
    if scale_latents:
        latent = latent * vae.config.scaling_factor
    padding = latent.new_zeros(latent.shape[0], num_latent_frames - 1, *latent.shape[2:])
    return torch.cat([latent, padding], dim=1)  # (B, F', C, H', W')


def encode_pose(
    vae,
    pose: torch.Tensor,
    generator: torch.Generator | None = None,
    patch_size_t: int | None = None,
    sample: bool = True,
    cache=None,
) -> torch.Tensor:
    """Pose video (B, 3, F, H, W) in [-1, 1] -> pose latents (B, F', C, H', W'), padded at the front like the target
    latents for CogVideoX 1.5 (see :func:`pad_latent_frames`). ``cache``: see :func:`vae_encode`."""
    latents = encode_video(vae, pose, generator=generator, sample=sample, cache=cache)
    return pad_latent_frames(latents, patch_size_t)[0]


def encode_clip(
    vae,
    video: torch.Tensor,
    pose: torch.Tensor,
    reference: torch.Tensor,
    generator: torch.Generator | None = None,
    scale_reference: bool = True,
    sample: bool = True,
    masked_reference: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Latents of a training clip: ``latents`` (target), ``pose_latents``, ``reference_latents`` (B, F', C, H', W')
    and, given ``masked_reference`` (B', 3, H, W), ``masked_reference_latents``.

    Encoded in this order (target, pose, reference, masked reference), so a ``generator`` gives the same samples on
    every path. ``sample=False`` takes posterior modes (the latent cache).
    """
    latents = encode_video(vae, video, generator=generator, sample=sample)
    out = dict(latents=latents, pose_latents=encode_video(vae, pose, generator=generator, sample=sample))
    frames = latents.shape[1]
    out["reference_latents"] = encode_reference(
        vae, reference, frames, generator=generator, scale_latents=scale_reference, sample=sample
    )
    if masked_reference is not None:
        out["masked_reference_latents"] = encode_reference(
            vae, masked_reference, frames, generator=generator, scale_latents=scale_reference, sample=sample
        )
    return out


def official_reference_scaling(vae) -> bool:
    """``scale_latents`` value that reproduces the official release: False when the VAE sets ``invert_scale_latents``."""
    return not getattr(vae.config, "invert_scale_latents", False)


def encode_prompt(
    tokenizer,
    text_encoder,
    prompt: Sequence[str],
    max_length: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """T5 embeddings (B, L=max_length, D) of a list of prompts, padded/truncated to ``max_length`` tokens."""
    if isinstance(prompt, str):
        prompt = [prompt]
    prompt = list(prompt)
    if not prompt or not all(isinstance(p, str) for p in prompt):
        raise ValueError(f"prompt must be a non-empty list of strings, got {prompt!r}")
    tokens = tokenizer(
        prompt,
        padding="max_length",
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    longest = tokenizer(prompt, padding="longest", return_tensors="pt").input_ids
    if longest.shape[-1] > max_length:
        key = (max_length, tuple(prompt))
        if key not in _WARNED_TRUNCATION:  # once per prompt, not once per clip
            _WARNED_TRUNCATION.add(key)
            logger.warning("prompt truncated to %d tokens: %r", max_length, prompt)
    device = device if device is not None else text_encoder.device
    embeds = text_encoder(tokens.input_ids.to(device))[0]  # (B, L, D)
    return embeds.to(device=device, dtype=dtype if dtype is not None else embeds.dtype)


@dataclass
class TransformerCall:
    """The conditions of one batch, ready for the denoiser: ``call(transformer, noisy, timestep)`` runs it.

    ``image_latents`` (B, F', C, H', W') are concatenated to the noisy latents on channels; ``pose_latents`` go in
    separately; the rotary embedding and ``ofs`` (CogVideoX 1.5) are computed once. Training and inference both run
    the transformer through this, so the model sees one input layout.
    """

    image_latents: torch.Tensor
    pose_latents: torch.Tensor | None
    prompt_embeds: torch.Tensor | None
    image_rotary_emb: Any
    ofs: torch.Tensor | None
    attention_kwargs: dict[str, Any] | None = None

    @classmethod
    def build(
        cls,
        transformer,
        image_latents: torch.Tensor,
        pose_latents: torch.Tensor | None,
        prompt_embeds: torch.Tensor | None,
        ofs: float,
        ofs_batch_size: int,
        attention_kwargs: dict[str, Any] | None = None,
    ) -> TransformerCall:
        """Rotary embedding for the latent grid of ``image_latents``; ``ofs`` as a (ofs_batch_size,) tensor when the
        transformer has an ofs embedding (CogVideoX 1.5), else None. ``transformer`` may be wrapped (DDP, DeepSpeed)."""
        model = transformer.module if hasattr(transformer, "module") else transformer
        _, frames, _, height, width = image_latents.shape
        device, dtype = image_latents.device, image_latents.dtype
        rotary = model.rotary_embedding(frames, height, width, device=device)
        ofs_emb = None
        if model.config.ofs_embed_dim is not None:
            ofs_emb = torch.full((ofs_batch_size,), float(ofs), device=device, dtype=dtype)
        return cls(image_latents, pose_latents, prompt_embeds, rotary, ofs_emb, attention_kwargs)

    def __call__(self, transformer, noisy_latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """The transformer's prediction (B, F', C, H', W') for ``noisy_latents`` at ``timestep`` (B,)."""
        return transformer(
            hidden_states=torch.cat([noisy_latents, self.image_latents], dim=2),  # (B, F', 2C, H', W')
            encoder_hidden_states=self.prompt_embeds,
            timestep=timestep,
            pose_latents=self.pose_latents,
            image_rotary_emb=self.image_rotary_emb,
            ofs=self.ofs,
            attention_kwargs=self.attention_kwargs,
            return_dict=False,
        )[0]


def frames_to_tensor(frames: np.ndarray | Sequence[Image.Image] | Image.Image) -> torch.Tensor:
    """uint8 frames (T, H, W, 3), one image (H, W, 3), or PIL images -> float tensor (1, 3, T, H, W) in [-1, 1].

    Greyscale and RGBA inputs are converted to RGB.
    """
    if isinstance(frames, Image.Image):
        frames = [frames]
    if not isinstance(frames, np.ndarray):
        frames = np.stack([np.asarray(f.convert("RGB")) for f in frames])
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got dtype {frames.dtype}")
    if frames.ndim == 2 or (frames.ndim == 3 and frames.shape[-1] not in (1, 3, 4)):
        frames = frames[..., None]  # greyscale (H, W) or (T, H, W)
    if frames.ndim == 3:
        frames = frames[None]  # one image -> (1, H, W, C)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        raise ValueError(f"frames must be (T, H, W, 3), got shape {frames.shape}")
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    elif frames.shape[-1] == 4:
        frames = frames[..., :3]
    tensor = uint8_to_signed(np.array(frames))  # (T, H, W, 3)
    return tensor.permute(3, 0, 1, 2).unsqueeze(0)  # (1, 3, T, H, W)


def tensor_to_frames(video: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`frames_to_tensor`: (3, T, H, W) or (B, 3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3) or
    (B, T, H, W, 3)."""
    if video.ndim not in (4, 5) or video.shape[-4] != 3:
        raise ValueError(f"expected (3, T, H, W) or (B, 3, T, H, W), got shape {tuple(video.shape)}")
    video = signed_to_uint8(video.detach().cpu())
    return video.movedim(-4, -1).numpy()  # (..., T, H, W, 3)
