"""The SuperPoint front-end: one contract for training, evaluation, the CLI and the node.

Data contract: ``Frontend.__call__(image)`` takes a ``uint8`` image, gray ``[H, W]`` or BGR
``[H, W, 3]``, any size, and returns a dict of numpy arrays:

* ``keypoints``: ``[N, 2]`` float32, (x, y) in the input image's pixels (pixel centres at
  integer coordinates), best first;
* ``scores``: ``[N]`` float32 keypoint probabilities;
* ``descriptors``: ``[N, D]`` float32, L2-normalised (``D = 0`` for MagicPoint).

Matches between two such dicts are ``matches [M, 2]`` index pairs (``superpoint_ros.matching``);
ground truth is ``H_0to1`` (``superpoint_ros.geometry``).

A front-end is opened from a model source and a backend by
:func:`superpoint_ros.loader.load_frontend` (outside this package: the backends import the
front-end's settings, so the front-end cannot import the backends).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import SuperPointError
from .config import FrontendConfig, parse_size
from .preprocess import Prepared, finalize, prepare, to_gray

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "superpoint_demo.pt"


class Frontend:
    """Pre-processing -> a backend's graph -> keypoints in the caller's pixels.

    Build it once (:func:`superpoint_ros.loader.load_frontend`) and call it per image: sessions
    and engines are built in the constructor only.
    """

    def __init__(self, backend, resize: tuple[int, int] | None = None):
        self.backend = backend
        self.config = backend.info.config.replace(resize=resize)

    @property
    def descriptor_dim(self) -> int:
        return self.backend.info.descriptor_dim

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        prepared = prepare(image, self.config.resize)
        return finalize(self.backend.infer(prepared.tensor), prepared, self.config)

    def timed(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Like ``__call__``, plus seconds spent per stage: ``preprocess``, ``inference`` (the
        backend's graph: network and post-processing) and ``finalize`` (host-side unpadding)."""
        t0 = time.perf_counter()
        prepared = prepare(image, self.config.resize)
        t1 = time.perf_counter()
        outputs = self.backend.infer(prepared.tensor)
        t2 = time.perf_counter()
        result = finalize(outputs, prepared, self.config)
        t3 = time.perf_counter()
        return result, {"preprocess": t1 - t0, "inference": t2 - t1, "finalize": t3 - t2}


def default_weights() -> Path:
    """The demo model shipped inside the package (trained by this project; Apache-2.0)."""
    if not DEFAULT_WEIGHTS.is_file():
        raise SuperPointError(
            f"no default model at {DEFAULT_WEIGHTS}; pass a weights file (--weights)"
        )
    return DEFAULT_WEIGHTS


__all__ = [
    "DEFAULT_WEIGHTS",
    "Frontend",
    "FrontendConfig",
    "Prepared",
    "default_weights",
    "finalize",
    "parse_size",
    "prepare",
    "to_gray",
]
