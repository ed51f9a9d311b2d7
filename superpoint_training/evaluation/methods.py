"""Methods under evaluation: a registry of local-feature extractors with their own matchers.

* ``sift``, ``orb``: OpenCV, with the protocol's point budget (best responses kept);
* any weights file (``.pt``, ``.pth``, ``.pth.tar``...) or exported ``.onnx``: SuperPoint through
  ``superpoint_ros.loader.load_frontend``;
* a front-end already loaded (any backend and precision): ``FrontendMethod``.

Every method maps a uint8 image to the data contract (``keypoints [N, 2]`` float32 (x, y),
``scores [N]`` float32, ``descriptors [N, D]`` float32) and brings its own matcher, because
the right distance depends on the descriptor: L2 on L2-normalised SuperPoint/SIFT descriptors
(``superpoint_ros.matching.match_descriptors``), Hamming on ORB's binary ones. ORB descriptors
are stored unpacked (256 float32 bits) to keep one array type; its matcher packs them back
and uses OpenCV's ``NORM_HAMMING`` brute-force matcher.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from superpoint_ros.errors import ConfigError
from superpoint_ros.frontend.metadata import file_sha256
from superpoint_ros.loader import load_frontend
from superpoint_ros.matching import MatchConfig, match_descriptors
from superpoint_ros.registry import Registry

from .protocol import Protocol

log = logging.getLogger(__name__)

METHODS: Registry[type[Method]] = Registry("evaluation method")


def empty_prediction(dim: int) -> dict[str, np.ndarray]:
    """No points: ``keypoints [0, 2]``, ``scores [0]``, ``descriptors [0, dim]`` (float32)."""
    return {
        "keypoints": np.zeros((0, 2), np.float32),
        "scores": np.zeros(0, np.float32),
        "descriptors": np.zeros((0, dim), np.float32),
    }


def keep_best(pred: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """The ``k`` highest-scoring points of a prediction, best first (stable for ties)."""
    order = np.argsort(-pred["scores"], kind="stable")[:k]
    return {key: np.ascontiguousarray(v[order]) for key, v in pred.items()}


class Method:
    """A local-feature method: ``extract`` per image, ``match``/``nearest`` per pair."""

    kind = "method"

    def __init__(self, name: str, protocol: Protocol):
        self.name = name
        self.protocol = protocol

    def identity(self) -> dict[str, Any]:
        """What determines this method's outputs (cache key): name, versions, file hashes."""
        return {"kind": self.kind}

    def describe(self) -> dict[str, Any]:
        """Human-facing details for the report (identity plus notes)."""
        return self.identity()

    def extract(self, image: np.ndarray, max_keypoints: int) -> dict[str, np.ndarray]:
        """uint8 image (gray ``[H, W]`` or BGR) -> at most ``max_keypoints`` points, best
        first: ``keypoints [N, 2]`` float32 (x, y), ``scores [N]``, ``descriptors [N, D]``."""
        raise NotImplementedError

    def match(self, desc0: np.ndarray, desc1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Descriptor matches ``[M, 2]`` int64 (i0, i1) and distances ``[M]`` float32; mutual
        nearest neighbours when ``protocol.mutual``."""
        return match_descriptors(desc0, desc1, MatchConfig(mutual=self.protocol.mutual))

    def nearest(self, desc0: np.ndarray, desc1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest neighbour in ``desc1`` of every row of ``desc0``: ``[N0, 2]``, ``[N0]``."""
        return match_descriptors(desc0, desc1, MatchConfig(mutual=False))


class _OpenCVMethod(Method):
    """An OpenCV feature (``detectAndCompute``) with the protocol's point budget: one detector
    per budget (``nfeatures``), the best responses kept. Subclasses say how to build the
    detector and how to store its descriptors."""

    descriptor_dim = 0  # columns of the stored descriptors

    def __init__(self, name: str, protocol: Protocol):
        super().__init__(name, protocol)
        self._detectors: dict[int, Any] = {}

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "opencv": cv2.__version__}

    def _create(self, max_keypoints: int) -> Any:
        raise NotImplementedError

    def _descriptors(self, desc: np.ndarray) -> np.ndarray:
        """OpenCV's descriptors ``[N, ...]`` as stored float32 ``[N, descriptor_dim]``."""
        raise NotImplementedError

    def extract(self, image: np.ndarray, max_keypoints: int) -> dict[str, np.ndarray]:
        if max_keypoints not in self._detectors:
            self._detectors[max_keypoints] = self._create(max_keypoints)
        kps, desc = self._detectors[max_keypoints].detectAndCompute(_gray(image), None)
        if not kps or desc is None:
            return empty_prediction(self.descriptor_dim)
        pred = {
            "keypoints": np.array([kp.pt for kp in kps], np.float32).reshape(-1, 2),
            "scores": np.array([kp.response for kp in kps], np.float32),
            "descriptors": self._descriptors(desc),
        }
        return keep_best(pred, max_keypoints)


