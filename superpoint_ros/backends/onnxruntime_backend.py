"""ONNX Runtime backend: runs the exported front-end graph (CUDA provider when present).
Never imports torch."""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from ..errors import BackendUnavailable
from ..frontend.config import FrontendConfig
from .base import Backend, BackendInfo


def read_onnx_info(session) -> BackendInfo:
    """Baked settings from an exported file's ``superpoint_ros.*`` metadata."""
    from ..frontend.metadata import read_metadata

    meta = read_metadata(session.get_modelmeta().custom_metadata_map)
    if meta.get("kind") != "frontend":
        raise BackendUnavailable(
            "this .onnx is not a superpoint_ros front-end export "
            "(make one with: superpoint export-onnx --weights W -o model.onnx)"
        )
    return BackendInfo(
        FrontendConfig.from_dict(_tuple_resize(meta["frontend_config"])),
        int(meta.get("descriptor_dim", 0)),
        meta.get("conventions", {}),
    )


def _tuple_resize(d: dict) -> dict:
    d = dict(d)
    if d.get("resize") is not None:
        d["resize"] = tuple(d["resize"])
    return d


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("onnxruntime") is None:
            return "ONNX Runtime is not installed (pip install 'superpoint_ros[onnx]')"
        return None

    def __init__(self, onnx_path: str | os.PathLike, threads: int = 0,
                 providers: list[str] | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                         if p in available]
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        except Exception as exc:  # invalid or truncated file
            raise BackendUnavailable(f"ONNX Runtime cannot load {onnx_path}: {exc}") from exc
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.info = read_onnx_info(self.session)
        self.info.details = {"providers": self.session.get_providers(), "path": str(onnx_path)}

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(None, {"image": image})
        return dict(zip(self.outputs, values))
