"""SuperPoint's descriptor losses (step 4), registered in ``DESCRIPTOR_LOSSES`` (``losses``).

Every loss takes the raw dense descriptor maps of an image pair and the homography between them:

``forward(desc0 [B, D, Hc0, Wc0], desc1 [B, D, Hc1, Wc1], H_0to1 [B, 3, 3], valid0 [B, H0, W0]
or None, valid1 [B, H1, W1] or None, generator=None) -> (loss, scalars)``

* ``H_0to1`` maps image-0 pixels to image-1 pixels (``superpoint_ros.geometry``: (x, y), pixel
  centres at integer coordinates), images being ``8 Hc x 8 Wc`` pixels;
* ``valid0`` / ``valid1``: pixel masks of the images (0 where a warp brought in the border);
  a cell counts only if all its 64 pixels are valid (``losses.detector.valid_cells``);
* descriptors are L2-normalised inside the loss (the network outputs them raw);
* ``scalars`` hold ``descriptor_loss`` and its ``positive`` and ``negative`` parts (detached),
  logged separately by the trainer: for the hinge losses (``dense``, ``dense_normalized``,
  ``sparse``) the two terms, ``loss == positive + negative``; for ``triplet`` (one hinge on a
  difference, which does not split) the mean positive and hardest-negative distances.

Cell ``(v, u)`` of a map sits at pixel ``(x, y) = (8u + 3.5, 8v + 3.5)``: the centre of the
8x8 pixels it covers, the ``center`` descriptor-sampling convention
(``superpoint_ros.frontend.conventions``) that the trained model records in its checkpoint.

The losses:

* ``dense`` (DeTone et al. 2018, eq. 5): every cell of image 0 against every cell of image 1;
  ``s = 1`` when the warped centre of the first lies within ``positive_radius`` (8 px, one
  cell) of the centre of the second; hinge ``lambda_d * s * max(0, m_p - d.d') + (1 - s) *
  max(0, d.d' - m_n)`` averaged over all valid cell pairs (the paper's ``1 / (Hc Wc)^2``),
  ``lambda_d = 250``, ``m_p = 1``, ``m_n = 0.2``. "Within 8 px" is strict (``< 8``): with an
  identity warp the four neighbours of a cell sit at exactly 8 px and are negatives.
* ``dense_normalized``: the same hinge terms, but the positive term is averaged over the
  positive pairs and the negative term over the negative pairs (so ``lambda_d`` balances two
  means, default 1, instead of compensating a ~1:1000 count imbalance with 250). Public
  PyTorch re-implementations moved to this kind of normalisation after the paper's values
  collapsed the descriptors for them.
* ``sparse``: ``num_samples`` correspondences per pair (a valid cell of image 0 whose warped
  centre lands on a valid pixel of image 1; the image-1 descriptor is bilinearly sampled
  there), each with ``num_negatives`` random cells of image 1 at least ``negative_radius``
  px from the correspondence; the same hinges, each averaged over its samples. Memory is
  O(samples x negatives) instead of O((Hc Wc)^2).
* ``triplet``: the same sampled correspondences; for each anchor the hardest negative in the
  batch (the closest descriptor of any other correspondence of any pair of the batch, in
  either direction, excluding those of the same pair within ``negative_radius`` px), and the
  margin loss ``max(0, margin + |a - p| - |a - n|)`` on Euclidean distances (HardNet's
  recipe); ``positive`` logs the mean ``|a - p|`` and ``negative`` the mean ``|a - n|``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from superpoint_ros.frontend.postprocess import sample_descriptors
from superpoint_ros.model.superpoint import CELL

from . import DESCRIPTOR_LOSSES
from .detector import valid_cells


def warp_points_torch(points: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """``points [B, N, 2]`` (x, y) mapped by ``H [B, 3, 3]``; returns ``[B, N, 2]``. The torch
    twin of ``superpoint_ros.geometry.warp_points`` (points at infinity become very large)."""
    homog = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1) @ H.transpose(1, 2)
    w = homog[..., 2:3]
    w = torch.where(w.abs() < 1e-9, torch.full_like(w, 1e-9), w)
    return homog[..., :2] / w


def cell_centers(hc: int, wc: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel coordinates ``[Hc * Wc, 2]`` (x, y) of the cell centres, in raster order."""
    v, u = torch.meshgrid(
        torch.arange(hc, device=device, dtype=dtype),
        torch.arange(wc, device=device, dtype=dtype),
        indexing="ij",
    )
    half = (CELL - 1) / 2.0  # 3.5: centre of pixels 0..7
    return torch.stack([u * CELL + half, v * CELL + half], dim=-1).reshape(-1, 2)


