"""Evaluate prediction folders (and built-in baselines) against a ground-truth folder.

Ground truth uses the official / synthetic-world layout: ``videos/NAME.mp4`` and optionally ``masks/NAME.mp4``
(white person on black), ``references/NAME.png``, ``backgrounds/NAME.mp4``, ``parts/NAME.npz`` (the puppet
world's part labels and keypoints, for the arm metrics), ``prompts.txt`` (``NAME.mp4#####caption``) and
``meta.jsonl`` (one JSON object per clip with ``name`` and ``background``).
Predictions are ``PRED/NAME.mp4`` or ``PRED/videos/NAME.mp4``.

Pooling (``docs/evaluation.md``): per-frame image metrics (L1, SSIM, PSNR*, LPIPS) are averaged over all frames
of all videos, the protocol's convention, so longer videos weigh more; the ``clean`` PSNR is one value per video
(from the video's mean MSE) averaged over videos. Distribution metrics compare the prediction and ground-truth
feature sets: one feature per video for FID-VID and FVD, one per frame for FID. A prediction whose frame size
differs from the ground truth's is resized to it (bilinear), as the protocol does, and named in the notes
(``resize_pred=False`` refuses it instead). Metrics whose weight files are absent are skipped and listed, with the
reason, in the table's notes and the JSON's ``skipped``.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from dynamictrl.data.io import read_video
from dynamictrl.data.prompts import read_clip_prompts
from dynamictrl.puppet.draw import ARM_LABELS, PART_LABELS
from dynamictrl.puppet.export import read_parts

from . import synthetic_metrics as sm
from .baselines import check_baseline, make_baseline
from .frechet import frechet_distance
from .image_metrics import (
    DISCO_SIZE,
    FRAME_POOLED,
    VIDEO_POOLED,
    check_profile,
    disco_preprocess,
    frame_metrics,
    pool_video,
    resize_frames,
)
from .lpips import LPIPS, lpips_per_frame
from .video_metrics import PROTOCOL_INPUT_SIZES, fid_features, fidvid_features, fvd_features, load_backbone
from .weights import MissingWeightError, weights_dir_from

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = {
    "disco": [
        ("l1", "L1 ↓"),
        ("ssim", "SSIM ↑"),
        ("psnr_star", "PSNR* ↑"),
        ("psnr_legacy", "PSNR legacy-uint8 ↑"),
        ("lpips", "LPIPS ↓"),
        ("fid_vid", "FID-VID ↓"),
        ("fvd", "FVD ↓"),
        ("fid", "FID ↓"),
    ],
    "clean": [
        ("l1", "L1 ↓"),
        ("ssim", "SSIM ↑"),
        ("psnr", "PSNR ↑"),
        ("lpips", "LPIPS ↓"),
        ("fid_vid", "FID-VID ↓"),
        ("fvd", "FVD ↓"),
        ("fid", "FID ↓"),
    ],
}
SYNTHETIC_COLUMNS = [
    ("psnr_fg", "PSNR fg ↑"),
    ("psnr_bg", "PSNR bg ↑"),
    ("ssim_fg", "SSIM fg ↑"),
    ("ssim_bg", "SSIM bg ↑"),
    ("l1_fg", "L1 fg ↓"),
    ("l1_bg", "L1 bg ↓"),
    ("silhouette_iou", "silhouette IoU ↑"),
    ("arm_iou", "arm IoU ↑"),
    ("arm_keypoint_hits", "arm kp hits ↑"),
    ("bg_stats_adherence", "bg stats adh. ↑"),
    ("bg_palette_adherence", "bg palette adh. ↑"),
    ("drift_color_max", "drift colour ↓"),
    ("drift_identity_max", "drift identity ↓"),
    ("frame_diff", "frame diff"),
    ("temporal_error", "temporal err ↓"),
]
DISTRIBUTION_METRICS = ("fid_vid", "fvd", "fid")


@dataclass
class EvalConfig:
    """Options of one evaluation run. ``input_sizes`` overrides the backbones' input sizes ({"fid_vid": 32, ...})
    for quick checks on small inputs; keep the protocol's (the default) for any reported number."""

    profiles: tuple[str, ...] = ("disco", "clean")
    weights_dir: str | Path | None = None
    masks_dir: str | Path | None = None
    prompts_file: str | Path | None = None
    resize_pred: bool = True
    disco_size: int = DISCO_SIZE
    drift_clip_frames: int = 16
    silhouette_threshold: float = 32 / 255
    palette_tolerance: float = 48.0
    device: str = "cpu"
    input_sizes: dict[str, int] = field(default_factory=dict)
    show_progress: bool = True
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.profiles = tuple(check_profile(p) for p in self.profiles)
        if not self.profiles:
            raise ValueError("at least one profile is needed; allowed: ['disco', 'clean']")
        for kind, size in self.input_sizes.items():
            if kind not in PROTOCOL_INPUT_SIZES or int(size) < 1:
                raise ValueError(f"input size {kind}={size}: expected one of {sorted(PROTOCOL_INPUT_SIZES)} and N >= 1")
        self.input_sizes = {**PROTOCOL_INPUT_SIZES, **{k: int(v) for k, v in self.input_sizes.items()}}


