"""Homography sampler and augmentations: hand-checked homographies, the patch staying inside
the image, ground truth moving with the image, valid masks, photometric operations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from superpoint_ros.errors import ConfigError
from superpoint_ros.geometry import warp_points
from superpoint_training.data.augment import (
    AugmentConfig,
    HomographicConfig,
    PhotometricConfig,
    augment,
    homographic_augmentation,
    keypoint_map,
    keypoints_inside,
    motion_blur_kernel,
    photometric_augmentation,
    warp_image,
    warp_valid_mask,
)
from superpoint_training.geometry import (
    HomographyConfig,
    homography_from_points,
    sample_homographies,
    sample_homography,
)

SIZE = (120, 160)
STILL = dict(translation=False, rotation=False, scaling=False, perspective=False)


# ---------------------------------------------------------------------------------------------
# the sampler


def test_homography_from_points_hand_case():
    src = [[0, 0], [10, 0], [10, 10], [0, 10]]
    dst = [[5, 5], [25, 5], [25, 25], [5, 25]]
    assert np.allclose(homography_from_points(src, dst), [[2, 0, 5], [0, 2, 5], [0, 0, 1]])


def test_centre_patch_without_perturbation_is_a_zoom_about_the_centre():
    # The centre half of a 160x120 image, [40, 120] x [30, 90] in continuous coordinates,
    # fills the output: x_out + 0.5 = 2 (x + 0.5 - 40), i.e. x_out = 2 x - 79.5 (y: 2 y - 59.5).
    H = sample_homography(np.random.default_rng(0), SIZE, HomographyConfig(**STILL))
    assert np.allclose(H, [[2, 0, -79.5], [0, 2, -59.5], [0, 0, 1]])
    assert np.allclose(warp_points(np.array([[39.5, 29.5]]), H), [[-0.5, -0.5]])


def test_full_image_patch_cannot_rotate_without_artifacts():
    config = HomographyConfig(**{**STILL, "rotation": True}, patch_ratio=1.0)
    for seed in range(5):
        assert np.allclose(sample_homography(np.random.default_rng(seed), SIZE, config), np.eye(3))


@pytest.mark.parametrize(
    "config",
    [
        HomographyConfig(),  # rpautrat's defaults
        HomographyConfig(
            patch_ratio=0.85,
            scaling_amplitude=0.3,
            perspective_amplitude_x=0.3,
            perspective_amplitude_y=0.3,
            max_angle=math.pi,
        ),
    ],
)
@pytest.mark.parametrize("size", [SIZE, (240, 240)])
def test_sampled_patch_stays_inside_the_image(config, size):
    h, w = size
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    rng = np.random.default_rng(0)
    for H in sample_homographies(rng, 300, size, config):
        src = warp_points(corners, np.linalg.inv(H))  # the patch in the original image
        assert np.all(src >= -0.5 - 1e-3) and np.all(src[:, 0] <= w - 0.5 + 1e-3)
        assert np.all(src[:, 1] <= h - 0.5 + 1e-3)
    assert warp_valid_mask(size, H).min() == 1.0  # no pixel from outside the original


def test_sampler_is_deterministic_and_really_random():
    config = HomographyConfig()
    a = sample_homography(np.random.default_rng(3), SIZE, config)
    b = sample_homography(np.random.default_rng(3), SIZE, config)
    c = sample_homography(np.random.default_rng(4), SIZE, config)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    batch = sample_homographies(np.random.default_rng(3), 3, SIZE, config)
    rng = np.random.default_rng(3)
    assert np.array_equal(batch, [sample_homography(rng, SIZE, config) for _ in range(3)])
    assert batch.shape == (3, 3, 3) and batch.dtype == np.float64


def test_allowing_artifacts_lets_the_patch_leave_the_image():
    config = HomographicConfig().homography  # the MagicPoint augmentation: artifacts allowed
    assert config.allow_artifacts
    rng = np.random.default_rng(0)
    masks = [warp_valid_mask(SIZE, H) for H in sample_homographies(rng, 30, SIZE, config)]
    assert any(m.min() == 0.0 for m in masks)


def test_rotation_only_sampler_rotates_within_max_angle():
    config = HomographyConfig(**{**STILL, "rotation": True}, max_angle=0.3)
    angles = []
    for seed in range(30):
        H = sample_homography(np.random.default_rng(seed), SIZE, config)
        a = H[:2, :2] / 2.0  # a patch half the size: zoom 2 times a rotation
        assert np.allclose(a @ a.T, np.eye(2), atol=1e-9)  # a true rotation, no shear
        angles.append(math.atan2(a[1, 0], a[0, 0]))
    assert max(abs(x) for x in angles) <= 0.3 + 1e-9 and len(set(np.round(angles, 6))) > 3


def test_config_rejects_unknown_keys_and_bad_values():
    assert HomographyConfig.from_dict({"patch_ratio": 0.8}).patch_ratio == 0.8
    with pytest.raises(ConfigError, match="patch_ratoi"):
        HomographyConfig.from_dict({"patch_ratoi": 0.8})
    with pytest.raises(ValueError):
        HomographyConfig(patch_ratio=0.0)
    with pytest.raises(ConfigError):
        AugmentConfig.from_dict({"homographic": {"homography": {"bogus": 1}}})
    with pytest.raises(KeyError, match="brightness"):
        PhotometricConfig(ops=("brightnes",))


# ---------------------------------------------------------------------------------------------
# ground truth moves with the image


def test_single_bright_pixel_follows_a_known_homography():
    image = np.zeros(SIZE, np.float32)
    image[40, 50] = 255.0
    H = np.array([[1.0, 0.0, 7.0], [0.0, 1.0, -3.0], [0.0, 0.0, 1.0]])
    warped = warp_image(image, H)
    assert warped[37, 57] == 255.0 and warped.sum() == 255.0
    assert np.allclose(warp_points(np.array([[50, 40]]), H), [[57, 37]])
    # A 90-degree turn about pixel (80, 60): (x, y) -> (80 - (y - 60), 60 + (x - 80)).
    R = np.array([[0.0, -1.0, 140.0], [1.0, 0.0, -20.0], [0.0, 0.0, 1.0]])
    warped = warp_image(image, R)
    assert warped[30, 100] == 255.0 and warped.sum() == 255.0
    assert np.allclose(warp_points(np.array([[50, 40]]), R), [[100, 30]])


def blobs(points: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    yy, xx = np.mgrid[0 : SIZE[0], 0 : SIZE[1]].astype(np.float64)
    image = np.zeros(SIZE)
    for x, y in points:
        image += 200.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return image.astype(np.float32)


def test_random_warps_move_keypoints_with_the_image():
    points = np.array([[30.3, 25.7], [80.0, 60.0], [121.6, 40.2], [60.5, 95.4], [140.2, 100.9]])
    image = blobs(points)
    found = 0
    for seed in range(8):
        out = homographic_augmentation(np.random.default_rng(seed), image, points)
        kp, warped = out["keypoints"], out["image"]
        expected = warp_points(points, out["homography"])
        assert np.allclose(kp, expected[keypoints_inside(expected, SIZE)])
        for x, y in kp:
            cx, cy = int(round(x)), int(round(y))
            if not (4 <= cx < SIZE[1] - 4 and 4 <= cy < SIZE[0] - 4):
                continue
            win = warped[cy - 4 : cy + 5, cx - 4 : cx + 5].astype(np.float64)
            if out["valid_mask"][cy - 4 : cy + 5, cx - 4 : cx + 5].min() < 1:
                continue
            yy, xx = np.mgrid[cy - 4 : cy + 5, cx - 4 : cx + 5]
            centroid = np.array([(win * xx).sum(), (win * yy).sum()]) / win.sum()
            assert np.linalg.norm(centroid - [x, y]) < 0.35  # the blob sits on its keypoint
            found += 1
    assert found >= 20


def test_keypoints_outside_are_dropped_and_rounding_is_pinned():
    points = np.array([[-0.6, 5], [-0.5, 5], [159.4, 5], [159.5, 5], [10, 119.5], [10, 119.4]])
    assert keypoints_inside(points, SIZE).tolist() == [False, True, True, False, False, True]
    kmap = keypoint_map(np.array([[3.4, 2.6], [3.5, 2.5], [200.0, 3.0]]), SIZE)
    assert kmap[3, 3] == 1 and kmap[3, 4] == 1 and kmap.sum() == 2
    # A translation pushing the right part of the image out drops those points.
    H = np.array([[1.0, 0.0, 100.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    moved = warp_points(np.array([[10.0, 10.0], [59.4, 20.0], [59.6, 20.0]]), H)
    assert keypoints_inside(moved, SIZE).tolist() == [True, True, False]


def test_valid_mask_of_a_translation():
    H = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mask = warp_valid_mask(SIZE, H)
    assert mask.dtype == np.float32 and np.all(mask[:, :10] == 0) and np.all(mask[:, 10:] == 1)
    mask = warp_valid_mask(SIZE, H, margin=2)
    assert np.all(mask[:, :12] == 0) and np.all(mask[:, 12:] == 1)  # image edges not eroded


def test_augment_is_deterministic_and_photometric_only_keeps_points():
    rng = np.random.default_rng(0)
    image = (rng.random(SIZE) * 255).astype(np.uint8)
    kp = np.array([[10.0, 20.0], [100.0, 50.0]], np.float32)
    a = augment(np.random.default_rng(1), image, kp)
    b = augment(np.random.default_rng(1), image, kp)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(
        a["keypoints"], b["keypoints"]
    )
    config = AugmentConfig(homographic=HomographicConfig(enable=False))
    c = augment(np.random.default_rng(1), image, kp, config)
    assert np.array_equal(c["keypoints"], kp) and c["valid_mask"].min() == 1.0
    assert np.array_equal(c["homography"], np.eye(3))
    assert c["image"].dtype == np.float32 and 0 <= c["image"].min() and c["image"].max() <= 255
    assert not np.array_equal(c["image"], image.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# photometric operations


def only(op: str, **params) -> PhotometricConfig:
    return PhotometricConfig(ops=(op,), random_order=False, **params)


def test_photometric_hand_cases():
    img = np.array([[100.0, 200.0]], np.float32)
    rng = np.random.default_rng(0)
    out = photometric_augmentation(rng, img, only("contrast", contrast_range=(2.0, 2.0)))
    assert np.allclose(out, [[50.0, 250.0]])  # (x - 150) * 2 + 150
    out = photometric_augmentation(rng, img, only("brightness", brightness_max_abs_change=0.0))
    assert np.array_equal(out, img)
    out = photometric_augmentation(
        rng, img, only("gaussian_noise", gaussian_noise_std_range=(0, 0))
    )
    assert np.array_equal(out, img)
    big = np.full((50, 50), 128.0, np.float32)
    out = photometric_augmentation(rng, big, only("speckle_noise", speckle_prob_range=(0.5, 0.5)))
    assert set(np.unique(out)) <= {0.0, 255.0}
    out = photometric_augmentation(rng, big, only("shade", shade_transparency_range=(0.0, 0.0)))
    assert np.allclose(out, big)
    out = photometric_augmentation(rng, big, only("shade", shade_transparency_range=(0.9, 0.9)))
    assert out.max() <= 128.0 + 1e-4 and out.min() < 100.0  # darker under the shade only
    assert np.array_equal(photometric_augmentation(rng, img, PhotometricConfig(enable=False)), img)


def test_motion_blur_kernel_hand_values():
    k = motion_blur_kernel("h", 5)
    # Gaussian weights along the row, variance 25/16: exp(-d^2 / 3.125), normalised.
    w = np.exp(-np.array([4, 1, 0, 1, 4]) / 3.125)
    assert np.allclose(k[2], w / w.sum())
    assert np.allclose(k[2], [0.0924, 0.2414, 0.3324, 0.2414, 0.0924], atol=1e-4)
    assert np.count_nonzero(k) == 5 and math.isclose(k.sum(), 1.0, rel_tol=1e-6)
    d = motion_blur_kernel("diag_up", 3)
    assert d[0, 2] > 0 and d[2, 0] > 0 and d[0, 0] == 0


@pytest.mark.parametrize(
    "op",
    ["brightness", "contrast", "gaussian_noise", "speckle_noise", "shade", "motion_blur",
     "gaussian_blur"],
)  # fmt: skip
def test_every_photometric_op_keeps_shape_range_and_determinism(op):
    image = np.random.default_rng(0).integers(0, 256, SIZE).astype(np.uint8)
    a = photometric_augmentation(np.random.default_rng(5), image, only(op))
    b = photometric_augmentation(np.random.default_rng(5), image, only(op))
    assert a.shape == SIZE and a.dtype == np.float32 and np.array_equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 255.0
