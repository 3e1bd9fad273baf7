"""Pre-compute VAE latents and T5 prompt embeddings of a training set, so training skips the encoders.

    python tools/prepare_dataset.py --config configs/train/padaln.yaml --out /data/tiktok/latents [key=value ...]
    accelerate launch scripts/train.py --config configs/train/padaln.yaml data.latents=/data/tiktok/latents

The model components, frame count, size and stride come from the training config (so the cache matches the run);
a clip is encoded by ``dynamictrl.pipelines.conditioning.encode_clip``, the trainer's own encoding, and written by
``dynamictrl.data.latent_cache.LatentCacheWriter`` beside the reader training uses. Written:

    OUT/index.json                 meta (frames, size, stride, latent shape, VAE scaling) and one entry per clip
    OUT/shard-00000.safetensors    per clip: latents, pose_latents, reference_latents[, masked_reference_latents]
                                   [, prompt_embeds]   (all (F', C, H', W') x VAE scaling; embeds (L, D))
    OUT/empty_prompt.safetensors   embeddings of "" (text dropout)

Latents are posterior modes (deterministic). ``--clips-per-video N`` stores N clips per video at evenly spaced starts.
Unreadable videos are skipped and listed at the end.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dynamictrl.cli import ArgumentParser, at_least, check_train_paths, configure_logging, load_train_config, run_cli


@run_cli
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", required=True, help="training config (model source, data.root, frames, size)")
    parser.add_argument("--out", required=True, help="output folder for the latent cache")
    parser.add_argument("--clips-per-video", type=int, default=1, help="clips per video at evenly spaced starts")
    parser.add_argument("--batch-size", type=int, default=8, help="clips encoded together (8)")
    parser.add_argument("--shard-size", type=int, default=256, help="clips per safetensors shard")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="encoder dtype")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the training config")
    args = parser.parse_args(argv)
    configure_logging()
    for flag in ("--clips-per-video", "--batch-size", "--shard-size"):
        at_least(flag, getattr(args, flag[2:].replace("-", "_")), 1)
    cfg = load_train_config(args.config, args.overrides, check_paths=False)
    check_train_paths(cfg, read_latents=False)  # the cache is written here, not read

    import torch
    from tqdm.auto import tqdm

    from dynamictrl.data.dataset import VideoPoseDataset
    from dynamictrl.data.io import VideoReadError
    from dynamictrl.data.latent_cache import LatentCacheWriter
    from dynamictrl.devices import default_device, torch_dtype
    from dynamictrl.pipelines.conditioning import encode_clip, encode_prompt
    from dynamictrl.training.spec import load_components, resolve_reference_scaling

    device = torch.device(args.device or default_device())
    dtype = torch_dtype(args.dtype)
    data = cfg.data
    dataset = VideoPoseDataset(
        data.root, data.num_frames, data.height, data.width, frame_stride=data.frame_stride, random_start=False
    )
    components = load_components(cfg.model, need_vae=True, need_text=cfg.model.use_text)
    vae = components.vae.to(device, dtype).eval()
    text_encoder = components.text_encoder.to(device, dtype).eval() if components.text_encoder is not None else None
    max_length = cfg.model.max_text_seq_length or components.transformer.config.max_text_seq_length
    out = Path(args.out)
    writer = LatentCacheWriter(out, shard_size=args.shard_size)
    scale = resolve_reference_scaling(cfg.model, vae)

    bad = []
    span = (data.num_frames - 1) * data.frame_stride + 1

    def jobs():
        """(index, start) of every clip to encode; unreadable or too-short videos are recorded in ``bad``."""
        for index in range(len(dataset)):
            try:
                available = dataset.num_source_frames(index)
                if available < span:
                    raise ValueError(f"needs {span} frames, has {available}")
            except (VideoReadError, ValueError) as err:
                bad.append(f"{dataset.clips[index]['video']}: {err}")
                logging.warning("skipping %s: %s", dataset.clips[index]["name"], err)
                continue
            count = args.clips_per_video
            for start in sorted({round(k * (available - span) / max(1, count - 1)) for k in range(count)}):
                yield index, start

    def load(index: int, start: int):
        try:
            return dataset.load(index, start=start, with_masked_reference=True)
        except (VideoReadError, ValueError) as err:
            bad.append(f"{dataset.clips[index]['video']}: {err}")
            logging.warning("skipping %s: %s", dataset.clips[index]["name"], err)
            return None

    def encode_batch(samples: list) -> None:
        """Encode clips together: the VAE is several times faster per clip in batches than one by one."""
        stack = lambda key: torch.stack([s[key] for s in samples]).to(device, dtype)  # noqa: E731
        masked = [i for i, s in enumerate(samples) if "masked_reference" in s]
        masked_images = None
        if masked:
            masked_images = torch.stack([samples[i]["masked_reference"] for i in masked]).to(device, dtype)
        encoded = encode_clip(
            vae,
            stack("video"),
            stack("pose"),
            stack("reference"),
            scale_reference=scale,
            sample=False,
            masked_reference=masked_images,
        )
        masked_latents = dict(zip(masked, encoded.pop("masked_reference_latents", ())))
        prompts = None
        if text_encoder is not None:
            prompts = encode_prompt(
                components.tokenizer, text_encoder, [s["prompt"] for s in samples], max_length, device=device
            )
        for i, sample in enumerate(samples):
            tensors = {name: value[i] for name, value in encoded.items()}
            if i in masked_latents:
                tensors["masked_reference_latents"] = masked_latents[i]
            if prompts is not None:
                tensors["prompt_embeds"] = prompts[i]
            writer.add(sample["name"], sample["start"], sample["prompt"], tensors)

    with torch.no_grad():
        todo = list(jobs())
        for first in tqdm(range(0, len(todo), args.batch_size), desc="encoding", unit="batch"):
            samples = []
            for index, start in todo[first : first + args.batch_size]:
                sample = load(index, start)
                if sample is not None:
                    samples.append({**sample, "start": start})
            if samples:
                encode_batch(samples)
        writer.flush()
        if text_encoder is not None:
            writer.write_empty_prompt(
                encode_prompt(components.tokenizer, text_encoder, [""], max_length, device=device)[0]
            )

    entries = writer.entries
    if not entries:
        print(f"no clip could be encoded; {len(bad)} unreadable:\n" + "\n".join(bad), file=sys.stderr)
        return 1
    first = entries[0]
    meta = dict(
        data_root=str(Path(data.root).resolve()),
        num_frames=data.num_frames,
        height=data.height,
        width=data.width,
        frame_stride=data.frame_stride,
        clips_per_video=args.clips_per_video,
        vae_scaling_factor=float(vae.config.scaling_factor),
        scale_reference_latents=scale,
        has_prompt_embeds=text_encoder is not None,
        max_text_seq_length=max_length,
        model_source=cfg.model.source,
        first_key=first["key"],
    )
    writer.finish(meta)
    print(f"wrote {len(entries)} clips in {writer.num_shards} shard(s) to {out}; skipped {len(bad)} unreadable videos")
    for line in bad:
        print(f"  skipped {line}")
    return 0
