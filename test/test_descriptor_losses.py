"""Descriptor losses on hand-built cases: 2x3 cells (16x24 pixels), one-hot descriptors, so every
dot product is 0 or +-1 and every expected value is counted by hand."""

import math

import pytest
import torch

from superpoint_ros.errors import ConfigError
from superpoint_training.losses import (
    DESCRIPTOR_LOSSES,
    DETECTOR_LOSSES,
    default_lambda,
    get_descriptor_loss,
    get_loss,
    loss_names,
)
from superpoint_training.losses.descriptor import (
    cell_centers,
    sample_correspondences,
    warp_points_torch,
)
from superpoint_training.training.superpoint import SuperPointTrainConfig, check_config

HC, WC = 2, 3
N = HC * WC  # 6 cells
IDENTITY = torch.eye(3)[None]
SHIFT_RIGHT_8 = torch.tensor([[[1.0, 0.0, 8.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])


def one_hot(dim: int = N, index=None) -> torch.Tensor:
    """``[1, dim, HC, WC]``: cell (v, u) holds the unit vector e_{index[v][u]} (default v*WC+u),
    scaled by 3 to check that the losses normalise."""
    index = index or [[v * WC + u for u in range(WC)] for v in range(HC)]
    out = torch.zeros(1, dim, HC, WC)
    for v in range(HC):
        for u in range(WC):
            out[0, index[v][u], v, u] = 3.0
    return out


def run(name, d0, d1, H=IDENTITY, valid0=None, valid1=None, seed=0, **kw):
    loss_fn = get_loss(name, **kw)
    g = torch.Generator().manual_seed(seed)
    loss, scalars = loss_fn(d0, d1, H, valid0, valid1, generator=g)
    return float(loss), {k: float(v) for k, v in scalars.items()}


def test_registry_lists_all_descriptor_losses():
    # the lookups import every module of the package: no list of names anywhere else
    assert loss_names("descriptor") == [
        "dense",
        "dense_normalized",
        "infonce",
        "sparse",
        "triplet",
    ]
    assert loss_names("detector") == ["detector"]
    assert "dense" in DESCRIPTOR_LOSSES and "dense" not in DETECTOR_LOSSES
    with pytest.raises(ConfigError, match="unknown loss 'densse'; valid: dense, dense_normalized"):
        get_loss("densse")
    with pytest.raises(ConfigError, match="unknown descriptor loss 'detector'; valid: dense, "):
        get_descriptor_loss("detector")  # a detector loss is not a descriptor loss
    # the weight against the detector loss is the loss's own: the paper's 1e-4 for dense
    assert [default_lambda(n) for n in ("dense", "sparse", "infonce")] == [1e-4, 1.0, 1.0]


def test_a_new_loss_is_one_registration(monkeypatch):
    """A descriptor loss registered anywhere is a valid ``loss.descriptor`` at once."""
    conf = SuperPointTrainConfig()
    conf.loss.descriptor = "mine"
    with pytest.raises(ConfigError, match=r"unknown descriptor loss 'mine' \(loss.descriptor"):
        check_config(conf)
    monkeypatch.setitem(DESCRIPTOR_LOSSES._items, "mine", type("Mine", (), {}))
    check_config(conf)
    assert "mine" in loss_names("descriptor") and default_lambda("mine") == 1.0


def test_cell_centres_and_warp():
    c = cell_centers(HC, WC)
    assert c[0].tolist() == [3.5, 3.5] and c[4].tolist() == [11.5, 11.5]
    w = warp_points_torch(c[None], SHIFT_RIGHT_8)[0]
    assert torch.allclose(w, c + torch.tensor([8.0, 0.0]))


def test_dense_zero_on_matching_descriptors():
    d = one_hot()
    loss, s = run("dense", d, d.clone())
    assert loss == 0.0 and s["positive"] == 0.0 and s["negative"] == 0.0
    # identity: only the diagonal is positive (neighbours at exactly 8 px are not "within 8")
    assert s["positive_fraction"] == pytest.approx(N / N**2)


def test_dense_positive_term_hand_count():
    d = one_hot()
    loss, s = run("dense", d, -d)  # positives have d.d' = -1: hinge 1 - (-1) = 2
    assert s["positive"] == pytest.approx(250.0 * 2.0 * N / N**2)
    assert s["negative"] == 0.0  # off-diagonal dot products are 0 < m_n
    assert loss == pytest.approx(s["positive"] + s["negative"])


def test_dense_negative_term_hand_count():
    same = torch.ones(1, 4, HC, WC)  # every descriptor equal: every dot product is 1
    loss, s = run("dense", same, same)
    assert s["positive"] == 0.0
    assert s["negative"] == pytest.approx(0.8 * (N**2 - N) / N**2)  # hinge 1 - 0.2 per negative
    assert loss == pytest.approx(s["negative"])


def test_dense_follows_the_homography():
    # image 1 is image 0 shifted right by 8 px (one cell): cell (v, u) of 0 is (v, u + 1) of 1
    d0 = one_hot(8)
    d1 = one_hot(8, [[6, 0, 1], [7, 3, 4]])  # shifted content; new cells get unused vectors
    loss, s = run("dense", d0, d1, SHIFT_RIGHT_8)
    assert loss == 0.0
    # unshifted descriptors under the shift: 4 positives with dot 0, 6 negatives with dot 1
    loss, s = run("dense", d0, d0, SHIFT_RIGHT_8)
    assert s["positive"] == pytest.approx(250.0 * 4 / N**2)
    assert s["negative"] == pytest.approx(0.8 * 6 / N**2)


def test_dense_valid_mask_drops_cells():
    d0 = one_hot()
    d1 = d0.clone()
    d1[0, :, 0, 2] *= -1  # one wrong descriptor, in cell (0, 2) of image 1
    _, s = run("dense", d0, d1)
    assert s["positive"] == pytest.approx(250.0 * 2.0 / N**2)
    valid1 = torch.ones(1, 8 * HC, 8 * WC)
    valid1[0, 0, 16] = 0.0  # a single invalid pixel invalidates its whole cell (0, 2)
    loss, s = run("dense", d0, d1, valid1=valid1)
    assert loss == 0.0


def test_dense_normalized_means_per_kind():
    d = one_hot()
    _, s = run("dense_normalized", d, -d)
    assert s["positive"] == pytest.approx(2.0) and s["negative"] == 0.0
    same = torch.ones(1, 4, HC, WC)
    loss, s = run("dense_normalized", same, same)
    assert s["positive"] == 0.0 and s["negative"] == pytest.approx(0.8)
    assert run("dense_normalized", d, d.clone())[0] == 0.0


def test_sparse_zero_positive_and_negative_cases():
    d = one_hot()
    loss, s = run("sparse", d, d.clone(), num_samples=32, num_negatives=8)
    assert loss == pytest.approx(0.0, abs=1e-6)
    _, s = run("sparse", d, -d, num_samples=32, num_negatives=8)
    assert s["positive"] == pytest.approx(2.0, abs=1e-5) and s["negative"] == 0.0
    same = torch.ones(1, 4, HC, WC)
    _, s = run("sparse", same, same, num_samples=32, num_negatives=8)
    assert s["positive"] == pytest.approx(0.0, abs=1e-6)
    assert s["negative"] == pytest.approx(0.8, abs=1e-5)


def test_sparse_follows_the_homography():
    d0 = one_hot(8)
    d1 = one_hot(8, [[6, 0, 1], [7, 3, 4]])
    loss, _ = run("sparse", d0, d1, SHIFT_RIGHT_8, num_samples=64, num_negatives=8)
    assert loss == pytest.approx(0.0, abs=1e-6)
    _, s = run("sparse", d0, d0, SHIFT_RIGHT_8, num_samples=64, num_negatives=8)
    assert s["positive"] == pytest.approx(1.0, abs=1e-5)  # dot 0 with the true partner


def test_correspondences_land_on_valid_pixels_only():
    d = torch.randn(2, 4, HC, WC)
    valid1 = torch.ones(2, 8 * HC, 8 * WC)
    valid1[:, :, 8:] = 0.0  # only the left cell column of image 1 is valid
    corr = sample_correspondences(
        d, d, IDENTITY.expand(2, -1, -1), None, valid1, 50, torch.Generator().manual_seed(1)
    )
    assert corr["valid"].all()
    assert (corr["points1"][..., 0] == 3.5).all()  # centres of the cells u = 0
    # shifted out of view entirely: no valid correspondence, nothing counted
    H = torch.tensor([[[1.0, 0.0, 100.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    corr = sample_correspondences(d[:1], d[:1], H, None, None, 10, torch.Generator())
    assert not corr["valid"].any()
    loss, _ = run("sparse", d[:1], d[:1], H, num_samples=10, num_negatives=4)
    assert loss == 0.0


def test_triplet_zero_and_positive():
    d = one_hot()
    loss, s = run("triplet", d, d.clone(), num_samples=16)
    assert loss == pytest.approx(0.0, abs=1e-6)
    assert s["negative"] == pytest.approx(math.sqrt(2.0), abs=1e-4)  # orthogonal unit vectors
    loss, s = run("triplet", d, -d, num_samples=16)
    # |a - p| = 2 for opposite vectors, hardest negative sqrt(2): 1 + 2 - sqrt(2)
    assert s["positive"] == pytest.approx(2.0, abs=1e-4)
    assert loss == pytest.approx(3.0 - math.sqrt(2.0), abs=1e-4)


def test_triplet_hardest_negative_is_the_closest_other_descriptor():
    d0 = one_hot(8)
    d1 = d0.clone()
    # image 1's cell (1, 2) gets a descriptor close to image 0's cell (0, 0): the hardest
    # negative of anchor (0, 0) (the cells are 18 px apart, beyond the 16 px exclusion)
    d1[0, :, 1, 2] = 0.0
    d1[0, 0, 1, 2], d1[0, 5, 1, 2] = 0.8, 0.6
    loss_fn = get_loss("triplet", num_samples=64)
    loss, s = loss_fn(d0, d1, IDENTITY, generator=torch.Generator().manual_seed(0))
    assert float(loss) > 0.0  # anchor (0, 0): 1 + 0 - |e0 - (0.8 e0 + 0.6 e5)| = 1 - 0.632
    assert float(s["negative"]) < math.sqrt(2.0)


def test_losses_have_gradients():
    d0 = torch.randn(2, 16, HC, WC, requires_grad=True)
    d1 = torch.randn(2, 16, HC, WC, requires_grad=True)
    H = SHIFT_RIGHT_8.expand(2, -1, -1)
    for name in ("dense", "dense_normalized", "sparse", "triplet"):
        loss, _ = get_loss(name)(d0, d1, H, generator=torch.Generator().manual_seed(0))
        (g0,) = torch.autograd.grad(loss, d0)
        assert torch.isfinite(g0).all() and g0.abs().sum() > 0, name
