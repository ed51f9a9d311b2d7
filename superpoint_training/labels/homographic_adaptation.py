"""Homographic adaptation (DeTone et al. 2018, Sec. 5): pseudo ground-truth keypoints from a
detector run on many random warps of each image.

For every image: ``N`` homographies (the first the identity), the image warped by each, the
detector's probability map of every warped image warped back onto the original, and the maps
averaged pixel by pixel over the warps that see that pixel (validity masks), then NMS, a
threshold and top-k. Pure torch, no I/O: the whole batch of ``B x N`` warps runs through the
network in chunks of ``warp_batch`` images on the device (``homographic_adaptation``).
``homographic_adaptation_reference`` does the same one homography at a time with OpenCV warps,
as public tools do; it is the benchmark's baseline and, being an independent implementation of
the warps, the test of the batched path's conventions.

Conventions (``superpoint_ros.geometry``): (x, y) points with pixel centres at integer
coordinates; a homography ``H`` maps original pixels to warped pixels (the sampler's
``superpoint_training.geometry.homographies``), so ``warped(p') = image(H^-1 p')`` exactly as
``cv2.warpPerspective(image, H, (W, H))`` renders it. ``warp_images`` does this with
``torch.nn.functional.grid_sample(align_corners=True)``, whose normalised coordinate -1 / +1 is
the centre of the first / last pixel: pixel ``x`` is ``2 x / (W - 1) - 1``. Samples falling
outside the image blend with zeros, like OpenCV's constant border.

Validity: a pixel of the warped image is valid when its preimage rounds to a pixel of the
original (OpenCV's nearest-neighbour warp of a mask of ones), eroded by ``valid_border_margin``
pixels (square kernel: max-pooling, cheap on every device), so the artificial edge between image
and black border produces no detections. The erosion does not eat into the frame's own edges.
Unwarped masks weigh the average: ``prob(p) = sum_i unwarp_i(prob_i * mask_i)(p) / sum_i
unwarp_i(mask_i)(p)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from superpoint_ros.frontend.postprocess import detector_scores, nms, remove_border
from superpoint_training.data.augment import warp_image
from superpoint_training.geometry.homographies import (
    HomographyConfig,
    coco_homography_config,
    sample_homographies,
)


@dataclass
class AdaptationConfig:
    """Homographic adaptation (``labels.adaptation.*``); defaults: the paper / rpautrat's COCO
    export."""

    num_homographies: int = 100  # warps per image, the first the identity (1: detector only)
    homography: HomographyConfig = field(default_factory=coco_homography_config)  # sampler
    valid_border_margin: int = 3  # erode each warp's valid region by this many pixels
    nms_radius: int = 4  # non-maximum suppression of the averaged map, pixels (0: none)
    detection_threshold: float = 0.015  # keep averaged probabilities above this
    top_k: int = 0  # keep at most this many points per image, best first (0: no limit)
    border: int = 4  # drop points closer than this to the image edge, pixels
    warp_batch: int = 0  # warped images per network forward (0: auto, see resolve_warp_batch)

    def __post_init__(self) -> None:
        if self.num_homographies < 1:
            raise ValueError(f"num_homographies must be >= 1, got {self.num_homographies}")
        if self.warp_batch < 0:
            raise ValueError(f"warp_batch must be >= 0, got {self.warp_batch}")
        for key in ("valid_border_margin", "nms_radius", "top_k", "border"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")


def resolve_warp_batch(warp_batch: int, num_homographies: int, device) -> int:
    """``warp_batch`` 0 (auto): all warps of an image in one forward on a GPU, where batching
    is what makes the path fast; 4 on a CPU. On this project's 2-core CPU
    (``benchmarks/bench_homographic_adaptation.py``, docs/training_superpoint.md) batches of 4
    ran as fast as one warp at a time when the machine was otherwise idle, while batches of 100
    were 2.5x slower there (memory traffic); with the CPU shared by other jobs, batches of 4
    and 100 were both ~1.5x faster than one at a time (fewer thread synchronisations)."""
    if warp_batch > 0:
        return warp_batch
    return max(1, num_homographies) if torch.device(device).type == "cuda" else 4


# ---------------------------------------------------------------------------------------------
# homographies and warps


def sample_adaptation_homographies(
    rng: np.random.Generator, n: int, size_hw: tuple[int, int], config: HomographyConfig
) -> np.ndarray:
    """``[n, 3, 3]`` float64: the identity, then ``n - 1`` draws of the paper's sampler."""
    out = np.empty((n, 3, 3), np.float64)
    out[0] = np.eye(3)
    if n > 1:
        out[1:] = sample_homographies(rng, n - 1, size_hw, config)
    return out


