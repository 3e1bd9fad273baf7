"""Pose tools: keypoint format, rendering (DWPose or official DynamiCtrl style, see :mod:`.render`), retargeting, smoothing and DWPose extraction.

Heavy or optional parts (ONNX Runtime extraction) are imported lazily inside the functions that need them.
"""

from dynamictrl.pose.inputs import (
    PoseExtractor,
    fit_to_frame,
    load_pose_input,
    looks_like_rendered_pose,
    official_preprocessing,
)
from dynamictrl.pose.keypoints import BODY_KEYPOINTS, PoseSequence
from dynamictrl.pose.render import STYLES, draw_pose, render_pose_sequence
from dynamictrl.pose.retarget import retarget
from dynamictrl.pose.smoothing import fill_gaps, one_euro_filter, smooth_pose_sequence

__all__ = [
    "BODY_KEYPOINTS",
    "PoseExtractor",
    "PoseSequence",
    "STYLES",
    "draw_pose",
    "fill_gaps",
    "fit_to_frame",
    "load_pose_input",
    "looks_like_rendered_pose",
    "official_preprocessing",
    "one_euro_filter",
    "render_pose_sequence",
    "retarget",
    "smooth_pose_sequence",
]
