"""Post-processing of the network's outputs, in torch, written to export to ONNX (and build in
TensorRT 8.5 to 10): fixed output sizes, no data-dependent shapes, max-pooling NMS (with a fixed
number of re-expansion rounds for the modes that recover greedy NMS).

Shapes: ``B`` batch, ``H x W`` input pixels, ``Hc = H/8``, ``Wc = W/8``, ``K`` keypoint slots,
``D`` descriptor size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model.superpoint import CELL, SuperPointNet
from .config import NMS_MODES, FrontendConfig
from .conventions import descriptor_cell_coords, sampling_rule


def depth_to_space(cells: torch.Tensor) -> torch.Tensor:
    """``[B, 64, Hc, Wc]`` -> ``[B, Hc*8, Wc*8]``: channel ``k`` is the pixel at row ``k // 8``,
    column ``k % 8`` of its cell."""
    return F.pixel_shuffle(cells, CELL)[:, 0]


def detector_scores(logits: torch.Tensor) -> torch.Tensor:
    """Keypoint probability map ``[B, H, W]`` from detector logits ``[B, 65, Hc, Wc]``: softmax
    over the 65 classes, dustbin dropped, cells unfolded to pixels."""
    # Softmax written out along the channel axis: ONNX Runtime's Softmax on axis 1 of NCHW
    # costs several times these element-wise ops.
    e = torch.exp(logits - logits.amax(dim=1, keepdim=True))
    return depth_to_space(e[:, :-1] / e.sum(dim=1, keepdim=True))


def _max_pool(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Max over the ``(2r+1)^2`` window of ``x [B, H, W]`` (outside the image counts as -inf)."""
    # A square max-pool is a row max-pool of a column max-pool: 2(2r+1) comparisons per
    # pixel instead of (2r+1)^2, the same result.
    k = 2 * radius + 1
    pooled = F.max_pool2d(x[:, None], (k, 1), stride=1, padding=(radius, 0))
    return F.max_pool2d(pooled, (1, k), stride=1, padding=(0, radius))[:, 0]


def nms(scores: torch.Tensor, radius: int, rounds: int = 0) -> torch.Tensor:
    """Non-maximum suppression of ``scores [B, H, W]`` (scores >= 0; 0 = no candidate) in a
    ``(2r+1)^2`` window; suppressed pixels -> 0.

    ``rounds = 0`` keeps strict local maxima only (a pixel equal to its window's maximum). Each
    further round re-expands: pixels within the window of a kept point are suppressed, and a
    remaining candidate that is the maximum of the remaining candidates in its window is kept
    too. Every point so kept is one that greedy NMS (strongest first, each kept point
    suppressing its window) keeps, and enough rounds give exactly greedy NMS's set (without
    ties): a chain of points each suppressing the next needs one round per two links.
    """
    if radius <= 0:
        return scores
    zeros = torch.zeros_like(scores)
    keep = scores == _max_pool(scores, radius)
    if rounds > 0:
        keep = keep & (scores > 0)  # an empty pixel that tops an empty window suppresses nothing
    for _ in range(rounds):
        suppressed = _max_pool(keep.to(scores.dtype), radius) > 0
        remaining = torch.where(suppressed, zeros, scores)
        new = (remaining == _max_pool(remaining, radius)) & (remaining > 0)
        keep = keep | new
    return torch.where(keep, scores, zeros)


