"""Metrics of the evaluation protocol on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from superpoint_ros.errors import ConfigError
from superpoint_training.evaluation import metrics as M
from superpoint_training.evaluation.protocol import Protocol

SIZE = (100, 200)  # (h, w): x in [0, 199], y in [0, 99]
T = np.array([[1.0, 0, 10], [0, 1, 5], [0, 0, 1]])  # translation by (10, 5) px

K0 = np.array([[20, 30], [50, 40], [100, 60], [150, 80]], np.float32)


def test_translation_repeats_every_point_exactly():
    r = M.repeatability(K0, K0 + [10, 5], T, SIZE, SIZE)
    assert r["repeatability"] == 1.0
    assert r["mle"] == 0.0
    assert (r["shared0"], r["shared1"], r["repeated0"], r["repeated1"]) == (4, 4, 4, 4)


def test_two_of_four_points_repeat():
    # Image 1: two points near the images of K0[0] (30, 35) and K0[1] (60, 45), two far away.
    k1 = np.array([[31, 35], [60, 47], [120, 20], [180, 90]], np.float32)
    # K0[2] -> (110, 65), K0[3] -> (160, 85): nothing in image 1 within 3 px.
    r = M.repeatability(K0, k1, T, SIZE, SIZE, distance=3.0)
    assert r["repeatability"] == 0.5  # (2 + 2) / (4 + 4)
    assert r["mle"] == pytest.approx(1.5)  # errors 1, 2 in both directions
    # A tighter threshold keeps only the 1 px one.
    r = M.repeatability(K0, k1, T, SIZE, SIZE, distance=1.5)
    assert r["repeatability"] == 0.25 and r["mle"] == pytest.approx(1.0)


def test_points_outside_the_other_view_are_not_counted():
    k1 = np.array([[31, 35], [60, 47], [120, 20], [180, 90]], np.float32)
    # (195, 50) -> (205, 55) falls outside image 1; (5, 2) <- (-5, -3) outside image 0.
    k0_extra = np.vstack([K0, [[195, 50]]])
    k1_extra = np.vstack([k1, [[5, 2]]])
    r = M.repeatability(k0_extra, k1_extra, T, SIZE, SIZE)
    assert (r["shared0"], r["shared1"]) == (4, 4)
    assert r["repeatability"] == 0.5
    # A point landing exactly on the last pixel centre (x = 199) is inside.
    r = M.repeatability([[189, 10]], [[199, 15]], T, SIZE, SIZE)
    assert r["repeatability"] == 1.0


def test_repeatability_empty_sets():
    empty = np.zeros((0, 2), np.float32)
    r = M.repeatability(empty, empty, T, SIZE, SIZE)
    assert math.isnan(r["repeatability"]) and math.isnan(r["mle"])
    r = M.repeatability(K0, empty, T, SIZE, SIZE)
    assert r["repeatability"] == 0.0 and math.isnan(r["mle"])


def test_match_errors_by_hand():
    k1 = K0 + [10, 5]
    k1[1] += [3, 4]  # 5 px off
    err = M.match_errors(K0, k1, [[0, 0], [1, 1], [0, 2]], T)
    np.testing.assert_allclose(err, [0.0, 5.0, math.hypot(80, 30)], atol=1e-5)


def test_average_precision_by_hand():
    # Ranked correct, wrong, correct: (1 * 1/2) + (2/3 * 1/2).
    assert M.average_precision([1, 0, 1], [3, 2, 1]) == pytest.approx(1 / 2 + 1 / 3)
    assert M.average_precision([0, 1, 1], [3, 2, 1]) == pytest.approx(1 / 4 + 1 / 3)
    assert M.average_precision([1, 1], [5, 1]) == 1.0
    # Tied scores are one threshold whatever their order: precision 1/2 at recall 1.
    assert M.average_precision([1, 0], [1, 1]) == 0.5
    assert M.average_precision([0, 1], [1, 1]) == 0.5
    assert M.average_precision([0, 0], [1, 2]) == 0.0
    assert math.isnan(M.average_precision([], []))


def _scene(n=24, seed=0):
    rng = np.random.default_rng(seed)
    # Points on a 6x4 grid (>= 25 px apart), jittered, well inside both views.
    gx, gy = np.meshgrid(np.linspace(25, 160, 6), np.linspace(15, 80, 4))
    k0 = np.stack([gx.ravel(), gy.ravel()], 1)[:n] + rng.uniform(-2, 2, (n, 2))
    return k0.astype(np.float32), (k0 + [10, 5]).astype(np.float32)


def test_perfect_matcher():
    k0, k1 = _scene()
    n = len(k0)
    matches = np.stack([np.arange(n), np.arange(n)], 1)
    dist = np.linspace(0.1, 0.9, n)
    assert M.nn_map(k0, k1, matches, dist, T, SIZE) == pytest.approx(1.0)
    assert M.matching_score(k0, k1, matches, T, SIZE, SIZE) == 1.0
    H, inliers = M.estimate_homography(k0, k1, threshold=3.0)
    assert inliers.all()
    err = M.corner_error(H, T, SIZE)
    assert err < 1e-3
    assert M.homography_correct(err, (1, 3, 5)) == {"1": True, "3": True, "5": True}


def test_shuffled_matcher_scores_low():
    k0, k1 = _scene()
    n = len(k0)
    matches = np.stack([np.arange(n), np.roll(np.arange(n), 1)], 1)  # every match wrong
    dist = np.linspace(0.1, 0.9, n)
    assert M.nn_map(k0, k1, matches, dist, T, SIZE) == 0.0
    assert M.matching_score(k0, k1, matches, T, SIZE, SIZE) == 0.0
    H, _ = M.estimate_homography(k0, k1[np.roll(np.arange(n), 1)], threshold=3.0)
    err = M.corner_error(H, T, SIZE)
    assert M.homography_correct(err, (1, 3, 5)) == {"1": False, "3": False, "5": False}


def test_random_matcher_scores_low():
    k0, k1 = _scene()
    rng = np.random.default_rng(1)
    n = len(k0)
    perm = rng.permutation(n)
    matches = np.stack([np.arange(n), perm], 1)
    dist = rng.uniform(0, 1, n)
    assert M.matching_score(k0, k1, matches, T, SIZE, SIZE) == pytest.approx(
        np.mean(perm == np.arange(n))
    )
    assert M.nn_map(k0, k1, matches, dist, T, SIZE) < 0.5


def test_half_correct_matches_and_ranking():
    k1 = K0 + [10, 5]
    # Matches 0 and 2 correct, 1 and 3 swapped (wrong).
    matches = np.array([[0, 0], [1, 3], [2, 2], [3, 1]])
    assert M.matching_score(K0, k1, matches, T, SIZE, SIZE) == 0.5
    # Ranked by distance: correct (0.1), wrong (0.2), correct (0.3), wrong (0.4).
    dist = np.array([0.1, 0.2, 0.3, 0.4])
    assert M.nn_map(K0, k1, matches, dist, T, SIZE) == pytest.approx((1 + 2 / 3) / 2)


def test_nn_map_ignores_points_outside_the_shared_view():
    k0 = np.vstack([K0, [[195, 50]]])  # the last one maps outside image 1
    k1 = np.vstack([K0 + [10, 5], [[5, 50]]])
    matches = np.stack([np.arange(5), np.arange(5)], 1)
    # The out-of-view point's (wrong) match ranks first but is not a candidate.
    dist = np.array([0.5, 0.6, 0.7, 0.8, 0.0])
    assert M.nn_map(k0, k1, matches, dist, T, SIZE) == pytest.approx(1.0)
    # Matching score: 4 correct of 4 shared points in image 0 and 4 in image 1
    # ((5, 50) maps to (-5, 45): outside image 0).
    assert M.matching_score(k0, k1, matches, T, SIZE, SIZE) == 1.0


def test_corner_error_by_hand():
    off1 = np.array([[1.0, 0, 11], [0, 1, 5], [0, 0, 1]])  # 1 px off everywhere
    assert M.corner_error(off1, T, SIZE) == pytest.approx(1.0)
    assert M.homography_correct(1.0, (1, 3, 5)) == {"1": True, "3": True, "5": True}
    off4 = np.array([[1.0, 0, 10], [0, 1, 9], [0, 0, 1]])
    err = M.corner_error(off4, T, SIZE)
    assert err == pytest.approx(4.0)
    assert M.homography_correct(err, (1, 3, 5)) == {"1": False, "3": False, "5": True}
    assert M.corner_error(None, T, SIZE) == math.inf
    # Scaling about the origin by 1.01: corners (0,0),(199,0),(199,99),(0,99) move by
    # 0, 1.99, hypot(1.99, 0.99), 0.99.
    S = np.diag([1.01, 1.01, 1.0])
    expected = (0 + 1.99 + math.hypot(1.99, 0.99) + 0.99) / 4
    assert M.corner_error(S, np.eye(3), SIZE) == pytest.approx(expected, rel=1e-5)


def test_estimate_homography_needs_four_matches():
    H, inliers = M.estimate_homography(K0[:3], K0[:3] + 1)
    assert H is None and inliers.shape == (3,) and not inliers.any()


def test_aggregate_by_hand():
    recs = [
        {
            "repeatability": 0.5,
            "mle": 1.0,
            "nn_map": 1.0,
            "matching_score": 0.2,
            "corner_error": 0.5,
            "correct": {"1": True, "3": True, "5": True},
        },
        {
            "repeatability": 0.7,
            "mle": math.nan,
            "nn_map": 0.0,
            "matching_score": 0.4,
            "corner_error": 4.0,
            "correct": {"1": False, "3": False, "5": True},
        },
        {
            "repeatability": math.nan,
            "mle": 2.0,
            "nn_map": math.nan,
            "matching_score": 0.0,
            "corner_error": math.inf,
            "correct": {"1": False, "3": False, "5": False},
        },
    ]
    a = M.aggregate(recs, (1, 3, 5))
    assert a["pairs"] == 3
    assert a["repeatability"] == pytest.approx(0.6)
    assert a["mle"] == pytest.approx(1.5)
    assert a["nn_map"] == pytest.approx(0.5)
    assert a["matching_score"] == pytest.approx(0.2)
    assert a["homography_accuracy"] == pytest.approx({"1": 1 / 3, "3": 1 / 3, "5": 2 / 3})
    assert a["median_corner_error"] == 4.0
    np.testing.assert_allclose(M.accuracy_curve([0.5, 4.0, math.inf], [1, 5]), [1 / 3, 2 / 3])


def test_protocol_defaults_overrides_and_key():
    p = Protocol()
    assert p.rep_size == (240, 320) and p.hom_size == (480, 640)
    assert (p.rep_max_keypoints, p.hom_max_keypoints, p.nms_radius) == (300, 1000, 4)
    assert (p.correct_distance, p.ransac_threshold, p.eps) == (3.0, 3.0, (1.0, 3.0, 5.0))
    assert (p.reference, p.targets) == (1, (2, 3, 4, 5, 6))
    q = p.with_overrides(["rep_size=480x640", "eps=1,2", "mutual=false", "hom_max_keypoints=500"])
    assert q.rep_size == (480, 640) and q.eps == (1.0, 2.0) and q.mutual is False
    assert q.hom_max_keypoints == 500
    assert q.key() != p.key() and Protocol().key() == p.key()
    assert Protocol.from_dict(q.to_dict()) == q
    with pytest.raises(ConfigError, match="valid"):
        p.with_overrides(["nms=3"])
    with pytest.raises(ConfigError):
        p.with_overrides(["rep_max_keypoints=many"])
    with pytest.raises(ConfigError):
        p.with_overrides(["targets=1,2"])  # the reference cannot be a target