@METHODS.register("sift")
class SiftMethod(_OpenCVMethod):
    """OpenCV SIFT; descriptors L2-normalised (float32, 128-D), scores are the responses."""

    kind = "sift"
    descriptor_dim = 128

    def _create(self, max_keypoints: int) -> Any:
        return cv2.SIFT_create(nfeatures=max_keypoints)

    def _descriptors(self, desc: np.ndarray) -> np.ndarray:
        desc = desc.astype(np.float32)
        return desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)


@METHODS.register("orb")
class OrbMethod(_OpenCVMethod):
    """OpenCV ORB; 256-bit descriptors unpacked to float32 0/1, matched by Hamming distance."""

    kind = "orb"
    BITS = 256
    descriptor_dim = BITS

    def _create(self, max_keypoints: int) -> Any:
        return cv2.ORB_create(nfeatures=max_keypoints)

    def _descriptors(self, desc: np.ndarray) -> np.ndarray:
        return np.unpackbits(desc, axis=1).astype(np.float32)

    @staticmethod
    def pack(desc: np.ndarray) -> np.ndarray:
        """float32 0/1 bits ``[N, 256]`` -> OpenCV's uint8 ``[N, 32]``."""
        return np.packbits(np.asarray(desc) > 0.5, axis=1)

    def _bf_match(self, desc0, desc1, cross_check: bool) -> tuple[np.ndarray, np.ndarray]:
        if len(desc0) == 0 or len(desc1) == 0:
            return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
        matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=cross_check)
        found = matcher.match(self.pack(desc0), self.pack(desc1))
        if not found:
            return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
        matches = np.array([[m.queryIdx, m.trainIdx] for m in found], np.int64)
        dist = np.array([m.distance for m in found], np.float32)
        order = np.argsort(matches[:, 0], kind="stable")
        return matches[order], dist[order]

    def match(self, desc0, desc1):
        return self._bf_match(desc0, desc1, cross_check=self.protocol.mutual)

    def nearest(self, desc0, desc1):
        return self._bf_match(desc0, desc1, cross_check=False)


def frontend_settings(protocol: Protocol) -> dict[str, Any]:
    """The front-end config a SuperPoint model is evaluated with under ``protocol``: the larger
    point budget, the protocol's NMS radius, detection threshold and border, no resizing (the
    protocol stretches the images itself). Pass it as ``load_frontend(..., config=...)``."""
    p = protocol
    return {
        "max_keypoints": max(p.rep_max_keypoints, p.hom_max_keypoints),
        "nms_radius": p.nms_radius,
        "detection_threshold": p.detection_threshold,
        "border": p.border,
        "resize": None,
    }


def protocol_deviations(config: Any, protocol: Protocol) -> dict[str, Any]:
    """The settings of a front-end ``config`` (``FrontendConfig``) that differ from
    :func:`frontend_settings`: ``{key: {"protocol": wanted, "file": used}}`` (resize aside)."""
    return {
        k: {"protocol": v, "file": getattr(config, k)}
        for k, v in frontend_settings(protocol).items()
        if k != "resize" and getattr(config, k) != v
    }


