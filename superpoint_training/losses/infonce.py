"""A contrastive (InfoNCE) descriptor loss for step 4: ``get_descriptor_loss("infonce")``.

Same interface as the losses of ``losses.descriptor`` (``forward(desc0, desc1, H_0to1, valid0,
valid1, generator) -> (loss, scalars)``). ``num_samples`` correspondences are drawn per pair
(``descriptor.sample_correspondences``: a valid cell of image 0, normalised descriptor ``a_i``,
and the image-1 descriptor ``p_i`` bilinearly sampled where the homography maps the cell's
centre). Each anchor is classified against the candidates of its own pair (and, with
``across_batch``, of every pair of the batch):

    loss_i = -log( exp(a_i . p_i / T) / sum_j exp(a_i . p_j / T) )

over the candidates ``j`` allowed for ``i``: ``j = i``, and every other correspondence except
those of the same pair whose image-1 points lie within ``negative_radius`` px of ``p_i``'s
(neighbouring cells look alike and are not wrong answers). With ``symmetric`` the same is done
from image 1 to image 0 and the two directions are averaged. Every cell of the pair is thereby
pushed away from all the others at once, with the hardest ones weighted most by the softmax,
instead of through a fixed margin: it learns distinctive descriptors in far fewer steps than
the hinge losses (measured in docs/training_superpoint.md).

``temperature`` ``T`` is fixed (0.1 by default: cosine similarities span [-1, 1], so the
logits span [-10, 10]). Scalars: ``descriptor_loss``; ``positive``, the mean cosine
``a_i . p_i``; ``negative``, the mean cosine of each anchor's most similar allowed negative;
``accuracy``, the fraction of anchors whose own correspondence is their most similar candidate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import DESCRIPTOR_LOSSES
from .descriptor import sample_correspondences


def info_nce(
    sim: torch.Tensor, allowed: torch.Tensor, temperature: float, symmetric: bool = True
) -> torch.Tensor:
    """The InfoNCE loss of similarity matrices ``sim [N, N]`` (or a batch ``[G, N, N]``) whose
    diagonals hold the true pairs: the mean over rows ``i`` of ``-log softmax_j(sim[i, j] /
    T)[i]``, the softmax over the columns ``allowed[i, j]`` (bool, same shape; rows with no
    allowed negative, or whose diagonal is not allowed, are left out). ``symmetric``: the mean
    of that and the same over columns. 0 (with a gradient path) when no row counts."""
    if sim.dim() == 2:
        sim, allowed = sim[None], allowed[None]
    g, n, _ = sim.shape
    eye = torch.eye(n, dtype=torch.bool, device=sim.device).expand(g, -1, -1)
    logits = (sim / temperature).masked_fill(~allowed, float("-inf"))
    target = torch.arange(n, device=sim.device).expand(g, -1)

    def one_way(lg: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
        rows = (ok & eye).any(-1) & ok.sum(-1).gt(1)  # [G, N]
        if not bool(rows.any()):
            return sim.sum() * 0.0
        return F.cross_entropy(lg[rows], target[rows])

    loss = one_way(logits, allowed)
    if symmetric:
        loss = 0.5 * (loss + one_way(logits.transpose(1, 2), allowed.transpose(1, 2)))
    return loss


@DESCRIPTOR_LOSSES.register("infonce")
class InfoNCEDescriptorLoss(nn.Module):
    """Contrastive loss over sampled correspondences (module doc)."""

    def __init__(
        self,
        num_samples: int = 512,
        temperature: float = 0.1,
        negative_radius: float = 16.0,
        across_batch: bool = False,
        symmetric: bool = True,
    ):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if num_samples < 2:
            raise ValueError(f"num_samples must be >= 2, got {num_samples}")
        self.num_samples = num_samples
        self.temperature = temperature
        self.negative_radius = negative_radius
        self.across_batch = across_batch
        self.symmetric = symmetric

    def forward(self, desc0, desc1, H_0to1, valid0=None, valid1=None, generator=None):
        corr = sample_correspondences(
            desc0, desc1, H_0to1, valid0, valid1, self.num_samples, generator
        )
        b, k = corr["valid"].shape
        a, p = corr["anchor"].float(), corr["positive"].float()  # [B, K, D]
        valid, pts = corr["valid"], corr["points1"].float()  # [B, K], [B, K, 2]
        near = torch.cdist(pts, pts) < self.negative_radius  # [B, K, K], same pair only
        if self.across_batch:  # one group of B*K candidates; other pairs' points never "near"
            pair = torch.arange(b, device=a.device).repeat_interleave(k)
            same = pair[:, None] == pair[None, :]
            blocks = torch.zeros(b * k, b * k, dtype=torch.bool, device=a.device)
            for i in range(b):
                blocks[i * k : (i + 1) * k, i * k : (i + 1) * k] = near[i]
            near = (blocks & same)[None]
            a, p, valid = a.reshape(1, b * k, -1), p.reshape(1, b * k, -1), valid.reshape(1, -1)
        n = a.shape[1]
        eye = torch.eye(n, dtype=torch.bool, device=a.device)[None]
        allowed = (~near | eye) & valid[:, :, None] & valid[:, None, :]
        sim = a @ p.transpose(1, 2)  # [G, N, N]: anchor i (image 0) x candidate j (image 1)
        loss = info_nce(sim, allowed, self.temperature, self.symmetric)
        with torch.no_grad():
            negatives = sim.masked_fill(~allowed | eye, float("-inf"))
            hardest = negatives.max(dim=-1).values  # [G, N]
            has_neg = valid & torch.isfinite(hardest)
            count = has_neg.sum().clamp(min=1)
            diag = sim.diagonal(dim1=1, dim2=2)
            positive = (diag * has_neg).sum() / count
            negative = torch.where(has_neg, hardest, torch.zeros_like(hardest)).sum() / count
            accuracy = ((diag > hardest) & has_neg).sum() / count
        return loss, {
            "descriptor_loss": loss.detach(),
            "positive": positive,
            "negative": negative,
            "accuracy": accuracy,
        }
