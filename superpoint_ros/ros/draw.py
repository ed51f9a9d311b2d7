"""The node's ``~/debug_image``: the current frame with its keypoints and this frame's matches
(pure: arrays in, a BGR array out; OpenCV only)."""

from __future__ import annotations

import cv2
import numpy as np

from ..visualize import YELLOW, draw_keypoints


def track_colors(track_ids: np.ndarray) -> np.ndarray:
    """A BGR uint8 colour ``[M, 3]`` per track id: a hue from the id (golden-ratio steps, so
    neighbouring ids differ), full saturation and value. The same id always gets the same
    colour, so a point keeps its colour across frames."""
    ids = np.asarray(track_ids, np.uint64).reshape(-1)
    hues = ((ids * np.uint64(40503)) % np.uint64(180)).astype(np.uint8)  # OpenCV hue: 0..179
    hsv = np.stack([hues, np.full_like(hues, 255), np.full_like(hues, 255)], axis=1)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0]


def draw_debug_image(
    image: np.ndarray,
    keypoints: np.ndarray,
    kpts0: np.ndarray | None = None,
    kpts1: np.ndarray | None = None,
    track_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Draw on a BGR copy of ``image`` (uint8 gray ``[H, W]`` or BGR ``[H, W, 3]``).

    ``keypoints [N, 2]`` (x, y) as small yellow dots; each match as a line from its position in
    the previous frame ``kpts0 [M, 2]`` to the current one ``kpts1 [M, 2]`` with a circle at
    the current end, coloured by ``track_ids [M]``; a caption with the counts. Returns
    ``uint8 [H, W, 3]`` of the input's size, ready for a ``bgr8`` message.
    """
    out = draw_keypoints(image, keypoints, color=YELLOW, radius=1)
    m = 0 if kpts0 is None else len(kpts0)
    if m:
        p0 = np.round(np.asarray(kpts0, np.float32)).astype(np.int64)
        p1 = np.round(np.asarray(kpts1, np.float32)).astype(np.int64)
        ids = np.zeros(m, np.uint32) if track_ids is None else track_ids
        for a, b, c in zip(p0, p1, track_colors(ids)):
            color = tuple(int(v) for v in c)
            cv2.line(out, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), color, 1, cv2.LINE_8)
            cv2.circle(out, (int(b[0]), int(b[1])), 3, color, 1, cv2.LINE_8)
    caption = f"{len(keypoints)} keypoints, {m} matches"
    scale = max(0.35, min(out.shape[0], out.shape[1]) / 900.0)
    thickness = max(1, int(round(scale * 2)))
    origin = (5, 5 + int(20 * scale))
    font = cv2.FONT_HERSHEY_SIMPLEX
    # black outline under white text: readable on any background
    for color, width in (((0, 0, 0), thickness + 2), ((255, 255, 255), thickness)):
        cv2.putText(out, caption, origin, font, scale, color, width, cv2.LINE_AA)
    return out