def _source_coords(H: torch.Tensor, src_hw, out_hw, device) -> torch.Tensor:
    """``[M, Ho, Wo, 2]`` (x, y) source pixel of every output pixel: ``H^-1 p`` (float32)."""
    ho, wo = out_hw
    H_inv = torch.linalg.inv(H.to(device=device, dtype=torch.float64)).to(torch.float32)
    ys = torch.arange(ho, device=device, dtype=torch.float32)
    xs = torch.arange(wo, device=device, dtype=torch.float32)
    # H^-1 [x, y, 1]^T, separably: column term (x) + row term (y, 1), no [Ho*Wo, 3] matmul
    cols = H_inv[:, None, None, :, 0] * xs[None, None, :, None]  # [M, 1, Wo, 3]
    rows = H_inv[:, None, None, :, 1] * ys[None, :, None, None] + H_inv[:, None, None, :, 2]
    src = cols + rows  # [M, Ho, Wo, 3]
    z = src[..., 2:3]
    z = torch.where(z.abs() < 1e-9, torch.full_like(z, 1e-9), z)
    return src[..., :2] / z


def _grid(coords: torch.Tensor, src_hw) -> torch.Tensor:
    """Pixel coordinates -> grid_sample's ``align_corners=True`` frame (module docstring)."""
    h, w = src_hw
    scale = coords.new_tensor([2.0 / (w - 1), 2.0 / (h - 1)])
    return (coords * scale - 1.0).clamp(-4.0, 4.0)  # far outside is outside: no huge values