def remove_border(scores: torch.Tensor, border: int) -> torch.Tensor:
    """Zero the scores of pixels closer than ``border`` to the edge of ``scores [B, H, W]``."""
    if border <= 0:
        return scores
    inner = scores[:, border:-border, border:-border]
    return F.pad(inner, (border, border, border, border))


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best pixels of ``scores [B, H, W]``, best first: ``(values [B, K],
    keypoints [B, K, 2] (x, y) float)``. Images with fewer than ``k`` pixels get zero-score
    slots at (0, 0) (the flat scores are padded with ``k`` zeros so the graph's top-k always
    has ``k`` candidates, whatever the input size)."""
    b, h, w = scores.shape
    flat = torch.cat([scores.reshape(b, -1), scores.new_zeros(b, k)], dim=1)
    values, index = torch.topk(flat, k, dim=1)
    index = torch.where(values > 0, index, torch.zeros_like(index))
    # Non-negative indices: truncating division is floor division (and avoids Mod, which not
    # every TensorRT version parses for integers).
    y = torch.div(index, w, rounding_mode="trunc")
    x = index - y * w
    return values, torch.stack([x, y], dim=-1).to(scores.dtype)


def refine_subpixel(scores: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """Shift integer ``keypoints [B, K, 2]`` by the soft-argmax of ``scores [B, H, W]`` over the
    3x3 window around each; offsets lie in [-1, 1] pixel."""
    b, h, w = scores.shape
    padded = F.pad(scores[:, None], (1, 1, 1, 1))[:, 0]  # [B, H+2, W+2]
    flat = padded.reshape(b, -1)
    x = keypoints[..., 0].long() + 1
    y = keypoints[..., 1].long() + 1
    weights, dxs, dys = [], [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            weights.append(torch.gather(flat, 1, (y + dy) * (w + 2) + (x + dx)))
            dxs.append(dx)
            dys.append(dy)
    wts = torch.stack(weights, dim=-1)  # [B, K, 9]
    total = wts.sum(-1).clamp(min=1e-12)
    ox = (wts * wts.new_tensor(dxs)).sum(-1) / total
    oy = (wts * wts.new_tensor(dys)).sum(-1) / total
    return keypoints + torch.stack([ox, oy], dim=-1)


def sample_descriptors(
    dense: torch.Tensor, keypoints: torch.Tensor, sampling: str = "center"
) -> torch.Tensor:
    """Bilinearly interpolate descriptors at ``keypoints [B, K, 2]`` (input pixels) from the raw
    map ``dense [B, D, Hc, Wc]`` by the rule ``sampling`` (``frontend.conventions``: where a
    pixel falls on the map, and whether the map is L2-normalised before interpolating); returns
    ``[B, K, D]``, L2-normalised. Positions are clamped to the map's outer cell centres. Written
    with gathers (no GridSample) so every backend runs the same arithmetic."""
    b, d, hc, wc = dense.shape
    rule = sampling_rule(sampling)
    if rule.normalize_first:
        dense = dense * torch.rsqrt((dense * dense).sum(dim=1, keepdim=True).clamp(min=1e-24))
    uv = descriptor_cell_coords(keypoints, (hc, wc), rule.name)
    # Bounds that depend on the input size are applied with Max/Min against tensors rather
    # than Clip, whose non-constant bounds older TensorRT parsers reject.
    ones = torch.ones_like(uv[..., 0])
    u = torch.minimum(torch.relu(uv[..., 0]), ones * (wc - 1))
    v = torch.minimum(torch.relu(uv[..., 1]), ones * (hc - 1))
    u0 = u.floor()
    v0 = v.floor()
    fu = (u - u0)[:, None]  # [B, 1, K]
    fv = (v - v0)[:, None]
    u1 = torch.minimum(u0 + 1, ones * (wc - 1)).long()
    v1 = torch.minimum(v0 + 1, ones * (hc - 1)).long()
    u0 = u0.long()
    v0 = v0.long()
    flat = dense.reshape(b, d, -1)

    def at(vv: torch.Tensor, uu: torch.Tensor) -> torch.Tensor:
        index = (vv * wc + uu)[:, None].expand(-1, d, -1)  # [B, D, K]
        return torch.gather(flat, 2, index)

    desc = (
        at(v0, u0) * (1 - fu) * (1 - fv)
        + at(v0, u1) * fu * (1 - fv)
        + at(v1, u0) * (1 - fu) * fv
        + at(v1, u1) * fu * fv
    )
    return F.normalize(desc, dim=1).transpose(1, 2)


class SuperPointFrontendModule(nn.Module):
    """Network + post-processing as one module: the thing exported to ONNX/TensorRT.

    ``forward(image [B, 1, H, W] float32 in [0, 1], H and W multiples of 8)`` returns
    ``keypoints [B, K, 2]`` (x, y) in input pixels, ``scores [B, K]`` (0 for empty slots, valid
    slots first, best first) and ``descriptors [B, K, D]`` (L2-normalised; absent for MagicPoint).
    """

    def __init__(self, net: SuperPointNet, config: FrontendConfig, sampling: str = "center"):
        super().__init__()
        self.net = net
        self.config = config
        self.sampling = sampling_rule(config.descriptor_sampling or sampling).name

    def select(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Detector logits -> (probability map, scores [B, K], keypoints [B, K, 2])."""
        c = self.config
        prob = detector_scores(logits)
        scores = torch.where(prob > c.detection_threshold, prob, torch.zeros_like(prob))
        scores = remove_border(nms(scores, c.nms_radius, NMS_MODES[c.nms]), c.border)
        values, keypoints = top_k(scores, c.max_keypoints)
        if c.subpixel:
            keypoints = refine_subpixel(prob, keypoints)
        return prob, values, keypoints

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(image)
        _, scores, keypoints = self.select(out["logits"])
        if "descriptors_dense" not in out:
            return keypoints, scores
        descriptors = sample_descriptors(out["descriptors_dense"], keypoints, self.sampling)
        return keypoints, scores, descriptors
