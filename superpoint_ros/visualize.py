"""Pictures for people: keypoints and matches drawn with OpenCV (pure: arrays in, array out)."""

from __future__ import annotations

import cv2
import numpy as np

GREEN = (0, 200, 0)
RED = (0, 0, 230)
YELLOW = (0, 220, 255)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A BGR uint8 copy of a gray or BGR uint8 image."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image.copy()


def draw_keypoints(
    image: np.ndarray, keypoints: np.ndarray, color=YELLOW, radius: int = 2
) -> np.ndarray:
    """``image`` (gray or BGR) with ``keypoints [N, 2]`` (x, y) drawn as small circles."""
    out = to_bgr(image)
    for x, y in np.round(np.asarray(keypoints).reshape(-1, 2)).astype(int):
        cv2.circle(out, (int(x), int(y)), radius, color, -1, cv2.LINE_AA)
    return out


def draw_matches(
    image0: np.ndarray,
    image1: np.ndarray,
    keypoints0: np.ndarray,
    keypoints1: np.ndarray,
    matches: np.ndarray,
    correct: np.ndarray | None = None,
    gap: int = 10,
) -> np.ndarray:
    """Both images side by side, keypoints in yellow, ``matches [M, 2]`` as lines: green where
    ``correct [M]`` is true (inliers), red otherwise (all green when ``correct`` is None)."""
    a = draw_keypoints(image0, keypoints0)
    b = draw_keypoints(image1, keypoints1)
    h = max(a.shape[0], b.shape[0])
    canvas = np.full((h, a.shape[1] + gap + b.shape[1], 3), 255, np.uint8)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] + gap :] = b
    offset = np.array([a.shape[1] + gap, 0], np.float32)
    matches = np.asarray(matches, dtype=np.int64).reshape(-1, 2)
    if correct is None:
        correct = np.ones(len(matches), bool)
    order = np.argsort(np.asarray(correct, bool), kind="stable")  # draw inliers on top
    for (i0, i1), ok in zip(matches[order], np.asarray(correct, bool)[order]):
        p0 = tuple(int(v) for v in np.round(keypoints0[i0]))
        p1 = tuple(int(v) for v in np.round(keypoints1[i1] + offset))
        cv2.line(canvas, p0, p1, GREEN if ok else RED, 1, cv2.LINE_AA)
    return canvas
