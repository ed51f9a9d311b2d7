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
pixels with the elliptic kernel ``superpoint_training.data.augment.warp_valid_mask`` uses, so the
artificial edge between image and black border produces no detections. The erosion does not
eat into the frame's own edges. Unwarped masks weigh the average: ``prob(p) = sum_i
unwarp_i(prob_i * mask_i)(p) / sum_i unwarp_i(mask_i)(p)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from superpoint_ros.frontend.postprocess import detector_scores, nms, remove_border
from superpoint_training.geometry.homographies import HomographyConfig, sample_homographies


def _adaptation_homographies() -> HomographyConfig:
    # rpautrat/SuperPoint's COCO export settings (magic-point_coco_export.yaml): stronger than
    # the sampler's defaults, borders allowed (the validity masks take care of them).
    return HomographyConfig(
        scaling_amplitude=0.2,
        perspective_amplitude_x=0.2,
        perspective_amplitude_y=0.2,
        patch_ratio=0.85,
        max_angle=math.pi / 2,
        allow_artifacts=True,
    )


@dataclass
class AdaptationConfig:
    """Homographic adaptation (``labels.adaptation.*``); defaults: the paper / rpautrat's COCO
    export."""

    num_homographies: int = 100  # warps per image, the first the identity (1: detector only)
    homography: HomographyConfig = field(default_factory=_adaptation_homographies)  # sampler
    valid_border_margin: int = 3  # erode each warp's valid region by this many pixels
    nms_radius: int = 4  # non-maximum suppression of the averaged map, pixels (0: none)
    detection_threshold: float = 0.015  # keep averaged probabilities above this
    top_k: int = 0  # keep at most this many points per image, best first (0: no limit)
    border: int = 4  # drop points closer than this to the image edge, pixels
    warp_batch: int = 100  # warped images per network forward (memory vs speed)

    def __post_init__(self) -> None:
        if self.num_homographies < 1:
            raise ValueError(f"num_homographies must be >= 1, got {self.num_homographies}")
        if self.warp_batch < 1:
            raise ValueError(f"warp_batch must be >= 1, got {self.warp_batch}")
        for key in ("valid_border_margin", "nms_radius", "top_k", "border"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")


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


def warp_images(
    images: torch.Tensor,
    H: torch.Tensor,
    size_hw: Sequence[int] | None = None,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Warp ``images [M, C, h, w]`` by ``H [M, 3, 3]`` (source pixels -> output pixels) into
    ``[M, C, H_out, W_out]`` (default: the same size): ``out(p) = images(H^-1 p)``, zeros
    outside (``cv2.warpPerspective`` semantics, module docstring). ``mode``: bilinear | nearest.
    """
    m, _, h, w = images.shape
    ho, wo = (h, w) if size_hw is None else (int(size_hw[0]), int(size_hw[1]))
    if h < 2 or w < 2:
        raise ValueError(f"cannot warp images of {h}x{w} pixels (need at least 2x2)")
    H = H.to(device=images.device, dtype=torch.float64)
    ys, xs = torch.meshgrid(
        torch.arange(ho, device=images.device, dtype=torch.float64),
        torch.arange(wo, device=images.device, dtype=torch.float64),
        indexing="ij",
    )
    pts = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, -1, 3)
    src = pts @ torch.linalg.inv(H).transpose(1, 2)  # [M, Ho*Wo, 3]
    z = src[..., 2:3]
    z = torch.where(z.abs() < 1e-12, torch.full_like(z, 1e-12), z)
    xy = src[..., :2] / z
    scale = xy.new_tensor([2.0 / (w - 1), 2.0 / (h - 1)])
    grid = (xy * scale - 1.0).clamp(-4.0, 4.0)  # far outside is outside: avoid huge values
    grid = grid.reshape(m, ho, wo, 2).to(images.dtype)
    out = F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=True)
    if (ho, wo) == (h, w):
        # the identity (first of every adaptation) is exact, not off by grid rounding (~1e-6)
        identity = (H == torch.eye(3, dtype=H.dtype, device=H.device)).flatten(1).all(dim=1)
        if identity.any():
            out = torch.where(identity[:, None, None, None], images, out)
    return out


def _erosion_kernel(margin: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))


def erode_masks(masks: torch.Tensor, margin: int) -> torch.Tensor:
    """Erode 0/1 ``masks [M, 1, H, W]`` with the elliptic ``(2 margin + 1)^2`` kernel (as
    ``cv2.erode`` with its default border does: the frame's edges do not erode)."""
    if margin <= 0:
        return masks
    kernel = torch.from_numpy(_erosion_kernel(margin).astype(np.float32)).to(masks)
    hits = F.conv2d(1.0 - masks, kernel[None, None], padding=margin)
    return (hits < 0.5).to(masks.dtype)


def valid_masks(
    H: torch.Tensor, size_hw: Sequence[int], margin: int, device=None, dtype=torch.float32
) -> torch.Tensor:
    """``[M, 1, H, W]`` validity of each warped image (module docstring)."""
    ones = torch.ones(H.shape[0], 1, int(size_hw[0]), int(size_hw[1]), device=device, dtype=dtype)
    return erode_masks(warp_images(ones, H, mode="nearest"), margin)


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
        prob = detector_scores(model(warped)["logits"])[:, None]  # [M, 1, H, W]
        H_inv = torch.linalg.inv(Hs)  # unwarp: out(p) = warped(H p)
        numerator.index_add_(0, idx, warp_images(prob * masks, H_inv)[:, 0])
        count.index_add_(0, idx, warp_images(masks, H_inv)[:, 0])
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
    from superpoint_training.data.augment import warp_image

    h, w = image.shape
    image = np.asarray(image, np.float32)
    numerator = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    ones = np.ones((h, w), np.uint8)
    kernel = _erosion_kernel(valid_border_margin) if valid_border_margin > 0 else None
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
    prob = homographic_adaptation(
        model, images, homographies, config.valid_border_margin, config.warp_batch
    )["prob"]
    return select_points(
        prob, config.nms_radius, config.detection_threshold, config.top_k, config.border
    )
