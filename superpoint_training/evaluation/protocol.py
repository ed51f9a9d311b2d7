"""The pinned evaluation protocol (see the README's "Benchmark your models").

Published SuperPoint numbers move by several points with evaluation details, so one protocol is
pinned here, every field can be overridden, and the resolved protocol is written into every
report. ``Protocol.key()`` hashes it: extraction caches are keyed by method + protocol key.

It is read like the training configs, by ``superpoint_training.config``: ``from_dict`` (unknown
fields listed, values type-checked) and ``key=value`` overrides parsed as YAML, where a tuple of
numbers may also be written ``1,3,5`` or ``480x640`` and one number is a tuple of one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from superpoint_ros.errors import ConfigError

from ..config import from_dict, merge, overrides_to_tree, to_dict

PROTOCOL_VERSION = 1  # bump when the meaning of a field or of a metric changes
PASSES = ("rep", "hom")  # extraction passes: detector metrics, then descriptor metrics


@dataclass(frozen=True)
class Protocol:
    """Every knob of the offline evaluation, with the pinned defaults."""

    # Pairs: the reference image against the targets, in every sequence.
    reference: int = 1  # index of image 0 of every pair (HPatches ``1.ppm``, Oxford ``img1``)
    targets: tuple[int, ...] = (2, 3, 4, 5, 6)  # indices of the images 1 of the pairs
    # Resizing: every image is stretched to the evaluation size; GT H is rescaled with it.
    resize: str = "stretch"  # only "stretch" (crop-and-resize without fixing H is a known bug)
    interpolation: str = "area"  # cv2.resize interpolation: area | linear | cubic | nearest
    grayscale: bool = True  # methods see single-channel uint8 images
    # Detector metrics (repeatability, localisation error).
    rep_size: tuple[int, int] = (240, 320)  # (height, width) of the detector pass
    rep_max_keypoints: int = 300  # best-scoring points kept per image
    # Descriptor metrics (homography, NN mAP, matching score).
    hom_size: tuple[int, int] = (480, 640)  # (height, width) of the descriptor pass
    hom_max_keypoints: int = 1000  # at most this many points per image
    # Detection settings of learned methods (SIFT/ORB use their own detectors, same budget).
    nms_radius: int = 4  # non-maximum suppression radius in pixels
    detection_threshold: float = 0.005  # minimum detector probability
    border: int = 4  # points closer than this to the edge are dropped
    # Correctness.
    correct_distance: float = 3.0  # px: a point repeats / a match is correct within this
    mutual: bool = True  # matches are mutual nearest neighbours on descriptors
    ransac_threshold: float = 3.0  # px: OpenCV RANSAC reprojection threshold
    ransac_max_iters: int = 2000  # cv2.findHomography maxIters
    ransac_confidence: float = 0.995  # cv2.findHomography confidence
    eps: tuple[float, ...] = (1.0, 3.0, 5.0)  # px: homography correct at mean corner error <= eps
    version: int = field(default=PROTOCOL_VERSION)  # metric definitions' revision

    def __post_init__(self) -> None:
        _check(self)

    def passes(self) -> dict[str, tuple[tuple[int, int], int]]:
        """Each extraction pass of :data:`PASSES`: its image size (height, width) and its point
        budget (``rep``: ``rep_size``, ``rep_max_keypoints``; ``hom``: ``hom_size``,
        ``hom_max_keypoints``)."""
        return {
            "rep": (self.rep_size, self.rep_max_keypoints),
            "hom": (self.hom_size, self.hom_max_keypoints),
        }

    def image_indices(self, available: Container[int]) -> list[int]:
        """The images the pairs use, the reference first, that are among ``available``."""
        return [i for i in (self.reference, *self.targets) if i in available]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (tuples become lists)."""
        return to_dict(self)

    def key(self) -> str:
        """A short stable hash of every field: caches made with another protocol don't match."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def replace(self, **changes: Any) -> Protocol:
        """This protocol with ``changes`` (field -> value), checked as :meth:`from_dict`."""
        return Protocol.from_dict(merge(self.to_dict(), changes))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Protocol:
        """Inverse of ``to_dict``: missing fields keep their defaults, unknown ones are refused
        with the valid names, values are type-checked (``superpoint_training.config``)."""
        return from_dict(cls, data)

    def with_overrides(self, overrides: Mapping[str, Any] | Sequence[str]) -> Protocol:
        """Apply ``key=value`` strings (from ``--set``), e.g. ``rep_size=480x640``,
        ``eps=1,2,3``, ``mutual=false`` (values parsed as YAML, as training overrides are); or a
        mapping of key -> value."""
        if isinstance(overrides, Mapping):
            tree = dict(overrides)
        else:
            tree = overrides_to_tree(overrides, example="eps=1,3,5")
        return Protocol.from_dict(merge(self.to_dict(), tree))


def field_names() -> list[str]:
    """The protocol's fields, in their order."""
    return [f.name for f in dataclasses.fields(Protocol)]


_INTERPOLATIONS = ("area", "linear", "cubic", "nearest")


def _check(p: Protocol) -> None:
    def bad(msg: str) -> None:
        raise ConfigError(f"protocol: {msg}")

    for name in ("rep_size", "hom_size"):
        size = getattr(p, name)
        if len(size) != 2 or min(size) < 16:
            bad(f"{name} must be (height, width) of at least 16 px, got {size}")
    if not p.targets:
        bad("targets must name at least one image")
    if p.reference in p.targets:
        bad("the reference image cannot be one of the targets")
    if p.resize != "stretch":
        bad(f"resize {p.resize!r} is not supported; only 'stretch'")
    if p.interpolation not in _INTERPOLATIONS:
        bad(f"interpolation {p.interpolation!r}; valid: {', '.join(_INTERPOLATIONS)}")
    for name in ("rep_max_keypoints", "hom_max_keypoints"):
        if getattr(p, name) < 1:
            bad(f"{name} must be >= 1")
    if p.nms_radius < 0 or p.border < 0:
        bad("nms_radius and border must be >= 0")
    if p.correct_distance <= 0 or p.ransac_threshold <= 0:
        bad("correct_distance and ransac_threshold must be > 0")
    if not p.eps or min(p.eps) <= 0:
        bad("eps must be a non-empty list of positive thresholds")
    if not 0 < p.ransac_confidence < 1 or p.ransac_max_iters < 1:
        bad("ransac_confidence must be in (0, 1) and ransac_max_iters >= 1")
