"""LPIPS (v0.1, VGG) defined in our code, loading the published weight files unchanged.

Two files are needed: torchvision's ImageNet VGG16 (``vgg16-397923af.pth``, keys ``features.{i}.weight``)
and the LPIPS v0.1 linear heads (``vgg.pth``, keys ``lin{k}.model.1.weight``, shape (1, C_k, 1, 1)).

Input scaling is part of the metric profile: LPIPS expects images in [-1, 1]. The ``disco`` protocol feeds
[0, 1] images without rescaling (a quirk of DisCo's script that its published numbers include); ``clean``
rescales to [-1, 1] as the library intends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .weights import load_into, load_state_dict_file, resolve_weight, sha256_file

# VGG16 "D" configuration: conv widths, "M" = 2x2 max-pool. Indices in nn.Sequential match torchvision's.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# LPIPS taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3: the end index (exclusive) of each slice of `features`.
LPIPS_TAPS = (4, 9, 16, 23, 30)
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS' ScalingLayer constants (applied to inputs expected in [-1, 1]).
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


class VGG16Features(nn.Module):
    """The convolutional part of VGG16 with torchvision's module indices (``features.0`` ... ``features.30``)."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for item in VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_ch = item
        self.features = nn.Sequential(*layers)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations at relu1_2 ... relu5_3 for x (N, 3, H, W)."""
        outs, start = [], 0
        for end in LPIPS_TAPS:
            for layer in self.features[start:end]:
                x = layer(x)
            outs.append(x)
            start = end
        return outs


class LinearHead(nn.Module):
    """LPIPS ``NetLinLayer``: dropout then a bias-free 1x1 conv to one channel (keys ``model.1.weight``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(p=0.5), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS distance with a VGG16 backbone. ``forward(x0, x1)`` takes (N, 3, H, W) tensors already in the range
    the caller intends (see :func:`lpips_inputs`) and returns (N,) distances."""

    def __init__(self):
        super().__init__()
        self.net = VGG16Features()
        self.lins = nn.ModuleList(LinearHead(c) for c in LPIPS_CHANNELS)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
        self.eval()

    def load_published(
        self, vgg16_state: dict[str, torch.Tensor], lpips_state: dict[str, torch.Tensor], source: str = "state dicts"
    ) -> None:
        """Load torchvision-layout VGG16 weights (the classifier is ignored) and the LPIPS ``lin{k}`` heads."""
        load_into(self.net, vgg16_state, f"{source} (VGG16)", ignore_prefixes=("classifier.",))
        heads = {}
        for name, value in lpips_state.items():
            if not name.startswith("lin"):
                raise ValueError(f"{source} (LPIPS heads): unexpected key {name!r}; expected lin0..lin4.model.1.weight")
            index, rest = name[3:].split(".", 1)
            heads[f"{index}.{rest}"] = value
        load_into(self.lins, heads, f"{source} (LPIPS heads)")

    @classmethod
    def from_weights_dir(cls, weights_dir: str | Path | None) -> tuple[LPIPS, dict[str, str]]:
        """Build LPIPS from ``vgg16-397923af.pth`` and ``vgg.pth`` in ``weights_dir``; returns (model, sha256s)."""
        vgg_path = resolve_weight("vgg16_imagenet", weights_dir)
        lin_path = resolve_weight("lpips_vgg", weights_dir)
        model = cls()
        model.load_published(load_state_dict_file(vgg_path), load_state_dict_file(lin_path), source=str(weights_dir))
        return model, {vgg_path.name: sha256_file(vgg_path), lin_path.name: sha256_file(lin_path)}

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        f0 = self.net.taps((x0 - self.shift) / self.scale)
        f1 = self.net.taps((x1 - self.shift) / self.scale)
        total = 0.0
        for a, b, lin in zip(f0, f1, self.lins):
            a = a / (torch.sqrt(torch.sum(a**2, dim=1, keepdim=True)) + 1e-10)
            b = b / (torch.sqrt(torch.sum(b**2, dim=1, keepdim=True)) + 1e-10)
            total = total + lin((a - b) ** 2).mean(dim=(2, 3))  # (N, 1)
        return total[:, 0]


def lpips_inputs(frames: np.ndarray, profile: str) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (T, 3, H, W): [0, 1] for ``disco`` (the protocol's quirk), [-1, 1] for ``clean``."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    if profile == "clean":
        return x * 2.0 - 1.0
    if profile == "disco":
        return x
    raise ValueError(f"unknown metric profile {profile!r}; allowed: ['disco', 'clean']")


@torch.no_grad()
def lpips_per_frame(model: LPIPS, gt: np.ndarray, pred: np.ndarray, profile: str, batch_size: int = 8) -> np.ndarray:
    """LPIPS for each frame pair of two uint8 (T, H, W, 3) videos; returns (T,)."""
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth and prediction shapes differ: {gt.shape} vs {pred.shape}")
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(gt), batch_size):
        a = lpips_inputs(gt[start : start + batch_size], profile).to(device)
        b = lpips_inputs(pred[start : start + batch_size], profile).to(device)
        out.append(model(a, b).double().cpu())
    return torch.cat(out).numpy()
