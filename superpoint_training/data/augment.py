"""Data augmentation for detector training: photometric and homographic (numpy + OpenCV).

* Photometric augmentation changes pixel values only (the ground truth stays where it is):
  brightness, contrast, additive Gaussian noise, speckle (salt and pepper) noise, additive shade,
  motion blur and Gaussian blur, each a function ``op(rng, image, config) -> image`` on float32
  images in ``[0, 255]``, applied in the configured (optionally shuffled) order.
* Homographic augmentation warps the image with a random homography
  (``superpoint_training.geometry.sample_homography``), warps the keypoints with it, drops
  keypoints that leave the image and returns the mask of pixels that came from inside the
  original image (``valid_mask``), eroded by a margin so the interpolated black border is out.

The defaults are rpautrat/SuperPoint's MagicPoint-on-shapes settings at 120x160. Every function
takes its ``numpy.random.Generator`` explicitly; nothing here keeps random state.

Keypoints are ``[N, 2]`` float32 (x, y), pixel centres at integer coordinates
(``superpoint_ros.geometry``); a keypoint is inside an image when it rounds to one of its pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from superpoint_ros.geometry import warp_points
from superpoint_ros.registry import Registry
from superpoint_training.config import from_dict
from superpoint_training.geometry.homographies import HomographyConfig, sample_homography

Size = tuple[int, int]  # (height, width)
PhotometricOp = Callable[[np.random.Generator, np.ndarray, "PhotometricConfig"], np.ndarray]
PHOTOMETRIC_OPS: Registry[PhotometricOp] = Registry("photometric augmentation")


# ---------------------------------------------------------------------------------------------
# keypoint helpers shared by the datasets


def round_keypoints(points: np.ndarray) -> np.ndarray:
    """``[N, 2]`` int64 pixel (column, row) each keypoint falls in (rounding half up)."""
    return np.floor(np.asarray(points, np.float64).reshape(-1, 2) + 0.5).astype(np.int64)


def keypoints_inside(points: np.ndarray, size_hw: Size) -> np.ndarray:
    """Boolean ``[N]``: the keypoint falls in a pixel of an image of ``size_hw`` (i.e. lies in
    ``[-0.5, W - 0.5) x [-0.5, H - 0.5)``)."""
    ij = round_keypoints(points)
    h, w = size_hw
    return (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)


def keypoint_map(points: np.ndarray, size_hw: Size) -> np.ndarray:
    """Float32 ``[H, W]`` map with 1 at the pixel of each keypoint inside the image, else 0."""
    out = np.zeros(size_hw, np.float32)
    ij = round_keypoints(points)[keypoints_inside(points, size_hw)]
    out[ij[:, 1], ij[:, 0]] = 1.0
    return out


# ---------------------------------------------------------------------------------------------
# photometric augmentation


@dataclass(frozen=True)
class PhotometricConfig:
    """Photometric augmentation; pixel-sized values refer to the training resolution
    (defaults: rpautrat's MagicPoint-on-shapes settings at 120x160)."""

    enable: bool = True  # apply photometric augmentation at all
    ops: tuple[str, ...] = (  # operations applied (each once), names in PHOTOMETRIC_OPS
        "brightness",
        "contrast",
        "speckle_noise",
        "gaussian_noise",
        "shade",
        "motion_blur",
    )
    random_order: bool = True  # shuffle the order of ``ops`` for every image
    brightness_max_abs_change: float = 75.0  # add U(-m, m) gray levels
    contrast_range: tuple[float, float] = (0.3, 1.8)  # scale deviations from the mean by U(a, b)
    gaussian_noise_std_range: tuple[float, float] = (0.0, 15.0)  # noise std ~ U(a, b) levels
    speckle_prob_range: tuple[float, float] = (0.0, 0.0035)  # P(pixel -> 0) = P(-> 255) ~ U(a, b)
    shade_num_ellipses: int = 20  # ellipses drawn into the shade mask
    shade_transparency_range: tuple[float, float] = (-0.5, 0.8)  # image *= 1 - t * mask
    shade_kernel_size_range: tuple[int, int] = (50, 100)  # Gaussian blur of the mask, pixels
    motion_blur_max_kernel_size: int = 7  # odd kernel sizes 1..max (1 means no blur)
    gaussian_blur_sigma_range: tuple[float, float] = (0.0, 1.0)  # sigma ~ U(a, b), pixels

    def __post_init__(self) -> None:
        for op in self.ops:
            PHOTOMETRIC_OPS.get(op)  # KeyError listing the valid names

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PhotometricConfig:

        return from_dict(cls, data)


@PHOTOMETRIC_OPS.register("brightness")
def random_brightness(rng: np.random.Generator, image: np.ndarray, c: PhotometricConfig):
    """Add one uniform offset in ``[-m, m]`` to every pixel, then clip to ``[0, 255]``."""
    m = c.brightness_max_abs_change
    return np.clip(image + rng.uniform(-m, m), 0.0, 255.0)


@PHOTOMETRIC_OPS.register("contrast")
def random_contrast(rng: np.random.Generator, image: np.ndarray, c: PhotometricConfig):
    """Scale the deviations from the image mean by a uniform factor, then clip."""
    factor = rng.uniform(*c.contrast_range)
    mean = float(image.mean())
    return np.clip((image - mean) * factor + mean, 0.0, 255.0)


@PHOTOMETRIC_OPS.register("gaussian_noise")
def additive_gaussian_noise(rng: np.random.Generator, image: np.ndarray, c: PhotometricConfig):
    """Add i.i.d. Gaussian noise of a uniformly drawn standard deviation, then clip."""
    std = rng.uniform(*c.gaussian_noise_std_range)
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(std)
    return np.clip(image + noise, 0.0, 255.0)


@PHOTOMETRIC_OPS.register("speckle_noise")
def additive_speckle_noise(rng: np.random.Generator, image: np.ndarray, c: PhotometricConfig):
    """Salt and pepper: each pixel turns black with probability p and white with p."""
    p = rng.uniform(*c.speckle_prob_range)
    u = rng.random(image.shape, dtype=np.float32)
    out = image.copy()
    out[u <= p] = 0.0
    out[u >= 1.0 - p] = 255.0
    return out


@PHOTOMETRIC_OPS.register("shade")
def additive_shade(rng: np.random.Generator, image: np.ndarray, c: PhotometricConfig):
    """Darken (or brighten) the image under a blurred mask of random ellipses:
    ``image * (1 - t * mask)``, ``t`` uniform in ``shade_transparency_range``."""
    h, w = image.shape[:2]
    quarter = min(h, w) / 4.0
    mask = np.zeros((h, w), np.uint8)
    for _ in range(c.shade_num_ellipses):
        ax = int(max(rng.random() * quarter, quarter / 5))
        ay = int(max(rng.random() * quarter, quarter / 5))
        r = max(ax, ay)
        x = int(rng.integers(r, max(r + 1, w - r)))
        y = int(rng.integers(r, max(r + 1, h - r)))
        cv2.ellipse(mask, (x, y), (ax, ay), rng.random() * 90.0, 0, 360, 255, -1)
    t = rng.uniform(*c.shade_transparency_range)
    k = int(rng.integers(c.shade_kernel_size_range[0], max(c.shade_kernel_size_range) + 1))
    k += 1 - k % 2  # odd
    mask = cv2.GaussianBlur(mask.astype(np.float32), (k, k), 0)
    return np.clip(image * (1.0 - t * mask / 255.0), 0.0, 255.0)


def motion_blur_kernel(mode: str, ksize: int) -> np.ndarray:
    """A normalised ``[k, k]`` line kernel ('h', 'v', 'diag_down', 'diag_up') with Gaussian
    weights along the line (variance ``k^2 / 16``)."""
    center = (ksize - 1) // 2
    kernel = np.zeros((ksize, ksize), np.float64)
    if mode == "h":
        kernel[center, :] = 1.0
    elif mode == "v":
        kernel[:, center] = 1.0
    elif mode == "diag_down":
        kernel = np.eye(ksize)
    elif mode == "diag_up":
        kernel = np.flipud(np.eye(ksize))
    else:
        raise ValueError(f"unknown motion blur mode {mode!r}")
    grid = np.arange(ksize) - center
    var = ksize * ksize / 16.0
    kernel = kernel * np.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / (2.0 * var))
    return (kernel / kernel.sum()).astype(np.float32)


