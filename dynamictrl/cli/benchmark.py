"""Speed and memory of DynamiCtrl inference, measured with one command (random weights: no download needed).

Times one denoiser step (CFG batch 2 and batch 1), VAE encode of the reference + pose video, VAE decode, and the
whole pipeline (encode, all denoising steps, decode); reports median and spread over repeats after warm-up, peak
memory (CUDA ``max_memory_allocated``, or peak RSS on CPU), tokens per step and achieved TFLOP/s from the analytic
FLOP count in :mod:`dynamictrl.acceleration.flops`. Every setting flag takes a comma list and the benchmark runs
the cross product, printing a Markdown table and optionally writing JSON.

The runtime flags are those of ``scripts/infer.py`` (``--memory``, ``--compile``, ``--attention``, ``--fuse-qkv``,
``--fp8``, ``--offload``, ``--cache``, ``--vae-tiling``), as comma lists, and each setting is applied with the same
:func:`dynamictrl.acceleration.runtime.apply_runtime` to a ``DynamiCtrlPipeline``: what is measured is what a user
runs. A setting that cannot run here (no CUDA, no torchao, a size the VAE cannot tile) goes to ``skipped``.

    python scripts/benchmark.py --preset tiny
    python scripts/benchmark.py --preset cogvideox-5b-i2v --random-init --frames 49 --height 480 --width 720
    python scripts/benchmark.py --preset cogvideox-5b-i2v --random-init --frames 37 --height 768 --width 1360 \\
        --steps 25 --compile off,on --json bench.json

The T5 text encoder is not run (random prompt embeddings of the real shape): it runs once per video, not per step.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dynamictrl.acceleration import runtime  # module: tests patch runtime.apply_runtime
from dynamictrl.acceleration.flops import transformer_flops
from dynamictrl.acceleration.runtime import (
    COMPILE_BACKENDS,
    RuntimeConfig,
    add_runtime_args,
    with_memory_preset,
)
from dynamictrl.acceleration.vae_tiling import check_vae_tiling
from dynamictrl.cli import ArgumentParser
from dynamictrl.models.presets import PRESETS

logger = logging.getLogger("benchmark")

# The real CogVideoX-5B-I2V VAE (THUDM/CogVideoX-5b-I2V vae/config.json); 1.5 differs only in invert_scale_latents.
COGVIDEOX_5B_VAE_CONFIG: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("CogVideoXDownBlock3D",) * 4,
    up_block_types=("CogVideoXUpBlock3D",) * 4,
    block_out_channels=(128, 256, 256, 512),
    latent_channels=16,
    layers_per_block=3,
    act_fn="silu",
    norm_eps=1e-6,
    norm_num_groups=32,
    temporal_compression_ratio=4,
    sample_height=480,
    sample_width=720,
    scaling_factor=0.7,
    use_quant_conv=False,
    use_post_quant_conv=False,
)
VAE_CONFIGS = {
    "cogvideox-5b-i2v": COGVIDEOX_5B_VAE_CONFIG,
    "cogvideox1.5-5b-i2v": {**COGVIDEOX_5B_VAE_CONFIG, "invert_scale_latents": True},
}
DTYPES = ("fp32", "bf16", "fp16")

if TYPE_CHECKING:  # torch loads after the arguments are parsed: --help stays light
    import torch


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


COLUMNS = [
    "preset",
    "frames",
    "height",
    "width",
    "pose_control",
    "dtype",
    "memory",
    "attention",
    "compile",
    "fuse_qkv",
    "offload",
    "vae_tiling",
    "cache",
    "fp8",
    "tokens",
    "step_cfg2_s",
    "step_b1_s",
    "tflops_step",
    "achieved_tflops",
    "padaln_overhead_pct",
    "vae_encode_s",
    "vae_decode_s",
    "e2e_s",
    "peak_step_gb",
    "peak_e2e_gb",
    "skipped",
]


@dataclass
class Setting:
    """One benchmark configuration (one row of the table)."""

    preset: str
    frames: int
    height: int
    width: int
    pose_control: str
    dtype: str
    memory: str  # a --memory preset, or "none"; it overrides offload, fp8 and VAE tiling (the row shows the result)
    attention: str
    compile: bool
    fuse_qkv: bool
    offload: str
    vae_tiling: bool
    cache: str
    fp8: str

    def runtime(self, compile_backend: str = "inductor") -> RuntimeConfig:
        """The runtime configuration this setting runs, as ``infer.py`` would build it from the same flags."""
        config = RuntimeConfig(
            compile=self.compile,
            compile_backend=compile_backend,
            attention=self.attention,
            fuse_qkv=self.fuse_qkv,
            fp8=self.fp8,
            offload=self.offload,
            cache=self.cache,
            vae_tiling=self.vae_tiling,
        )
        return config if self.memory == "none" else with_memory_preset(config, self.memory)

    def key_without(self, name: str) -> tuple:
        return tuple(v for k, v in asdict(self).items() if k != name)


@dataclass
class Timing:
    """Wall-clock seconds of the repeats after warm-up."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    def as_dict(self) -> dict[str, Any]:
        if not self.samples:
            return {"median": None, "min": None, "max": None, "samples": []}
        return {"median": self.median, "min": min(self.samples), "max": max(self.samples), "samples": self.samples}


