"""The one interface every inference backend implements."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..frontend.config import FrontendConfig

TORCH_SUFFIXES = (".pt", ".pth", ".tar", ".ckpt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def source_kind(path: str | os.PathLike) -> str:
    """``torch`` (a weights file), ``onnx`` or ``engine`` (a serialized TensorRT engine)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    return "torch"


@dataclass
class BackendInfo:
    """What a backend runs: settings baked into its graph and the model's conventions."""

    config: FrontendConfig
    descriptor_dim: int
    conventions: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # provider, device, engine path...


class Backend(ABC):
    """Runs the whole front-end graph on one prepared image.

    ``infer(image [1, 1, H, W] float32 in [0, 1])`` returns numpy ``keypoints [K, 2]``,
    ``scores [K]`` (0 = empty slot) and, for SuperPoint, ``descriptors [K, D]``.
    """

    name: ClassVar[str]
    info: BackendInfo

    @classmethod
    @abstractmethod
    def unavailable_reason(cls) -> str | None:
        """``None`` when this backend can run here, else a one-line reason with a remedy."""

    @abstractmethod
    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]: ...

    def network_only(self, image: np.ndarray) -> None:  # pragma: no cover - optional
        """Run the bare network (benchmarks); backends that cannot, raise NotImplementedError."""
        raise NotImplementedError
