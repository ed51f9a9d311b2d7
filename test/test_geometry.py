"""Geometry conventions pinned on hand-computed cases."""

import numpy as np
import pytest

from superpoint_ros.geometry import (
    image_corners,
    inside_image,
    rescale_homography,
    scale_matrix,
    scale_points,
    warp_points,
)


def test_warp_points_translation_and_projective():
    H = np.array([[1, 0, 10], [0, 1, 5], [0, 0, 1]], float)
    assert np.allclose(warp_points([[0, 0], [3, 4]], H), [[10, 5], [13, 9]])
    # w = 0.5 * x + 1: (2, 0) -> (2, 0, 2) -> (1, 0)
    P = np.array([[1, 0, 0], [0, 1, 0], [0.5, 0, 1]], float)
    assert np.allclose(warp_points([[2, 0]], P), [[1, 0]])


def test_warp_points_at_infinity_is_inf():
    P = np.array([[1, 0, 0], [0, 1, 0], [-0.5, 0, 1]], float)
    assert np.all(np.isinf(warp_points([[2, 0]], P)))


def test_scale_points_pixel_centres():
    # Doubling a 2-pixel-wide image: pixel centre 0 (covering [-0.5, 0.5]) maps to 0.5,
    # the centre of the first two new pixels; centre 1 maps to 2.5.
    out = scale_points([[0, 0], [1, 1]], (2, 2), (4, 4))
    assert np.allclose(out, [[0.5, 0.5], [2.5, 2.5]])
    # The outer edge -0.5 stays at -0.5.
    assert np.allclose(scale_points([[-0.5, -0.5]], (2, 2), (4, 4)), [[-0.5, -0.5]])
    back = scale_points(out, (4, 4), (2, 2))
    assert np.allclose(back, [[0, 0], [1, 1]])


def test_scale_matrix_matches_scale_points():
    S = scale_matrix((480, 640), (240, 320))
    pts = np.array([[10.0, 20.0], [639, 479]], np.float32)
    assert np.allclose(warp_points(pts, S), scale_points(pts, (480, 640), (240, 320)), atol=1e-4)
    # Halving: x' = (x + 0.5) / 2 - 0.5: the last pixel centre 639 -> 319.25.
    assert np.allclose(warp_points([[639, 479]], S), [[319.25, 239.25]])


def test_rescale_homography_translation():
    # Image 0 is 100x200, image 1 the same scene shifted by 10 px in x; both stretched to half.
    H = np.array([[1, 0, 10], [0, 1, 0], [0, 0, 1]], float)
    Hs = rescale_homography(H, (100, 200), (50, 100), (100, 200), (50, 100))
    # A shift of 10 original pixels is 5 pixels at half size, whatever the point.
    assert np.allclose(warp_points([[0, 0], [30, 20]], Hs), [[5, 0], [35, 20]], atol=1e-5)


def test_corners_and_inside():
    assert np.array_equal(image_corners((3, 4)), [[0, 0], [3, 0], [3, 2], [0, 2]])
    pts = np.array([[0, 0], [3, 2], [3.5, 1], [-0.1, 1], [2, 1]])
    assert inside_image(pts, (3, 4)).tolist() == [True, True, False, False, True]
    assert inside_image(pts, (3, 4), margin=1).tolist() == [False, False, False, False, True]


@pytest.mark.parametrize("size", [(480, 640), (240, 320)])
def test_rescale_identity_when_same_size(size):
    H = np.array([[1.1, 0.1, 3], [0.05, 0.9, -2], [1e-4, 2e-4, 1]])
    assert np.allclose(rescale_homography(H, size, size, size, size), H / H[2, 2])
