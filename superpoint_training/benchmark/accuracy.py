"""Accuracy of one built front-end on homography sequences, by the code of ``superpoint
evaluate`` (``evaluation.pipeline.evaluate_frontend``: its extraction, pair metrics and
summaries) under its pinned :class:`Protocol`, with both extraction passes at the matrix
row's size (a row says what that model scores at the size it runs at).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from superpoint_training.evaluation.pipeline import evaluate_frontend
from superpoint_training.evaluation.protocol import Protocol

# What a row keeps of the evaluation's entry (the per-pair records stay in `superpoint
# evaluate`'s own report).
SUMMARY_KEYS = (
    "pairs", "homography_accuracy", "nn_map", "repeatability", "mle", "matching_score",
    "median_corner_error", "keypoints", "splits", "protocol_deviations",
)  # fmt: skip


def row_protocol(size: tuple[int, int], base: Protocol | None = None) -> Protocol:
    """The protocol of a row of ``size`` (height, width): ``base`` (default: the pinned one)
    with the detector and descriptor passes both at ``size``."""
    return (base or Protocol()).replace(rep_size=tuple(size), hom_size=tuple(size))


class OncePerImage:
    """A front-end that runs once per distinct image: with both passes at one size the
    evaluation hands it the same stretched image twice in a row, and each pass keeps its own
    budget of the best points from the one result. Everything else is the front-end's."""

    def __init__(self, frontend: Any):
        self._frontend = frontend
        self._last: tuple[str, dict[str, np.ndarray]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._frontend, name)

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        key = hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest() + str(image.shape)
        if self._last is None or self._last[0] != key:
            self._last = (key, self._frontend(image))
        return self._last[1]


def score(frontend: Any, datasets: Sequence[str | Path], protocol: Protocol) -> dict[str, Any]:
    """Homography accuracy per eps, NN mAP, repeatability, MLE, matching score and keypoints
    of ``frontend`` on every sequence of ``datasets`` (all pairs, and per kind under
    ``splits``): :data:`SUMMARY_KEYS` of ``evaluate_frontend``'s entry."""
    entry = evaluate_frontend(OncePerImage(frontend), [str(d) for d in datasets], protocol)
    return {k: entry[k] for k in SUMMARY_KEYS if k in entry}
