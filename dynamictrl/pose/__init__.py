"""Pose tools: keypoint format, DWPose-style rendering, retargeting, smoothing and DWPose extraction."""

from dynamictrl.pose.keypoints import BODY_KEYPOINTS, PoseSequence
from dynamictrl.pose.render import draw_pose, render_pose_sequence

__all__ = ["BODY_KEYPOINTS", "PoseSequence", "draw_pose", "render_pose_sequence"]
