"""Train the tiny shared CogVideoX VAE on the synthetic puppet world (puppet clips + rendered pose videos).

Every default is the recipe of the embedded model's VAE (docs/results/vae.md): spatial x4, 4 latent channels,
3000 steps. The shipped VAE was trained with

    python scripts/train_vae.py --out runs/vae-tiny-x4 --eval-clips 16 --eval-frames 9 17 13

Checkpoints go to OUT/checkpoints/step-NNNNNN/ every --checkpoint-every steps; --resume continues from the newest.
The final VAE (diffusers layout, safetensors) is written to OUT/vae/; --export DIR also copies it there (float16
with --fp16). --eval-clips N reports reconstruction PSNR on N test-split clips at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

from dynamictrl.cli import (
    TIMED_LOG_FORMAT,
    ArgumentParser,
    at_least,
    configure_logging,
    existing_file,
    frame_count,
    run_cli,
)
from dynamictrl.errors import UserError

# The recipe of the shipped VAE (dynamictrl/assets/models/dynamictrl-tiny/vae, docs/results/vae.md) as VAETrainConfig fields;
# written out here so --help needs no torch. tests/test_cli_help.py checks it builds the shipped architecture.
RECIPE = dict(
    steps=3000,
    size=64,
    frames=9,
    batch_size=2,
    image_batch_size=8,
    image_every=4,
    lr=1e-3,
    warmup_steps=100,
    kl_weight=1e-6,
    edge_weight=0.5,
    detail_weight=4.0,
    full_style_fraction=0.2,
    broad_style="full",
    pose_style="demo",
    block_out_channels=[16, 32, 32],
    latent_channels=4,
    norm_num_groups=8,
    checkpoint_every=250,
    keep_checkpoints=2,
    seed=0,
    num_threads=1,
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and every default (the recipe) in the help."""