# ---------------------------------------------------------------- inputs


def gt_names(gt_dir: Path) -> list[str]:
    """Names of the ground-truth clips (``videos/NAME.mp4``)."""
    names = sorted(p.stem for p in (gt_dir / "videos").glob("*.mp4"))
    if not names:
        raise FileNotFoundError(f"no ground-truth videos found: expected {gt_dir / 'videos'}/NAME.mp4")
    return names


def find_prediction(pred_dir: Path, name: str) -> Path:
    """``PRED/NAME.mp4`` or ``PRED/videos/NAME.mp4``."""
    for path in (pred_dir / f"{name}.mp4", pred_dir / "videos" / f"{name}.mp4"):
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no prediction for ground-truth clip {name!r}: expected {pred_dir / (name + '.mp4')} "
        f"or {pred_dir / 'videos' / (name + '.mp4')}"
    )


def read_meta(path: Path) -> dict[str, dict]:
    """meta.jsonl -> {NAME: record}; ``name`` may carry a directory or the .mp4 suffix."""
    meta = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({err})") from err
            if "name" not in record:
                raise ValueError(f"{path}:{line_no}: a meta record needs a 'name' field")
            meta[Path(str(record["name"])).stem] = record
    return meta


def named_background_colors(record: dict | None) -> list[list[int]]:
    """RGB colours the clip's background is described with (meta ``background``: ``color_rgb`` and
    ``secondary_rgb``, or ``color`` given as an RGB list or a colour name of the synthetic palette)."""
    if not record or not isinstance(record.get("background"), dict):
        return []
    bg = record["background"]
    colors = []
    for rgb_key, name_key in (("color_rgb", "color"), ("secondary_rgb", "secondary")):
        value = bg.get(rgb_key)
        if value is None:
            value = bg.get(name_key)
        if isinstance(value, str):
            from dynamictrl.puppet.palette import COLORS

            if value not in COLORS:
                raise ValueError(
                    f"meta background colour {value!r} is not a known colour name; known: {sorted(COLORS)}"
                )
            value = COLORS[value]
        if value is not None:
            if len(value) != 3:
                raise ValueError(f"meta background colour must be [r, g, b], got {value!r}")
            colors.append([int(v) for v in value])
    return colors


def read_gt_parts(path: Path, gt: np.ndarray, gt_path: Path) -> dict:
    """``labels`` (T, H, W), ``keypoints`` (T, 18, 2) and the ``arm_labels`` ids of a ``parts/NAME.npz`` file,
    checked against its ground-truth video (the arm ids are found by name, so the file's own table is used)."""
    data = read_parts(path)
    labels, names = data["labels"], [str(n) for n in data["names"]]
    _check_same(gt, labels, gt_path, path, "part labels")
    arm_names = {PART_LABELS[i] for i in ARM_LABELS}
    return {
        "labels": labels,
        "keypoints": data["keypoints"],
        "arm_labels": tuple(i for i, n in enumerate(names) if n in arm_names),
    }


def _first_names(names: list[str], shown: int = 5) -> str:
    """``"a, b, c, d, e..."``: the first ``shown`` names of a list for a note."""
    return ", ".join(names[:shown]) + ("..." if len(names) > shown else "")


def _check_same(
    ref: np.ndarray,
    other: np.ndarray,
    ref_path: Path,
    other_path: Path,
    what: str,
    size_hint: str = "the same frame size is needed",
) -> None:
    if len(other) != len(ref):
        raise ValueError(f"{other_path}: {len(other)} frames, but the ground truth {ref_path} has {len(ref)} ({what})")
    if other.shape[1:3] != ref.shape[1:3]:
        raise ValueError(
            f"{other_path}: frame size {other.shape[2]}x{other.shape[1]} (WxH), but the ground truth {ref_path} is "
            f"{ref.shape[2]}x{ref.shape[1]} ({what}; {size_hint})"
        )


# ---------------------------------------------------------------- backbones


