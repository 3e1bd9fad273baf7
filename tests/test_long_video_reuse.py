"""Long videos reuse work across clips: encodings through the condition cache (exact), compiled blocks (no recompile).

The tiny 1.5 model on CPU; 25 pose frames in clips of 9 (overlap 1) are three clips of equal length, and
``anchor_every=2`` puts the original reference back for clip 2.
"""

from __future__ import annotations

import numpy as np
import torch

from dynamictrl.acceleration import ConditionCache
from dynamictrl.acceleration.runtime import RuntimeConfig, apply_runtime
from dynamictrl.models.tiny import build_tiny_components
from dynamictrl.pipelines import DynamiCtrlPipeline
from dynamictrl.pipelines.conditioning import vae_encode
from dynamictrl.pipelines.long_video import sample_long_video

SIZE = 32


def _pipeline() -> DynamiCtrlPipeline:
    pipe = DynamiCtrlPipeline(**build_tiny_components("tiny-1.5"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _looped_poses(frames: int = 25, period: int = 8) -> np.ndarray:
    """A pose video that repeats every ``period`` frames: with clips of 9 starting at 0, 8, 16 every clip's pose
    segment is the same frames (the anchored clip 2 takes frame 0 for its first, which equals frame 16)."""
    loop = np.random.default_rng(1).integers(0, 256, (period, SIZE, SIZE, 3), dtype=np.uint8)
    return loop[np.arange(frames) % period]


REFERENCE = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
KWARGS = dict(clip_frames=9, anchor_every=2, num_inference_steps=2, guidance_scale=2.0, progress=False)


def _count_encoder_calls(pipe, monkeypatch) -> list[int]:
    """Frames of every input the VAE encoder runs on (1: a reference image, 9: a pose segment)."""
    calls: list[int] = []
    encode = pipe.vae.encode

    def counting_encode(x, *args, **kwargs):
        calls.append(x.shape[2])
        return encode(x, *args, **kwargs)

    monkeypatch.setattr(pipe.vae, "encode", counting_encode)
    return calls


def test_long_video_with_anchors_is_bit_identical_with_and_without_the_condition_cache_and_encodes_less(monkeypatch):
    pipe = _pipeline()
    calls = _count_encoder_calls(pipe, monkeypatch)
    poses = _looped_poses()

    uncached = sample_long_video(pipe, REFERENCE, poses, "a dancer", cache=False, **KWARGS)
    assert [c.anchored for c in uncached.clips] == [True, False, True]
    assert sorted(calls) == [1, 1, 1, 9, 9, 9]  # every clip encodes its reference and its pose segment
    calls.clear()

    cache = ConditionCache()
    cached = sample_long_video(pipe, REFERENCE, poses, "a dancer", cache=cache, **KWARGS)
    # the original reference once (clip 0; clip 2 reuses it), clip 1's chained reference, one pose segment for all
    assert sorted(calls) == [1, 1, 9]
    np.testing.assert_array_equal(cached.frames, uncached.frames)
    assert pipe.condition_cache is None  # the caller's cache was attached for the video only
    calls.clear()

    rerun = sample_long_video(pipe, REFERENCE, poses, "a dancer", cache=cache, **KWARGS)
    assert calls == []  # a re-run with the same cache encodes nothing
    np.testing.assert_array_equal(rerun.frames, uncached.frames)


def test_the_default_cache_reuses_the_reference_of_anchored_clips_and_keeps_the_frames(monkeypatch):
    pipe = _pipeline()
    calls = _count_encoder_calls(pipe, monkeypatch)
    poses = np.random.default_rng(2).integers(0, 256, (25, SIZE, SIZE, 3), dtype=np.uint8)  # nothing repeats
    cached = sample_long_video(pipe, REFERENCE, poses, "a dancer", **KWARGS)
    assert calls.count(1) == 2 and calls.count(9) == 3  # clip 2 reuses clip 0's reference; 3 pose segments
    calls.clear()
    uncached = sample_long_video(pipe, REFERENCE, poses, "a dancer", cache=False, **KWARGS)
    assert calls.count(1) == 3
    np.testing.assert_array_equal(cached.frames, uncached.frames)


def test_a_cached_posterior_is_sampled_with_the_callers_generator_as_an_uncached_one():
    vae = _pipeline().vae
    video = torch.rand(1, 3, 5, SIZE, SIZE) * 2 - 1
    cache = ConditionCache()
    samples = []
    for use in (None, cache, cache):  # uncached, a miss, a hit
        generator = torch.Generator().manual_seed(7)
        samples.append(vae_encode(vae, video, use, kind="video").latent_dist.sample(generator))
        samples.append(torch.randn(3, generator=generator))  # the generator's state after the call
    assert cache.misses == 1 and cache.hits == 1
    for got in (samples[2:4], samples[4:6]):
        for a, b in zip(got, samples[:2], strict=True):
            assert torch.equal(a, b)


def test_the_vae_cache_key_includes_the_tiling_setting():
    pipe = _pipeline()
    video = torch.rand(1, 3, 5, 2 * SIZE, 2 * SIZE) * 2 - 1
    cache = ConditionCache()
    untiled = vae_encode(pipe.vae, video, cache, kind="video").latent_dist.mean
    pipe.enable_vae_tiling()
    tiled = vae_encode(pipe.vae, video, cache, kind="video").latent_dist.mean  # other values: must not hit
    assert (cache.misses, cache.hits) == (2, 0)
    assert not torch.equal(tiled, untiled)


def test_compiled_blocks_are_reused_across_clips_without_recompiling():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    pipe = apply_runtime(_pipeline(), RuntimeConfig(compile=True, compile_backend="aot_eager"), "cpu")
    seen: list[tuple[int, int]] = []

    def after_step(pipe, step, timestep, tensors):
        seen.append((counters["frames"]["total"], counters["stats"]["unique_graphs"]))  # compile attempts, graphs
        return {}

    poses = np.random.default_rng(2).integers(0, 256, (25, SIZE, SIZE, 3), dtype=np.uint8)
    result = sample_long_video(pipe, REFERENCE, poses, "a dancer", callback_on_step_end=after_step, **KWARGS)
    assert len(result.clips) == 3 and len(seen) == 3 * KWARGS["num_inference_steps"]
    first_clip = seen[KWARGS["num_inference_steps"] - 1]
    assert first_clip[1] > 0  # the blocks were compiled during clip 0
    assert seen[-1] == first_clip  # clips 1 and 2: no new compile attempt, no new graph


def test_without_anchors_a_repeated_pose_segment_is_encoded_once_and_each_chained_reference_anew(monkeypatch):
    pipe = _pipeline()
    calls = _count_encoder_calls(pipe, monkeypatch)
    sample_long_video(pipe, REFERENCE, _looped_poses(), "a dancer", **{**KWARGS, "anchor_every": 0})
    # chained references are new frames every clip; clip 0's pose segment repeats in clips 1 and 2
    assert sorted(calls) == [1, 1, 1, 9]
