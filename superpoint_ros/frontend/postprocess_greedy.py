"""Greedy non-maximum suppression, as Magic Leap's ``demo_superpoint.py`` describes it: the
reference the exportable NMS modes (``postprocess.nms``) are measured against. NumPy, one
image, not exported (its loop depends on the data).

Described there as: take the points above the threshold, visit them from the highest score to
the lowest; a point not yet suppressed is kept and suppresses every point within ``radius`` in
the infinity norm (a ``(2r+1)^2`` square around it). Equal scores are visited in row-major
order here (the demo leaves their order to ``argsort``).
"""

from __future__ import annotations

import numpy as np


def greedy_nms(scores: np.ndarray, radius: int, threshold: float = 0.0) -> np.ndarray:
    """Keypoints ``[N, 2]`` (x, y) int kept by greedy NMS on ``scores [H, W]`` among pixels with
    score ``>= threshold`` and ``> 0``, strongest first."""
    h, w = scores.shape
    ys, xs = np.nonzero((scores >= threshold) & (scores > 0))
    order = np.argsort(-scores[ys, xs], kind="stable")
    # 0 = free, 1 = suppressed; padded so windows at the edge need no clipping.
    suppressed = np.zeros((h + 2 * radius, w + 2 * radius), bool)
    kept = []
    for i in order:
        x, y = int(xs[i]), int(ys[i])
        if suppressed[y + radius, x + radius]:
            continue
        kept.append((x, y))
        suppressed[y : y + 2 * radius + 1, x : x + 2 * radius + 1] = True
    return np.array(kept, dtype=np.int64).reshape(-1, 2)
