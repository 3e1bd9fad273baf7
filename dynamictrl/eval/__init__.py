"""Evaluation harness: the paper's metrics in the ``disco`` and ``clean`` profiles (see docs/evaluation.md) and
download-free metrics for the synthetic puppet world. Entry points: :func:`dynamictrl.eval.runner.evaluate` and
``scripts/evaluate.py``. Names are imported on first use (:mod:`dynamictrl._lazy`): ``--help`` needs no torch."""

from typing import TYPE_CHECKING

from dynamictrl._lazy import lazy_getattr

_EXPORTS = {
    **dict.fromkeys(["PROFILES", "frame_metrics", "l1", "psnr", "psnr_legacy_uint8", "ssim"], ".image_metrics"),
    **dict.fromkeys(["EvalConfig", "evaluate", "markdown_table", "write_results"], ".runner"),
}
__all__ = [
    "EvalConfig",
    "PROFILES",
    "evaluate",
    "frame_metrics",
    "l1",
    "markdown_table",
    "psnr",
    "psnr_legacy_uint8",
    "ssim",
    "write_results",
]
__getattr__ = lazy_getattr(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .image_metrics import PROFILES, frame_metrics, l1, psnr, psnr_legacy_uint8, ssim
    from .runner import EvalConfig, evaluate, markdown_table, write_results
