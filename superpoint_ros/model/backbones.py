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


class SeparableBlock(nn.Module):
    """Depthwise-separable conv: depthwise 3x3 (stride 1 or 2) -> BN -> ReLU -> pointwise 1x1
    -> BN -> ReLU (MobileNet v1's block; BN folds into the convs at export time)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, bn_eps: float = 1e-5):
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False)
        self.bn_dw = nn.BatchNorm2d(c_in, eps=bn_eps)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn_pw = nn.BatchNorm2d(c_out, eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn_dw(self.depthwise(x)))
        return torch.relu(self.bn_pw(self.pointwise(x)))


@BACKBONES.register("mobile")
class MobileBackbone(nn.Module):
    """A light encoder for embedded GPUs (Jetson): the VGG layout (four stages, output stride
    8) with depthwise-separable convs. Stage 0 is a full 3x3 conv (one input channel: a
    depthwise conv would see nothing to mix) and a separable block; each later stage opens
    with a stride-2 separable block (in place of max-pooling) and ``blocks - 1`` more.

    ``channels``: output channels of the four stages; ``blocks``: separable blocks per stage.
    """

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 128, 128),
        blocks: int = 2,
        bn_eps: float = 1e-5,
    ):
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"mobile backbone needs 4 stage widths, got {list(channels)}")
        if blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {blocks}")
        c0 = channels[0]
        layers: list[nn.Module] = [ConvBlock(1, c0, 3, norm="bn", bn_eps=bn_eps)]
        layers += [SeparableBlock(c0, c0, 1, bn_eps) for _ in range(blocks - 1)]
        c_in = c0
        for c in channels[1:]:
            layers.append(SeparableBlock(c_in, c, 2, bn_eps))
            layers += [SeparableBlock(c, c, 1, bn_eps) for _ in range(blocks - 1)]
            c_in = c
        self.layers = nn.Sequential(*layers)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
