"""Quality gate of the shipped tiny model, judged on held-out puppet-world clips its margins were not chosen on.

Clips: the synthetic world's test split (motion families and tempos never seen in training), seeds ``GATE_SEEDS``,
generated here (no data files), 64x64, 9 frames, 10 sampling steps, guidance 3.0, sampling seed 0. Two protocols:

- ``other-pose``: the reference is the same puppet in another pose and place; the pose video starts with the
  reference's own pose (the official convention), then the clip's driving poses;
- ``first-frame``: the reference is the clip's first frame and the pose video is the clip's own.

Frames 1-8 are compared with the ground truth: silhouette IoU (pose following) and foreground PSNR (the person
drawn where it is), per clip, averaged over clips. The bar is "repeat the reference" (the reference shown for every
frame); the gate asks ``model >= repeat + margin`` for both metrics and both protocols. A negative margin is a
tolerance: where the model did not beat doing nothing on the selection clips, it may not fall further behind.

How the margins were chosen (never on the gate clips): on ``SELECTION_SEEDS``, 16 clips of the *val* split (its
own held-out families and tempos), per clip d = model - repeat; margin = mean(d) - 2 sd(d) / sqrt(12) (two
standard errors of a 12-clip mean, what the gate averages), rounded down to 0.01 IoU / 0.1 dB. Command (the
gate itself costs about 25 s of CPU on one thread; the selection run a third more)::

    python tests/test_embedded_model.py            # selection clips: means, per-clip spread, the margins
    python tests/test_embedded_model.py --gate     # the same table on the gate clips

Measured on the selection clips (mean over 16; model / repeat / pose-strokes rule):

    other-pose   IoU      0.559 / 0.366 / 0.801    d = +0.193, sd 0.171  ->  margin +0.09
    other-pose   fg PSNR  12.27 / 9.53 / 12.30 dB  d = +2.74,  sd 1.36   ->  margin +1.9 dB
    first-frame  IoU      0.658 / 0.696 / 0.802    d = -0.038, sd 0.140  ->  margin -0.12
    first-frame  fg PSNR  14.19 / 13.41 / 12.29 dB d = +0.79,  sd 2.54   ->  margin -0.7 dB

Measured on the gate clips (mean over 12; model / repeat / pose-strokes rule; the gate's bar in brackets):

    other-pose   IoU      0.538 / 0.344 / 0.801    [0.434]
    other-pose   fg PSNR  12.24 / 8.95 / 13.08 dB  [10.85]
    first-frame  IoU      0.651 / 0.755 / 0.804    [0.635]
    first-frame  fg PSNR  14.69 / 14.77 / 13.38 dB [14.07]

A model that ignores the poses (repeat the reference) fails the positive other-pose margins by construction. The
pose-strokes rule (:func:`dynamictrl.eval.baselines.pose_strokes`: no model; the target keypoints drawn as thick
strokes, a torso quad and a head disc, sized and coloured from the reference, on the reference's wall) is the
adversary: it copies pose geometry and reference colours and nothing else. What it shows, plainly:

- it follows the poses far better than this model (IoU 0.80 vs 0.54 other-pose, 0.65 first-frame), draws the
  person better from another pose too (fg PSNR 13.08 vs 12.24 dB), and passes both other-pose criteria;
- it fails the gate only on first-frame foreground PSNR (0.7 dB under the bar), because it repaints the person in
  flat part colours and loses what the first frame shows (face, hair, shading, patterns): 1.4 dB under repeating
  the first frame, where the model stays within 0.1 dB of it. A rule allowing more first-frame slack would let it
  pass (the same margin rule applied to the gate clips gives -1.9 dB). This separation is thin: the v0 model does
  not beat a fair hand-written rule at following poses, which
  ``test_model_follows_the_poses_better_than_the_pose_strokes_rule`` records as a strict expected failure (it
  turns red, to be un-marked, once a model does better);
- from the first frame, the model's foreground lead over doing nothing is within the clip-to-clip spread (+0.79
  dB on the selection clips, -0.07 dB on the gate clips) and its silhouette trails (the gate holds it to the
  tolerances above); only with a reference in another pose does it clearly move the person.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dynamictrl.eval.baselines import pose_strokes
from dynamictrl.eval.synthetic_metrics import arm_iou, region_metrics, silhouette_iou
from dynamictrl.pose.render import render_pose_sequence
from dynamictrl.puppet import make_sample

MODEL = Path(__file__).resolve().parents[1] / "dynamictrl" / "assets" / "models" / "dynamictrl-tiny"
GATE_SPLIT, GATE_SEEDS = "test", tuple(range(300_000, 300_012))  # judged here; never used to choose margins
SELECTION_SPLIT, SELECTION_SEEDS = "val", tuple(range(200_000, 200_016))  # margins chosen on these
PROTOCOLS = ("other-pose", "first-frame")
METRICS = ("iou", "psnr_fg", "arm_iou")  # arm IoU is reported by the tables below, not (yet) gated
STEPS = 10  # what `make demo` uses
# (protocol, metric) -> margin over "repeat the reference"; chosen on the selection clips (module docstring).
MARGINS = {
    ("other-pose", "iou"): 0.09,
    ("other-pose", "psnr_fg"): 1.9,
    ("first-frame", "iou"): -0.12,
    ("first-frame", "psnr_fg"): -0.7,
}


def _inputs(clip, protocol: str):
    """(reference image, its keypoints, pose video) of ``protocol`` for one clip."""
    if protocol == "other-pose":
        poses = np.concatenate([render_pose_sequence(clip.reference_pose, 64, 64), clip.pose_video[1:]])
        return clip.reference, clip.reference_pose, poses
    return clip.video[0], clip.keypoints[0:1], clip.pose_video


def measure(pipe, split: str, seeds) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Per-clip scores: ``{protocol: {"model" | "repeat" | "pose_strokes": {metric: (clips,) array}}}``."""
    scores = {p: {k: {m: [] for m in METRICS} for k in ("model", "repeat", "pose_strokes")} for p in PROTOCOLS}
    for seed in seeds:
        clip = make_sample(seed, split=split, size=64, frames=9, style="demo")
        for protocol in PROTOCOLS:
            reference, reference_pose, poses = _inputs(clip, protocol)
            result = pipe(
                image=reference,
                pose_video=poses,
                prompt=clip.caption,
                num_frames=9,
                height=64,
                width=64,
                num_inference_steps=STEPS,
                guidance_scale=3.0,
                generator=torch.Generator().manual_seed(0),
                output_type="np",
            )
            videos = {
                "model": (np.asarray(result.frames)[0] * 255 + 0.5).astype(np.uint8),  # (T, H, W, 3)
                "repeat": np.repeat(reference[None], 9, axis=0),
                "pose_strokes": pose_strokes(reference, reference_pose, clip.keypoints),
            }
            gt, masks, background = clip.video[1:], clip.masks[1:], clip.background[1:]
            for name, video in videos.items():
                scores[protocol][name]["iou"].append(silhouette_iou(video[1:], background, masks))
                scores[protocol][name]["psnr_fg"].append(region_metrics(gt, video[1:], masks)["psnr_fg"])
                scores[protocol][name]["arm_iou"].append(arm_iou(video[1:], background, clip.parts[1:]))
    return {p: {k: {m: np.asarray(v) for m, v in d.items()} for k, d in c.items()} for p, c in scores.items()}