@PHOTOMETRIC_OPS.register("motion_blur")
def motion_blur(rng: np.random.Generator, image: np.ndarray, c: PhotometricConfig):
    """Blur along a random horizontal, vertical or diagonal line of random odd length."""
    mode = ("h", "v", "diag_down", "diag_up")[int(rng.integers(4))]
    ksize = int(rng.integers(0, (c.motion_blur_max_kernel_size + 1) // 2)) * 2 + 1
    if ksize <= 1:
        return image
    return cv2.filter2D(image, -1, motion_blur_kernel(mode, ksize))


@PHOTOMETRIC_OPS.register("gaussian_blur")
def gaussian_blur(rng: np.random.Generator, image: np.ndarray, c: PhotometricConfig):
    """Gaussian blur of a uniformly drawn sigma (no blur below 0.05 pixel)."""
    sigma = rng.uniform(*c.gaussian_blur_sigma_range)
    if sigma < 0.05:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigma)


def photometric_augmentation(
    rng: np.random.Generator, image: np.ndarray, config: PhotometricConfig | None = None
) -> np.ndarray:
    """Apply ``config.ops`` to a gray image ``[H, W]`` (uint8 or float in ``[0, 255]``);
    returns float32 ``[H, W]`` in ``[0, 255]``."""
    config = config or PhotometricConfig()
    out = np.asarray(image, np.float32).copy()
    if not config.enable:
        return out
    order = list(config.ops)
    if config.random_order:
        order = [order[i] for i in rng.permutation(len(order))]
    for name in order:
        out = np.asarray(PHOTOMETRIC_OPS.get(name)(rng, out, config), np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# homographic augmentation


def _magicpoint_homography() -> HomographyConfig:
    # rpautrat's magic-point_shapes.yaml: stronger than the sampler's defaults, borders allowed.
    return HomographyConfig(
        scaling_amplitude=0.2,
        perspective_amplitude_x=0.2,
        perspective_amplitude_y=0.2,
        patch_ratio=0.8,
        max_angle=1.57,
        allow_artifacts=True,
        translation_overflow=0.05,
    )


@dataclass(frozen=True)
class HomographicConfig:
    """Homographic augmentation (defaults: rpautrat's MagicPoint-on-shapes settings)."""

    enable: bool = True  # apply homographic augmentation at all
    homography: HomographyConfig = field(default_factory=_magicpoint_homography)  # the sampler
    valid_border_margin: int = 2  # erode the valid mask by this many pixels (0: no erosion)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> HomographicConfig:

        return from_dict(cls, data)


def warp_image(image: np.ndarray, H: np.ndarray, size_hw: Size | None = None) -> np.ndarray:
    """``image`` warped by ``H`` (original -> warped pixels, pixel-centre convention) into an
    image of ``size_hw`` (default: the same size); bilinear, zeros outside."""
    h, w = size_hw or image.shape[:2]
    return cv2.warpPerspective(
        image,
        np.asarray(H, np.float64),
        (int(w), int(h)),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def warp_valid_mask(
    size_src: Size, H: np.ndarray, size_dst: Size | None = None, margin: int = 0
) -> np.ndarray:
    """Float32 ``[H, W]`` mask of the warped image: 1 where the pixel comes from inside the
    original image (more than ``margin`` pixels from the region's edge inside the image), 0
    elsewhere."""
    size_dst = size_dst or size_src
    ones = np.ones(size_src, np.uint8)
    mask = cv2.warpPerspective(
        ones,
        np.asarray(H, np.float64),
        (int(size_dst[1]), int(size_dst[0])),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    if margin > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
        mask = cv2.erode(mask, kernel)  # the default border value does not erode the edges
    return mask.astype(np.float32)


def homographic_augmentation(
    rng: np.random.Generator,
    image: np.ndarray,
    keypoints: np.ndarray,
    config: HomographicConfig | None = None,
) -> dict[str, np.ndarray]:
    """Warp ``image [H, W]`` and its ``keypoints [N, 2]`` with one random homography.

    Returns ``{"image": float32 [H, W], "keypoints": float32 [M, 2] (those landing inside),
    "valid_mask": float32 [H, W], "homography": float64 [3, 3] (original -> warped)}``; with
    ``config.enable`` false the homography is the identity.
    """
    config = config or HomographicConfig()
    size = image.shape[:2]
    image = np.asarray(image, np.float32)
    keypoints = np.asarray(keypoints, np.float32).reshape(-1, 2)
    if not config.enable:
        return {
            "image": image.copy(),
            "keypoints": keypoints[keypoints_inside(keypoints, size)],
            "valid_mask": np.ones(size, np.float32),
            "homography": np.eye(3),
        }
    H = sample_homography(rng, size, config.homography)
    warped = warp_points(keypoints, H)
    return {
        "image": warp_image(image, H),
        "keypoints": warped[keypoints_inside(warped, size)].astype(np.float32),
        "valid_mask": warp_valid_mask(size, H, margin=config.valid_border_margin),
        "homography": H,
    }


# ---------------------------------------------------------------------------------------------
# both


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation: photometric first, then homographic (rpautrat's order)."""

    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)  # pixel values
    homographic: HomographicConfig = field(default_factory=HomographicConfig)  # geometry

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> AugmentConfig:

        return from_dict(cls, data)


def augment(
    rng: np.random.Generator,
    image: np.ndarray,
    keypoints: np.ndarray,
    config: AugmentConfig | None = None,
) -> dict[str, np.ndarray]:
    """Photometric then homographic augmentation of a gray image ``[H, W]`` (uint8 or float in
    ``[0, 255]``) and its keypoints; returns what ``homographic_augmentation`` returns (image
    float32 in ``[0, 255]``)."""
    config = config or AugmentConfig()
    image = photometric_augmentation(rng, image, config.photometric)
    return homographic_augmentation(rng, image, keypoints, config.homographic)


__all__ = [
    "PHOTOMETRIC_OPS",
    "AugmentConfig",
    "HomographicConfig",
    "PhotometricConfig",
    "augment",
    "homographic_augmentation",
    "keypoint_map",
    "keypoints_inside",
    "motion_blur_kernel",
    "photometric_augmentation",
    "round_keypoints",
    "warp_image",
    "warp_valid_mask",
]
