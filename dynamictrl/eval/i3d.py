"""Inception-I3D (Kinetics-400) for FVD, in the key layout of ``i3d_pretrained_400.pt``.

That file (VideoGPT's port of piergiaj/pytorch-i3d) is a plain state dict: ``Conv3d_1a_7x7.conv3d.weight``,
``{unit}.bn.{weight,bias,running_mean,running_var}``, ``Mixed_3b.b0`` / ``b1a`` / ``b1b`` / ``b2a`` / ``b2b`` /
``b3b`` ..., and ``logits.conv3d.{weight,bias}``. Convolutions and pools use TensorFlow "SAME" padding computed
from the input size; BatchNorm eps is 1e-5 as in that port. FVD uses the 400 logits averaged over time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    (t_f, t_b), (h_f, h_b), (w_f, w_b) = (_same_pad(s, k, st) for s, k, st in zip(x.shape[2:], kernel, stride))
    return F.pad(x, (w_f, w_b, h_f, h_b, t_f, t_b))  # zeros, as the published port pads


class Unit3D(nn.Module):
    """Conv3d (no bias unless ``use_bias``) + optional BatchNorm + optional ReLU, with SAME padding."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel=(1, 1, 1),
        stride=(1, 1, 1),
        use_bn: bool = True,
        use_bias: bool = False,
        relu: bool = True,
    ):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(in_ch, out_ch, kernel_size=self.kernel, stride=self.stride, bias=use_bias)
        self.bn = nn.BatchNorm3d(out_ch, eps=1e-5, momentum=0.001) if use_bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule3d(nn.Module):
    """Four branches: 1x1; 1x1->3x3; 1x1->3x3; maxpool->1x1. ``widths`` = (b0, b1a, b1b, b2a, b2b, b3b)."""

    def __init__(self, in_ch: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(in_ch, widths[0])
        self.b1a = Unit3D(in_ch, widths[1])
        self.b1b = Unit3D(widths[1], widths[2], kernel=(3, 3, 3))
        self.b2a = Unit3D(in_ch, widths[3])
        self.b2b = Unit3D(widths[3], widths[4], kernel=(3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_ch, widths[5])
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


# (name, in_channels, widths) of every Inception block, in order, with the pools between them.
I3D_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3D(nn.Module):
    """I3D: ``forward(x)`` maps (N, 3, T, H, W) clips in [-1, 1] to (N, num_classes) logits averaged over time."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, kernel=(7, 7, 7), stride=(2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, kernel=(3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule3d(*I3D_MIXED["Mixed_3b"])
        self.Mixed_3c = InceptionModule3d(*I3D_MIXED["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            setattr(self, name, InceptionModule3d(*I3D_MIXED[name]))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule3d(*I3D_MIXED["Mixed_5b"])
        self.Mixed_5c = InceptionModule3d(*I3D_MIXED["Mixed_5c"])
        self.logits = Unit3D(1024, num_classes, use_bn=False, use_bias=True, relu=False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in (
            "Conv3d_1a_7x7",
            "MaxPool3d_2a_3x3",
            "Conv3d_2b_1x1",
            "Conv3d_2c_3x3",
            "MaxPool3d_3a_3x3",
            "Mixed_3b",
            "Mixed_3c",
            "MaxPool3d_4a_3x3",
            "Mixed_4b",
            "Mixed_4c",
            "Mixed_4d",
            "Mixed_4e",
            "Mixed_4f",
            "MaxPool3d_5a_2x2",
            "Mixed_5b",
            "Mixed_5c",
        ):
            x = getattr(self, name)(x)
        # The published AvgPool3d([2, 7, 7], stride 1): for 16x224x224 inputs the map is 2x7x7. The kernel is
        # clipped to the map for the smaller inputs used in tests (identical at the protocol's size).
        kernel = (min(2, x.shape[2]), min(7, x.shape[3]), min(7, x.shape[4]))
        x = self.logits(F.avg_pool3d(x, kernel, stride=1))  # (N, classes, T'', H'', W'')
        return x.mean(dim=(2, 3, 4))  # spatial is 1x1 at 224; averaged over time as the FVD code does
