"""The InfoNCE descriptor loss (losses/infonce.py) on hand-built cases: 2x3 cells (16x24
pixels), one-hot descriptors, so similarities are 0 or 1 and the expected values are counted by
hand."""

import math

import pytest
import torch
from test_descriptor_losses import HC, IDENTITY, SHIFT_RIGHT_8, WC, one_hot

from superpoint_training.losses import DESCRIPTOR_LOSSES, get_loss
from superpoint_training.losses.infonce import info_nce


def run(d0, d1, H=IDENTITY, seed=0, **kw):
    loss_fn = get_loss("infonce", **kw)
    loss, s = loss_fn(d0, d1, H, None, None, generator=torch.Generator().manual_seed(seed))
    return loss, {k: float(v) for k, v in s.items()}


def test_registered():
    get_loss("dense")
    assert "infonce" in DESCRIPTOR_LOSSES


def test_info_nce_two_by_two_by_hand():
    # rows: -log(e^1 / (e^1 + e^0)) = log(1 + e^-1) = 0.31326; symmetric: same by columns
    sim = torch.eye(2)
    allowed = torch.ones(2, 2, dtype=torch.bool)
    assert float(info_nce(sim, allowed, 1.0)) == pytest.approx(math.log(1 + math.exp(-1)))
    # temperature 0.5 doubles the logits: log(1 + e^-2)
    assert float(info_nce(sim, allowed, 0.5)) == pytest.approx(math.log(1 + math.exp(-2)))
    # the wrong way round (the partner is the least similar): log(1 + e^1)
    assert float(info_nce(1 - sim, allowed, 1.0)) == pytest.approx(math.log(1 + math.e))


def test_info_nce_masks_and_asymmetry_by_hand():
    sim = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    allowed = torch.ones(3, 3, dtype=torch.bool)
    allowed[0, 2] = False  # candidate 2 is not a negative of anchor 0
    row0 = math.log(1 + math.exp(-1))  # only candidate 1 competes
    row1 = math.log(1 + 2 * math.exp(-1))
    row2 = math.log(1 + 2 * math.exp(-1))
    got = float(info_nce(sim, allowed, 1.0, symmetric=False))
    assert got == pytest.approx((row0 + row1 + row2) / 3)
    # a row without any allowed negative is left out
    only_diag = torch.eye(3, dtype=torch.bool)
    only_diag[1, 0] = True
    expected = math.log(1 + math.exp(0.0 - 1.0))  # row 1: candidates 1 (sim 1) and 0 (sim 0)
    assert float(info_nce(sim, only_diag, 1.0, symmetric=False)) == pytest.approx(expected)


def test_perfect_descriptors_small_loss_full_accuracy():
    d = one_hot()
    loss, s = run(d, d.clone(), num_samples=32, temperature=0.05, negative_radius=4.0)
    assert float(loss) < 1e-6
    assert s["accuracy"] == 1.0
    assert s["positive"] == pytest.approx(1.0, abs=1e-5)
    assert s["negative"] == pytest.approx(0.0, abs=1e-6)


def test_identical_descriptors_give_log_of_candidates():
    # every similarity is 1: each row's loss is log(number of allowed candidates), the samples
    # at other cells than the anchor's (a radius of 0.5 px excludes only the same cell)
    same = torch.ones(1, 4, HC, WC)
    loss, s = run(same, same, num_samples=64, negative_radius=0.5)
    # each anchor competes with the samples at other cells: at most 64, at least 2 candidates
    assert math.log(2) <= float(loss) <= math.log(64)
    assert s["accuracy"] == 0.0  # the partner is never strictly more similar


def test_follows_the_homography():
    d0 = one_hot(8)
    d1 = one_hot(8, [[6, 0, 1], [7, 3, 4]])  # image 1 = image 0 shifted right by one cell
    _, s = run(d0, d1, SHIFT_RIGHT_8, num_samples=64, temperature=0.05, negative_radius=4.0)
    assert s["accuracy"] == 1.0 and s["positive"] == pytest.approx(1.0, abs=1e-5)
    _, s = run(d0, d0, SHIFT_RIGHT_8, num_samples=64, temperature=0.05, negative_radius=4.0)
    assert s["accuracy"] < 1.0 and s["positive"] < 0.5


def test_gradient_steps_lower_the_loss():
    torch.manual_seed(0)
    d0 = torch.randn(2, 16, 4, 5, requires_grad=True)
    d1 = torch.randn(2, 16, 4, 5, requires_grad=True)
    H = IDENTITY.expand(2, -1, -1)
    loss_fn = get_loss("infonce", num_samples=64)
    opt = torch.optim.Adam([d0, d1], lr=0.05)
    first = None
    for _ in range(30):
        loss, _ = loss_fn(d0, d1, H, None, None, generator=torch.Generator().manual_seed(0))
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def test_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        get_loss("infonce", temperature=0.0)
    with pytest.raises(ValueError, match="num_samples"):
        get_loss("infonce", num_samples=1)


def test_across_batch_sees_the_other_pairs_as_negatives():
    # two pairs with the same one-hot maps: within each pair the partner is the only match
    # (accuracy 1); across the batch the other pair holds an identical descriptor, never
    # strictly less similar (accuracy 0) and the loss grows by about log(2)
    d = one_hot().expand(2, -1, -1, -1).contiguous()
    H = IDENTITY.expand(2, -1, -1)
    kw = dict(num_samples=32, temperature=0.05, negative_radius=4.0)
    _, alone = run(d, d.clone(), H, **kw)
    loss, both = run(d, d.clone(), H, across_batch=True, **kw)
    assert alone["accuracy"] == 1.0 and both["accuracy"] == 0.0
    assert float(loss) >= math.log(2) - 1e-4
