"""Caption training clips into prompts.txt (official format: NAME.mp4#####caption, one line per clip).

Two modes:
  VLM (default): Qwen2-VL from a local folder describes each clip from a few sampled frames, in batches.
      python tools/caption.py data/videos --out data/prompts.txt --model-dir ~/models/Qwen2-VL-7B-Instruct
  Template (--template): no model; every given clip gets a caption filled from the fields.
      python tools/caption.py data/videos/a.mp4 --out data/prompts.txt --template \\
          --clothing "a red summer dress" --background "a sunny beach with palm trees"

Existing entries of --out are kept (and replaced for re-captioned clips) unless --overwrite is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dynamictrl.cli import ArgumentParser, at_least, configure_logging, existing_dir, for_flag, run_cli
from dynamictrl.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", type=Path, help="video files and/or folders of videos")
    p.add_argument("--out", type=Path, required=True, help="prompts.txt to write")
    p.add_argument("--overwrite", action="store_true", help="start a fresh file instead of updating --out")
    vlm = p.add_argument_group("VLM mode")
    vlm.add_argument("--model-dir", type=Path, help="local Qwen2-VL folder (e.g. Qwen2-VL-7B-Instruct)")
    vlm.add_argument("--batch-size", type=int, default=4, help="clips per generate call")
    vlm.add_argument("--frames", type=int, default=3, help="frames sampled per clip")
    vlm.add_argument("--max-side", type=int, default=448, help="downscale frames to this longer side")
    vlm.add_argument("--max-new-tokens", type=int, default=160, help="caption length limit in tokens")
    vlm.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    vlm.add_argument("--question", help="replace the default instruction given to the VLM")
    tpl = p.add_argument_group("template mode")
    tpl.add_argument("--template", action="store_true", help="fill captions from the fields below, no model")
    tpl.add_argument("--clothing", help='what the person wears, e.g. "a blue denim jacket and white trousers"')
    tpl.add_argument("--background", help='the scene, e.g. "a quiet street at dusk"')
    tpl.add_argument("--person", help='optional description, e.g. "a young woman with long dark hair"')
    tpl.add_argument("--lighting", help='optional, e.g. "soft and warm"')
    tpl.add_argument("--extra", help="optional free text appended as a sentence")
    return p


def collect_videos(inputs: list[Path]) -> list[Path]:
    """Files as given, folders expanded to their video files (sorted)."""
    out = []
    for path in inputs:
        if path.is_dir():
            out.extend(sorted(f for f in path.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES))
        elif path.is_file():
            out.append(path)
        else:
            raise UserError(f"{path}: no such video or folder", f"video files ({', '.join(VIDEO_SUFFIXES)}) or folders")
    if not out:
        raise UserError(f"no videos found in {[str(p) for p in inputs]}", f"files ending {', '.join(VIDEO_SUFFIXES)}")
    return out


@run_cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    videos = collect_videos(args.inputs)
    if args.template and (not args.clothing or not args.background):
        raise UserError("--template without --clothing and --background", "give both fields")
    if not args.template:
        if args.model_dir is None:
            raise UserError("no captioner chosen", "--model-dir DIR (a local Qwen2-VL folder) or --template")
        existing_dir("--model-dir", args.model_dir, "a local Qwen2-VL folder, e.g. Qwen2-VL-7B-Instruct")
    for flag in ("--batch-size", "--frames", "--max-side", "--max-new-tokens"):
        at_least(flag, getattr(args, flag[2:].replace("-", "_")), 1)
    from tqdm.auto import tqdm

    from dynamictrl.data.io import read_video
    from dynamictrl.data.prompts import read_prompts, write_prompts
    from dynamictrl.preprocess.captions import QwenCaptioner, template_caption

    captions = {} if args.overwrite or not args.out.is_file() else read_prompts(args.out)

    if args.template:
        caption = template_caption(args.clothing, args.background, args.person, args.lighting, args.extra)
        for video in videos:
            captions[video.name] = caption
    else:
        kwargs = {"question": args.question} if args.question else {}
        with for_flag("--model-dir", "a local Qwen2-VL folder with its processor files", also=(ImportError,)):
            captioner = QwenCaptioner(
                args.model_dir,
                device=args.device,
                frames_per_clip=args.frames,
                max_side=args.max_side,
                max_new_tokens=args.max_new_tokens,
                **kwargs,
            )
        bar = tqdm(total=len(videos), desc="captioning", unit="clip")
        for start in range(0, len(videos), args.batch_size):
            batch = videos[start : start + args.batch_size]
            clips = [read_video(v)[0] for v in batch]  # a corrupt file: one line naming it
            for video, caption in zip(batch, captioner.caption_batch(clips)):
                captions[video.name] = caption
            bar.update(len(batch))
            write_prompts(args.out, captions)  # keep progress if interrupted
        bar.close()
    write_prompts(args.out, captions)
    print(f"{len(videos)} caption(s) -> {args.out} ({len(captions)} lines)")
    return 0