def gate_failures(scores, candidate: str) -> list[str]:
    """The gate's criteria that ``candidate`` misses (empty: it passes), as readable lines."""
    failures = []
    for (protocol, metric), margin in MARGINS.items():
        value = scores[protocol][candidate][metric].mean()
        bar = scores[protocol]["repeat"][metric].mean() + margin
        if not value >= bar:
            failures.append(f"{protocol} {metric}: {value:.3f} < repeat-the-reference {margin:+.2f} = {bar:.3f}")
    return failures


def _load_pipeline():
    from dynamictrl.pipelines import DynamiCtrlPipeline

    pipe = DynamiCtrlPipeline.from_pretrained(MODEL)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def gate_scores():
    return measure(_load_pipeline(), GATE_SPLIT, GATE_SEEDS)


def test_model_passes_the_gate_on_other_pose_references(gate_scores):
    failures = [f for f in gate_failures(gate_scores, "model") if f.startswith("other-pose")]
    assert not failures, failures


def test_model_passes_the_gate_on_first_frame_references(gate_scores):
    failures = [f for f in gate_failures(gate_scores, "model") if f.startswith("first-frame")]
    assert not failures, failures


def test_repeating_the_reference_fails_the_gate(gate_scores):
    assert gate_failures(gate_scores, "repeat")


def test_pose_strokes_rule_fails_the_gate(gate_scores):
    assert gate_failures(gate_scores, "pose_strokes")


def test_pose_strokes_rule_passes_the_other_pose_criteria(gate_scores):
    # The adversary is not a straw man: it follows the poses (it fails the gate elsewhere, see the docstring).
    failures = [f for f in gate_failures(gate_scores, "pose_strokes") if f.startswith("other-pose")]
    assert not failures, failures


@pytest.mark.xfail(strict=True, reason="v0 does not: silhouette IoU 0.54 vs 0.80 on the gate clips (issue 17)")
def test_model_follows_the_poses_better_than_the_pose_strokes_rule(gate_scores):
    for protocol in PROTOCOLS:
        iou = {k: gate_scores[protocol][k]["iou"].mean() for k in ("model", "pose_strokes")}
        assert iou["model"] >= iou["pose_strokes"], f"{protocol}: {iou}"


def _report(split: str, seeds) -> None:
    scores = measure(_load_pipeline(), split, seeds)
    n_gate = len(GATE_SEEDS)
    print(f"{split} seeds {seeds[0]}..{seeds[-1]} ({len(seeds)} clips); model / repeat / pose_strokes")
    for protocol, metric in MARGINS:
        s = scores[protocol]
        d = s["model"][metric] - s["repeat"][metric]
        step = 0.01 if metric == "iou" else 0.1
        margin = math.floor((d.mean() - 2 * d.std(ddof=1) / math.sqrt(n_gate)) / step) * step
        means = " / ".join(f"{s[k][metric].mean():.3f}" for k in ("model", "repeat", "pose_strokes"))
        print(
            f"{protocol:12s} {metric:8s} {means}  d = {d.mean():+.3f} sd {d.std(ddof=1):.3f}  rule margin {margin:+.2f}"
        )
    for protocol in PROTOCOLS:  # the arm metric (docs/evaluation.md), not gated: model / repeat / pose_strokes
        s = scores[protocol]
        d = s["model"]["arm_iou"] - s["repeat"]["arm_iou"]
        means = " / ".join(f"{s[k]['arm_iou'].mean():.3f}" for k in ("model", "repeat", "pose_strokes"))
        print(f"{protocol:12s} arm_iou  {means}  d = {d.mean():+.3f} sd {d.std(ddof=1):.3f}")
    for candidate in ("model", "repeat", "pose_strokes"):
        print(candidate, "fails:", gate_failures(scores, candidate) or "nothing")


if __name__ == "__main__":
    _report(GATE_SPLIT, GATE_SEEDS) if "--gate" in sys.argv else _report(SELECTION_SPLIT, SELECTION_SEEDS)
