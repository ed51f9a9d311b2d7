"""The cell-label convention and the detector loss, on hand-built cases."""

from __future__ import annotations

import math

import pytest
import torch

from superpoint_ros.errors import ConfigError
from superpoint_training.losses import DETECTOR_LOSSES, get_loss
from superpoint_training.losses.detector import (
    DUSTBIN,
    detector_cross_entropy,
    keypoint_map_from_points,
    labels_from_keypoint_map,
    labels_from_keypoints,
    valid_cells,
)


def test_label_convention_hand_case():
    # pixel (x=10, y=3): cell (row 0, col 1), in-cell (row 3, col 2) -> channel 8*3+2 = 26
    labels = labels_from_keypoints([[[10.0, 3.0]]], (16, 24))
    assert labels.shape == (1, 2, 3)
    expected = torch.full((1, 2, 3), DUSTBIN)
    expected[0, 0, 1] = 26
    assert torch.equal(labels, expected)


def test_label_corners_of_cells_and_rounding():
    # (x=0,y=0) -> cell (0,0) ch 0; (x=15,y=15) -> cell (1,1) ch 63; (x=16.4,y=7.6) rounds to
    # pixel (col 16, row 8) -> cell (1,2) ch 0; a point outside the image is dropped.
    pts = [[0.0, 0.0], [15.0, 15.0], [16.4, 7.6], [30.0, 3.0]]
    labels = labels_from_keypoints([pts], (16, 24))
    assert labels[0].tolist() == [[0, DUSTBIN, DUSTBIN], [DUSTBIN, 63, 0]]


def test_empty_image_is_all_dustbin():
    labels = labels_from_keypoint_map(torch.zeros(2, 8, 16))
    assert labels.shape == (2, 1, 2) and bool((labels == DUSTBIN).all())
    assert keypoint_map_from_points(torch.zeros(0, 2), (8, 8)).sum() == 0


def test_several_keypoints_in_a_cell():
    # three keypoints in cell (0,0): channels 9 (x1,y1), 20 (x4,y2), 63 (x7,y7)
    kmap = keypoint_map_from_points([[4, 2], [7, 7], [1, 1]], (8, 8))[None]
    assert labels_from_keypoint_map(kmap, "first").item() == 9  # raster order: topmost first
    seen = set()
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        seen.add(labels_from_keypoint_map(kmap, "random", g).item())
    assert seen == {9, 20, 63}  # only keypoints, never the dustbin, each of them sometimes
    # an explicit generator makes it reproducible
    a = labels_from_keypoint_map(kmap, "random", torch.Generator().manual_seed(7))
    b = labels_from_keypoint_map(kmap, "random", torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="explicit torch.Generator"):
        labels_from_keypoint_map(kmap, "random")
    with pytest.raises(ValueError, match="multiple of 8"):
        labels_from_keypoint_map(torch.zeros(1, 12, 16))


def test_valid_cells_need_every_pixel():
    mask = torch.ones(1, 16, 16)
    mask[0, 3, 12] = 0  # one invalid pixel in cell (0, 1)
    assert valid_cells(mask)[0].tolist() == [[True, False], [True, True]]


def test_cross_entropy_values():
    labels = torch.tensor([[[26, DUSTBIN]]])
    # uniform logits: -log(1/65) per cell
    uniform = torch.zeros(1, 65, 1, 2)
    assert detector_cross_entropy(uniform, labels).item() == pytest.approx(math.log(65), 1e-6)
    # all mass on the right class: (close to) zero, the minimum
    right = torch.full((1, 65, 1, 2), -20.0)
    right[0, 26, 0, 0] = 20.0
    right[0, DUSTBIN, 0, 1] = 20.0
    best = detector_cross_entropy(right, labels).item()
    assert best < 1e-12
    # moving mass to a wrong class raises it
    wrong = right.clone()
    wrong[0, 25, 0, 0] = 20.0
    assert detector_cross_entropy(wrong, labels).item() == pytest.approx(math.log(2) / 2, 1e-5)
    # masked cells do not count: only the wrong-free cell 1 remains
    mask = torch.tensor([[[False, True]]])
    assert detector_cross_entropy(wrong, labels, mask).item() < 1e-12
    # no valid cell at all: 0, not NaN
    assert detector_cross_entropy(wrong, labels, torch.zeros(1, 1, 2, dtype=bool)).item() == 0


def test_loss_registry_and_module():
    assert "detector" in DETECTOR_LOSSES.names()
    loss_fn = get_loss("detector", tie_break="first")
    kmap = keypoint_map_from_points([[10, 3]], (16, 24))[None]
    logits = torch.full((1, 65, 2, 3), -20.0)
    logits[0, DUSTBIN] = 20.0
    logits[0, :, 0, 1] = -20.0
    logits[0, 26, 0, 1] = 20.0
    loss, scalars = loss_fn(logits, kmap, torch.ones(1, 16, 24))
    assert loss.item() < 1e-12
    assert scalars["keypoint_cells"].item() == pytest.approx(1 / 6)
    with pytest.raises(ConfigError, match="unknown loss 'nope'; valid: .*detector"):
        get_loss("nope")
    # gradients flow
    logits = torch.zeros(1, 65, 2, 3, requires_grad=True)
    loss, _ = loss_fn(logits, kmap)
    loss.backward()
    assert logits.grad[0, 26, 0, 1] < 0 and logits.grad[0, DUSTBIN, 0, 1] > 0
