"""Train the tiny shared VAE (diffusers' ``AutoencoderKLCogVideoX``) on the synthetic puppet world.

One VAE encodes the reference image, the pose video and the target video (as in the paper), so every batch mixes
puppet clips and their rendered pose videos, and every ``image_every``-th step trains on single frames (the
reference image is encoded as a one-frame video, and the VAE's group norms see different statistics for one frame
than for a clip).

Data is generated on the fly: ``make_sample`` takes ~20 ms per 64 px clip, far below a training step, and the batch
of step ``s`` depends only on ``(seed, s)``, so a resumed run sees exactly the batches it would have seen.

Loss: pixel L1 weighted up on "detail" pixels (those that differ from the clip's dominant colour: the puppet and the
thin pose lines, which a plain L1 would let the model blur into the background), plus an L1 on spatial image
gradients (keeps lines sharp), plus a small KL term.

Layout of ``out_dir``::

    checkpoints/step-000200/   vae/ (diffusers layout), optimizer.pt, state.json   (written as *.tmp, then renamed)
    vae/                       the final VAE (diffusers layout, safetensors) with the measured ``scaling_factor``
    train_config.json          the config of the run
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLCogVideoX
from tqdm.auto import tqdm

from ..data.frames import is_frame_count
from ..data.pixels import signed_to_uint8, to_model_range
from .world import STYLES, make_sample

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("puppet", "pose")
_CKPT_PREFIX = "step-"


@dataclass
class VAETrainConfig:
    """Everything that defines a VAE training run (saved as ``train_config.json``)."""

    out_dir: str = "runs/vae"
    steps: int = 1500
    size: int = 64
    frames: int = 9  # k*8+1 (9, 17, ...) gives an odd latent count, which the CogVideoX decoder maps back exactly
    batch_size: int = 4  # clips per step: half puppet videos, half pose videos
    image_batch_size: int = 16  # single frames per image step
    image_every: int = 4  # every n-th step trains on single frames (0: never)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay to lr * min_lr_ratio
    kl_weight: float = 1e-6
    edge_weight: float = 0.5
    detail_weight: float = 4.0  # extra L1 weight on pixels that differ from the clip's dominant colour
    full_style_fraction: float = 0.2  # share of puppet clips drawn in ``broad_style`` (the rest "demo")
    broad_style: str = "full"  # the varied style of that share ("wide": the embedded model v1's training world)
    pose_style: str = "demo"  # style of the pose-video half ("wide" varies the pose stick width)
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    seed: int = 0
    num_threads: int = 2
    # architecture (AutoencoderKLCogVideoX; len(block_out_channels)=4 gives spatial x8)
    block_out_channels: list[int] = field(default_factory=lambda: [16, 16, 32, 32])
    latent_channels: int = 8
    layers_per_block: int = 1
    norm_num_groups: int = 8
    temporal_compression_ratio: int = 4

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError(f"batch_size must be an even number >= 2 (half puppet, half pose), got {self.batch_size}")
        ratio = self.temporal_compression_ratio
        if not is_frame_count(self.frames, ratio):
            raise ValueError(f"frames must be k*{ratio}+1, got {self.frames}")
        if self.size % 2 ** (len(self.block_out_channels) - 1):
            raise ValueError(
                f"size {self.size} must be divisible by the spatial compression {2 ** (len(self.block_out_channels) - 1)}"
            )
        for name in (self.broad_style, self.pose_style):
            if name not in STYLES:
                raise ValueError(f"unknown style {name!r}; allowed: {STYLES}")
        if not 0.0 <= self.full_style_fraction <= 1.0:
            raise ValueError(f"full_style_fraction must be in [0, 1], got {self.full_style_fraction}")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1:
            raise ValueError("checkpoint_every and keep_checkpoints must be >= 1")


def build_vae(config: VAETrainConfig) -> AutoencoderKLCogVideoX:
    """A randomly initialised ``AutoencoderKLCogVideoX`` with the config's architecture (seeded)."""
    torch.manual_seed(config.seed)
    n = len(config.block_out_channels)
    return AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * n,
        up_block_types=("CogVideoXUpBlock3D",) * n,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        latent_channels=config.latent_channels,
        norm_num_groups=config.norm_num_groups,
        temporal_compression_ratio=config.temporal_compression_ratio,
        sample_height=config.size,
        sample_width=config.size,
        scaling_factor=1.0,
    )


