"""Homographic adaptation: warp conventions pinned against hand-computed shifts and OpenCV,
the sampler's warps stay inside the image, and a synthetic square's corners come back out of the
averaged (unwarped) detector maps."""

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from superpoint_ros.geometry import image_corners, inside_image, warp_points
from superpoint_training.geometry.homographies import HomographyConfig
from superpoint_training.labels.homographic_adaptation import (
    AdaptationConfig,
    adapt_and_select,
    homographic_adaptation,
    homographic_adaptation_reference,
    resolve_warp_batch,
    sample_adaptation_homographies,
    select_points,
    valid_masks,
    warp_images,
)


class HarrisNet(nn.Module):
    """A hand-written corner detector with SuperPointNet's output contract: logits
    ``[B, 65, H/8, W/8]`` whose softmax puts the probability mass on Harris corners."""

    def forward(self, image):
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
        gx = F.conv2d(image, sobel[None, None], padding=1)
        gy = F.conv2d(image, sobel.t()[None, None], padding=1)
        box = torch.ones(1, 1, 5, 5) / 25.0
        sxx = F.conv2d(gx * gx, box, padding=2)
        syy = F.conv2d(gy * gy, box, padding=2)
        sxy = F.conv2d(gx * gy, box, padding=2)
        response = (sxx * syy - sxy * sxy - 0.05 * (sxx + syy) ** 2).clamp(min=0)
        cells = F.pixel_unshuffle(response * 2e4, 8)  # [B, 64, Hc, Wc]
        dustbin = torch.full_like(cells[:, :1], 6.0)  # flat areas: p = 1 / (64 + e^6) ~ 0.002
        return {"logits": torch.cat([cells, dustbin], dim=1)}


def square_image(h=64, w=80, x0=24, y0=20, x1=51, y1=43):
    img = np.zeros((h, w), np.float32)
    img[y0 : y1 + 1, x0 : x1 + 1] = 1.0
    return img


def test_warp_images_integer_shift_is_exact():
    img = torch.arange(6 * 7, dtype=torch.float32).reshape(1, 1, 6, 7)
    H = torch.tensor([[[1.0, 0.0, 3.0], [0.0, 1.0, 2.0], [0.0, 0.0, 1.0]]])  # (x, y) += (3, 2)
    out = warp_images(img, H)[0, 0]
    assert torch.allclose(out[2:, 3:], img[0, 0, :4, :4], atol=1e-5)
    assert out[:2].abs().max() < 1e-5 and out[:, :3].abs().max() < 1e-5


def test_warp_images_matches_opencv():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.random((48, 64)).astype(np.float32), (0, 0), 3)
    H = np.array([[0.9, 0.1, 4.0], [-0.05, 1.05, -3.0], [1e-4, -2e-4, 1.0]])
    ours = warp_images(torch.from_numpy(img)[None, None], torch.from_numpy(H)[None])[0, 0]
    ref = cv2.warpPerspective(img, H, (64, 48), flags=cv2.INTER_LINEAR)
    inner = np.zeros_like(img, bool)
    inner[4:-4, 4:-4] = True  # OpenCV quantises coordinates to 1/32 px: compare where smooth
    assert np.abs(ours.numpy() - ref)[inner].max() < 2e-3


