"""The detector loss of SuperPoint / MagicPoint and the cell-label convention it trains.

Label convention (one home, pinned by ``test/test_detector_loss.py``): the image is cut into 8x8
cells; a keypoint ``(x, y)`` (pixel centres at integer coordinates) falls on pixel
``(row, col) = (round(y), round(x))``, i.e. in cell ``(row // 8, col // 8)``, and its class in
that cell is ``k = 8 * (row % 8) + (col % 8)`` (0..63, the order of ``pixel_unshuffle`` and of
the front-end's ``depth_to_space``). A cell with no keypoint has class 64, the dustbin.

Several keypoints in one cell: a cell has one class, so one of them is kept. ``tie_break``
chooses how: ``"random"`` (the default for training, as the public re-implementations do; one
of the cell's keypoints uniformly at random, drawn from an explicit ``torch.Generator`` so that
a run is reproducible and resumable) or ``"first"`` (deterministic: the first in raster order,
i.e. the topmost, then leftmost).

The loss is the paper's: softmax cross-entropy over the 65 classes of each cell, averaged over
the valid cells. A cell counts only if all of its 64 pixels are valid (``valid_mask`` is 0 where
a homography warped the image border in).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from superpoint_ros.model.superpoint import CELL

from . import DETECTOR_LOSSES

DUSTBIN = CELL * CELL  # class index of "no keypoint in this cell"
TIE_BREAKS = ("random", "first")


def keypoint_map_from_points(points, size: tuple[int, int]) -> torch.Tensor:
    """Rasterise keypoints ``[N, 2]`` (x, y) into a ``[H, W]`` float32 map of 0/1: pixel
    ``(round(y), round(x))`` is 1. Points falling outside the image are dropped."""
    h, w = size
    pts = torch.as_tensor(np.asarray(points, dtype=np.float32).reshape(-1, 2))
    out = torch.zeros(h, w, dtype=torch.float32)
    if len(pts) == 0:
        return out
    ij = torch.round(pts).long()
    col, row = ij[:, 0], ij[:, 1]
    keep = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    out[row[keep], col[keep]] = 1.0
    return out


def labels_from_keypoint_map(
    keypoint_map: torch.Tensor,
    tie_break: str = "first",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Cell classes ``[B, H/8, W/8]`` (int64, 0..64) from a keypoint map ``[B, H, W]``
    (nonzero = keypoint). ``tie_break`` picks among several keypoints of one cell (see the module
    docstring); ``"random"`` draws from ``generator`` (required, any device: the draw is made on
    the CPU so a CPU generator gives the same labels on every device)."""
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"unknown tie_break {tie_break!r}; valid: {', '.join(TIE_BREAKS)}")
    b, h, w = keypoint_map.shape
    if h % CELL or w % CELL:
        raise ValueError(f"image size {h}x{w} is not a multiple of {CELL}")
    cells = F.pixel_unshuffle(keypoint_map[:, None].float(), CELL)  # [B, 64, Hc, Wc]
    score = (cells > 0).float() * 2.0  # keypoints 2, dustbin 1: any keypoint beats the dustbin
    if tie_break == "random":
        if generator is None:
            raise ValueError('tie_break="random" needs an explicit torch.Generator')
        noise = torch.rand(score.shape, generator=generator, device=generator.device)
        score = score + noise.to(score.device) * 0.5
    dustbin = torch.ones_like(score[:, :1])
    # argmax returns the first maximal index: with tie_break="first" that is the first
    # keypoint in raster order.
    return torch.cat([score, dustbin], dim=1).argmax(dim=1)


def labels_from_keypoints(
    keypoints: list, size: tuple[int, int], tie_break: str = "first", generator=None
) -> torch.Tensor:
    """``labels_from_keypoint_map`` for a list of ``[N_i, 2]`` keypoint arrays (one per image)."""
    maps = torch.stack([keypoint_map_from_points(k, size) for k in keypoints])
    return labels_from_keypoint_map(maps, tie_break, generator)


def valid_cells(valid_mask: torch.Tensor) -> torch.Tensor:
    """Boolean ``[B, H/8, W/8]``: every one of the cell's 64 pixels is valid in ``[B, H, W]``."""
    return F.pixel_unshuffle((valid_mask[:, None] > 0.5).float(), CELL).amin(dim=1) > 0.5


def detector_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, cell_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean softmax cross-entropy of ``logits [B, 65, Hc, Wc]`` against ``labels [B, Hc, Wc]``
    over the cells where ``cell_mask [B, Hc, Wc]`` is true (0 if there is none)."""
    ce = F.cross_entropy(logits, labels, reduction="none")  # [B, Hc, Wc]
    if cell_mask is None:
        return ce.mean()
    mask = cell_mask.to(ce.dtype)
    return (ce * mask).sum() / mask.sum().clamp(min=1.0)


@DETECTOR_LOSSES.register("detector")
class DetectorLoss(nn.Module):
    """The paper's detector loss from a keypoint map (see the module docstring).

    ``forward(logits [B, 65, Hc, Wc], keypoint_map [B, H, W], valid_mask [B, H, W] or None,
    generator)`` -> ``(loss, {"detector_loss", "keypoint_cells", "valid_cells"})``, the last two
    being the fraction of cells holding a keypoint and the fraction of valid cells.
    """

    def __init__(self, tie_break: str = "random"):
        super().__init__()
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"unknown tie_break {tie_break!r}; valid: {', '.join(TIE_BREAKS)}")
        self.tie_break = tie_break

    def forward(
        self,
        logits: torch.Tensor,
        keypoint_map: torch.Tensor,
        valid_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        labels = labels_from_keypoint_map(keypoint_map, self.tie_break, generator)
        labels = labels.to(logits.device)
        mask = valid_cells(valid_mask).to(logits.device) if valid_mask is not None else None
        loss = detector_cross_entropy(logits, labels, mask)
        scalars = {
            "detector_loss": loss.detach(),
            "keypoint_cells": (labels != DUSTBIN).float().mean().detach(),
            "valid_cells": mask.float().mean().detach() if mask is not None else loss.new_ones(()),
        }
        return loss, scalars
