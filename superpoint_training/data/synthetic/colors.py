"""Grey levels of the shapes (contrasting with the background and with their neighbours) and
the random background every image starts from (binary noise plus grey blobs, box-blurred)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .config import BackgroundConfig, Size


def random_color(rng: np.random.Generator, background: float, min_contrast: int = 30) -> int:
    """A gray level at least ``min_contrast`` from ``background`` (shifted by 128 otherwise)."""
    c = int(rng.integers(256))
    if abs(c - background) < min_contrast:
        c = (c + 128) % 256
    return c


def different_color(
    rng: np.random.Generator, avoid: Sequence[float], min_dist: int = 50, tries: int = 20
) -> int:
    """A gray level at least ``min_dist`` from every value in ``avoid`` (the last try is kept
    when none is found in ``tries``)."""
    avoid = np.asarray(list(avoid), np.float64)
    c = int(rng.integers(256))
    for _ in range(tries):
        if avoid.size == 0 or np.all(np.abs(avoid - c) >= min_dist):
            break
        c = int(rng.integers(256))
    return c


def generate_background(
    rng: np.random.Generator, size_hw: Size, config: BackgroundConfig | None = None
) -> np.ndarray:
    """Random background uint8 ``[H, W]``: binary noise at a random density, gray discs that
    contrast with its mean, box-blurred by a large random kernel (smooth gray variations)."""
    c = config or BackgroundConfig()
    h, w = size_hw
    dim = max(h, w)
    threshold = int(rng.integers(256))
    img = np.where(rng.integers(0, 256, (h, w)) > threshold, 255, 0).astype(np.uint8)
    mean = float(img.mean())
    xs = rng.integers(0, w, c.num_blobs)
    ys = rng.integers(0, h, c.num_blobs)
    r_lo = max(1, int(dim * c.blob_radius_ratio[0]))
    r_hi = max(r_lo + 1, int(dim * c.blob_radius_ratio[1]))
    radii = rng.integers(r_lo, r_hi, c.num_blobs)
    k_lo = max(1, int(dim * c.kernel_ratio[0]))
    k_hi = max(k_lo + 1, int(dim * c.kernel_ratio[1]))
    k = int(rng.integers(k_lo, k_hi))
    # The originals draw at 8x the size, where one box blur turns the noise into a flat mean;
    # at the output size that takes a first blur before the blobs are drawn.
    img = cv2.blur(img, (k, k))
    for x, y, r in zip(xs, ys, radii):
        cv2.circle(img, (int(x), int(y)), int(r), random_color(rng, mean), -1)
    return cv2.blur(img, (k, k))