def _cell_mask(valid: torch.Tensor | None, b: int, hc: int, wc: int, device) -> torch.Tensor:
    """Boolean ``[B, Hc * Wc]``: valid cells (all cells without a mask)."""
    if valid is None:
        return torch.ones(b, hc * wc, dtype=torch.bool, device=device)
    return valid_cells(valid).reshape(b, -1).to(device)


def _pixel_valid(valid: torch.Tensor | None, points: torch.Tensor, size) -> torch.Tensor:
    """Boolean ``[B, N]``: ``points [B, N, 2]`` fall on a pixel of the image (of ``size``) that
    is valid in ``valid [B, H, W]`` (every pixel without a mask)."""
    h, w = size
    ij = torch.floor(points + 0.5).long()
    x, y = ij[..., 0], ij[..., 1]
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    if valid is None:
        return inside
    b = points.shape[0]
    flat = valid.reshape(b, -1) > 0.5
    index = (y.clamp(0, h - 1) * w + x.clamp(0, w - 1)).to(flat.device)
    return inside & torch.gather(flat, 1, index)


def _flat_normalized(desc: torch.Tensor) -> torch.Tensor:
    """``[B, D, Hc, Wc]`` -> L2-normalised ``[B, Hc * Wc, D]``."""
    b, d = desc.shape[:2]
    return F.normalize(desc, dim=1).reshape(b, d, -1).transpose(1, 2)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def _scalars(loss: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, **extra):
    out = {"descriptor_loss": loss.detach(), "positive": pos.detach(), "negative": neg.detach()}
    out.update({k: v.detach() for k, v in extra.items()})
    return out


class _DenseBase(nn.Module):
    """All cell pairs of the two maps (the paper's formulation); subclasses normalise.
    ``lambda_d`` (weight of the positive term) defaults to the subclass's ``default_lambda_d``."""

    default_lambda_d = 1.0

    def __init__(
        self,
        lambda_d: float | None = None,
        positive_margin: float = 1.0,
        negative_margin: float = 0.2,
        positive_radius: float = 8.0,
    ):
        super().__init__()
        self.lambda_d = self.default_lambda_d if lambda_d is None else lambda_d
        self.positive_margin = positive_margin
        self.negative_margin = negative_margin
        self.positive_radius = positive_radius

    def terms(self, desc0, desc1, H_0to1, valid0, valid1):
        """``(pos_hinge, neg_hinge, s, pair_mask)``, each ``[B, N0, N1]``."""
        b, _, hc0, wc0 = desc0.shape
        hc1, wc1 = desc1.shape[2:]
        device = desc0.device
        c0 = cell_centers(hc0, wc0, device).expand(b, -1, -1)
        c1 = cell_centers(hc1, wc1, device)
        warped = warp_points_torch(c0, H_0to1.to(device=device, dtype=c0.dtype))
        dist = torch.cdist(warped, c1.expand(b, -1, -1))  # [B, N0, N1]
        s = dist < self.positive_radius
        dot = _flat_normalized(desc0) @ _flat_normalized(desc1).transpose(1, 2)
        pos = F.relu(self.positive_margin - dot)
        neg = F.relu(dot - self.negative_margin)
        m0 = _cell_mask(valid0, b, hc0, wc0, device)
        m1 = _cell_mask(valid1, b, hc1, wc1, device)
        return pos, neg, s, m0[:, :, None] & m1[:, None, :]


