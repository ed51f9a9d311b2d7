"""Metrics of the pinned protocol (pure numpy + ``cv2.findHomography``; no I/O).

Conventions come from ``superpoint_ros.geometry``: points are ``(x, y)`` float ``[N, 2]`` with
pixel centres at integer coordinates, sizes are ``(height, width)``, and ``H_0to1`` maps points
of image 0 to image 1. A point of image 0 is *in the shared view* when ``H_0to1`` maps it inside
image 1 (and a point of image 1 when ``inv(H_0to1)`` maps it inside image 0).

Metrics (DeTone et al. 2018, Sec. 7):

* repeatability: shared-view points of either image with a shared-view point of the other within
  ``distance`` px (measured in image 1), over all shared-view points of both images;
* localisation error (MLE): mean distance of those repeated points;
* homography accuracy: mean distance of image 0's four corners mapped by the estimated vs the
  ground-truth homography, correct at ``eps`` when ``<= eps``;
* NN mAP: average precision of the nearest-neighbour matches of the shared-view points of
  image 0, ranked by descriptor distance, a match being correct within ``distance`` px;
* matching score: correct matches over the shared-view points, averaged over both images.

Functions return ``nan`` where a metric is undefined (no point in the shared view...), and the
aggregation skips those.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from superpoint_ros.geometry import Size, image_corners, inside_image, warp_points


def _points(p: np.ndarray) -> np.ndarray:
    return np.asarray(p, dtype=np.float64).reshape(-1, 2)


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances ``[len(a), len(b)]`` between point sets ``[Na, 2]`` and ``[Nb, 2]``."""
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)