def test_valid_mask_is_preimage_inside_image():
    H = torch.tensor([[[1.0, 0.0, 10.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    m = valid_masks(H, (16, 32), margin=0)[0, 0]
    assert (m[:, :10] == 0).all() and (m[:, 10:] == 1).all()
    m = valid_masks(H, (16, 32), margin=2)[0, 0]
    # eroded away from the artificial edge only, not from the frame's edges
    assert (m[:, :12] == 0).all() and (m[:, 12:] == 1).all()


def test_sampled_homographies_start_with_identity_and_stay_inside():
    conf = HomographyConfig(allow_artifacts=False, patch_ratio=0.8)
    Hs = sample_adaptation_homographies(np.random.default_rng(3), 30, (60, 80), conf)
    assert np.array_equal(Hs[0], np.eye(3))
    corners = image_corners((60, 80))
    for H in Hs[1:]:
        # the warped image's corners come from inside the original: no black border
        assert inside_image(warp_points(corners, np.linalg.inv(H)), (60, 80), margin=-0.5).all()


def test_identity_only_is_the_detector_itself():
    img = torch.from_numpy(square_image())[None, None]
    net = HarrisNet()
    out = homographic_adaptation(net, img, torch.eye(3)[None, None], valid_border_margin=3)
    from superpoint_ros.frontend.postprocess import detector_scores

    assert torch.allclose(out["prob"], detector_scores(net(img)["logits"]), atol=1e-6)
    assert torch.allclose(out["count"], torch.ones_like(out["count"]))


def test_square_corners_come_back_after_adaptation():
    img = square_image()
    conf = HomographyConfig(
        scaling_amplitude=0.2,
        perspective_amplitude_x=0.1,
        perspective_amplitude_y=0.1,
        patch_ratio=0.9,
        max_angle=math.pi / 6,
        allow_artifacts=True,
    )
    Hs = sample_adaptation_homographies(np.random.default_rng(0), 12, img.shape, conf)
    out = homographic_adaptation(
        HarrisNet(), torch.from_numpy(img)[None, None], torch.from_numpy(Hs)[None], 3, 5
    )
    assert out["count"].max() <= 12 + 1e-4 and out["count"][0, 32, 40] > 11.9
    points, scores = select_points(out["prob"], nms_radius=4, detection_threshold=0.01, top_k=4)[0]
    truth = np.array([[24, 20], [51, 20], [51, 43], [24, 43]], np.float32)  # the square's corners
    dist = np.linalg.norm(points[:, None] - truth[None], axis=-1)
    assert len(points) == 4
    assert dist.min(axis=0).max() <= 1.5  # every true corner found within 1.5 px


def test_batched_matches_one_at_a_time_reference():
    img = cv2.GaussianBlur(square_image(), (0, 0), 1.0)
    conf = HomographyConfig(allow_artifacts=True, patch_ratio=0.85, max_angle=math.pi / 4)
    Hs = sample_adaptation_homographies(np.random.default_rng(1), 6, img.shape, conf)
    net = HarrisNet()
    batched = homographic_adaptation(
        net, torch.from_numpy(img)[None, None], torch.from_numpy(Hs)[None], 3, warp_batch=4
    )
    ref = homographic_adaptation_reference(net, img, Hs, 3)
    count_diff = np.abs(batched["count"][0].numpy() - ref["count"])
    assert np.mean(count_diff) < 0.01  # masks differ only on a few boundary pixels
    peak = batched["prob"][0].numpy()
    assert np.abs(peak - ref["prob"]).max() < 0.05 * ref["prob"].max()
    a = select_points(batched["prob"], 4, 0.01, 4)[0][0]
    b = select_points(torch.from_numpy(ref["prob"])[None], 4, 0.01, 4)[0][0]
    assert np.array_equal(np.sort(a, axis=0), np.sort(b, axis=0))


def test_batches_of_images_are_independent():
    img = square_image()
    other = np.zeros_like(img)  # empty image: no corners, no points
    conf = HomographyConfig(allow_artifacts=True)
    rng = np.random.default_rng(2)
    Hs = np.stack([sample_adaptation_homographies(rng, 5, img.shape, conf) for _ in range(2)])
    images = torch.from_numpy(np.stack([img, other]))[:, None]
    cfg = AdaptationConfig(num_homographies=5, detection_threshold=0.01, warp_batch=3)
    labels = adapt_and_select(HarrisNet(), images, torch.from_numpy(Hs), cfg)
    assert len(labels[0][0]) >= 4 and len(labels[1][0]) == 0
    assert labels[1][0].shape == (0, 2) and labels[1][1].shape == (0,)


def test_auto_warp_batch():
    assert resolve_warp_batch(0, 100, "cuda") == 100  # all warps of an image at once
    assert resolve_warp_batch(0, 100, "cpu") == 4
    assert resolve_warp_batch(7, 100, "cuda") == 7


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        AdaptationConfig(num_homographies=0)
    with pytest.raises(ValueError):
        AdaptationConfig(warp_batch=-1)