@DESCRIPTOR_LOSSES.register("dense")
class DenseDescriptorLoss(_DenseBase):
    """The paper's hinge over all cell pairs, averaged over the valid pairs (module doc)."""

    default_lambda_d = 250.0  # the paper's
    default_lambda = 1e-4  # the paper's weight against the detector loss (lambda_d = 250 inside)

    def forward(self, desc0, desc1, H_0to1, valid0=None, valid1=None, generator=None):
        pos, neg, s, mask = self.terms(desc0, desc1, H_0to1, valid0, valid1)
        count = mask.sum().clamp(min=1).to(pos.dtype)
        positive = self.lambda_d * (pos * (s & mask)).sum() / count
        negative = (neg * (~s & mask)).sum() / count
        loss = positive + negative
        return loss, _scalars(loss, positive, negative, positive_fraction=(s & mask).sum() / count)


@DESCRIPTOR_LOSSES.register("dense_normalized")
class DenseNormalizedDescriptorLoss(_DenseBase):
    """The hinge over all cell pairs, positive and negative terms each averaged over its own
    pairs (module doc)."""

    def forward(self, desc0, desc1, H_0to1, valid0=None, valid1=None, generator=None):
        pos, neg, s, mask = self.terms(desc0, desc1, H_0to1, valid0, valid1)
        positive = self.lambda_d * _masked_mean(pos, s & mask)
        negative = _masked_mean(neg, ~s & mask)
        loss = positive + negative
        count = mask.sum().clamp(min=1)
        return loss, _scalars(loss, positive, negative, positive_fraction=(s & mask).sum() / count)


