"""ONNX Runtime backend: runs the exported front-end graph (CUDA provider when present).
Never imports torch.

Precision: the file's own. An FP32 export runs in FP32, a model quantised by ``superpoint
quantize`` runs in INT8; asking for another precision is refused in one line.

Memory: ONNX Runtime's CPU memory arena is off by default here. With it on (ONNX Runtime's
default), the arena keeps the largest buffers any frame needed for the rest of the process's
life: one 4000x3000 frame left a node at 3.9 GB instead of 0.36 GB. Without it, buffers are
returned after every run, at no measurable cost per frame (README, "Memory";
``benchmarks/bench_memory.py``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailable
from ..frontend.config import FrontendConfig
from ..frontend.metadata import read_metadata
from .base import Backend, BackendInfo, BackendOptions, check_file_precision
from .registry import register_backend


def import_onnxruntime():
    """``onnxruntime``, imported with its telemetry off unless the user set
    ``ORT_DISABLE_TELEMETRY`` themselves: otherwise ONNX Runtime writes a device id under
    ``~/.cache/Microsoft/DeveloperTools`` on import, a file this project never asked for."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    return onnxruntime


def read_onnx_info(session) -> BackendInfo:
    """Baked settings from an exported file's ``superpoint_ros.*`` metadata."""
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
        {"precision": meta.get("precision", "fp32")},  # "int8" from superpoint quantize
    )


def check_frontend_graph(session, descriptor_dim: int, path: str | os.PathLike) -> None:
    """Refuse, when the session is built, a graph whose inputs and outputs are not those of a
    front-end export (``image [1, 1, H, W]`` float in; ``keypoints``, ``scores`` and, with
    descriptors, ``descriptors`` out): metadata copied onto another graph would otherwise fail
    at the first image."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    want_out = {"keypoints": 2, "scores": 1, **({"descriptors": 2} if descriptor_dim else {})}
    problems = []
    image = inputs.get("image")
    if list(inputs) != ["image"]:
        problems.append(f"inputs {sorted(inputs)} instead of ['image']")
    elif image.type != "tensor(float)" or len(image.shape) != 4:
        problems.append(f"input image is {image.type}, rank {len(image.shape)}: not float, rank 4")
    for name, rank in want_out.items():
        if name not in outputs:
            problems.append(f"no output {name!r}")
        elif len(outputs[name].shape) != rank:
            problems.append(f"output {name} has rank {len(outputs[name].shape)}, not {rank}")
    if problems:
        raise BackendUnavailable(
            f"{path} carries superpoint_ros metadata but its graph is not a front-end export "
            f"({'; '.join(problems)}); re-export it: superpoint export-onnx --weights W -o "
            "model.onnx"
        )


def _tuple_resize(d: dict) -> dict:
    d = dict(d)
    if d.get("resize") is not None:
        d["resize"] = tuple(d["resize"])
    return d


@register_backend
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    sources = ("onnx",)
    auto_rank = 20

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("onnxruntime") is None:
            return "ONNX Runtime is not installed (pip install 'superpoint_ros[onnx]')"
        return None

    @classmethod
    def open(cls, source: Path, options: BackendOptions) -> OnnxRuntimeBackend:
        check_file_precision("ONNX Runtime", options.precision)
        backend = cls(source, threads=options.threads)
        check_file_precision("ONNX Runtime", options.precision, backend.info.details["precision"])
        return backend

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        threads: int = 0,
        providers: list[str] | None = None,
        cpu_arena: bool = False,
    ):
        ort = import_onnxruntime()

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Off: the arena would hold the largest frame's buffers for ever (see the docstring).
        options.enable_cpu_mem_arena = cpu_arena
        if threads:
            options.intra_op_num_threads = threads
        available = ort.get_available_providers()
        if providers is None:
            providers = [
                p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
            ]
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        except Exception as exc:  # invalid or truncated file
            raise BackendUnavailable(f"ONNX Runtime cannot load {onnx_path}: {exc}") from exc
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.info = read_onnx_info(self.session)
        check_frontend_graph(self.session, self.info.descriptor_dim, onnx_path)
        self.info.details.update(providers=self.session.get_providers(), path=str(onnx_path))

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(None, {"image": image})
        return dict(zip(self.outputs, values))
