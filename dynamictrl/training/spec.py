"""The DynamiCtrl model, described once for the trainer: what to load, which data, what trains, the loss.

The trainer (``trainer.py``) only calls :func:`load_components`, :func:`build_dataset`, :func:`select_trainable`,
:meth:`DynamiCtrlSpec.check_data`, :meth:`DynamiCtrlSpec.prepare` and :meth:`DynamiCtrlSpec.loss`; everything
model-specific lives here. Encoding the conditions and the transformer call itself come from
:mod:`dynamictrl.pipelines.conditioning` (:func:`~dynamictrl.pipelines.conditioning.encode_clip`,
:class:`~dynamictrl.pipelines.conditioning.TransformerCall`), the module the pipeline and the latent-cache tool use,
so training and inference see identical inputs.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.dataset import VideoPoseDataset
from ..data.latent_cache import LatentDataset
from ..models.transformer import DynamiCtrlTransformer3DModel
from ..pipelines.conditioning import (
    TransformerCall,
    encode_clip,
    encode_prompt,
    num_latent_frames,
    official_reference_scaling,
)
from .config import Config, ModelConfig, TrainConfig, check_preset
from .losses import diffusion_loss

logger = logging.getLogger(__name__)


@dataclass
class Components:
    transformer: DynamiCtrlTransformer3DModel
    scheduler: Any
    vae: Any = None  # None when training from a latent cache and no validation needs it
    text_encoder: Any = None
    tokenizer: Any = None


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: expected the {what} folder of a diffusers CogVideoX I2V pipeline (e.g. a local copy of "
            "THUDM/CogVideoX-5b-I2V or THUDM/CogVideoX1.5-5B-I2V; see docs/training.md)"
        )
    return path


def load_components(cfg: ModelConfig, need_vae: bool = True, need_text: bool = True) -> Components:
    """Build or load every component the run needs (on CPU, float32; the trainer moves and casts them)."""
    if cfg.source == "tiny":
        from ..models.tiny import build_tiny_components

        parts = build_tiny_components(cfg.preset, pose_control=cfg.pose_control, use_text=cfg.use_text, seed=cfg.seed)
        return Components(
            transformer=parts["transformer"],
            scheduler=parts["scheduler"],
            vae=parts["vae"] if need_vae else None,
            text_encoder=parts["text_encoder"] if need_text else None,
            tokenizer=parts["tokenizer"] if need_text else None,
        )

    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler

    if cfg.source == "base":
        base = Path(cfg.base_path)
        base_transformer = _require_dir(base / "transformer", "transformer/")
        check_preset(cfg, json.loads((base_transformer / "config.json").read_text()), str(base_transformer))
        transformer = DynamiCtrlTransformer3DModel.from_base(
            base_transformer, pose_control=cfg.pose_control, use_text=cfg.use_text
        )
    else:  # pretrained: one of our checkpoints or the official release
        transformer = DynamiCtrlTransformer3DModel.from_pretrained(cfg.transformer_path)
        for key, want in (("pose_control", cfg.pose_control), ("use_text", cfg.use_text)):
            if getattr(transformer.config, key) != want:
                raise ValueError(
                    f"{cfg.transformer_path} was saved with {key}={getattr(transformer.config, key)!r} but the config "
                    f"asks for model.{key}={want!r}"
                )
        if cfg.base_path is None:
            raise ValueError("model.source=pretrained needs model.base_path for the VAE, text encoder and scheduler")
        base = Path(cfg.base_path)
    scheduler = CogVideoXDPMScheduler.from_pretrained(_require_dir(base / "scheduler", "scheduler/"))
    vae = AutoencoderKLCogVideoX.from_pretrained(_require_dir(base / "vae", "vae/")) if need_vae else None
    text_encoder = tokenizer = None
    if need_text and cfg.use_text:
        from transformers import AutoTokenizer, T5EncoderModel

        tokenizer = AutoTokenizer.from_pretrained(_require_dir(base / "tokenizer", "tokenizer/"))
        text_encoder = T5EncoderModel.from_pretrained(_require_dir(base / "text_encoder", "text_encoder/"))
    return Components(transformer, scheduler, vae, text_encoder, tokenizer)


def build_dataset(cfg: Config) -> VideoPoseDataset | LatentDataset:
    """The training set: the latent cache when ``data.latents`` is set, else the pixel dataset."""
    data = cfg.data
    if data.latents:
        return LatentDataset(data.latents, reference_mask_prob=data.reference_mask_prob, seed=cfg.train.seed)
    return VideoPoseDataset(
        data.root,
        num_frames=data.num_frames,
        height=data.height,
        width=data.width,
        frame_stride=data.frame_stride,
        random_start=data.random_start,
        reference_mask_prob=data.reference_mask_prob,
        seed=cfg.train.seed,
    )


def select_trainable(transformer: DynamiCtrlTransformer3DModel, train: TrainConfig) -> list[torch.nn.Parameter]:
    """Set ``requires_grad`` for ``train.trainable`` (full, lora, pose_branch_only) and return the trainable
    parameters. LoRA adds the adapter here; its pose branch trains in full beside it."""
    mode = train.trainable
    if mode == "full":
        transformer.requires_grad_(True)
    else:
        transformer.requires_grad_(False)
        if mode == "lora":
            try:
                from peft import LoraConfig
            except ImportError as err:
                raise ImportError("train.trainable=lora needs peft: pip install 'dynamictrl[train]'") from err
            lora = train.lora
            transformer.add_adapter(
                LoraConfig(
                    r=lora.rank,
                    lora_alpha=lora.alpha,
                    init_lora_weights=True,
                    target_modules=list(lora.target_modules),
                )
            )
        branch = transformer.pose_branch_parameters()
        if mode == "pose_branch_only" and not branch:
            raise ValueError(
                f"train.trainable=pose_branch_only but pose_control={transformer.config.pose_control!r} has no "
                "pose branch parameters; use full or lora"
            )
        for p in branch:
            p.requires_grad_(True)
    params = [p for p in transformer.parameters() if p.requires_grad]
    count = sum(p.numel() for p in params)
    logger.info("trainable (%s): %d tensors, %.2f M parameters", mode, len(params), count / 1e6)
    return params


def resolve_reference_scaling(cfg: ModelConfig, vae) -> bool:
    """``model.scale_reference_latents``, or when null the official rule for this VAE (the pipeline's default)."""
    if cfg.scale_reference_latents is not None:
        return bool(cfg.scale_reference_latents)
    return official_reference_scaling(vae) if vae is not None else True


class DynamiCtrlSpec:
    """Conditions and loss of DynamiCtrl training.

    ``prepare`` turns a data batch (pixels from :class:`VideoPoseDataset` or latents from :class:`LatentDataset`)
    into model inputs; ``loss`` noises the target, runs the transformer and returns the per-sample loss. All
    randomness comes from the ``generator`` argument, so a step is a pure function of (weights, batch, seed).
    """

    def __init__(self, cfg: Config, components: Components, empty_prompt_embeds: torch.Tensor | None = None):
        self.cfg = cfg
        self.components = components
        tcfg = components.transformer.config
        self.max_text_seq_length = cfg.model.max_text_seq_length or tcfg.max_text_seq_length
        self.use_text = cfg.model.use_text
        self.patch_size_t = tcfg.patch_size_t
        self._empty_prompt_embeds = empty_prompt_embeds
        self.scale_reference_latents = resolve_reference_scaling(cfg.model, components.vae)
        self._warned_cache_noise = False
        scheduler = components.scheduler
        self.num_train_timesteps = scheduler.config.num_train_timesteps
        self.prediction_type = scheduler.config.prediction_type
        self.alphas_cumprod = scheduler.alphas_cumprod.clone().float()  # (T,)

    # ------------------------------------------------------------------ checks

    def check_frames(self, num_frames: int, temporal_compression_ratio: int) -> int:
        """Latent frame count for ``num_frames``; CogVideoX 1.5 needs it to be a multiple of ``patch_size_t``."""
        frames = num_latent_frames(num_frames, temporal_compression_ratio)
        if self.patch_size_t and frames % self.patch_size_t:
            step = temporal_compression_ratio * self.patch_size_t
            raise ValueError(
                f"data.num_frames={num_frames} gives {frames} latent frames, not a multiple of patch_size_t="
                f"{self.patch_size_t}; use num_frames = {temporal_compression_ratio + 1} + k*{step} "
                f"(e.g. {temporal_compression_ratio + 1 + step * ((num_frames - 1) // step)})"
            )
        return frames

    def check_size(self, height: int, width: int, spatial_compression: int) -> None:
        """Models with learned positional embeddings (CogVideoX 1.0 I2V) only accept their sample size."""
        tcfg = self.components.transformer.config
        if tcfg.use_learned_positional_embeddings:
            want = (tcfg.sample_height * spatial_compression, tcfg.sample_width * spatial_compression)
            if (height, width) != want:
                raise ValueError(
                    f"data.height={height}, data.width={width}: this transformer has learned positional embeddings "
                    f"for {want[0]}x{want[1]} pixels only (height x width); use that size"
                )

    def check_data(self) -> None:
        """Refuse a pixel dataset whose frame count or size this transformer cannot take (before any step)."""
        data, vae = self.cfg.data, self.components.vae
        self.check_frames(data.num_frames, vae.config.temporal_compression_ratio)
        self.check_size(data.height, data.width, 2 ** (len(vae.config.block_out_channels) - 1))

    # ------------------------------------------------------------------ conditions

    def empty_prompt_embeds(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Embeddings (L, D) of the empty prompt (the text-dropout / unconditional condition)."""
        if self._empty_prompt_embeds is None:
            c = self.components
            with torch.no_grad():
                self._empty_prompt_embeds = encode_prompt(
                    c.tokenizer, c.text_encoder, [""], self.max_text_seq_length, device=device, dtype=dtype
                )[0]
        return self._empty_prompt_embeds.to(device=device, dtype=dtype)

    @torch.no_grad()
    def prepare(
        self, batch: dict[str, Any], generator: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> dict[str, torch.Tensor]:
        """Model inputs of a batch: ``latents``, ``reference_latents``, ``pose_latents`` (B, F', C, H', W') and
        ``prompt_embeds`` (B, L, D) or None. ``dtype`` is the dtype of the frozen encoders' outputs."""
        data = self.cfg.data
        c = self.components
        if "latents" in batch:  # pre-computed cache
            latents = batch["latents"].to(device, dtype)
            pose_latents = batch["pose_latents"].to(device, dtype)
            reference_latents = batch["reference_latents"].to(device, dtype)
            if data.image_noise and not self._warned_cache_noise:
                logger.info("latent cache: the reference was encoded without pixel noise (data.image_noise ignored)")
                self._warned_cache_noise = True
        else:
            video = batch["video"].to(device)  # (B, 3, F, H, W)
            pose = batch["pose"].to(device)
            reference = batch["reference"].to(device)  # (B, 3, H, W)
            self.check_frames(video.shape[2], c.vae.config.temporal_compression_ratio)
            if data.image_noise:  # CogVideoX I2V augmentation: sigma = exp(N(-3, 0.5)) per sample
                sigma = torch.exp(-3.0 + 0.5 * torch.randn(reference.shape[0], generator=generator, device=device))
                noise = torch.randn(reference.shape, generator=generator, device=device)
                reference = reference + noise * sigma.view(-1, 1, 1, 1)
            encoded = encode_clip(
                c.vae, video, pose, reference, generator=generator, scale_reference=self.scale_reference_latents
            )
            latents, pose_latents, reference_latents = (
                encoded[k].to(dtype) for k in ("latents", "pose_latents", "reference_latents")
            )
        batch_size = latents.shape[0]
        if data.image_dropout_prob > 0:  # CogVideoX I2V's noised_image_dropout
            drop = torch.rand(batch_size, generator=generator, device=device) < data.image_dropout_prob
            reference_latents = reference_latents * (~drop).to(dtype).view(-1, 1, 1, 1, 1)

        prompt_embeds = None
        if self.use_text:
            if "prompt_embeds" in batch:
                prompt_embeds = batch["prompt_embeds"].to(device, dtype)
            else:
                prompt_embeds = encode_prompt(
                    c.tokenizer, c.text_encoder, batch["prompt"], self.max_text_seq_length, device=device, dtype=dtype
                )
            if data.text_dropout_prob > 0:
                drop = torch.rand(batch_size, generator=generator, device=device) < data.text_dropout_prob
                if drop.any():
                    empty = self.empty_prompt_embeds(device, dtype)
                    prompt_embeds = torch.where(drop.view(-1, 1, 1), empty.expand_as(prompt_embeds), prompt_embeds)
        return dict(
            latents=latents,
            reference_latents=reference_latents,
            pose_latents=pose_latents,
            prompt_embeds=prompt_embeds,
        )

    # ------------------------------------------------------------------ loss

    def loss(
        self, transformer: torch.nn.Module, inputs: dict[str, torch.Tensor], generator: torch.Generator
    ) -> torch.Tensor:
        """Mean diffusion loss of one batch (v-prediction for CogVideoX; see :mod:`.losses`)."""
        latents = inputs["latents"]  # (B, F', C, H', W')
        batch_size = latents.shape[0]
        device = latents.device
        noise = torch.randn(latents.shape, generator=generator, device=device, dtype=latents.dtype)
        timesteps = torch.randint(0, self.num_train_timesteps, (batch_size,), generator=generator, device=device)
        a = self.alphas_cumprod.to(device)[timesteps].view(-1, 1, 1, 1, 1)
        noisy = (a.sqrt() * latents.float() + (1 - a).sqrt() * noise.float()).to(latents.dtype)  # scheduler.add_noise

        call = TransformerCall.build(
            transformer,
            inputs["reference_latents"],
            inputs["pose_latents"],
            inputs["prompt_embeds"],
            ofs=self.cfg.model.ofs,
            ofs_batch_size=batch_size,
        )
        output = call(transformer, noisy, timesteps)
        per_sample = diffusion_loss(self.alphas_cumprod, self.prediction_type, output, noisy, latents, noise, timesteps)
        return per_sample.mean()


def step_generator(seed: int, step: int, rank: int, micro_step: int, device: torch.device) -> torch.Generator:
    """The generator of one micro-batch: a pure function of (seed, optimizer step, rank, micro-step)."""
    value = (seed * 1_000_003 + step * 1009 + rank * 101 + micro_step) % (2**63 - 1)
    return torch.Generator(device=device).manual_seed(int(math.fabs(value)))
