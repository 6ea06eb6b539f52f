"""Classifier backbones. Every model takes images in [0, 1] and normalises them itself.

``backbone(arch, ...)`` builds one by name (tracer.models.factory wraps it, or an allow-listed
import path's module, in Normalize); the manifest of a run stores its keyword arguments, so a
checkpoint can be rebuilt without pickle.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn


class Normalize(nn.Module):
    """(x - mean) / std per channel, so callers (and attacks) work in [0, 1] pixel space."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class Resize(nn.Module):
    """Bilinear resize to ``size`` x ``size``: for architectures whose pooling needs larger images
    than the data set's (torchvision's VGG pools 28 pixels to nothing)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = int(size)

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)


def small_cnn(num_classes: int, in_channels: int, image_size: int, width: int = 32,
              hidden: int = 128) -> nn.Sequential:
    """Two conv-conv-pool stages and two linear layers: the default C for 28x28 and 8x8 images."""
    w = width
    feat = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU(),
        nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(),
        nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * w * feat * feat, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def _small_image_resnet(ctor: Callable[..., nn.Module], num_classes: int, in_channels: int,
                        image_size: int) -> nn.Module:
    """torchvision's ResNet with the CIFAR-style stem (3x3 conv, no max-pool) below 64 pixels."""
    net = ctor(num_classes=num_classes)
    if image_size < 64:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    return net


def resnet18(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    return _small_image_resnet(torchvision.models.resnet18, num_classes, in_channels, image_size)


def resnet50(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    return _small_image_resnet(torchvision.models.resnet50, num_classes, in_channels, image_size)


_VGG_LAYERS = {16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                    512, 512, 512, "M"],
               19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                    512, 512, 512, 512, "M"]}


def _vgg(depth: int, num_classes: int, in_channels: int, image_size: int) -> nn.Sequential:
    """VGG with batch norm and a small head, the usual variant for 32-84 pixel images."""
    layers: list[nn.Module] = []
    c = in_channels
    for v in _VGG_LAYERS[depth]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            c = v
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 512), nn.ReLU(inplace=True),
               nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)


def vgg16(num_classes: int, in_channels: int, image_size: int) -> nn.Sequential:
    return _vgg(16, num_classes, in_channels, image_size)


def vgg19(num_classes: int, in_channels: int, image_size: int) -> nn.Sequential:
    return _vgg(19, num_classes, in_channels, image_size)


CLASSIFIERS: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": small_cnn, "resnet18": resnet18, "resnet50": resnet50,
    "vgg16": vgg16, "vgg19": vgg19,
}


def backbone(arch: str, num_classes: int, in_channels: int, image_size: int,
             **kwargs) -> nn.Module:
    """The built-in backbone ``arch`` on [0, 1]-normalised images: logits [n, num_classes]."""
    if arch not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {arch!r}; known: {sorted(CLASSIFIERS)}")
    return CLASSIFIERS[arch](num_classes, in_channels, image_size, **kwargs)


def build_classifier(arch: str, num_classes: int, in_channels: int, image_size: int,
                     mean: Sequence[float], std: Sequence[float], **kwargs) -> nn.Sequential:
    """Normalize followed by the backbone ``arch``; outputs are logits [n, num_classes]."""
    return nn.Sequential(Normalize(mean, std),
                         backbone(arch, num_classes, in_channels, image_size, **kwargs))
