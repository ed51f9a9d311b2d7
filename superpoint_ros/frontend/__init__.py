"""The SuperPoint front-end: one contract for training, evaluation, the CLI and the node.

Data contract: ``Frontend.__call__(image)`` takes a ``uint8`` image, gray ``[H, W]`` or BGR
``[H, W, 3]``, any size, and returns a dict of numpy arrays:

* ``keypoints``: ``[N, 2]`` float32, (x, y) in the input image's pixels (pixel centres at
  integer coordinates), best first;
* ``scores``: ``[N]`` float32 keypoint probabilities;
* ``descriptors``: ``[N, D]`` float32, L2-normalised (``D = 0`` for MagicPoint).

Matches between two such dicts are ``matches [M, 2]`` index pairs (``superpoint_ros.matching``);
ground truth is ``H_0to1`` (``superpoint_ros.geometry``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, SuperPointError
from .config import FrontendConfig, parse_size
from .conventions import sampling_rule
from .preprocess import Prepared, finalize, prepare, to_gray

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "superpoint_demo.pt"


class Frontend:
    """Pre-processing -> a backend's graph -> keypoints in the caller's pixels.

    Build it once (``load_frontend``) and call it per image: sessions and engines are built in
    the constructor only.
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


def _cached_onnx(weights_path: Path, weights, config: FrontendConfig, cache_dir) -> Path:
    """Export a weights file's front-end to ONNX once; reuse it while weights and settings
    are unchanged."""
    import hashlib
    import json

    from ..backends.tensorrt_backend import default_cache_dir
    from ..export import OPSET, export_onnx
    from .metadata import file_sha256

    key = hashlib.sha256(
        json.dumps([file_sha256(weights_path), config.graph_key(), OPSET]).encode()
    ).hexdigest()[:24]
    path = (Path(cache_dir) if cache_dir else default_cache_dir()) / f"frontend_{key}.onnx"
    if not path.is_file():
        log.info("exporting %s to %s", weights_path.name, path)
        export_onnx(weights, path, config)
    return path


def load_frontend(
    weights: str | os.PathLike | None = None,
    backend: str = "auto",
    config: FrontendConfig | dict[str, Any] | None = None,
    *,
    fp16: bool = False,
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    threads: int = 0,
) -> Frontend:
    """Build a front-end.

    ``weights``: a weights file of any known layout, an exported ``.onnx``, a TensorRT
    ``.engine``, or ``None`` for the packaged demo model. ``backend``: ``auto``, ``tensorrt``,
    ``onnxruntime`` or ``torch``. ``config``: a full ``FrontendConfig``, or a dict of settings
    to change (for ``.onnx``/``.engine`` files the settings baked into the file are the base,
    and changing a baked one is an error: re-export instead).
    """
    from ..backends import resolve_backend, source_kind

    path = Path(weights) if weights else default_weights()
    if not path.is_file():
        raise SuperPointError(f"weights file not found: {path}")
    kind = source_kind(path)
    name = resolve_backend(backend, kind)
    overrides = _overrides(config)
    resize = parse_size(overrides.pop("resize", None))

    if kind == "torch":
        from ..model.weights import load_weights

        loaded = load_weights(path)
        full = FrontendConfig().replace(**overrides)
        if name == "torch":
            from ..backends.torch_backend import TorchBackend

            impl = TorchBackend(loaded, full, device=device, fp16=fp16)
        else:
            onnx_path = _cached_onnx(path, loaded, full, cache_dir)
            impl = _graph_backend(name, onnx_path, fp16, cache_dir, threads)
    else:
        impl = _graph_backend(name, path, fp16, cache_dir, threads, engine=kind == "engine")
        baked = impl.info.config
        if baked.descriptor_sampling is None:  # files exported before the option existed
            rule = impl.info.conventions.get("descriptor_sampling")
            baked = baked.replace(descriptor_sampling=rule and sampling_rule(rule).name)
        if overrides.get("descriptor_sampling") is not None:  # a legacy name -> its rule
            overrides["descriptor_sampling"] = sampling_rule(
                overrides["descriptor_sampling"]
            ).name
        changed = {k: v for k, v in overrides.items() if getattr(baked, k) != v}
        if changed:
            raise ConfigError(
                f"{path.name} was exported with "
                + ", ".join(f"{k}={getattr(baked, k)}" for k in changed)
                + "; re-export it (superpoint export-onnx) to use "
                + ", ".join(f"{k}={v}" for k, v in changed.items())
            )
    return Frontend(impl, resize=resize)


def _overrides(config) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, FrontendConfig):
        return {f.name: getattr(config, f.name) for f in fields(FrontendConfig)}
    known = {f.name for f in fields(FrontendConfig)}
    unknown = set(config) - known
    if unknown:
        raise ConfigError(f"unknown front-end settings {sorted(unknown)}; valid: {sorted(known)}")
    return {k: v for k, v in config.items() if v is not None or k == "resize"}


def _graph_backend(name, path, fp16, cache_dir, threads, engine=False):
    if name == "onnxruntime":
        from ..backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, threads=threads)
    from ..backends.tensorrt_backend import TensorRTBackend

    if engine:
        return TensorRTBackend(None, engine_path=path)
    return TensorRTBackend(path, fp16=fp16, cache_dir=cache_dir)


__all__ = [
    "DEFAULT_WEIGHTS", "Frontend", "FrontendConfig", "Prepared", "default_weights",
    "finalize", "load_frontend", "parse_size", "prepare", "to_gray",
]