def shared_view(
    kpts0: np.ndarray, kpts1: np.ndarray, H_0to1: np.ndarray, size0: Size, size1: Size
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``[N0]``, ``[N1]``: the points each image shares with the other's view."""
    H = np.asarray(H_0to1, dtype=np.float64)
    in0 = inside_image(warp_points(_points(kpts0), H), size1)
    in1 = inside_image(warp_points(_points(kpts1), np.linalg.inv(H)), size0)
    return in0, in1


def repeatability(
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    H_0to1: np.ndarray,
    size0: Size,
    size1: Size,
    distance: float = 3.0,
) -> dict[str, float]:
    """Symmetric repeatability and localisation error of two detections.

    ``kpts0 [N0, 2]``, ``kpts1 [N1, 2]``: (x, y) points of images 0 and 1 (already limited to
    the protocol's point budget); ``H_0to1`` 3x3; ``size0``/``size1`` (h, w).

    Returns ``repeatability`` = (repeated0 + repeated1) / (shared0 + shared1), ``mle`` = mean
    distance (px) of the repeated points (both directions), and the counts ``shared0``,
    ``shared1``, ``repeated0``, ``repeated1``. Distances are measured in image 1 between the
    warped shared points of image 0 and the shared points of image 1.
    """
    k0, k1 = _points(kpts0), _points(kpts1)
    in0, in1 = shared_view(k0, k1, H_0to1, size0, size1)
    w0 = warp_points(k0[in0], H_0to1).astype(np.float64)
    p1 = k1[in1]
    n0, n1 = len(w0), len(p1)
    out = {"shared0": float(n0), "shared1": float(n1), "repeated0": 0.0, "repeated1": 0.0}
    if n0 + n1 == 0:
        return {**out, "repeatability": math.nan, "mle": math.nan}
    errors: list[np.ndarray] = []
    if n0 and n1:
        d = _pairwise(w0, p1)
        min0, min1 = d.min(axis=1), d.min(axis=0)
        errors = [min0[min0 <= distance], min1[min1 <= distance]]
        out["repeated0"] = float(len(errors[0]))
        out["repeated1"] = float(len(errors[1]))
    repeated = out["repeated0"] + out["repeated1"]
    rep = repeated / (n0 + n1)
    mle = float(np.concatenate(errors).mean()) if repeated else math.nan
    return {**out, "repeatability": float(rep), "mle": mle}


def match_errors(
    kpts0: np.ndarray, kpts1: np.ndarray, matches: np.ndarray, H_0to1: np.ndarray
) -> np.ndarray:
    """Reprojection errors ``[M]`` (px, in image 1) of ``matches [M, 2]`` index pairs:
    ``|| H_0to1(kpts0[i0]) - kpts1[i1] ||``."""
    matches = np.asarray(matches, dtype=np.int64).reshape(-1, 2)
    if len(matches) == 0:
        return np.zeros(0, np.float64)
    w0 = warp_points(_points(kpts0)[matches[:, 0]], H_0to1).astype(np.float64)
    return np.linalg.norm(w0 - _points(kpts1)[matches[:, 1]], axis=1)


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of a ranking: ``labels [N]`` bool (true positives), ``scores [N]``
    (higher ranks first). ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds, so
    tied scores are one step (the order among ties does not matter). Returns ``nan`` when there
    are no candidates, 0 when none is positive."""
    labels = np.asarray(labels, dtype=bool).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(labels) == 0:
        return math.nan
    n_pos = int(labels.sum())
    if n_pos == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    s, lab = scores[order], labels[order]
    tp = np.cumsum(lab)
    # The last index of each group of tied scores is one threshold.
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    precision = tp[last] / (last + 1)
    recall = tp[last] / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def nn_map(
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    nn_matches: np.ndarray,
    nn_distances: np.ndarray,
    H_0to1: np.ndarray,
    size1: Size,
    distance: float = 3.0,
) -> float:
    """NN mAP: average precision of nearest-neighbour matches ranked by descriptor distance.

    ``nn_matches [M, 2]``: for each point ``i0`` of image 0, its descriptor nearest neighbour
    ``i1`` in image 1 (not necessarily mutual); ``nn_distances [M]`` their descriptor distances
    (smaller ranks first). Only points of image 0 in the shared view are candidates; a match is
    correct when its reprojection error (``match_errors``) is ``<= distance`` px.
    """
    nn_matches = np.asarray(nn_matches, dtype=np.int64).reshape(-1, 2)
    nn_distances = np.asarray(nn_distances, dtype=np.float64).reshape(-1)
    k0 = _points(kpts0)
    if len(nn_matches) == 0:
        return math.nan
    shared = inside_image(warp_points(k0[nn_matches[:, 0]], H_0to1), size1)
    errors = match_errors(k0, kpts1, nn_matches[shared], H_0to1)
    return average_precision(errors <= distance, -nn_distances[shared])


def matching_score(
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    matches: np.ndarray,
    H_0to1: np.ndarray,
    size0: Size,
    size1: Size,
    distance: float = 3.0,
) -> float:
    """Correct matches over the points in the shared view, averaged over both images.

    ``matches [M, 2]``: (mutual nearest-neighbour) index pairs. A match counts when both of its
    points are in the shared view and its reprojection error is ``<= distance`` px. Returns
    ``mean(correct / shared0, correct / shared1)`` (``nan`` if neither image has a shared
    point; an image without any contributes 0).
    """
    k0, k1 = _points(kpts0), _points(kpts1)
    matches = np.asarray(matches, dtype=np.int64).reshape(-1, 2)
    in0, in1 = shared_view(k0, k1, H_0to1, size0, size1)
    n0, n1 = int(in0.sum()), int(in1.sum())
    if n0 + n1 == 0:
        return math.nan
    keep = in0[matches[:, 0]] & in1[matches[:, 1]] if len(matches) else np.zeros(0, bool)
    correct = int((match_errors(k0, k1, matches[keep], H_0to1) <= distance).sum())
    return 0.5 * ((correct / n0 if n0 else 0.0) + (correct / n1 if n1 else 0.0))


def estimate_homography(
    pts0: np.ndarray,
    pts1: np.ndarray,
    threshold: float = 3.0,
    max_iters: int = 2000,
    confidence: float = 0.995,
) -> tuple[np.ndarray | None, np.ndarray]:
    """OpenCV RANSAC on matched points ``pts0 [M, 2]`` -> ``pts1 [M, 2]``.

    Returns ``(H [3, 3] or None, inliers [M] bool)``; ``None`` with fewer than 4 matches or
    when RANSAC finds no model.
    """
    p0 = _points(pts0).astype(np.float32)
    p1 = _points(pts1).astype(np.float32)
    if len(p0) < 4:
        return None, np.zeros(len(p0), bool)
    H, mask = cv2.findHomography(
        p0, p1, cv2.RANSAC, float(threshold), maxIters=int(max_iters), confidence=confidence
    )
    if H is None or mask is None or not np.all(np.isfinite(H)):
        return None, np.zeros(len(p0), bool)
    return H.astype(np.float64), mask.reshape(-1).astype(bool)


def corner_error(H_est: np.ndarray | None, H_gt: np.ndarray, size0: Size) -> float:
    """Mean distance (px, in image 1) between image 0's four corners
    (``geometry.image_corners``) mapped by ``H_est`` and by ``H_gt``; ``inf`` without an
    estimate."""
    if H_est is None:
        return math.inf
    corners = image_corners(size0)
    err = np.linalg.norm(
        warp_points(corners, H_est).astype(np.float64)
        - warp_points(corners, H_gt).astype(np.float64),
        axis=1,
    ).mean()
    return float(err) if np.isfinite(err) else math.inf


def homography_correct(error: float, eps: Iterable[float]) -> dict[str, bool]:
    """``{"1": err <= 1, "3": err <= 3, ...}`` for each threshold (keys as ``eps_key``)."""
    return {eps_key(e): bool(error <= e) for e in eps}


def eps_key(eps: float) -> str:
    """JSON key of a threshold: ``3.0 -> "3"``, ``2.5 -> "2.5"``."""
    return f"{float(eps):g}"


def accuracy_curve(errors: Sequence[float], thresholds: Sequence[float]) -> np.ndarray:
    """Fraction ``[T]`` of corner ``errors`` at or below each threshold."""
    e = np.asarray(errors, dtype=np.float64).reshape(-1, 1)
    if len(e) == 0:
        return np.full(len(thresholds), math.nan)
    return (e <= np.asarray(thresholds, dtype=np.float64)[None]).mean(axis=0)


SCALAR_KEYS = ("repeatability", "mle", "nn_map", "matching_score", "corner_error")


def aggregate(pair_results: Sequence[dict], eps: Iterable[float]) -> dict:
    """Summary of per-pair records (the keys of ``metrics.json``).

    ``pair_results``: dicts with ``repeatability``, ``mle``, ``nn_map``, ``matching_score``
    (means over the pairs where they are finite), ``corner_error`` (median; failed estimates
    are ``inf``) and ``correct`` (``{eps_key: bool}``, or ``None`` for a method without
    descriptors: such pairs are left out of the homography accuracy).
    """
    eps = list(eps)
    out: dict = {"pairs": len(pair_results)}
    for key in ("repeatability", "mle", "nn_map", "matching_score"):
        vals = np.array([r[key] for r in pair_results], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[key] = float(vals.mean()) if len(vals) else None
    with_h = [r for r in pair_results if r.get("correct") is not None]
    out["homography_accuracy"] = {
        eps_key(e): float(np.mean([r["correct"][eps_key(e)] for r in with_h])) if with_h else None
        for e in eps
    }
    median = float(np.median([r["corner_error"] for r in with_h])) if with_h else math.inf
    out["median_corner_error"] = median if math.isfinite(median) else None
    # keypoints per image at the descriptor size (they explain most failures: 74 against
    # SIFT's 1000 leaves little to match)
    counts = [r[k] for r in pair_results for k in ("keypoints0", "keypoints1") if k in r]
    out["keypoints"] = float(np.mean(counts)) if counts else None
    return out
