"""The SuperPoint network: shared encoder, detector head (65 channels) and descriptor head.

``forward(image [B, 1, H, W] float in [0, 1])`` returns a dict:

* ``logits``: ``[B, 65, H/8, W/8]``, 64 positions of each 8x8 cell plus a "no keypoint" dustbin;
* ``descriptors_dense``: ``[B, D, H/8, W/8]``, raw (not normalised); absent for MagicPoint
  (``descriptor_dim == 0``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .backbones import ConvBlock, get_backbone

CELL = 8  # pixels per side of a detector cell; the encoder downsamples by this factor


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network; saved in every checkpoint."""

    backbone: str = "vgg"  # a name in BACKBONES: vgg, vgg_bn, ...
    backbone_args: dict[str, Any] = field(default_factory=dict)  # keyword args of the backbone
    head_channels: int = 256  # width of the hidden conv of each head
    head_norm: str = "none"  # none | bn | bn_after_relu (see ConvBlock)
    head_bn_eps: float = 1e-5
    descriptor_dim: int = 256  # 0 builds MagicPoint (detector only)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SuperPointNet(nn.Module):
    """The fully convolutional SuperPoint / MagicPoint network."""

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        self.backbone = get_backbone(c.backbone, **c.backbone_args)
        width = self.backbone.out_channels
        norm = dict(norm=c.head_norm, bn_eps=c.head_bn_eps)
        self.detector = nn.Sequential(
            ConvBlock(width, c.head_channels, 3, **norm),
            ConvBlock(c.head_channels, CELL * CELL + 1, 1, relu=False, **norm),
        )
        self.descriptor = None
        if c.descriptor_dim > 0:
            self.descriptor = nn.Sequential(
                ConvBlock(width, c.head_channels, 3, **norm),
                ConvBlock(c.head_channels, c.descriptor_dim, 1, relu=False, **norm),
            )

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(image)
        out = {"logits": self.detector(features)}
        if self.descriptor is not None:
            out["descriptors_dense"] = self.descriptor(features)
        return out