def _identity_mask(H: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(3, dtype=H.dtype, device=H.device)
    return (H == eye).flatten(1).all(dim=1)


def warp_images(
    images: torch.Tensor,
    H: torch.Tensor,
    size_hw: Sequence[int] | None = None,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Warp ``images [M, C, h, w]`` by ``H [M, 3, 3]`` (source pixels -> output pixels) into
    ``[M, C, H_out, W_out]`` (default: the same size): ``out(p) = images(H^-1 p)``, zeros
    outside (``cv2.warpPerspective`` semantics, module docstring). ``mode``: bilinear | nearest.
    The identity is exact (not off by the grid's rounding, ~1e-6)."""
    _, _, h, w = images.shape
    out_hw = (h, w) if size_hw is None else (int(size_hw[0]), int(size_hw[1]))
    if h < 2 or w < 2:
        raise ValueError(f"cannot warp images of {h}x{w} pixels (need at least 2x2)")
    grid = _grid(_source_coords(H, (h, w), out_hw, images.device), (h, w)).to(images.dtype)
    out = F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=True)
    if out_hw == (h, w):
        identity = _identity_mask(H.to(images.device))
        if identity.any():
            out = torch.where(identity[:, None, None, None], images, out)
    return out


def erode_masks(masks: torch.Tensor, margin: int) -> torch.Tensor:
    """Erode 0/1 ``masks [M, 1, H, W]`` with a ``(2 margin + 1)^2`` square (as ``cv2.erode``
    with a rectangular kernel and its default border: the frame's edges do not erode)."""
    if margin <= 0:
        return masks
    # max-pooling pads with -inf: pixels outside the frame never erode the inside
    return -F.max_pool2d(-masks, 2 * margin + 1, stride=1, padding=margin)


def valid_masks(
    H: torch.Tensor, size_hw: Sequence[int], margin: int, device=None, dtype=torch.float32
) -> torch.Tensor:
    """``[M, 1, H, W]`` validity of each warped image (module docstring): the preimage of the
    pixel rounds to a pixel of the original (OpenCV's nearest-neighbour warp of a mask of ones),
    eroded by ``margin``."""
    h, w = int(size_hw[0]), int(size_hw[1])
    xy = _source_coords(H, (h, w), (h, w), device)
    inside = (xy[..., 0] > -0.5) & (xy[..., 0] < w - 0.5)
    inside &= (xy[..., 1] > -0.5) & (xy[..., 1] < h - 0.5)
    return erode_masks(inside[:, None].to(dtype), margin)


# ---------------------------------------------------------------------------------------------
# adaptation


@torch.no_grad()
def homographic_adaptation(
    model: torch.nn.Module,
    images: torch.Tensor,
    homographies: torch.Tensor,
    valid_border_margin: int = 3,
    warp_batch: int = 100,
) -> dict[str, torch.Tensor]:
    """Average the detector's probability maps over warps of each image (batched path).

    ``model``: a ``SuperPointNet`` (or anything returning ``{"logits": [M, 65, H/8, W/8]}``),
    in eval mode, on the device of ``images``; ``images [B, 1, H, W]`` float in [0, 1], H and W
    multiples of 8; ``homographies [B, N, 3, 3]`` (original -> warped pixels).

    Returns ``prob [B, H, W]`` (the average; 0 where no warp sees the pixel) and ``count
    [B, H, W]`` (the summed validity weights: how many warps saw each pixel).
    """
    b, _, h, w = images.shape
    n = homographies.shape[1]
    device, dtype = images.device, images.dtype
    homographies = homographies.to(device=device, dtype=torch.float64)
    numerator = torch.zeros(b, h, w, device=device, dtype=dtype)
    count = torch.zeros(b, h, w, device=device, dtype=dtype)
    pair_image = torch.arange(b, device=device).repeat_interleave(n)
    flat_h = homographies.reshape(b * n, 3, 3)
    for start in range(0, b * n, warp_batch):
        idx = pair_image[start : start + warp_batch]
        Hs = flat_h[start : start + warp_batch]
        warped = warp_images(images[idx], Hs)
        masks = valid_masks(Hs, (h, w), valid_border_margin, device, dtype)
        prob = detector_scores(model(warped)["logits"].float())[:, None]  # [M, 1, H, W]
        # unwarp (out(p) = warped(H p)) the masked map and the mask together: one grid
        back = warp_images(torch.cat([prob * masks, masks], dim=1), torch.linalg.inv(Hs))
        numerator.index_add_(0, idx, back[:, 0])
        count.index_add_(0, idx, back[:, 1])
    prob = torch.where(count > 1e-6, numerator / count.clamp(min=1e-6), torch.zeros_like(count))
    return {"prob": prob, "count": count}


@torch.no_grad()
def homographic_adaptation_reference(
    model: torch.nn.Module,
    image: np.ndarray,
    homographies: np.ndarray,
    valid_border_margin: int = 3,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """The same average, one homography at a time, warps by OpenCV (the baseline).

    ``image [H, W]`` float32 in [0, 1]; ``homographies [N, 3, 3]``. Returns numpy ``prob`` and
    ``count`` ``[H, W]`` as ``homographic_adaptation`` does.
    """

    h, w = image.shape
    image = np.asarray(image, np.float32)
    numerator = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    ones = np.ones((h, w), np.uint8)
    side = 2 * valid_border_margin + 1
    kernel = np.ones((side, side), np.uint8) if valid_border_margin > 0 else None
    for H in np.asarray(homographies, np.float64):
        warped = warp_image(image, H)
        mask = cv2.warpPerspective(ones, H, (w, h), flags=cv2.INTER_NEAREST)
        if kernel is not None:
            mask = cv2.erode(mask, kernel)
        mask = mask.astype(np.float32)
        x = torch.from_numpy(warped)[None, None].to(device)
        prob = detector_scores(model(x)["logits"])[0].cpu().numpy()
        back = cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR
        numerator += cv2.warpPerspective(prob * mask, H, (w, h), flags=back)
        count += cv2.warpPerspective(mask, H, (w, h), flags=back)
    prob = np.where(count > 1e-6, numerator / np.maximum(count, 1e-6), 0.0)
    return {"prob": prob.astype(np.float32), "count": count.astype(np.float32)}


def select_points(
    prob: torch.Tensor,
    nms_radius: int = 4,
    detection_threshold: float = 0.015,
    top_k: int = 0,
    border: int = 4,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pseudo-label points of each map of ``prob [B, H, W]``: NMS, ``> detection_threshold``,
    border removal, then the ``top_k`` best (0: all). Returns, per image, ``(points [N, 2]
    float32 (x, y) = (column, row), scores [N] float32)``, best first."""
    scores = torch.where(prob > detection_threshold, prob, torch.zeros_like(prob))
    scores = remove_border(nms(scores, nms_radius), border)
    out = []
    for s in scores:
        ys, xs = torch.nonzero(s > 0, as_tuple=True)
        vals = s[ys, xs]
        order = torch.argsort(vals, descending=True, stable=True)
        if top_k > 0:
            order = order[:top_k]
        pts = torch.stack([xs[order], ys[order]], dim=-1).to(torch.float32)
        out.append((pts.cpu().numpy().reshape(-1, 2), vals[order].float().cpu().numpy()))
    return out


def adapt_and_select(
    model: torch.nn.Module,
    images: torch.Tensor,
    homographies: torch.Tensor,
    config: AdaptationConfig,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``homographic_adaptation`` then ``select_points`` with ``config``'s settings."""
    warp_batch = resolve_warp_batch(config.warp_batch, homographies.shape[1], images.device)
    prob = homographic_adaptation(
        model, images, homographies, config.valid_border_margin, warp_batch
    )["prob"]
    return select_points(
        prob, config.nms_radius, config.detection_threshold, config.top_k, config.border
    )
