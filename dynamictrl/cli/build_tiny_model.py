"""Assemble the embedded tiny DynamiCtrl: a training "base" folder before training, the pipeline folder after.

    # 1. a CogVideoX-layout base folder: trained tiny VAE + pre-trained T5 (frozen in training) + word tokenizer
    #    + random transformer (--text-encoder random: v0's random T5)
    python tools/build_tiny_model.py base --vae runs/vae-tiny-x4/vae --out runs/tiny-base
    # 2. train the transformer with scripts/train.py (configs/train/tiny_puppet.yaml points at runs/tiny-base)
    # 3. the shipped pipeline folder (diffusers layout, model_index.json) from the base + trained transformer
    python tools/build_tiny_model.py export --base runs/tiny-base --transformer runs/tiny_puppet/final/transformer \
        --out dynamictrl/assets/models/dynamictrl-tiny

Text encoder: a 2-layer T5 encoder (d_model 64) over a word tokenizer of the puppet world's closed vocabulary
(every word of every style), frozen during training as CogVideoX freezes T5 (embeddings computed once). v0 used
random weights: each word then comes out almost as it went in, so "red" naming the shirt and "red" naming the
wall look alike to the transformer. v1 (--text-encoder pretrained, the default) pre-trains it for --text-steps on
captions of the training styles until every caption attribute (wall colour, shirt colour, ...) can be read from
its output tokens by one attention query (dynamictrl.puppet.text_encoder; docs/results/text_encoder.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path

# no torch at import: --help stays fast
from dynamictrl.cli import ArgumentParser, at_least, configure_logging, existing_file, run_cli
from dynamictrl.errors import UserError

TEXT_ENCODERS = ("pretrained", "random")
#: dynamictrl.puppet.text_encoder.UNSEEN_WORDS, written out so --help needs no torch (a test checks they agree)
TEXT_UNSEEN_WORDS = 0.15


def unseen_word_rate(flag: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UserError(f"{flag} {value}", "a rate from 0 to 1")


def pretrain_text_encoder(
    encoder, tokenizer, steps: int, captions: int, seed: int, max_length: int, unseen_words: float
) -> None:
    """Pre-train the T5 in place and print its attribute accuracy on held-out captions of the training styles."""
    from dynamictrl.puppet import text_encoder as te

    probe = te.train_caption_encoder(encoder, tokenizer, steps, seed, captions, max_length, unseen_words=unseen_words)
    held_out = te.caption_set(te.TRAIN_STYLES, range(10**6, 10**6 + 64), split="test")
    accuracy = te.attribute_accuracy(encoder, probe, tokenizer, held_out, max_length)
    mean = sum(acc for acc, _ in accuracy.values()) / len(accuracy)
    print(
        f"pre-trained the text encoder for {steps} steps on {captions} captions: held-out attribute accuracy "
        f"{mean:.3f} (wall colour {accuracy['wall_color'][0]:.3f})"
    )


def build_base(
    vae_dir: Path,
    out: Path,
    layers: int,
    heads: int,
    head_dim: int,
    max_text_len: int,
    patch_size: int,
    seed: int,
    text_encoder: str = "pretrained",
    text_steps: int = 3000,
    text_captions: int = 4096,
    text_unseen_words: float = TEXT_UNSEEN_WORDS,
) -> None:
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler, CogVideoXTransformer3DModel
    from transformers import T5EncoderModel

    from dynamictrl.models.tiny import COGVIDEOX_SCHEDULER_CONFIG
    from dynamictrl.puppet.text_encoder import TEXT_EMBED_DIM, caption_corpus, tiny_t5_config
    from dynamictrl.puppet.word_tokenizer import build_word_tokenizer

    vae = AutoencoderKLCogVideoX.from_pretrained(vae_dir)
    out.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(out / "vae")
    tokenizer = build_word_tokenizer(caption_corpus())
    tokenizer.save_pretrained(out / "tokenizer")
    torch.manual_seed(seed)
    encoder = T5EncoderModel(tiny_t5_config(tokenizer))
    if text_encoder == "pretrained":  # no global RNG draws: the transformer's init below is the same either way
        pretrain_text_encoder(encoder, tokenizer, text_steps, text_captions, seed, max_text_len, text_unseen_words)
    encoder.save_pretrained(out / "text_encoder")
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
    p_base.add_argument(
        "--text-encoder",
        choices=TEXT_ENCODERS,
        default="pretrained",
        help="pretrained: T5 pre-trained on puppet captions (v1, default); random: frozen random T5 (v0)",
    )
    p_base.add_argument("--text-steps", type=int, default=3000, help="pre-training steps of the T5 (3000)")
    p_base.add_argument("--text-captions", type=int, default=4096, help="pre-training captions (4096)")
    p_base.add_argument(
        "--text-unseen-words",
        type=float,
        default=TEXT_UNSEEN_WORDS,
        help="rate of colour/pattern words replaced by unseen-word embeddings in pre-training (0.15; the v1 run in "
        "training since 2026-12-02 used 0, the code before that option existed)",
    )
    p_rep = sub.add_parser("text-report", help="pre-trained vs random tiny T5: attribute accuracy tables")
    p_rep.add_argument("--steps", type=int, default=3000)
    p_rep.add_argument("--seed", type=int, default=0)
    p_rep.add_argument("--captions", type=int, default=4096, help="training captions (half wide, half demo)")
    p_rep.add_argument("--test-captions", type=int, default=256, help="held-out captions per test set and style")
    p_rep.add_argument("--long-random-steps", type=int, help="also a probe on the random encoder for this long")
    p_rep.add_argument("--unseen-words", type=float, default=TEXT_UNSEEN_WORDS, help="pre-training's unseen-word rate")
    p_exp = sub.add_parser("export", help="write the shipped pipeline folder")
    p_exp.add_argument("--base", type=Path, required=True)
    p_exp.add_argument("--transformer", type=Path, required=True, help="trained DynamiCtrl transformer folder")
    p_exp.add_argument("--out", type=Path, required=True)
    p_exp.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    p_exp.add_argument("--clip-frames", type=int, default=9, help="default frames per clip of the pipeline (9)")
    args = parser.parse_args(argv)
    configure_logging()
    if args.command == "text-report":
        unseen_word_rate("--unseen-words", args.unseen_words)
        from dynamictrl.puppet.text_encoder import compare_with_random

        print(
            compare_with_random(
                args.steps,
                args.seed,
                args.captions,
                args.test_captions,
                long_random_steps=args.long_random_steps,
                unseen_words=args.unseen_words,
            )
        )
        return 0
    if args.command == "base":
        existing_file("--vae", args.vae / "config.json", "a trained VAE folder, e.g. runs/vae-tiny-x4/vae")
        at_least("--text-steps", args.text_steps, 1)
        at_least("--text-captions", args.text_captions, 2)
        unseen_word_rate("--text-unseen-words", args.text_unseen_words)
        build_base(
            args.vae,
            args.out,
            args.layers,
            args.heads,
            args.head_dim,
            args.max_text_len,
            args.patch_size,
            args.seed,
            args.text_encoder,
            args.text_steps,
            args.text_captions,
            args.text_unseen_words,
        )
    else:
        export(args.base, args.transformer, args.out, args.dtype, args.clip_frames)
    return 0