def sample_clips(
    seeds: list[int], split: str, size: int, frames: int, styles: list[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Puppet videos, pose videos and reference images for the given seeds.

    Returns ``(video, pose, reference)``: (N, 3, T, H, W), (N, 3, T, H, W), (N, 3, 1, H, W), all in [-1, 1].
    """
    videos, poses, refs = [], [], []
    for seed, style in zip(seeds, styles, strict=True):
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}; allowed: {STYLES}")
        s = make_sample(int(seed), split, size, frames, style=style)
        videos.append(to_model_range(s.video))
        poses.append(to_model_range(s.pose_video))
        refs.append(to_model_range(s.reference[None]))
    return torch.stack(videos), torch.stack(poses), torch.stack(refs)


def make_batch(config: VAETrainConfig, step: int) -> torch.Tensor:
    """The training batch of ``step`` (deterministic in ``(config.seed, step)``): (B, 3, T, H, W) in [-1, 1].

    Clip steps: ``batch_size/2`` puppet clips and the pose videos of ``batch_size/2`` other clips. Image steps
    (``image_every``): ``image_batch_size`` single frames, half reference images / video frames, half pose frames.
    """
    rng = np.random.default_rng([config.seed, step])
    image_step = config.image_every > 0 and step % config.image_every == config.image_every - 1
    n = config.image_batch_size if image_step else config.batch_size
    half = max(n // 2, 1)
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=2 * half)]
    styles = [config.broad_style if rng.random() < config.full_style_fraction else "demo" for _ in seeds]
    # pose videos depend on the style only through the stick width and the body: one style for the pose half
    styles[half:] = [config.pose_style] * half
    frames = 1 if image_step else config.frames
    video, _, ref = sample_clips(seeds[:half], "train", config.size, max(frames, 5), styles[:half])
    _, pose, _ = sample_clips(seeds[half:], "train", config.size, max(frames, 5), styles[half:])
    if not image_step:
        return torch.cat([video[:, :, :frames], pose[:, :, :frames]])
    t = torch.from_numpy(rng.integers(0, video.shape[2], size=2 * half))
    idx = torch.arange(half)
    puppet = torch.where(
        torch.from_numpy(rng.random(half) < 0.5)[:, None, None, None], ref[:, :, 0], video[idx, :, t[:half]]
    )
    pose_frames = pose[idx, :, t[half:]]
    return torch.cat([puppet, pose_frames])[:, :, None]  # (B, 3, 1, H, W)


def detail_mask(x: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """(B, 1, T, H, W) float: 1 where a pixel differs from its clip's dominant (median) colour by > threshold."""
    background = x.flatten(2).median(dim=2).values[:, :, None, None, None]  # (B, 3, 1, 1, 1)
    return ((x - background).abs().amax(dim=1, keepdim=True) > threshold).float()


def reconstruction_losses(
    recon: torch.Tensor, target: torch.Tensor, detail_weight: float = 4.0
) -> dict[str, torch.Tensor]:
    """Weighted pixel L1 and spatial-gradient L1 between (B, 3, T, H, W) videos."""
    weight = 1.0 + detail_weight * detail_mask(target)  # (B, 1, T, H, W)
    l1 = ((recon - target).abs() * weight).mean() / weight.mean()
    edge = 0.0
    for dim in (3, 4):  # H, W
        edge = edge + (recon.diff(dim=dim) - target.diff(dim=dim)).abs().mean()
    return {"l1": l1, "edge": edge}


def vae_step_loss(
    vae: AutoencoderKLCogVideoX, batch: torch.Tensor, config: VAETrainConfig, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Encode, sample, decode and score one batch (B, 3, T, H, W); ``loss`` is the total to minimise."""
    posterior = vae.encode(batch).latent_dist
    z = posterior.sample(generator=generator)  # (B, C, T', H', W')
    recon = vae.decode(z).sample[:, :, : batch.shape[2]]  # even latent counts decode to 4*T' frames: trim
    losses = reconstruction_losses(recon, batch, config.detail_weight)
    losses["kl"] = posterior.kl().mean() / batch[0].numel()
    losses["loss"] = losses["l1"] + config.edge_weight * losses["edge"] + config.kl_weight * losses["kl"]
    return losses


def learning_rate(config: VAETrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to ``lr * min_lr_ratio`` at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min((step - config.warmup_steps) / max(config.steps - config.warmup_steps, 1), 1.0)
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def save_vae(vae: AutoencoderKLCogVideoX, path: str | Path) -> None:
    """``save_pretrained`` (safetensors) without the ``_name_or_path`` a loaded model carries (a local path)."""
    vae.save_pretrained(path, safe_serialization=True)
    config_file = Path(path) / "config.json"
    config = json.loads(config_file.read_text())
    if config.pop("_name_or_path", None) is not None:
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _checkpoints(out_dir: Path) -> list[Path]:
    root = out_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_CKPT_PREFIX) and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(_CKPT_PREFIX) :]))


def save_checkpoint(out_dir: Path, vae, optimizer, step: int, keep: int, state: dict | None = None) -> Path:
    """Write ``checkpoints/step-<step>/`` atomically (temp folder + rename); keep only the newest ``keep``."""
    final = out_dir / "checkpoints" / f"{_CKPT_PREFIX}{step:06d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_vae(vae, tmp / "vae")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **(state or {})}, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in _checkpoints(out_dir)[:-keep]:
        shutil.rmtree(old)
    return final


def load_latest_checkpoint(out_dir: Path, optimizer_factory: Callable) -> tuple | None:
    """``(vae, optimizer, state)`` from the newest complete checkpoint, or None if there is none."""
    ckpts = _checkpoints(out_dir)
    if not ckpts:
        return None
    latest = ckpts[-1]
    vae = AutoencoderKLCogVideoX.from_pretrained(latest / "vae")
    optimizer = optimizer_factory(vae)
    optimizer.load_state_dict(torch.load(latest / "optimizer.pt", weights_only=True))
    state = json.loads((latest / "state.json").read_text())
    logger.info("resumed from %s (step %d)", latest, state["step"])
    return vae, optimizer, state


def _make_optimizer(config: VAETrainConfig) -> Callable:
    return lambda vae: torch.optim.AdamW(
        vae.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99)
    )


@torch.no_grad()
def latent_std(vae: AutoencoderKLCogVideoX, config: VAETrainConfig, clips: int = 16) -> float:
    """Standard deviation of posterior means over held-out-free training clips (puppet + pose), for the
    diffusers ``scaling_factor`` (= 1 / std, as for Stable Diffusion's VAE)."""
    rng = np.random.default_rng([config.seed, 2**20])
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=clips)]
    video, pose, _ = sample_clips(seeds, "train", config.size, config.frames, ["demo"] * clips)
    vae.eval()
    z = torch.cat([vae.encode(x[None]).latent_dist.mean for x in torch.cat([video, pose])])
    return float(z.std())


def train_vae(config: VAETrainConfig, resume: bool = False, progress: bool = True) -> AutoencoderKLCogVideoX:
    """Train (or, with ``resume``, continue) a VAE; writes checkpoints and the final ``out_dir/vae``."""
    torch.set_num_threads(config.num_threads)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    make_opt = _make_optimizer(config)
    loaded = load_latest_checkpoint(out_dir, make_opt) if resume else None
    if loaded is None:
        if resume:
            logger.info("no checkpoint in %s; starting from scratch", out_dir)
        vae, start, elapsed = build_vae(config), 0, 0.0
        optimizer = make_opt(vae)
    else:
        vae, optimizer, state = loaded
        start, elapsed = int(state["step"]), float(state.get("train_seconds", 0.0))
    (out_dir / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    n_params = sum(p.numel() for p in vae.parameters())
    logger.info("VAE with %.3f M parameters; steps %d..%d", n_params / 1e6, start, config.steps)
    vae.train()
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not progress, desc="vae")
    ema, t0, done = None, time.perf_counter(), 0
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        batch = make_batch(config, step)
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        losses = vae_step_loss(vae, batch, config, generator)
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(f"non-finite VAE loss at step {step}: {losses['loss'].item()}")
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        done += 1
        value = losses["loss"].item()
        ema = value if ema is None else 0.95 * ema + 0.05 * value
        rate = done / (time.perf_counter() - t0)
        bar.set_postfix(loss=f"{ema:.4f}", l1=f"{losses['l1'].item():.4f}", its=f"{rate:.2f}")
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            seconds = elapsed + time.perf_counter() - t0
            save_checkpoint(out_dir, vae, optimizer, step + 1, config.keep_checkpoints, {"train_seconds": seconds})
            logger.info("step %d loss %.4f (%.2f it/s, %.0f s in total)", step + 1, ema, rate, seconds)
    vae.eval()
    vae.register_to_config(scaling_factor=round(1.0 / max(latent_std(vae, config), 1e-6), 4))
    save_vae(vae, out_dir / "vae")
    return vae


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """PSNR in dB between two videos in [-1, 1] (on the [0, 255] scale after uint8 rounding); with ``mask``
    (broadcastable to the videos, 1 = count) only the masked pixels count."""
    a8, b8 = signed_to_uint8(a).float(), signed_to_uint8(b).float()
    err = (a8 - b8).pow(2)
    if mask is None:
        mse = err.mean().item()
    else:
        weight = mask.expand_as(err)
        mse = ((err * weight).sum() / weight.sum().clamp_min(1)).item()
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


@torch.no_grad()
def reconstruct(vae: AutoencoderKLCogVideoX, video: torch.Tensor) -> torch.Tensor:
    """Deterministic (posterior mean) reconstruction of (B, 3, T, H, W) -> same shape."""
    z = vae.encode(video).latent_dist.mode()
    return vae.decode(z).sample[:, :, : video.shape[2]].clamp(-1, 1)


@torch.no_grad()
def evaluate_vae(
    vae: AutoencoderKLCogVideoX,
    split: str = "test",
    clips: int = 16,
    size: int = 64,
    frames: int = 9,
    style: str = "demo",
    seed_offset: int = 0,
) -> dict[str, float]:
    """Mean reconstruction PSNR over ``clips`` clips of ``split``: puppet videos, pose videos, reference images,
    and ``*_fg``: PSNR over the pixels that differ from the clip's dominant colour only (the puppet; the pose lines),
    which the large plain backgrounds would otherwise dominate."""
    vae.eval()
    seeds = list(range(seed_offset, seed_offset + clips))
    video, pose, ref = sample_clips(seeds, split, size, frames, [style] * clips)
    out: dict[str, list[float]] = {k: [] for k in ("puppet", "pose", "reference", "puppet_fg", "pose_fg")}
    for i in range(clips):
        for name, x in (("puppet", video[i : i + 1]), ("pose", pose[i : i + 1]), ("reference", ref[i : i + 1])):
            recon = reconstruct(vae, x)
            out[name].append(psnr(recon, x))
            if name != "reference":
                out[f"{name}_fg"].append(psnr(recon, x, detail_mask(x)))
    return {k: float(np.mean(v)) for k, v in out.items()}


@torch.no_grad()
def comparison_grid(vae: AutoencoderKLCogVideoX, videos: torch.Tensor, every: int = 2) -> np.ndarray:
    """uint8 image: for each clip of (N, 3, T, H, W), a row of originals and below it a row of reconstructions."""
    rows = []
    for clip in videos:
        recon = reconstruct(vae, clip[None])[0]  # (3, T, H, W)
        for v in (clip, recon):
            frames = signed_to_uint8(v[:, ::every])  # (3, T', H, W)
            rows.append(torch.cat(list(frames.permute(1, 2, 3, 0)), dim=1))  # (H, T'*W, 3)
    return torch.cat(rows, dim=0).numpy()


@torch.no_grad()
def time_roundtrip(
    vae: AutoencoderKLCogVideoX, frames: int = 13, size: int = 64, repeats: int = 5, threads: int | None = None
) -> float:
    """Median seconds for encode + decode of one (1, 3, frames, size, size) clip (after one warm-up call)."""
    if threads is not None:
        torch.set_num_threads(threads)
    vae.eval()
    x = torch.rand(1, 3, frames, size, size) * 2 - 1
    reconstruct(vae, x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        reconstruct(vae, x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