# ---------------------------------------------------------------------------------------------- memory and time


class MemoryMeter:
    """Peak memory of a phase: CUDA ``max_memory_allocated``, or the process's peak RSS on CPU.

    On Linux the RSS peak is reset per phase by writing 5 to ``/proc/self/clear_refs``; where that is not possible
    the reported value is the peak since process start (``kind`` says ``rss-process``).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "cuda" if device.type == "cuda" else "rss"

    def reset(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            self.kind = "rss-process"

    def peak_gb(self) -> float:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**30
        try:
            with open("/proc/self/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024 / 2**30
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30  # Linux reports KiB


def synchronize(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed (synchronising the device)."""
    for _ in range(warmup):
        fn()
    timing = Timing()
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        timing.samples.append(time.perf_counter() - start)
    return timing


# ---------------------------------------------------------------------------------------------- components


def _random_init_(model: torch.nn.Module, seed: int) -> None:
    """Fill every parameter in place: weights N(0, 0.02), norm weights 1, biases 0 (fast on any device)."""
    import torch

    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim >= 2:
                param.normal_(0.0, 0.02, generator=generator)
            elif name.endswith("bias"):
                param.zero_()
            else:
                param.fill_(1.0)


def build_components(
    preset: str,
    pose_control: str,
    dtype: torch.dtype,
    device: torch.device,
    model_dir: str | None,
    seed: int = 0,
    latent_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """``transformer``, ``vae`` and ``scheduler`` on ``device`` in ``dtype``.

    ``latent_size`` (H', W'): with random weights and a preset with learned positional embeddings (CogVideoX 1.0,
    which diffusers only runs at its sample size), the embedding table is made for this size instead; the
    compute is the same as the real model's at that size.
    """
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler

    from dynamictrl.models.presets import build_transformer
    from dynamictrl.models.tiny import COGVIDEOX_SCHEDULER_CONFIG, tiny_vae
    from dynamictrl.models.transformer import DynamiCtrlTransformer3DModel

    if model_dir is not None:
        root = Path(model_dir)
        for sub in ("transformer", "vae", "scheduler"):
            if not (root / sub).is_dir():
                raise FileNotFoundError(f"{root / sub} not found: --model expects a diffusers folder with {sub}/")
        transformer = DynamiCtrlTransformer3DModel.from_pretrained(root / "transformer", dtype=dtype)
        vae = AutoencoderKLCogVideoX.from_pretrained(root / "vae", dtype=dtype)
        scheduler = CogVideoXDPMScheduler.from_pretrained(root / "scheduler")
        return dict(transformer=transformer.eval(), vae=vae.eval(), scheduler=scheduler)

    overrides: dict[str, Any] = {"pose_control": pose_control, "pose_zero_init": False}
    if latent_size is not None and PRESETS[preset].get("use_learned_positional_embeddings"):
        overrides.update(sample_height=latent_size[0], sample_width=latent_size[1])
    torch.manual_seed(seed)
    if preset in VAE_CONFIGS:  # 5B: build on the meta device, then allocate and fill on the target device
        with torch.device("meta"):
            transformer = build_transformer(preset, **overrides)
        transformer = transformer.to_empty(device=device)
        _random_init_(transformer, seed)
        vae = AutoencoderKLCogVideoX(**VAE_CONFIGS[preset])
    else:
        transformer = build_transformer(preset, **overrides)
        vae = tiny_vae(transformer.config.out_channels, seed)
    return dict(
        transformer=transformer.to(dtype).eval(),
        vae=vae.to(dtype).eval(),
        scheduler=CogVideoXDPMScheduler(**COGVIDEOX_SCHEDULER_CONFIG),
    )


# ---------------------------------------------------------------------------------------------- one setting


def _latent_size(setting: Setting, transformer, vae) -> tuple[int, int, int]:
    from dynamictrl.pipelines.conditioning import num_latent_frames

    spatial = 2 ** (len(vae.config.block_out_channels) - 1)
    frames = num_latent_frames(setting.frames, vae.config.temporal_compression_ratio, transformer.config.patch_size_t)
    return frames, setting.height // spatial, setting.width // spatial


def run_setting(
    setting: Setting,
    device: torch.device,
    steps: int,
    warmup: int,
    repeats: int,
    e2e_repeats: int,
    model_dir: str | None = None,
    compile_backend: str = "inductor",
    seed: int = 0,
) -> dict[str, Any]:
    """Measure one setting; returns a row (see ``COLUMNS``) with timings as dicts of median/min/max/samples.

    The components form a ``DynamiCtrlPipeline`` and :func:`runtime.apply_runtime` applies the setting to it, as
    ``scripts/infer.py`` does; the step and VAE timings call the pipeline's own (hooked, compiled) modules.
    """
    import torch

    from dynamictrl.pipelines.pipeline_dynamictrl import DynamiCtrlPipeline

    config = setting.runtime(compile_backend)
    runtime.check_runtime(config, device)  # refused before building: the row says why
    dtype = torch_dtype(setting.dtype)
    meter = MemoryMeter(device)
    spatial = 8  # both VAEs (tiny and 5B) downsample ×8
    parts = build_components(
        setting.preset,
        setting.pose_control,
        dtype,
        device if config.offload == "none" else torch.device("cpu"),  # offloaded weights start in CPU memory
        model_dir,
        seed,
        latent_size=(setting.height // spatial, setting.width // spatial),
    )
    pipe = DynamiCtrlPipeline(tokenizer=None, text_encoder=None, **parts)
    pipe.set_progress_bar_config(disable=True)
    runtime.apply_runtime(pipe, config, device)
    transformer, vae = pipe.transformer, pipe.vae
    if config.vae_tiling:  # a frame size the tiles would not add up to: refused here, as the pipeline would
        check_vae_tiling(vae, setting.height, setting.width)
    cfg = transformer.config

    lat_f, lat_h, lat_w = _latent_size(setting, transformer, vae)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    c = cfg.out_channels

    def inputs(batch: int) -> dict[str, Any]:
        hidden = torch.randn(batch, lat_f, 2 * c, lat_h, lat_w, generator=gen).to(device, dtype)
        pose = torch.randn(batch, lat_f, c, lat_h, lat_w, generator=gen).to(device, dtype)
        text = torch.randn(batch, cfg.max_text_seq_length, cfg.text_embed_dim, generator=gen).to(device, dtype)
        return dict(
            hidden_states=hidden,
            encoder_hidden_states=text,
            timestep=torch.full((batch,), 500, device=device, dtype=torch.long),
            pose_latents=pose if setting.pose_control != "none" else None,
            image_rotary_emb=transformer.rotary_embedding(lat_f, lat_h, lat_w, device),
            ofs=None if cfg.ofs_embed_dim is None else torch.full((batch,), 2.0, device=device, dtype=dtype),
            return_dict=False,
        )

    row: dict[str, Any] = asdict(setting)
    row.update({k: getattr(config, k) for k in ("offload", "vae_tiling", "fp8")})  # what ran, after --memory
    flops_b2 = transformer_flops(cfg, 2, lat_f, lat_h, lat_w)
    row["tokens"] = flops_b2["text_tokens"] + flops_b2["video_tokens"]
    row["tflops_step"] = flops_b2["total"] / 1e12

    with torch.inference_mode():
        kwargs2, kwargs1 = inputs(2), inputs(1)
        # a step cache asks the pipeline for the current timestep: the steps are timed as at t=500 (inside PAB's
        # range, so reuse happens as it would mid-sampling)
        pipe._current_timestep = torch.tensor(500)
        meter.reset()
        step2 = time_call(lambda: transformer(**kwargs2), device, warmup, repeats)
        row["peak_step_gb"] = meter.peak_gb()
        step1 = time_call(lambda: transformer(**kwargs1), device, warmup, repeats)
        pipe._current_timestep = None
        row["step_cfg2_s"], row["step_b1_s"] = step2.as_dict(), step1.as_dict()
        row["achieved_tflops"] = flops_b2["total"] / step2.median / 1e12

        # VAE: encode the reference image and the pose video, decode the latent video
        video = (torch.rand(1, 3, setting.frames, setting.height, setting.width, generator=gen) * 2 - 1).to(device)
        video = video.to(dtype)
        reference = video[:, :, :1]
        vae_device_latents = torch.randn(1, c, (setting.frames - 1) // 4 + 1, lat_h, lat_w, generator=gen)
        vae_device_latents = vae_device_latents.to(device, dtype)

        def encode() -> None:
            vae.encode(reference).latent_dist.mode()
            vae.encode(video).latent_dist.mode()

        row["vae_encode_s"] = time_call(encode, device, min(warmup, 1), repeats).as_dict()
        row["vae_decode_s"] = time_call(
            lambda: vae.decode(vae_device_latents).sample, device, min(warmup, 1), repeats
        ).as_dict()

    # End to end through the pipeline (prompt embeddings given, so no T5)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (setting.height, setting.width, 3), dtype=np.uint8)  # (H, W, 3)
    pose_video = rng.integers(0, 256, (setting.frames, setting.height, setting.width, 3), dtype=np.uint8)
    embeds = torch.randn(2, cfg.max_text_seq_length, cfg.text_embed_dim, generator=gen).to(device, dtype)

    def end_to_end() -> None:
        runtime.reset_runtime_state(pipe)  # each video starts with an empty step cache, as in infer.py
        pipe(
            image=image,
            pose_video=pose_video,
            prompt_embeds=embeds[1:],
            negative_prompt_embeds=embeds[:1],
            num_frames=setting.frames,
            height=setting.height,
            width=setting.width,
            num_inference_steps=steps,
            generator=torch.Generator(device="cpu").manual_seed(seed),
            output_type="np",
        )

    meter.reset()
    # with --compile the pipeline's call (no_grad, not the steps' inference_mode) compiles its own graphs: untimed first
    row["e2e_s"] = time_call(end_to_end, device, 1 if config.compile else 0, e2e_repeats).as_dict()
    row["peak_e2e_gb"] = meter.peak_gb()
    row["memory_kind"] = meter.kind
    row["skipped"] = ""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def add_padaln_overhead(rows: list[dict[str, Any]]) -> None:
    """``padaln_overhead_pct``: CFG step time of each pose-control row vs the same setting with ``none``."""
    fields = [f for f in Setting.__dataclass_fields__ if f != "pose_control"]
    baseline = {
        tuple(r[f] for f in fields): r["step_cfg2_s"]["median"]
        for r in rows
        if r["pose_control"] == "none" and "error" not in r
    }
    for r in rows:
        base = baseline.get(tuple(r[f] for f in fields))
        ok = r["pose_control"] != "none" and base and "error" not in r
        r["padaln_overhead_pct"] = 100.0 * (r["step_cfg2_s"]["median"] / base - 1.0) if ok else None


# ---------------------------------------------------------------------------------------------- output


def _fmt_timing(value: Any) -> str:
    if not isinstance(value, dict) or value.get("median") is None:
        return "—"
    median, spread = value["median"], (value["max"] - value["min"]) / 2
    return f"{median:.3g} ± {spread:.2g}" if len(value["samples"]) > 1 else f"{median:.3g}"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table with every column of ``COLUMNS`` (timings as median ± half the range)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = []
        for col in COLUMNS:
            value = r.get(col)
            if "error" in r and col not in Setting.__dataclass_fields__:
                value = r["error"] if col == "skipped" else None
            cells.append(_fmt_timing(value) if col.endswith("_s") else _fmt(value))
        lines.append("| " + " | ".join(cells).replace("\n", " ") + " |")
    return "\n".join(lines)


def environment(device: torch.device) -> dict[str, Any]:
    import diffusers
    import torch

    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    return info


NOTES = [
    "step_*: one transformer forward; CFG batch 2 is what sampling with guidance runs per step.",
    "e2e_s: DynamiCtrlPipeline end to end (VAE encode of reference + pose, all steps, VAE decode, postprocess); "
    "the T5 text encoder is not run (random prompt embeddings of the real shape): it runs once per video.",
    "tflops_step: analytic FLOPs of one CFG-batch-2 forward (dynamictrl/acceleration/flops.py); "
    "achieved_tflops = tflops_step / step_cfg2_s median.",
    "peak_*: CUDA max_memory_allocated, or peak RSS of the process on CPU (includes Python and libraries).",
    "Timings: median ± half the range over the timed repeats, after warm-up.",
]


# ---------------------------------------------------------------------------------------------- CLI


def _csv(kind: Callable[[str], Any], allowed: tuple[str, ...] | None = None) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        if allowed is not None:
            bad = [v for v in values if v not in allowed]
            if bad:
                raise argparse.ArgumentTypeError(f"{bad} not allowed; choose from {', '.join(allowed)}")
        if not values:
            raise argparse.ArgumentTypeError("empty list")
        return values

    return parse


#: what each runtime flag of the sweep is when not given: the eager path
SWEEP_DEFAULTS = {
    "memory": "none",
    "attention": "sdpa",
    "compile": False,
    "fuse_qkv": False,
    "fp8": "off",
    "offload": "none",
    "cache": "none",
    "vae_tiling": False,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(  # a bad command line: one line, status 2
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Setting flags take comma lists (e.g. --frames 49,37 --compile off,on); every combination is run. "
        "--height/--width lists are paired element-wise (resolutions), then crossed with --frames.",
    )
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="transformer shapes")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--random-init", action="store_true", help="random weights (the default; no download)")
    source.add_argument("--model", help="a local diffusers folder (transformer/, vae/, scheduler/) instead")
    parser.add_argument("--frames", type=_csv(int), default=None, help="video frames (k*4+1); default per preset")
    parser.add_argument("--height", type=_csv(int), default=None, help="pixel height(s); default per preset")
    parser.add_argument("--width", type=_csv(int), default=None, help="pixel width(s); default per preset")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps for e2e (default 25, tiny 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each step / VAE call")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (compile happens here)")
    parser.add_argument("--e2e-repeats", type=int, default=1, help="timed end-to-end pipeline runs")
    parser.add_argument("--dtype", type=_csv(str, DTYPES), default=None, help="bf16 on CUDA, fp32 on CPU")
    parser.add_argument(
        "--pose-control",
        type=_csv(str, ("padaln", "uvt", "cross_attn", "none")),
        default=["padaln", "none"],
        help="pose structures; with none in the list, the table gets a PadaLN overhead column",
    )
    add_runtime_args(parser, sweep=True)  # infer.py's runtime flags, as comma lists
    parser.add_argument(
        "--compile-backend", default="inductor", choices=COMPILE_BACKENDS, help="torch.compile backend for --compile on"
    )
    parser.add_argument("--device", default=None, help="cuda if available, else cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (torch's default if unset); on a busy or small machine 1 gives stable tiny timings",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the rows and environment here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    for flag, default in SWEEP_DEFAULTS.items():  # eager unless a flag says otherwise
        if getattr(args, flag) is None:
            setattr(args, flag, [default])
    import torch  # after parsing: --help needs no torch

    tiny = args.preset.startswith("tiny")
    defaults = {"tiny": (9, 64, 64), "tiny-1.5": (9, 64, 64), "cogvideox-5b-i2v": (49, 480, 720)}
    f0, h0, w0 = defaults.get(args.preset, (81, 768, 1360))
    args.frames = args.frames or [f0]
    args.height = args.height or [h0]
    args.width = args.width or [w0]
    if len(args.height) != len(args.width):
        parser.error(f"--height has {len(args.height)} values and --width {len(args.width)}: they are paired")
    for f in args.frames:
        if f < 1 or (f - 1) % 4:
            parser.error(f"--frames {f}: must be k*4+1 (e.g. 9, 37, 49, 81)")
    missing = [s for s in ("transformer", "vae", "scheduler") if args.model and not (Path(args.model) / s).is_dir()]
    if missing:
        parser.error(
            f"--model {args.model} has no {', '.join(missing)}/ (a pipeline folder: transformer/ vae/ scheduler/)"
        )
    args.steps = args.steps or (4 if tiny else 25)
    args.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    args.dtype = args.dtype or (["bf16"] if args.device.type == "cuda" else ["fp32"])
    if args.model is not None and len(args.pose_control) > 1:
        parser.error("--model loads one checkpoint: give a single --pose-control matching it")
    return args


def settings_from_args(args: argparse.Namespace) -> list[Setting]:
    grid = itertools.product(
        args.frames,
        list(zip(args.height, args.width)),
        args.pose_control,
        args.dtype,
        args.memory,
        args.attention,
        args.compile,
        args.fuse_qkv,
        args.offload,
        args.vae_tiling,
        args.cache,
        args.fp8,
    )
    return [
        Setting(args.preset, f, h, w, pc, dt, mem, att, comp, fuse, off, tile, cache, fp8)
        for f, (h, w), pc, dt, mem, att, comp, fuse, off, tile, cache, fp8 in grid
    ]


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark of the command line ``argv``; prints the table, returns the report (also for tests)."""
    args = parse_args(argv)
    import torch

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.verbose:  # diffusers warns about dtype casts of modules with no fp32-only parts; not useful here
        import diffusers

        diffusers.utils.logging.set_verbosity_error()

    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        rows = run_all(args)
    finally:
        torch.set_num_threads(threads)  # run() is also called in-process (tests)
    add_padaln_overhead(rows)
    report = {"environment": environment(args.device), "steps": args.steps, "notes": NOTES, "rows": rows}
    print(markdown_table(rows))
    print()
    for note in NOTES:
        print(f"- {note}")
    print(f"- {report['environment']['device_name']} ({args.device}), torch {torch.__version__}, steps={args.steps}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return report


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure every setting of the sweep; a failing setting becomes a row with an ``error``."""
    import torch
    from tqdm import tqdm

    settings = settings_from_args(args)
    rows = []
    for setting in tqdm(settings, desc="settings", disable=len(settings) < 2):
        try:
            row = run_setting(
                setting,
                args.device,
                args.steps,
                args.warmup,
                args.repeats,
                args.e2e_repeats,
                model_dir=args.model,
                compile_backend=args.compile_backend,
                seed=args.seed,
            )
        except Exception as err:  # noqa: BLE001
            # any failing setting (out of memory, kernel unavailable, a size the VAE cannot tile, a bug) must not
            # lose the others: its row says why in the skipped column
            logger.warning("setting %s failed: %s", setting, err)
            reason = (str(err).strip().splitlines() or [""])[0][:200]  # one line, even for a message-less error
            row = {**asdict(setting), "error": f"{type(err).__name__}: {reason}".rstrip(": ")}
            if args.device.type == "cuda":
                torch.cuda.empty_cache()
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run(argv)
    return 0