class FrontendMethod(Method):
    """A loaded front-end (``superpoint_ros.frontend.Frontend``: any backend, any precision)
    as a method; build it with :func:`frontend_settings` to follow the protocol (settings that
    differ are reported as ``protocol_deviations``). Smaller point budgets keep its best
    points (NMS does not depend on the budget, so that equals extracting with the smaller one).
    Its identity names the backend and the front-end config, not the weights: give
    :func:`pipeline.evaluate_method` no cache for it (or use a weights file's method)."""

    kind = "frontend"

    def __init__(self, name: str, protocol: Protocol, frontend: Any = None):
        super().__init__(name, protocol)
        self._frontend = frontend
        self.deviations: dict[str, Any] = (
            protocol_deviations(frontend.config, protocol) if frontend is not None else {}
        )

    def identity(self) -> dict[str, Any]:
        fe = self.frontend()
        return {
            "kind": self.kind,
            "backend": fe.backend_name,
            "frontend_config": fe.config.to_dict(),
        }

    def describe(self) -> dict[str, Any]:
        out = self.identity()
        if self.deviations:
            out["protocol_deviations"] = self.deviations
        return out

    def frontend(self) -> Any:
        """The front-end (subclasses load it on first use)."""
        return self._frontend

    def extract(self, image: np.ndarray, max_keypoints: int) -> dict[str, np.ndarray]:
        pred = self.frontend()(image)
        pred = {k: np.asarray(v, np.float32) for k, v in pred.items()}
        return keep_best(pred, max_keypoints)


@METHODS.register("superpoint")
class SuperPointMethod(FrontendMethod):
    """A SuperPoint model (weights file or ``.onnx``) through the project's front-end.

    One front-end is built with :func:`frontend_settings`. ``.onnx`` files carry their own baked
    settings; where they differ from the protocol, the report says so.
    """

    kind = "superpoint"

    def __init__(self, name: str, protocol: Protocol, path: str | Path, backend: str = "auto"):
        super().__init__(name, protocol)
        self.path = Path(path)
        self.backend = backend
        self._sha = None

    def _file_sha(self) -> str:
        if self._sha is None:
            self._sha = file_sha256(self.path)
        return self._sha

    def identity(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.path.name,
            "sha256": self._file_sha(),
            "backend": self.backend,
        }

    def describe(self) -> dict[str, Any]:
        out = {**self.identity(), "path": str(self.path)}
        if self._frontend is not None:
            out["backend_used"] = self._frontend.backend_name
            out["frontend_config"] = self._frontend.config.to_dict()
        if self.deviations:
            out["protocol_deviations"] = self.deviations
        return out

    def frontend(self):
        if self._frontend is None:
            if self.path.suffix.lower() == ".onnx":
                fe = load_frontend(self.path, backend=self.backend, config={"resize": None})
                self.deviations = protocol_deviations(fe.config, self.protocol)
                if self.deviations:
                    log.warning(
                        "%s was exported with settings other than the protocol's: %s",
                        self.path.name,
                        self.deviations,
                    )
            else:
                settings = frontend_settings(self.protocol)
                fe = load_frontend(self.path, backend=self.backend, config=settings)
            self._frontend = fe
        return self._frontend


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image


_MODEL_SUFFIX = re.compile(r"\.(pt|pth|tar|ckpt|onnx)$", re.IGNORECASE)


def method_name(spec: str) -> str:
    """Display name of a method spec: ``sift`` -> ``sift``, ``runs/sp/best.pt`` -> ``best``."""
    if spec in METHODS and spec != "superpoint":
        return spec
    name = Path(spec).name
    while _MODEL_SUFFIX.search(name):
        name = _MODEL_SUFFIX.sub("", name)
    return name or spec


def get_method(
    spec: str, protocol: Protocol, name: str | None = None, backend: str = "auto"
) -> Method:
    """Resolve ``sift``, ``orb``, a weights file or an ``.onnx`` to a ``Method``."""
    name = name or method_name(spec)
    if spec in METHODS and spec != "superpoint":
        return METHODS.get(spec)(name, protocol)
    path = Path(spec)
    if path.is_file():
        return SuperPointMethod(name, protocol, path, backend=backend)
    valid = ", ".join(n for n in METHODS.names() if n != "superpoint")
    raise ConfigError(
        f"unknown method {spec!r}: not a file and not one of {valid} "
        "(pass a weights file, an .onnx, or a built-in baseline)"
    )
