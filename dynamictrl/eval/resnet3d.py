"""3D ResNet-50 (Kinetics-400) for FID-VID, in the key layout of ``resnet-50-kinetics.pth``.

That file (kenshohara/3D-ResNets-PyTorch) is ``{"arch", "state_dict", ...}`` with ``module.``-prefixed keys:
``conv1``, ``bn1``, ``layer{1..4}.{i}.{conv1,bn1,conv2,bn2,conv3,bn3}``, shortcut type B
(``downsample.0`` conv, ``downsample.1`` BN) and ``fc`` (400 classes). FID-VID uses the 2048-d pooled features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RESNET50_LAYERS = (3, 4, 6, 3)
FIDVID_MEAN = (114.7748, 107.7354, 99.4750)  # ActivityNet mean on the 0-255 scale, the protocol's normalisation


class Bottleneck3d(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv3d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


class ResNet3D50(nn.Module):
    """3D ResNet-50: ``features(x)`` maps (N, 3, T, H, W) clips (mean-subtracted, 0-255 scale) to (N, 2048).

    The published model pools with ``AvgPool3d((ceil(T/16), ceil(H/32), ceil(W/32)))``, which for its
    16x112x112 input covers the whole final map; we average the whole final map, which is the same there and
    also works on the tiny inputs used in tests.
    """

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, kernel_size=7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.in_planes = 64
        self.layer1 = self._make_layer(64, RESNET50_LAYERS[0], stride=1)
        self.layer2 = self._make_layer(128, RESNET50_LAYERS[1], stride=2)
        self.layer3 = self._make_layer(256, RESNET50_LAYERS[2], stride=2)
        self.layer4 = self._make_layer(512, RESNET50_LAYERS[3], stride=2)
        self.fc = nn.Linear(512 * Bottleneck3d.expansion, num_classes)
        self.eval()

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_planes != planes * Bottleneck3d.expansion:
            downsample = nn.Sequential(
                nn.Conv3d(self.in_planes, planes * 4, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(planes * 4),
            )
        layers = [Bottleneck3d(self.in_planes, planes, stride, downsample)]
        self.in_planes = planes * 4
        layers += [Bottleneck3d(self.in_planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (N, 2048, T', H', W')
        return x.mean(dim=(2, 3, 4))  # (N, 2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
