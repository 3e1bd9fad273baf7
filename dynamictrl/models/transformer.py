"""DynamiCtrlTransformer3DModel: diffusers' CogVideoX transformer with a selectable pose-control structure."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXTransformer3DModel
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import get_resize_crop_region_for_grid
from diffusers.utils.peft_utils import apply_lora_scale
from torch import nn

from ..errors import UserError, check_local_model_folder, looks_like_local_path
from .block import DynamiCtrlBlock
from .checkpoint import load_base_state_dict, resolve_transformer_dir
from .pose_control import POSE_TOKEN_MODES, check_pose_control

logger = logging.getLogger(__name__)


class DynamiCtrlTransformer3DModel(CogVideoXTransformer3DModel):
    """The DynamiCtrl denoiser: a CogVideoX MM-DiT (text and video tokens in one full attention) plus pose control.

    Everything diffusers' ``CogVideoXTransformer3DModel`` accepts (CogVideoX 1.0 and 1.5) is accepted here, with
    the same weight names, plus:

    Args:
        pose_control: ``"padaln"`` (the paper's), ``"uvt"`` (pose latent concatenated on channels), ``"cross_attn"``
            or ``"none"`` (plain image-to-video). See ``docs/architecture.md``.
        use_text: ``False`` makes the model ignore prompts (all-zero text embeddings): the paper's "w/o text".
        pose_zero_init: start new pose branches at zero so that, loaded from a base model, the output at step 0
            equals the base model's exactly.

    ``in_channels`` is the base I2V width (noise + reference latent, 2C). ``uvt`` widens only the patch
    embedding's input by the pose latent's C = ``out_channels`` channels.
    """

    _no_split_modules = ["DynamiCtrlBlock", "CogVideoXPatchEmbed"]
    _repeated_blocks = ["DynamiCtrlBlock"]  # what ModelMixin.compile_repeated_blocks() compiles
    # Context parallelism (enable_parallelism): video, text and pose tokens are split along the sequence where they
    # enter the first block, the rotary rows of the video tokens at the model's input (each rank rotates its own
    # tokens). The joint attention concatenates each rank's text and video shards; the all-to-all gives every rank
    # all keys, whose order attention does not depend on. The video tokens are gathered again after proj_out.
    _cp_plan = {
        "transformer_blocks.0": {
            "hidden_states": ContextParallelInput(split_dim=1, expected_dims=3),
            "encoder_hidden_states": ContextParallelInput(split_dim=1, expected_dims=3),
            "pose_tokens": ContextParallelInput(split_dim=1, expected_dims=3),
        },
        "": {  # the rotary table is a forward argument shared by all blocks: split once, at the model's input
            "image_rotary_emb": [
                ContextParallelInput(split_dim=0, expected_dims=2),
                ContextParallelInput(split_dim=0, expected_dims=2),
            ],
        },
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 30,
        attention_head_dim: int = 64,
        in_channels: int = 16,
        out_channels: int | None = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        ofs_embed_dim: int | None = None,
        text_embed_dim: int = 4096,
        num_layers: int = 30,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        patch_size_t: int | None = None,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = False,
        use_learned_positional_embeddings: bool = False,
        patch_bias: bool = True,
        pose_control: str = "padaln",
        use_text: bool = True,
        pose_zero_init: bool = True,
    ):
        check_pose_control(pose_control)
        if pose_control in POSE_TOKEN_MODES and in_channels % (out_channels or in_channels):
            raise ValueError(
                f"pose_control={pose_control!r} repeats the pose latent ({out_channels} channels) up to in_channels="
                f"{in_channels}, which must be a multiple of out_channels"
            )
        base_kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        for key in ("pose_control", "use_text", "pose_zero_init"):
            base_kwargs.pop(key)
        # Build the base without blocks (saves building 42 blocks twice at 5B), then restore num_layers in the config.
        super().__init__(**{**base_kwargs, "num_layers": 0})
        self.register_to_config(num_layers=num_layers)

        inner_dim = num_attention_heads * attention_head_dim
        self.transformer_blocks = nn.ModuleList(
            DynamiCtrlBlock(
                dim=inner_dim,
                num_attention_heads=num_attention_heads,
                attention_head_dim=attention_head_dim,
                time_embed_dim=time_embed_dim,
                dropout=dropout,
                activation_fn=activation_fn,
                attention_bias=attention_bias,
                norm_elementwise_affine=norm_elementwise_affine,
                norm_eps=norm_eps,
                pose_control=pose_control,
            )
            for _ in range(num_layers)
        )
        if pose_control == "uvt":
            self.patch_embed.proj = _widened_patch_proj(self.patch_embed.proj, out_channels, patch_size, patch_size_t)
        if pose_zero_init:
            self.zero_init_pose_branch()

    # ------------------------------------------------------------------ construction helpers

    def zero_init_pose_branch(self) -> None:
        """Zero every new pose branch so that the model equals its base model (adaLN-Zero style)."""
        for block in self.transformer_blocks:
            block.zero_init_pose_branch()
        if self.config.pose_control == "uvt":
            _zero_pose_input_channels(self.patch_embed.proj, self.config)

    def pose_branch_parameters(self) -> list[nn.Parameter]:
        """Parameters that exist only because of the pose-control structure (for ``pose_branch_only`` training)."""
        params = [p for name, p in self.named_parameters() if is_pose_branch_key(name)]
        if self.config.pose_control == "uvt":
            params.append(self.patch_embed.proj.weight)  # its extra input channels are the branch
        return params

    @classmethod
    def from_base(
        cls,
        base_path: str | Path,
        pose_control: str = "padaln",
        torch_dtype: torch.dtype | None = None,
        **config_overrides: Any,
    ) -> DynamiCtrlTransformer3DModel:
        """Load a diffusers CogVideoX transformer folder and add a freshly initialised pose branch.

        Every base tensor must land (anything unexpected or missing other than the pose branch is an error). With
        ``pose_zero_init`` (the default) the result's output equals the base model's exactly at step 0; for ``uvt``
        the pretrained patch embedding is zero-extended over the pose channels rather than dropped.
        """
        base_path = resolve_transformer_dir(base_path)
        config = dict(CogVideoXTransformer3DModel.load_config(base_path))
        config = {k: v for k, v in config.items() if not k.startswith("_")}
        config.update(pose_control=check_pose_control(pose_control), **config_overrides)
        model = cls.from_config(config)
        state_dict = load_base_state_dict(base_path)
        if pose_control == "uvt" and "patch_embed.proj.weight" in state_dict:
            # zero-extend the pretrained projection over the pose channels instead of dropping it
            widened = model.patch_embed.proj.weight.detach().clone()
            widened[:, : _base_input_width(model.config)] = state_dict["patch_embed.proj.weight"]
            state_dict["patch_embed.proj.weight"] = widened
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        not_pose = [key for key in missing if not is_pose_branch_key(key)]
        if unexpected or not_pose:
            raise ValueError(
                f"{base_path} is not a CogVideoX transformer matching its config: "
                f"missing {not_pose[:8]}{'...' if len(not_pose) > 8 else ''}, "
                f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}"
            )
        logger.info("loaded base %s; new %s branch tensors: %d", base_path, pose_control, len(missing))
        if torch_dtype is not None:
            model = model.to(torch_dtype)
        return model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> DynamiCtrlTransformer3DModel:
        """Load our checkpoints or the official DynamiCtrl release (safetensors only).

        The official config has class name ``DynamiCtrlTransformerModel`` and no ``pose_control`` key; the default
        ``pose_control="padaln"`` is exactly its structure, and its weight names are ours unchanged
        (``transformer_blocks.{i}.control_norm1.{linear,norm}``), so no key map is needed.

        Strict: every tensor of the folder must land and every parameter must be loaded (diffusers only logs
        either case). A plain CogVideoX transformer (no pose weights) is refused unless ``pose_control="none"``.
        """
        kwargs.setdefault("use_safetensors", True)
        kwargs.setdefault("local_files_only", True)  # nothing is downloaded; a wrong path is named, not looked up
        if looks_like_local_path(pretrained_model_name_or_path):
            check_local_model_folder(pretrained_model_name_or_path, "transformer", subfolder=kwargs.get("subfolder"))
        output_loading_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, output_loading_info=True, **kwargs)
        _check_all_weights_loaded(model, Path(pretrained_model_name_or_path) / (kwargs.get("subfolder") or ""), info)
        return (model, info) if output_loading_info else model

    # ------------------------------------------------------------------ diffusers hooks

    def fuse_qkv_projections(self) -> None:
        """Fuse Q/K/V (full attention) and K/V (pose cross-attention) into one projection each.

        Unlike CogVideoX's version this keeps our processors (they read ``attn.fused_projections``), so the pose
        cross-attention is not handed CogVideoX's joint processor and attention backends stay set.
        """
        for module in self.modules():
            if isinstance(module, Attention):
                module.fuse_projections(fuse=True)

    def unfuse_qkv_projections(self) -> None:
        """Back to separate projections. The fused copies are dropped, so weights changed while fused are lost."""
        for module in self.modules():
            if isinstance(module, Attention) and module.fused_projections:
                for name in ("to_qkv", "to_kv"):
                    if hasattr(module, name):
                        delattr(module, name)
                module.fused_projections = False

    def set_attention_backend(self, backend: str) -> None:
        """Set this model's attention kernel (its processors keep it) without changing the process's default.

        diffusers' version also makes ``backend`` the process-wide active backend, so every model built or loaded
        afterwards in the same process (a second pipeline, the next test) silently ran with it as well.
        """
        from diffusers.models.attention_dispatch import _AttentionBackendRegistry

        active = _AttentionBackendRegistry._active_backend
        try:
            super().set_attention_backend(backend)
        finally:
            _AttentionBackendRegistry._active_backend = active

    def _fix_state_dict_keys_on_load(self, state_dict: dict[str, torch.Tensor]) -> None:
        super()._fix_state_dict_keys_on_load(state_dict)
        rename_legacy_pose_keys(state_dict)

    # ------------------------------------------------------------------ forward

    def rotary_embedding(
        self, latent_frames: int, latent_height: int, latent_width: int, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """3D rotary embedding for a latent video of this size (None when the model uses no rotary positions)."""
        cfg = self.config
        if not cfg.use_rotary_positional_embeddings:
            return None
        p, p_t = cfg.patch_size, cfg.patch_size_t
        grid = (latent_height // p, latent_width // p)
        base_w, base_h = cfg.sample_width // p, cfg.sample_height // p
        if p_t is None:  # CogVideoX 1.0
            crops = get_resize_crop_region_for_grid(grid, base_w, base_h)
            return get_3d_rotary_pos_embed(
                cfg.attention_head_dim, crops, grid, temporal_size=latent_frames, device=device
            )
        return get_3d_rotary_pos_embed(  # CogVideoX 1.5
            cfg.attention_head_dim,
            None,
            grid,
            temporal_size=(latent_frames + p_t - 1) // p_t,
            grid_type="slice",
            max_size=(base_h, base_w),
            device=device,
        )

    def _time_embedding(self, timestep, ofs, timestep_cond, dtype: torch.dtype) -> torch.Tensor:
        emb = self.time_embedding(self.time_proj(timestep).to(dtype=dtype), timestep_cond)
        if self.ofs_embedding is not None:
            if ofs is None:
                raise ValueError("this model has an ofs embedding (CogVideoX 1.5): pass ofs, e.g. 2.0")
            emb = emb + self.ofs_embedding(self.ofs_proj(ofs).to(dtype=dtype))
        return emb  # (B, time_embed_dim)

    def _check_pose_latents(self, pose_latents: torch.Tensor | None, hidden_states: torch.Tensor) -> None:
        mode = self.config.pose_control
        if mode == "none":
            return
        if pose_latents is None:
            raise ValueError(f"pose_control={mode!r} needs pose_latents of shape (B, F', C, H', W')")
        b, f, _, h, w = hidden_states.shape
        if pose_latents.ndim != 5 or (pose_latents.shape[0], pose_latents.shape[1], *pose_latents.shape[3:]) != (
            b,
            f,
            h,
            w,
        ):
            raise ValueError(
                f"pose_latents has shape {tuple(pose_latents.shape)}; expected (B={b}, F'={f}, C, H'={h}, W'={w}) "
                "to match hidden_states"
            )
        if pose_latents.shape[2] != self.config.out_channels:
            raise ValueError(
                f"pose_latents has {pose_latents.shape[2]} channels; expected the VAE latent width "
                f"{self.config.out_channels}"
            )

    def _embed(self, text: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.embedding_dropout(self.patch_embed(text, video))  # (B, N_text + N_video, D)
        return tokens[:, : text.shape[1]], tokens[:, text.shape[1] :]

    def _unpatchify(self, tokens: torch.Tensor, batch: int, frames: int, height: int, width: int) -> torch.Tensor:
        p, p_t = self.config.patch_size, self.config.patch_size_t
        if p_t is None:
            out = tokens.reshape(batch, frames, height // p, width // p, -1, p, p)
            return out.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
        out = tokens.reshape(batch, (frames + p_t - 1) // p_t, height // p, width // p, -1, p_t, p, p)
        return out.permute(0, 1, 5, 4, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(1, 2)

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None,
        timestep: int | float | torch.Tensor,
        *,
        pose_latents: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        ofs: int | float | torch.Tensor | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
        timestep_cond: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor] | Transformer2DModelOutput:
        """Predict the denoising target.

        Everything after ``timestep`` is keyword-only (diffusers' parent has ``timestep_cond`` in that position).

        Args:
            hidden_states: (B, F', 2C, H', W') noisy latents concatenated with the reference latent on channels.
            encoder_hidden_states: (B, L, text_embed_dim) T5 embeddings; ignored (may be None) when ``use_text`` is off.
            timestep: (B,) diffusion timesteps.
            pose_latents: (B, F', C, H', W') VAE latents of the pose video (× scaling factor); required unless
                ``pose_control="none"``. Always passed separately: the model concatenates it itself for ``uvt``.
            image_rotary_emb: from :meth:`rotary_embedding` when the model uses rotary positions.
            ofs: CogVideoX 1.5's ofs condition (2.0 for I2V).
        Returns:
            (B, F', C, H', W') prediction, in a ``Transformer2DModelOutput`` unless ``return_dict=False``.
        """
        batch, frames, _, height, width = hidden_states.shape
        cfg = self.config
        mode = cfg.pose_control
        self._check_pose_latents(pose_latents, hidden_states)

        if not cfg.use_text or encoder_hidden_states is None:
            if cfg.use_text:
                raise ValueError("encoder_hidden_states is required when use_text=True")
            length = cfg.max_text_seq_length if encoder_hidden_states is None else encoder_hidden_states.shape[1]
            encoder_hidden_states = hidden_states.new_zeros(batch, length, cfg.text_embed_dim)

        # 1. Time (and ofs) embedding
        emb = self._time_embedding(timestep, ofs, timestep_cond, hidden_states.dtype)

        # 2. Patch embedding: video tokens, and for padaln / cross_attn pose tokens through the same embedding
        text = encoder_hidden_states
        video_in = torch.cat([hidden_states, pose_latents], dim=2) if mode == "uvt" else hidden_states
        encoder_hidden_states, hidden_states = self._embed(text, video_in)
        pose_tokens = None
        if mode in POSE_TOKEN_MODES:
            # official: the pose latent twice (-> 2C) with the text through the same embedding; text part dropped
            repeats = cfg.in_channels // pose_latents.shape[2]
            _, pose_tokens = self._embed(text, pose_latents.repeat(1, 1, repeats, 1, 1))
            pose_tokens = pose_tokens.contiguous()  # a slice otherwise: block 0 would need its own compiled graph

        # 3. Transformer blocks
        for block in self.transformer_blocks:
            args = (hidden_states, encoder_hidden_states, emb, image_rotary_emb, attention_kwargs, pose_tokens)
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states, encoder_hidden_states, pose_tokens = self._gradient_checkpointing_func(block, *args)
            else:
                hidden_states, encoder_hidden_states, pose_tokens = block(*args)

        # 4. Output
        hidden_states = self.norm_final(hidden_states)
        hidden_states = self.proj_out(self.norm_out(hidden_states, temb=emb))
        output = self._unpatchify(hidden_states, batch, frames, height, width)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)


def is_pose_branch_key(name: str) -> bool:
    """True for parameter names that belong to a pose branch (absent from base CogVideoX checkpoints)."""
    return any(part in name for part in (".control_norm1.", ".pose_attn.", ".pose_attn_norm."))


def rename_legacy_pose_keys(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Rename, in place, ``cross_attn`` keys saved before the pose cross-attention was a diffusers ``Attention``.

    Its output projection was ``pose_attn.to_out.{weight,bias}``; it is now ``pose_attn.to_out.0.*``.
    """
    for key in [k for k in state_dict if ".pose_attn.to_out." in k and ".to_out.0." not in k]:
        state_dict[key.replace(".pose_attn.to_out.", ".pose_attn.to_out.0.")] = state_dict.pop(key)
    return state_dict


def _check_all_weights_loaded(model: DynamiCtrlTransformer3DModel, path: Path, info: dict[str, list]) -> None:
    """Refuse a load that left a parameter uninitialised (on the meta device) or a tensor of the folder unused."""
    missing, unexpected = sorted(info["missing_keys"]), sorted(info["unexpected_keys"])
    if not missing and not unexpected:
        return
    pose_keys = {key for key in model.state_dict() if is_pose_branch_key(key)}
    mode = model.config.pose_control
    if not unexpected and set(missing) == pose_keys:
        raise no_pose_weights_error(path, mode, sorted({key.split(".")[2] for key in pose_keys}))
    raise UserError(
        f"{path} does not fit DynamiCtrlTransformer3DModel(pose_control={mode!r}): "
        f"missing {_preview(missing)}, unused {_preview(unexpected)}",
        "a transformer folder whose config.json matches its weights: saved by DynamiCtrl or the official release",
    )


def no_pose_weights_error(path: str | Path, pose_control: str, modules: list[str]) -> UserError:
    """The refusal of a transformer folder without the pose weights ``modules`` that ``pose_control`` needs."""
    return UserError(
        f"{path} has no pose weights ({', '.join(modules)}) for pose_control={pose_control!r}: it is a plain "
        "CogVideoX image-to-video transformer, not DynamiCtrl",
        'pass the DynamiCtrl transformer folder with --transformer DIR, or load this one with pose_control="none" '
        "for image-to-video without pose",
    )


def _preview(keys: list[str], n: int = 4) -> str:
    return f"[{', '.join(keys[:n])}{', ...' if len(keys) > n else ''}] ({len(keys)})"


def _widened_patch_proj(proj: nn.Module, extra: int, patch_size: int, patch_size_t: int | None) -> nn.Module:
    """A patch projection like ``proj`` with ``extra`` more input channels (UVT's pose latent)."""
    if patch_size_t is None:
        new = nn.Conv2d(
            proj.in_channels + extra, proj.out_channels, patch_size, stride=patch_size, bias=proj.bias is not None
        )
    else:
        per_channel = patch_size * patch_size * patch_size_t
        new = nn.Linear(proj.in_features + extra * per_channel, proj.out_features, bias=proj.bias is not None)
    return new


def _base_input_width(config: Any) -> int:
    """Input features of the base patch projection: C (Conv2d, 1.0) or C·p_t·p·p (Linear, 1.5, C slowest)."""
    if config.patch_size_t is None:
        return config.in_channels
    return config.in_channels * config.patch_size * config.patch_size * config.patch_size_t


def _zero_pose_input_channels(proj: nn.Module, config: Any) -> None:
    with torch.no_grad():
        proj.weight[:, _base_input_width(config) :] = 0
