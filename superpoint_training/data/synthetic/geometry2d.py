"""2-D geometry of the shapes, in floating-point output pixels: segment crossings and
distances, points inside a polygon, polygon edges, points mapped by a homography."""

from __future__ import annotations

import cv2
import numpy as np


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def segment_intersections(
    p: np.ndarray, p2: np.ndarray, q: np.ndarray, q2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Proper crossings of segments ``p[i] -> p2[i]`` with ``q[j] -> q2[j]`` (``[N, 2]``,
    ``[M, 2]``): returns ``(hit [N, M] bool, point [N, M, 2])`` (endpoints excluded)."""
    p, p2, q, q2 = (np.asarray(a, np.float64).reshape(-1, 2) for a in (p, p2, q, q2))
    r = (p2 - p)[:, None, :]
    s = (q2 - q)[None, :, :]
    qp = q[None, :, :] - p[:, None, :]
    denom = _cross(r, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = _cross(qp, s) / denom
        u = _cross(qp, r) / denom
    eps = 1e-9
    hit = (np.abs(denom) > 1e-12) & (t > eps) & (t < 1 - eps) & (u > eps) & (u < 1 - eps)
    point = p[:, None, :] + np.where(hit, t, 0.0)[..., None] * r
    return hit, point


def segment_distance(a0, a1, b0, b1) -> float:
    """Smallest distance between segments ``a0-a1`` and ``b0-b1`` (2-D)."""
    a0, a1, b0, b1 = (np.asarray(v, np.float64) for v in (a0, a1, b0, b1))
    hit, _ = segment_intersections(a0, a1, b0, b1)
    if hit[0, 0]:
        return 0.0

    def point_seg(pt, s0, s1):
        d = s1 - s0
        t = 0.0 if d @ d < 1e-12 else float(np.clip((pt - s0) @ d / (d @ d), 0.0, 1.0))
        return float(np.linalg.norm(pt - (s0 + t * d)))

    return min(point_seg(a0, b0, b1), point_seg(a1, b0, b1),
               point_seg(b0, a0, a1), point_seg(b1, a0, a1))  # fmt: skip


def inside_polygon(points: np.ndarray, polygon: np.ndarray, margin: float = 1e-6) -> np.ndarray:
    """Boolean ``[N]``: the point lies inside ``polygon [K, 2]`` by more than ``margin``."""
    contour = np.asarray(polygon, np.float32).reshape(-1, 1, 2)
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    dist = [cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in pts]
    return np.asarray(dist, np.float64) > margin


def polygon_edges(polygon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` of the edges of ``polygon [K, 2]``, edge ``k`` ending at ``k + 1``."""
    p = np.asarray(polygon, np.float64)
    return p, np.concatenate([p[1:], p[:1]])


def apply_homography(H: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``[N, 2]`` points mapped by the 3x3 ``H`` (float64, no rounding)."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    q = np.concatenate([p, np.ones((len(p), 1))], axis=1) @ np.asarray(H, np.float64).T
    return q[:, :2] / q[:, 2:3]