class _Backbones:
    """Loads each weighted backbone once, recording hashes; records a skip reason when weights are missing."""

    def __init__(self, cfg: EvalConfig):
        self.cfg, self.models, self.hashes, self.skipped = cfg, {}, {}, {}
        self.weights_dir = weights_dir_from(cfg.weights_dir)

    def get(self, kind: str):
        if kind in self.skipped:
            return None
        if kind not in self.models:
            try:
                if kind == "lpips":
                    model, hashes = LPIPS.from_weights_dir(self.weights_dir)
                else:
                    model, hashes = load_backbone(kind, self.weights_dir)
            except MissingWeightError as err:
                self.skipped[kind] = str(err)
                logger.warning("skipping %s: %s", kind, err)
                return None
            if kind == "fid":
                model.input_size = self.cfg.input_sizes["fid"]
            self.models[kind] = model.to(self.cfg.device).eval()
            self.hashes.update(hashes)
        return self.models[kind]


# ---------------------------------------------------------------- main loop


def _finite(value):
    """JSON-safe floats: NaN -> None, +-inf -> "inf" / "-inf"."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def evaluate(
    gt_dir: str | Path,
    pred_dir: str | Path | None = None,
    baselines=(),
    cfg: EvalConfig | None = None,
    pred_label: str = "pred",
) -> dict:
    """Evaluate ``pred_dir`` and/or the named ``baselines`` against ``gt_dir``; returns the results dict."""
    cfg = cfg or EvalConfig()
    gt_dir = Path(gt_dir)
    sources: dict[str, Path | str] = {}
    if pred_dir is not None:
        sources[pred_label] = Path(pred_dir)
    for kind in baselines:
        sources[f"baseline:{check_baseline(kind)}"] = kind
    if not sources:
        raise ValueError("nothing to evaluate: give a prediction folder and/or at least one baseline")

    names = gt_names(gt_dir)
    pred_paths = {
        label: {n: find_prediction(src, n) for n in names} for label, src in sources.items() if isinstance(src, Path)
    }
    prompts_path = Path(cfg.prompts_file) if cfg.prompts_file else gt_dir / "prompts.txt"
    prompts = read_clip_prompts(prompts_path, stem=True) if prompts_path.is_file() else {}
    meta = read_meta(gt_dir / "meta.jsonl") if (gt_dir / "meta.jsonl").is_file() else {}
    masks_dir = Path(cfg.masks_dir) if cfg.masks_dir else gt_dir / "masks"
    backbones = _Backbones(cfg)

    per_frame = {lab: {p: defaultdict(list) for p in cfg.profiles} for lab in sources}  # metric -> [(T,) arrays]
    per_video_values = {lab: {p: defaultdict(list) for p in cfg.profiles} for lab in sources}  # metric -> [floats]
    feats = {lab: {p: defaultdict(list) for p in cfg.profiles} for lab in [*sources, "gt"]}
    synthetic = {lab: defaultdict(list) for lab in sources}
    per_video = {lab: {} for lab in sources}
    resolutions = {p: set() for p in cfg.profiles}
    total_frames = 0
    videos_without_mask, videos_without_parts = [], []
    resized = []
    notes = list(cfg.notes)

    for name in tqdm(names, desc="evaluating", disable=not cfg.show_progress):
        gt_path = gt_dir / "videos" / f"{name}.mp4"
        gt, _ = read_video(gt_path)  # (T, H, W, 3)
        total_frames += len(gt)
        mask = background = None
        mask_path = masks_dir / f"{name}.mp4"
        if mask_path.is_file():
            mask_video, _ = read_video(mask_path)
            _check_same(gt, mask_video, gt_path, mask_path, "person mask")
            mask = sm.mask_from_video(mask_video)  # (T, H, W) bool
        else:
            videos_without_mask.append(name)
        bg_path = gt_dir / "backgrounds" / f"{name}.mp4"
        if bg_path.is_file():
            background, _ = read_video(bg_path)
            _check_same(gt, background, gt_path, bg_path, "clean background")
        parts = None
        parts_path = gt_dir / "parts" / f"{name}.npz"
        if parts_path.is_file():
            parts = read_gt_parts(parts_path, gt, gt_path)
        else:
            videos_without_parts.append(name)
        named_colors = named_background_colors(meta.get(name))
        gt_by_profile = {p: disco_preprocess(gt, cfg.disco_size) if p == "disco" else gt for p in cfg.profiles}
        for p in cfg.profiles:
            resolutions[p].add(gt_by_profile[p].shape[1:3])
            _add_features(feats["gt"][p], gt_by_profile[p], backbones, cfg)

        for label, src in sources.items():
            if isinstance(src, Path):
                path = pred_paths[label][name]
                pred, _ = read_video(path)
                if cfg.resize_pred and len(pred) == len(gt) and pred.shape[1:3] != gt.shape[1:3]:
                    resized.append(f"{path} ({pred.shape[2]}x{pred.shape[1]})")
                    pred = resize_frames(pred, gt.shape[1], gt.shape[2])  # bilinear, as the protocol does
            else:
                path = Path(f"<baseline {src}>")
                pred = make_baseline(src, gt_dir, name, len(gt), gt.shape[1], gt.shape[2])
            _check_same(
                gt,
                pred,
                gt_path,
                path,
                "prediction",
                "resizing was turned off by --no-resize-pred; without it the prediction is resized",
            )
            video_out: dict = {"frames": len(gt), "prompt": prompts.get(name)}
            for p in cfg.profiles:
                pred_p = disco_preprocess(pred, cfg.disco_size) if p == "disco" else pred
                frames = frame_metrics(gt_by_profile[p], pred_p, p)
                video_out[p] = pool_video(frames, p)
                for key in FRAME_POOLED[p]:
                    per_frame[label][p][key].append(frames[key])
                for key in VIDEO_POOLED[p]:
                    per_video_values[label][p][key].append(video_out[p][key])
                lpips_model = backbones.get("lpips")
                if lpips_model is not None:
                    lp = lpips_per_frame(lpips_model, gt_by_profile[p], pred_p, p)
                    per_frame[label][p]["lpips"].append(lp)
                    video_out[p]["lpips"] = float(np.mean(lp))
                _add_features(feats[label][p], pred_p, backbones, cfg)
            syn = _synthetic(gt, pred, mask, background, parts, named_colors, cfg)
            for key, value in syn.items():
                synthetic[label][key].append(value)
            video_out["synthetic"] = syn
            per_video[label][name] = video_out

    if videos_without_mask:
        notes.append(
            f"no person mask in {masks_dir} for {len(videos_without_mask)} of {len(names)} videos "
            f"({_first_names(videos_without_mask)}): "
            "foreground/background, silhouette, background and drift metrics skipped for them"
        )
    if videos_without_parts:
        notes.append(
            f"no part labels in {gt_dir / 'parts'} for {len(videos_without_parts)} of {len(names)} videos "
            f"({_first_names(videos_without_parts)}): arm IoU and "
            "arm keypoint hits skipped for them (puppet-world datasets written before part labels existed: "
            "regenerate them with tools/make_synthetic.py)"
        )
    off_protocol = {k: v for k, v in cfg.input_sizes.items() if v != PROTOCOL_INPUT_SIZES[k] and k in backbones.models}
    if off_protocol:
        notes.append(
            "backbone input sizes changed from the protocol's "
            + ", ".join(f"{k} {v} (protocol {PROTOCOL_INPUT_SIZES[k]})" for k, v in off_protocol.items())
            + ": those values are not comparable with published numbers"
        )
    if resized:
        notes.append(
            f"{len(resized)} prediction(s) resized (bilinear) to the ground truth's frame size: "
            f"{', '.join(resized[:5])}{'...' if len(resized) > 5 else ''}"
        )
    results = {
        "gt_dir": str(gt_dir),
        "profiles": {},
        "sources": {},
        "videos": len(names),
        "frame_count": total_frames,
        "weights": dict(sorted(backbones.hashes.items())),
        "input_sizes": dict(cfg.input_sizes),
        "skipped": {},
        "notes": notes,
    }
    for p in cfg.profiles:
        res = sorted(resolutions[p])
        results["profiles"][p] = {
            "resolution": [list(r) for r in res],
            "resolution_note": "square centre crop, bilinear resize" if p == "disco" else "native resolution",
            "frame_count": total_frames,
        }
    for kind, reason in backbones.skipped.items():
        metrics = ["lpips"] if kind == "lpips" else [kind]
        for m in metrics:
            results["skipped"][m] = reason
    for label in sources:
        entry = {"source": str(sources[label]), "per_video": per_video[label]}
        for p in cfg.profiles:
            agg = {k: float(np.mean(np.concatenate(v))) for k, v in per_frame[label][p].items()}
            agg.update({k: float(np.mean(v)) for k, v in per_video_values[label][p].items()})
            for kind in DISTRIBUTION_METRICS:
                if kind in backbones.skipped:
                    continue
                a, b = feats[label][p].get(kind), feats["gt"][p].get(kind)
                if not a:
                    continue
                try:
                    agg[kind], fd_notes = frechet_distance(np.stack(a), np.stack(b))
                    for note in fd_notes:
                        msg = f"{kind} ({p}): {note}"
                        if msg not in results["notes"]:
                            results["notes"].append(msg)
                except ValueError as err:
                    results["skipped"].setdefault(kind, str(err))
            entry[p] = agg
        entry["synthetic"] = {
            k: float(np.nanmean(v)) if not np.isnan(v).all() else math.nan for k, v in synthetic[label].items()
        }
        results["sources"][label] = entry
    return _finite(results)


def _add_features(store: dict, frames: np.ndarray, backbones: _Backbones, cfg: EvalConfig) -> None:
    for kind in DISTRIBUTION_METRICS:
        model = backbones.get(kind)
        if model is None:
            continue
        if kind == "fid_vid":
            store[kind].append(fidvid_features(model, frames, cfg.input_sizes["fid_vid"]))
        elif kind == "fvd":
            store[kind].append(fvd_features(model, frames, cfg.input_sizes["fvd"]))
        else:
            store[kind].extend(fid_features(model, frames))


def _synthetic(gt, pred, mask, background, parts, named_colors, cfg: EvalConfig) -> dict[str, float]:
    out = sm.frame_consistency(gt, pred)
    if parts is not None and background is not None:
        labels, arms, threshold = parts["labels"], parts["arm_labels"], cfg.silhouette_threshold
        out["arm_iou"] = sm.arm_iou(pred, background, labels, threshold, arms)
        out["arm_keypoint_hits"] = sm.arm_keypoint_hits(pred, background, labels, parts["keypoints"], threshold, arms)
    if mask is None:
        return out
    out.update(sm.region_metrics(gt, pred, mask))
    out.update(sm.temporal_drift(pred, mask, cfg.drift_clip_frames))
    if background is not None:
        out["silhouette_iou"] = sm.silhouette_iou(pred, background, mask, cfg.silhouette_threshold)
        out["bg_stats_adherence"] = sm.background_stats_adherence(pred, mask, background)
    if named_colors:
        out["bg_palette_adherence"] = sm.background_palette_adherence(pred, mask, named_colors, cfg.palette_tolerance)
    return out


# ---------------------------------------------------------------- reporting


def _fmt(value) -> str:
    if value is None:
        return "nan"
    if isinstance(value, str):
        return value
    if value != 0 and abs(value) < 1e-2:
        return f"{value:.3e}"
    return f"{value:.4f}"


def markdown_table(results: dict) -> str:
    """Markdown tables (one per profile, one for the synthetic-world metrics) plus notes on skipped metrics."""
    lines = []
    skipped = results.get("skipped", {})
    for profile, info in results["profiles"].items():
        res = ", ".join(f"{w}x{h}" for h, w in info["resolution"])
        lines.append(
            f"### `{profile}` profile ({info['resolution_note']}: {res}; {results['videos']} videos, "
            f"{info['frame_count']} frames)"
        )
        cols = IMAGE_COLUMNS[profile]
        lines.append("| source | " + " | ".join(title for _, title in cols) + " |")
        lines.append("|---" * (len(cols) + 1) + "|")
        for label, entry in results["sources"].items():
            cells = []
            for key, _ in cols:
                if key in entry[profile]:
                    cells.append(_fmt(entry[profile][key]))
                else:
                    cells.append("skipped*" if key in skipped else "n/a")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    syn_keys = [(k, t) for k, t in SYNTHETIC_COLUMNS if any(k in e["synthetic"] for e in results["sources"].values())]
    if syn_keys:
        lines.append("### synthetic-world metrics (native resolution, pixels on [0, 1]; PSNR in dB)")
        lines.append("| source | " + " | ".join(t for _, t in syn_keys) + " |")
        lines.append("|---" * (len(syn_keys) + 1) + "|")
        for label, entry in results["sources"].items():
            lines.append(f"| {label} | " + " | ".join(_fmt(entry["synthetic"].get(k)) for k, _ in syn_keys) + " |")
        lines.append("")
    if skipped:
        lines.append("\\* skipped metrics:")
        lines += [f"- {metric}: {reason}" for metric, reason in skipped.items()]
    if results.get("notes"):
        lines.append("Notes:")
        lines += [f"- {note}" for note in results["notes"]]
    if results.get("weights"):
        lines.append("Weight files (sha256): " + ", ".join(f"{k} {v[:12]}…" for k, v in results["weights"].items()))
    return "\n".join(lines)


def write_results(results: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, allow_nan=False), encoding="utf-8")
    return path
