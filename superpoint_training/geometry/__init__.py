"""Workstation-side geometry: the random homography sampler shared by the training steps.

Conventions (points, pixel centres, homography direction) are those of
``superpoint_ros.geometry``; this package only adds what training needs.
"""

from .homographies import (
    HomographyConfig,
    homography_from_points,
    sample_homographies,
    sample_homography,
    sample_patch,
    truncated_normal,
)

__all__ = [
    "HomographyConfig",
    "homography_from_points",
    "sample_homographies",
    "sample_homography",
    "sample_patch",
    "truncated_normal",
]
