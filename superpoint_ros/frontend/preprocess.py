"""Host-side pre- and post-processing (numpy + OpenCV only; no torch).

Sizing rule: with ``resize=(h, w)`` the image is stretched to that size and keypoints are
mapped back with ``geometry.scale_points``; without it the image is padded at the bottom and
right (edge pixels replicated) to the next multiple of 8 and keypoints whose distance to the
*original* edge is below ``border`` are dropped, so padding never produces keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError
from ..geometry import Size, inside_image, scale_points
from .config import FrontendConfig

CELL = 8


@dataclass(frozen=True)
class Prepared:
    """An image ready for a backend and what is needed to map its keypoints back."""

    tensor: np.ndarray  # [1, 1, h, w] float32 in [0, 1], h and w multiples of 8
    original_size: Size  # (H, W) of the caller's image
    processed_size: Size  # (h, w) of the image content in ``tensor`` (before padding)
    resized: bool


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 gray ``[H, W]`` from uint8 gray ``[H, W]``/``[H, W, 1]``, BGR ``[H, W, 3]`` or BGRA
    ``[H, W, 4]``. Anything else raises ``InputError``."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected a numpy image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        gray = image
    elif image.ndim == 3 and image.shape[2] == 3:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3 and image.shape[2] == 4:
        gray = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    else:
        raise InputError(f"expected an image of shape (H, W) or (H, W, 3), got {image.shape}")
    if gray.size == 0:
        raise InputError(f"empty image of shape {image.shape}")
    return gray


def prepare(image: np.ndarray, resize: Size | None) -> Prepared:
    """Gray, sized and scaled to [0, 1] as the network takes it (see the module's sizing rule)."""
    gray = to_gray(image)
    original = gray.shape[:2]
    if resize is not None:
        if tuple(resize) != original:
            interp = cv2.INTER_AREA if resize[0] < original[0] else cv2.INTER_LINEAR
            gray = cv2.resize(gray, (resize[1], resize[0]), interpolation=interp)
        processed = tuple(resize)
    else:
        processed = original
    h, w = gray.shape
    ph = max(CELL, -(-h // CELL) * CELL) - h
    pw = max(CELL, -(-w // CELL) * CELL) - w
    if ph or pw:
        gray = cv2.copyMakeBorder(gray, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    tensor = (gray.astype(np.float32) * (1.0 / 255.0))[None, None]
    return Prepared(np.ascontiguousarray(tensor), original, processed, resize is not None)


def finalize(
    outputs: dict[str, np.ndarray], prepared: Prepared, config: FrontendConfig
) -> dict[str, np.ndarray]:
    """Backend outputs with fixed K slots -> the data contract: valid keypoints only, in the
    caller's pixels, best first."""
    keypoints = np.asarray(outputs["keypoints"], dtype=np.float32).reshape(-1, 2)
    scores = np.asarray(outputs["scores"], dtype=np.float32).reshape(-1)
    keep = (scores > 0) & inside_image(keypoints, prepared.processed_size, config.border)
    result = {"keypoints": keypoints[keep], "scores": scores[keep]}
    if "descriptors" in outputs:
        desc = np.asarray(outputs["descriptors"], dtype=np.float32)
        result["descriptors"] = desc.reshape(len(scores), -1)[keep]
    else:
        result["descriptors"] = np.zeros((int(keep.sum()), 0), np.float32)
    if prepared.resized and prepared.processed_size != prepared.original_size:
        result["keypoints"] = scale_points(
            result["keypoints"], prepared.processed_size, prepared.original_size
        )
    return result
