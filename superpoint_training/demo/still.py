"""The still-image demo (``superpoint demo --still``): two views of one photo, no ROS.

The second view is the first warped by a fixed homography (rotation, scale, perspective), so
the correct matches are known. In-process: the front-end, the matcher and a RANSAC
homography, printed as counts, plus a PNG of the matches (green: correct, red: wrong).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from superpoint_ros.errors import SuperPointError
from superpoint_ros.geometry import image_corners, warp_points
from superpoint_ros.matching import match_descriptors
from superpoint_ros.visualize import draw_matches

from .metrics import CORRECT_PX

# The fixed second view: H_0to1 for a 480x640 image (rotation ~8 degrees, scale 0.9,
# a little perspective), chosen to keep most of the image in view.
STILL_H = np.array([[0.8912, -0.1253, 78.0], [0.1253, 0.8912, 2.0], [1.2e-4, -6.0e-5, 1.0]])


@dataclass
class StillResult:
    keypoints: tuple[int, int]
    matches: int
    correct: int
    inlier_ratio: float
    corner_error: float  # px, nan when no homography was found
    picture: np.ndarray  # BGR uint8, the two views and their matches


def two_views(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(view0, view1, H_0to1)``: the photo stretched to 480x640 gray and its warp."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    view0 = cv2.resize(gray, (640, 480), interpolation=cv2.INTER_AREA)
    view1 = cv2.warpPerspective(view0, STILL_H, (640, 480), flags=cv2.INTER_LINEAR)
    return view0, view1, STILL_H


def still_demo(frontend, image: np.ndarray) -> StillResult:
    """Extract, match and check the two views of ``image`` with ``frontend``."""
    if frontend.descriptor_dim == 0:
        raise SuperPointError("this model has no descriptor head (MagicPoint): nothing to match")
    view0, view1, H = two_views(image)
    f0, f1 = frontend(view0), frontend(view1)
    matches, _ = match_descriptors(f0["descriptors"], f1["descriptors"])
    k0 = f0["keypoints"][matches[:, 0]]
    k1 = f1["keypoints"][matches[:, 1]]
    correct = np.linalg.norm(warp_points(k0, H) - k1, axis=1) <= CORRECT_PX
    inlier_ratio, corner_error = 0.0, float("nan")
    if len(matches) >= 4:
        H_est, mask = cv2.findHomography(k0, k1, cv2.RANSAC, CORRECT_PX)
        if H_est is not None:
            inlier_ratio = float(mask.mean())
            corners = image_corners(view0.shape)
            corner_error = float(
                np.linalg.norm(
                    warp_points(corners, H_est) - warp_points(corners, H), axis=1
                ).mean()
            )
    picture = draw_matches(view0, view1, f0["keypoints"], f1["keypoints"], matches, correct)
    return StillResult(
        (len(f0["keypoints"]), len(f1["keypoints"])),
        len(matches),
        int(correct.sum()),
        inlier_ratio,
        corner_error,
        picture,
    )
