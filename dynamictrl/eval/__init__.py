"""Evaluation harness: the paper's metrics in the ``disco`` and ``clean`` profiles (see EVAL_PROTOCOL.md) and
download-free metrics for the synthetic puppet world. Entry points: :func:`dynamictrl.eval.runner.evaluate` and
``scripts/evaluate.py``."""

from .image_metrics import PROFILES, frame_metrics, l1, psnr, psnr_legacy_uint8, ssim
from .runner import EvalConfig, evaluate, markdown_table, write_results

__all__ = ["PROFILES", "EvalConfig", "evaluate", "frame_metrics", "l1", "markdown_table", "psnr",
           "psnr_legacy_uint8", "ssim", "write_results"]
