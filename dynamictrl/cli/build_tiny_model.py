"""Assemble the embedded tiny DynamiCtrl: a training "base" folder before training, the pipeline folder after.

    # 1. a CogVideoX-layout base folder: trained tiny VAE + frozen random T5 + word tokenizer + random transformer
    python tools/build_tiny_model.py base --vae runs/vae-tiny-x4/vae --out runs/tiny-base
    # 2. train the transformer with scripts/train.py (configs/train/tiny_puppet.yaml points at runs/tiny-base)
    # 3. the shipped pipeline folder (diffusers layout, model_index.json) from the base + trained transformer
    python tools/build_tiny_model.py export --base runs/tiny-base --transformer runs/tiny_puppet/final/transformer \
        --out dynamictrl/assets/models/dynamictrl-tiny

Text encoder: a 2-layer T5 encoder with random weights, frozen. The puppet world's captions use a closed vocabulary
of a few dozen words, so distinct random (but fixed) embeddings per word are enough for the transformer's text
projection and attention to learn which colour a caption names; freezing it lets training pre-compute the
embeddings once and keeps the model small.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dynamictrl.cli import ArgumentParser, configure_logging, existing_file, run_cli  # no torch: --help stays fast

TEXT_EMBED_DIM = 64


def caption_corpus(num: int = 400) -> list[str]:
    """Captions of the puppet world (both styles, all splits): the word vocabulary of the tiny model."""
    from dynamictrl.puppet import SPLITS, STYLES, make_sample

    return [
        make_sample(seed, split=split, size=32, frames=1, style=style, render_pose=False).caption
        for style in STYLES
        for split in SPLITS
        for seed in range(num // (len(STYLES) * len(SPLITS)))
    ]


def build_base(
    vae_dir: Path, out: Path, layers: int, heads: int, head_dim: int, max_text_len: int, patch_size: int, seed: int
) -> None:
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    from dynamictrl.models.tiny import COGVIDEOX_SCHEDULER_CONFIG
    from dynamictrl.puppet.word_tokenizer import build_word_tokenizer

    vae = AutoencoderKLCogVideoX.from_pretrained(vae_dir)
    out.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(out / "vae")
    tokenizer = build_word_tokenizer(caption_corpus())
    tokenizer.save_pretrained(out / "tokenizer")
    torch.manual_seed(seed)
    text_config = T5Config(
        vocab_size=len(tokenizer),
        d_model=TEXT_EMBED_DIM,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=16,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    T5EncoderModel(text_config).save_pretrained(out / "text_encoder")
    CogVideoXDPMScheduler(**COGVIDEOX_SCHEDULER_CONFIG).save_pretrained(out / "scheduler")
    latent = vae.config.latent_channels
    spatial = 2 ** (len(vae.config.block_out_channels) - 1)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=2 * latent,
        out_channels=latent,
        time_embed_dim=128,
        text_embed_dim=TEXT_EMBED_DIM,
        num_layers=layers,
        sample_width=64 // spatial,
        sample_height=64 // spatial,
        sample_frames=9,
        patch_size=patch_size,
        max_text_seq_length=max_text_len,
        temporal_compression_ratio=vae.config.temporal_compression_ratio,
        use_rotary_positional_embeddings=True,  # no learned table: any resolution works
    )
    transformer.save_pretrained(out / "transformer")
    longest = max(len(tokenizer(c).input_ids) for c in caption_corpus(60))
    print(
        f"wrote base to {out}: transformer {sum(p.numel() for p in transformer.parameters()) / 1e6:.2f} M params, "
        f"vocabulary {len(tokenizer)} words, longest caption {longest} tokens (max_text_seq_length {max_text_len})"
    )


def export(base: Path, transformer_dir: Path, out: Path, dtype: str, clip_frames: int) -> None:
    from dynamictrl.cli import existing_dir, existing_file, for_flag
    from dynamictrl.models.trained import check_folder_fit

    for part in ("vae", "text_encoder", "tokenizer", "scheduler"):
        existing_dir("--base", base / part, "a base folder written by `build_tiny_model.py base`")
    existing_file("--transformer", transformer_dir / "config.json", "a trained transformer folder")
    with for_flag("--transformer"):
        check_folder_fit(transformer_dir, base)  # before anything is loaded or written

    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler
    from transformers import AutoTokenizer, T5EncoderModel

    from dynamictrl.devices import torch_dtype
    from dynamictrl.models import DynamiCtrlTransformer3DModel
    from dynamictrl.pipelines import DynamiCtrlPipeline

    transformer = DynamiCtrlTransformer3DModel.from_pretrained(transformer_dir)
    # the pipeline's default clip length; with rotary positions sample_frames has no other use
    transformer.register_to_config(sample_frames=clip_frames)
    pipe = DynamiCtrlPipeline(
        tokenizer=AutoTokenizer.from_pretrained(base / "tokenizer"),
        text_encoder=T5EncoderModel.from_pretrained(base / "text_encoder"),
        vae=AutoencoderKLCogVideoX.from_pretrained(base / "vae"),
        transformer=transformer,
        scheduler=CogVideoXDPMScheduler.from_pretrained(base / "scheduler"),
    )
    if out.exists():
        shutil.rmtree(out)
    pipe.to(torch_dtype(dtype)).save_pretrained(out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({size / 2**20:.1f} MiB, {dtype})")


@run_cli
def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_base = sub.add_parser("base", help="write the training base folder")
    p_base.add_argument("--vae", type=Path, required=True, help="trained tiny VAE folder (diffusers layout)")
    p_base.add_argument("--out", type=Path, required=True)
    p_base.add_argument("--layers", type=int, default=6)
    p_base.add_argument("--heads", type=int, default=4)
    p_base.add_argument("--head-dim", type=int, default=32)
    p_base.add_argument("--max-text-len", type=int, default=48)
    p_base.add_argument("--patch-size", type=int, default=2)
    p_base.add_argument("--seed", type=int, default=0)
    p_exp = sub.add_parser("export", help="write the shipped pipeline folder")
    p_exp.add_argument("--base", type=Path, required=True)
    p_exp.add_argument("--transformer", type=Path, required=True, help="trained DynamiCtrl transformer folder")
    p_exp.add_argument("--out", type=Path, required=True)
    p_exp.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    p_exp.add_argument("--clip-frames", type=int, default=9, help="default frames per clip of the pipeline (9)")
    args = parser.parse_args(argv)
    configure_logging()
    if args.command == "base":
        existing_file("--vae", args.vae / "config.json", "a trained VAE folder, e.g. runs/vae-tiny-x4/vae")
        build_base(
            args.vae, args.out, args.layers, args.heads, args.head_dim, args.max_text_len, args.patch_size, args.seed
        )
    else:
        export(args.base, args.transformer, args.out, args.dtype, args.clip_frames)
    return 0
