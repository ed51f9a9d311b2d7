"""Encoders of the SuperPoint network, behind a registry (``get_backbone("vgg")``).

Every backbone maps a grayscale image ``[B, 1, H, W]`` to a feature map ``[B, C, H/8, W/8]``
and says its channel count ``C`` as ``out_channels``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..registry import Registry

BACKBONES: Registry[type[nn.Module]] = Registry("backbone")


class ConvBlock(nn.Module):
    """conv -> [norm / ReLU in the order ``norm`` says].

    ``norm``: ``"none"`` (conv, ReLU: Magic Leap's layout), ``"bn"`` (conv, BN, ReLU) or
    ``"bn_after_relu"`` (conv, ReLU, BN, as the TensorFlow port rpautrat/SuperPoint has it).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int = 3,
        relu: bool = True,
        norm: str = "none",
        bn_eps: float = 1e-5,
        groups: int = 1,
    ):
        super().__init__()
        if norm not in ("none", "bn", "bn_after_relu"):
            raise ValueError(f"unknown norm {norm!r}; valid: none, bn, bn_after_relu")
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, groups=groups)
        self.bn = nn.BatchNorm2d(c_out, eps=bn_eps) if norm != "none" else None
        self.relu = relu
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm == "bn":
            x = self.bn(x)
        if self.relu:
            x = torch.relu(x)
        if self.norm == "bn_after_relu":
            x = self.bn(x)
        return x


@BACKBONES.register("vgg")
class VGGBackbone(nn.Module):
    """The paper's encoder: four stages of two 3x3 convs, max-pooling 2x2 between stages."""

    def __init__(
        self,
        channels: Sequence[int] = (64, 64, 128, 128),
        norm: str = "none",
        bn_eps: float = 1e-5,
    ):
        super().__init__()
        stages = []
        c_in = 1
        for c in channels:
            stages.append(
                nn.ModuleList(
                    [
                        ConvBlock(c_in, c, 3, norm=norm, bn_eps=bn_eps),
                        ConvBlock(c, c, 3, norm=norm, bn_eps=bn_eps),
                    ]
                )
            )
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = nn.functional.max_pool2d(x, 2, 2)
            for block in stage:
                x = block(x)
        return x


@BACKBONES.register("vgg_bn")
class VGGBNBackbone(VGGBackbone):
    """The paper's encoder with BatchNorm after every conv (conv, BN, ReLU)."""

    def __init__(self, channels: Sequence[int] = (64, 64, 128, 128), bn_eps: float = 1e-5):
        super().__init__(channels=channels, norm="bn", bn_eps=bn_eps)


def get_backbone(name: str, **kwargs) -> nn.Module:
    """Instantiate the backbone registered as ``name`` with ``kwargs``."""
    return BACKBONES.get(name)(**kwargs)
