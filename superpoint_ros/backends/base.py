"""The one interface every inference backend implements, and the options it is opened with.

A backend class declares what it runs and where ``auto`` tries it:

* ``name``: its registry name (``--backend``, the node's ``backend`` parameter);
* ``sources``: the model source kinds it opens (``torch`` weights, ``onnx``, ``engine``); a
  weights file given to a backend that does not list ``torch`` is exported to ONNX first
  (:func:`superpoint_ros.onnx_export.cached_export`);
* ``auto_rank``: its place in ``auto``'s order (lower is tried first);
* ``unavailable_reason()``: ``None`` where it can run here, else one line with a remedy;
* ``open(source, options)``: the one constructor, from a model source path and
  :class:`BackendOptions`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from ..frontend.config import FrontendConfig

TORCH_SUFFIXES = (".pt", ".pth", ".tar", ".ckpt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
SOURCE_KINDS = ("torch", "onnx", "engine")
PRECISIONS = ("fp32", "fp16", "int8")


def source_kind(path: str | os.PathLike) -> str:
    """``torch`` (a weights file), ``onnx`` or ``engine`` (a serialized TensorRT engine)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    return "torch"


def default_cache_dir() -> Path:
    """Where weights exported to ONNX and engines built at run time are kept."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "superpoint_ros"


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    return precision


def check_file_precision(runtime: str, precision: str, file_precision: str | None = None) -> None:
    """For backends that run an ``.onnx`` at the precision it was exported or quantised in
    (an FP32 export, an INT8 model from ``superpoint quantize``): fp16 is refused in one line,
    and so is int8 for a file (``file_precision`` from its metadata, when known) that is not."""
    if precision == "fp16":
        raise ConfigError(
            f"{runtime} runs an .onnx at the precision it was exported in; fp16 needs "
            "--backend tensorrt (or torch on CUDA), int8 a model from superpoint quantize"
        )
    if precision == "int8" and file_precision not in (None, "int8"):
        raise ConfigError(
            f"int8 asked for, but this .onnx is an {file_precision} export; make an INT8 model "
            "with: superpoint quantize --onnx MODEL.onnx --calib DIR -o MODEL.int8.onnx"
        )


@dataclass(frozen=True)
class BackendOptions:
    """Everything a backend may be opened with; each backend reads the fields it uses."""

    precision: str = "fp32"  # fp32 | fp16 | int8 (see each backend's docstring for its rules)
    device: str | None = None  # torch device (torch backend); None = cuda if present, else cpu
    threads: int = 0  # CPU threads (onnxruntime); 0 = the runtime's default
    cache_dir: str | os.PathLike | None = None  # exported ONNX and built engines
    rebuild_engine: bool = False  # TensorRT: rebuild a mismatched engine instead of refusing it
    config: FrontendConfig = field(default_factory=FrontendConfig)  # for torch weights sources

    def __post_init__(self):
        check_precision(self.precision)

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()


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
    sources: ClassVar[tuple[str, ...]]
    auto_rank: ClassVar[int]
    info: BackendInfo

    @classmethod
    @abstractmethod
    def unavailable_reason(cls) -> str | None:
        """``None`` when this backend can run here, else a one-line reason with a remedy."""

    @classmethod
    @abstractmethod
    def open(cls, source: Path, options: BackendOptions) -> Backend:
        """The backend running ``source`` (a path of one of ``sources``' kinds)."""

    @abstractmethod
    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]: ...

    def network_only(self, image: np.ndarray) -> None:  # pragma: no cover - optional
        """Run the bare network (benchmarks); backends that cannot, raise NotImplementedError."""
        raise NotImplementedError
