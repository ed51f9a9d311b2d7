"""Geometric conventions, each in one function (pure numpy, no I/O).

Conventions used everywhere in this project:

* Points are ``(x, y)`` float32 arrays of shape ``[N, 2]``, in pixels of the image they belong
  to, with **pixel centres at integer coordinates**: the centre of the top-left pixel is
  ``(0, 0)`` and the image spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
* A homography ``H_0to1`` maps homogeneous points of image 0 to image 1:
  ``p1 ~ H_0to1 @ [x0, y0, 1]``. HPatches' ``H_1_N`` and Oxford's ``H1toNp`` are ``H_0to1``
  with image 1 as image 0.
* Sizes are ``(height, width)`` tuples, as numpy shapes are.
"""

from __future__ import annotations

import numpy as np

Size = tuple[int, int]  # (height, width)


def warp_points(points: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Map ``[N, 2]`` (x, y) points through the 3x3 homography ``H``; returns ``[N, 2]``.

    Points that map to infinity (w == 0) come back as ``inf``.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    homog = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ np.asarray(H).T
    w = homog[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.abs(w) > 1e-12, homog[:, :2] / np.where(w == 0, 1, w), np.inf)
    return out.astype(np.float32)


def scale_matrix(old_size: Size, new_size: Size) -> np.ndarray:
    """The 3x3 matrix taking pixel coordinates of an image of ``old_size`` to the same image
    stretched to ``new_size`` (pixel-centre convention: ``x' = (x + 0.5) * sx - 0.5``)."""
    sy = new_size[0] / old_size[0]
    sx = new_size[1] / old_size[1]
    return np.array(
        [[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]], dtype=np.float64
    )


def scale_points(points: np.ndarray, old_size: Size, new_size: Size) -> np.ndarray:
    """Map ``[N, 2]`` points of an image of ``old_size`` to the image stretched to
    ``new_size``. The inverse is ``scale_points(p, new_size, old_size)``."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    sy = new_size[0] / old_size[0]
    sx = new_size[1] / old_size[1]
    scale = np.array([sx, sy], dtype=np.float32)
    return ((points + 0.5) * scale - 0.5).astype(np.float32)


def rescale_homography(
    H_0to1: np.ndarray, size0: Size, new_size0: Size, size1: Size, new_size1: Size
) -> np.ndarray:
    """Ground truth for stretched images: ``H' = S_1 @ H @ inv(S_0)``.

    ``size0``/``size1`` are the original sizes of images 0 and 1, ``new_size*`` the sizes they
    were stretched to. Crop-and-resize without this correction is a known evaluator bug.
    """
    S0 = scale_matrix(size0, new_size0)
    S1 = scale_matrix(size1, new_size1)
    H = S1 @ np.asarray(H_0to1, dtype=np.float64) @ np.linalg.inv(S0)
    return H / H[2, 2]


def image_corners(size: Size) -> np.ndarray:
    """The four outer corners ``[4, 2]`` (x, y) of an image of ``size``, clockwise from the
    top-left, as the homography-accuracy metric uses them (pixel-centre convention: the
    corner pixels' centres)."""
    h, w = size
    return np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)


def inside_image(points: np.ndarray, size: Size, margin: float = 0.0) -> np.ndarray:
    """Boolean ``[N]``: the point lies inside an image of ``size``, at least ``margin``
    pixels away from its outer edge (pixel centres run from 0 to W-1 and 0 to H-1)."""
    points = np.asarray(points).reshape(-1, 2)
    h, w = size
    x, y = points[:, 0], points[:, 1]
    return (x >= margin) & (y >= margin) & (x <= w - 1 - margin) & (y <= h - 1 - margin)