def parse_args(argv=None) -> argparse.Namespace:
    d = SimpleNamespace(**RECIPE)
    p = ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--out", required=True, help="run folder (checkpoints/, vae/, train_config.json)")
    p.add_argument("--steps", type=int, default=d.steps, help="total optimizer steps")
    p.add_argument("--size", type=int, default=d.size, help="square frame size in pixels")
    p.add_argument("--frames", type=int, default=d.frames, help="frames per training clip, k*4+1; k*8+1 recommended")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="clips per step, half puppet / half pose")
    p.add_argument("--image-batch-size", type=int, default=d.image_batch_size, help="frames per single-image step")
    p.add_argument("--image-every", type=int, default=d.image_every, help="every n-th step is a single-image step")
    p.add_argument("--lr", type=float, default=d.lr, help="peak AdamW learning rate")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="linear warm-up steps")
    p.add_argument("--kl-weight", type=float, default=d.kl_weight, help="weight of the KL term")
    p.add_argument("--edge-weight", type=float, default=d.edge_weight, help="weight of the image-gradient L1 loss")
    p.add_argument("--detail-weight", type=float, default=d.detail_weight, help="extra L1 weight on non-background")
    p.add_argument(
        "--full-style-fraction", type=float, default=d.full_style_fraction, help="share of full-style puppet clips"
    )
    p.add_argument(
        "--broad-style",
        default=d.broad_style,
        choices=("full", "wide", "heldout", "demo"),
        help="style of that share ('wide': the embedded model v1's training world)",
    )
    p.add_argument(
        "--pose-style",
        default=d.pose_style,
        choices=("full", "wide", "heldout", "demo"),
        help="style of the pose-video half ('wide' varies the stick width)",
    )
    p.add_argument(
        "--eval-styles", nargs="+", default=["demo", "full"], help="styles the --eval-clips PSNR is reported for"
    )
    p.add_argument(
        "--block-out-channels",
        type=int,
        nargs="+",
        default=d.block_out_channels,
        help="channels per VAE block; 4 blocks = spatial x8, 3 blocks = x4",
    )
    p.add_argument("--latent-channels", type=int, default=d.latent_channels, help="latent channels")
    p.add_argument("--norm-num-groups", type=int, default=d.norm_num_groups, help="GroupNorm groups")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints")
    p.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints, help="checkpoints kept")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed")
    p.add_argument("--threads", type=int, default=d.num_threads, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument(
        "--export", help="also copy the final VAE to this folder (e.g. dynamictrl/assets/models/dynamictrl-tiny/vae)"
    )
    p.add_argument("--fp16", action="store_true", help="store the exported copy in float16")
    p.add_argument("--eval-clips", type=int, default=0, help="test-split clips for the final PSNR report")
    p.add_argument("--eval-frames", type=int, nargs="+", help="clip lengths for the PSNR report (default: --frames)")
    p.add_argument("--evaluate", metavar="VAE_DIR", help="skip training: evaluate this saved VAE (diffusers folder)")
    p.add_argument("--grid", metavar="PNG", help="write originals vs reconstructions of 4 test clips to this PNG")
    p.add_argument("--time", action="store_true", help="time encode+decode of one 13-frame clip with --threads threads")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Values and paths, before torch loads."""
    for flag in (
        "--steps",
        "--batch-size",
        "--image-batch-size",
        "--latent-channels",
        "--threads",
        "--norm-num-groups",
    ):
        at_least(flag, getattr(args, flag[2:].replace("-", "_")), 1)
    at_least("--checkpoint-every", args.checkpoint_every, 1)
    at_least("--eval-clips", args.eval_clips, 0)
    frame_count("--frames", args.frames)
    for frames in args.eval_frames or []:
        frame_count("--eval-frames", frames)
    spatial = 2 ** (len(args.block_out_channels) - 1)
    if args.size % (spatial * 2):
        raise UserError(f"--size {args.size}", f"a multiple of {spatial * 2} for {len(args.block_out_channels)} blocks")
    if any(c % args.norm_num_groups for c in args.block_out_channels):
        raise UserError(f"--block-out-channels {args.block_out_channels}", "multiples of --norm-num-groups")
    if args.evaluate:
        existing_file("--evaluate", Path(args.evaluate) / "config.json", "a saved VAE folder (diffusers layout)")


@run_cli
def main(argv=None) -> int:
    args = parse_args(argv)
    configure_logging(fmt=TIMED_LOG_FORMAT)
    check_args(args)
    import torch
    from diffusers import AutoencoderKLCogVideoX
    from PIL import Image

    from dynamictrl.puppet.vae import (
        VAETrainConfig,
        comparison_grid,
        evaluate_vae,
        sample_clips,
        save_vae,
        time_roundtrip,
        train_vae,
    )

    values = dict(
        out_dir=args.out,
        steps=args.steps,
        size=args.size,
        frames=args.frames,
        batch_size=args.batch_size,
        image_batch_size=args.image_batch_size,
        image_every=args.image_every,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        kl_weight=args.kl_weight,
        edge_weight=args.edge_weight,
        detail_weight=args.detail_weight,
        full_style_fraction=args.full_style_fraction,
        broad_style=args.broad_style,
        pose_style=args.pose_style,
        block_out_channels=list(args.block_out_channels),
        latent_channels=args.latent_channels,
        norm_num_groups=args.norm_num_groups,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        seed=args.seed,
        num_threads=args.threads,
    )
    config = VAETrainConfig(**values)
    if args.evaluate:
        vae = AutoencoderKLCogVideoX.from_pretrained(args.evaluate, dtype=torch.float32).eval()
        torch.set_num_threads(args.threads)
    else:
        print(json.dumps(values, indent=2))
        vae = train_vae(config, resume=args.resume)
        print(f"saved {Path(args.out) / 'vae'} (scaling_factor {vae.config.scaling_factor})")
    n_params = sum(p.numel() for p in vae.parameters())
    print(f"parameters: {n_params} ({n_params / 1e6:.3f} M)")
    if args.export:
        export = Path(args.export)
        shutil.rmtree(export, ignore_errors=True)
        save_vae(vae.to(torch.float16) if args.fp16 else vae, export)
        vae.to(torch.float32)
        print(f"exported to {export} ({'float16' if args.fp16 else 'float32'})")
    if args.eval_clips:
        for frames in args.eval_frames or [args.frames]:
            for style in args.eval_styles:
                scores = evaluate_vae(vae, "test", args.eval_clips, args.size, frames, style)
                print(
                    f"test PSNR ({style}, {args.eval_clips} clips, {frames} frames): "
                    + ", ".join(f"{k} {v:.2f} dB" for k, v in scores.items())
                )
    if args.grid:
        video, pose, _ = sample_clips([0, 1, 2, 3], "test", args.size, args.frames, ["demo", "demo", "demo", "full"])
        grid = comparison_grid(vae, torch.cat([video, pose[:2]]), every=1)
        Image.fromarray(grid).save(args.grid)
        print(f"wrote {args.grid} (pairs of rows: original above reconstruction; 4 puppet clips, 2 pose clips)")
    if args.time:
        seconds = time_roundtrip(vae, frames=13, size=args.size, threads=args.threads)
        print(f"encode+decode, 1 clip of 13x{args.size}x{args.size}, {args.threads} thread(s): {seconds * 1000:.0f} ms")
    return 0