def sample_correspondences(
    desc0: torch.Tensor,
    desc1: torch.Tensor,
    H_0to1: torch.Tensor,
    valid0: torch.Tensor | None,
    valid1: torch.Tensor | None,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Draw ``num_samples`` correspondences per pair (with replacement when a pair has fewer
    valid cells).

    Returns ``anchor [B, K, D]`` (normalised descriptors of image-0 cells), ``positive
    [B, K, D]`` (image-1 descriptors bilinearly sampled at the warped cell centres), ``points1
    [B, K, 2]`` (those warped centres, image-1 pixels) and ``valid [B, K]`` (false for pairs
    without any valid correspondence). ``generator``: the CPU generator draws are made from.
    """
    b, _, hc0, wc0 = desc0.shape
    hc1, wc1 = desc1.shape[2:]
    device = desc0.device
    c0 = cell_centers(hc0, wc0, device).expand(b, -1, -1)
    warped = warp_points_torch(c0, H_0to1.to(device=device, dtype=c0.dtype))
    ok = _cell_mask(valid0, b, hc0, wc0, device)
    ok = ok & _pixel_valid(valid1, warped, (hc1 * CELL, wc1 * CELL)).to(device)
    any_ok = ok.any(dim=1)
    weights = torch.where(any_ok[:, None], ok.float(), torch.ones_like(ok, dtype=torch.float))
    index = torch.multinomial(weights.cpu(), num_samples, replacement=True, generator=generator)
    index = index.to(device)
    anchor = torch.gather(
        _flat_normalized(desc0), 1, index[..., None].expand(-1, -1, desc0.shape[1])
    )
    points1 = torch.gather(warped, 1, index[..., None].expand(-1, -1, 2))
    positive = sample_descriptors(desc1, points1, "center")
    valid = torch.gather(ok, 1, index) & any_ok[:, None]
    return {"anchor": anchor, "positive": positive, "points1": points1, "valid": valid}


@DESCRIPTOR_LOSSES.register("sparse")
class SparseDescriptorLoss(nn.Module):
    """Sampled correspondences with sampled negatives, the dense hinges on them (module doc)."""

    def __init__(
        self,
        num_samples: int = 512,
        num_negatives: int = 64,
        lambda_d: float = 1.0,
        positive_margin: float = 1.0,
        negative_margin: float = 0.2,
        negative_radius: float = 16.0,
    ):
        super().__init__()
        self.num_samples = num_samples
        self.num_negatives = num_negatives
        self.lambda_d = lambda_d
        self.positive_margin = positive_margin
        self.negative_margin = negative_margin
        self.negative_radius = negative_radius

    def forward(self, desc0, desc1, H_0to1, valid0=None, valid1=None, generator=None):
        corr = sample_correspondences(
            desc0, desc1, H_0to1, valid0, valid1, self.num_samples, generator
        )
        b, _, hc1, wc1 = desc1.shape
        k, m = self.num_samples, self.num_negatives
        device = desc0.device
        pos_dot = (corr["anchor"] * corr["positive"]).sum(-1)  # [B, K]
        positive = self.lambda_d * _masked_mean(
            F.relu(self.positive_margin - pos_dot), corr["valid"]
        )
        cells1 = _cell_mask(valid1, b, hc1, wc1, device)  # [B, N1]
        weights = torch.where(cells1.any(1, keepdim=True), cells1.float(), 1.0).cpu()
        neg_index = torch.multinomial(weights, k * m, replacement=True, generator=generator)
        neg_index = neg_index.to(device).reshape(b, k, m)
        centres1 = cell_centers(hc1, wc1, device)
        far = (centres1[neg_index] - corr["points1"][:, :, None]).norm(dim=-1)
        neg_ok = (
            (far >= self.negative_radius)
            & torch.gather(cells1, 1, neg_index.reshape(b, -1)).reshape(b, k, m)
            & corr["valid"][..., None]
        )
        flat1 = _flat_normalized(desc1)  # [B, N1, D]
        negs = torch.gather(
            flat1, 1, neg_index.reshape(b, -1, 1).expand(-1, -1, flat1.shape[-1])
        ).reshape(b, k, m, -1)
        neg_dot = (corr["anchor"][:, :, None] * negs).sum(-1)  # [B, K, M]
        negative = _masked_mean(F.relu(neg_dot - self.negative_margin), neg_ok)
        loss = positive + negative
        return loss, _scalars(loss, positive, negative)


@DESCRIPTOR_LOSSES.register("triplet")
class TripletDescriptorLoss(nn.Module):
    """Hardest-in-batch triplet margin loss on sampled correspondences (module doc)."""

    def __init__(
        self,
        num_samples: int = 256,
        margin: float = 1.0,
        negative_radius: float = 16.0,
        across_batch: bool = True,
    ):
        super().__init__()
        self.num_samples = num_samples
        self.margin = margin
        self.negative_radius = negative_radius
        self.across_batch = across_batch

    def forward(self, desc0, desc1, H_0to1, valid0=None, valid1=None, generator=None):
        corr = sample_correspondences(
            desc0, desc1, H_0to1, valid0, valid1, self.num_samples, generator
        )
        b, k = corr["valid"].shape
        device = desc0.device
        a = corr["anchor"].reshape(b * k, -1)
        p = corr["positive"].reshape(b * k, -1)
        valid = corr["valid"].reshape(-1)
        pair = torch.arange(b, device=device).repeat_interleave(k)
        pts = corr["points1"].reshape(b * k, 2)
        # distances between unit vectors: sqrt(2 - 2 cos), clamped for a finite gradient
        dist = torch.sqrt((2.0 - 2.0 * (a @ p.t())).clamp(min=1e-8))  # [BK, BK] anchor x pos
        same_pair = pair[:, None] == pair[None, :]
        near = (pts[:, None] - pts[None, :]).norm(dim=-1) < self.negative_radius
        allowed = ~(same_pair & near) & valid[:, None] & valid[None, :]
        if not self.across_batch:
            allowed = allowed & same_pair
        big = torch.full_like(dist, 4.0)  # beyond any distance of unit vectors (max 2)
        masked = torch.where(allowed, dist, big)
        hardest = torch.minimum(masked.min(dim=1).values, masked.min(dim=0).values)
        has_neg = valid & (hardest < 3.0)
        d_pos = dist.diagonal()
        positive = _masked_mean(d_pos, has_neg)
        hinge = F.relu(self.margin + d_pos - hardest)
        loss = _masked_mean(hinge, has_neg)
        negative = _masked_mean(hardest, has_neg)
        return loss, _scalars(loss, positive, negative)
