"""OpenVINO backend: runs the exported front-end graph (FP32, or INT8 from ``superpoint
quantize``) in OpenVINO's CPU runtime, which ran both faster than ONNX Runtime on an AVX-512
VNNI CPU (README, "INT8 on the CPU"; ``benchmarks/bench_int8.py --openvino``). Never imports
torch; needs only ``openvino`` (``pip install 'superpoint_ros[openvino]'``).

Precision: the file's own, as with ONNX Runtime. Floating-point layers run in float32
(``INFERENCE_PRECISION_HINT=f32``: OpenVINO would otherwise pick bf16 on CPUs that have it, and
keypoints would differ from every other backend); the Q/DQ layers of an INT8 file run in int8.
Latency-oriented (``PERFORMANCE_HINT=LATENCY``: one frame at a time, as the node runs).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailable, ConfigError
from ..frontend.config import FrontendConfig
from ..frontend.metadata import META_PREFIX, read_metadata
from .base import Backend, BackendInfo, BackendOptions
from .registry import register_backend

OUTPUTS = ("keypoints", "scores", "descriptors")


def _metadata(model) -> dict[str, str]:
    """The ``superpoint_ros.*`` metadata OpenVINO's ONNX reader keeps under ``framework``."""
    info = model.get_rt_info()
    if "framework" not in info:
        return {}
    framework = info["framework"]
    framework = framework if isinstance(framework, dict) else framework.astype(dict)
    return {k: v.astype(str) for k, v in framework.items() if k.startswith(META_PREFIX)}


@register_backend
class OpenVinoBackend(Backend):
    name = "openvino"
    sources = ("onnx",)
    auto_rank = 25  # after onnxruntime: chosen by name (--backend openvino)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("openvino") is None:
            return "OpenVINO is not installed (pip install 'superpoint_ros[openvino]')"
        return None

    @classmethod
    def open(cls, source: Path, options: BackendOptions) -> OpenVinoBackend:
        if options.precision == "fp16":
            raise ConfigError(
                "OpenVINO runs an .onnx at the precision it was exported in; int8 needs a "
                "model from superpoint quantize, fp16 --backend tensorrt"
            )
        return cls(source, threads=options.threads)

    def __init__(self, onnx_path: str | Path, threads: int = 0):
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(str(onnx_path))
        except Exception as exc:  # invalid or truncated file
            raise BackendUnavailable(f"OpenVINO cannot load {onnx_path}: {exc}") from exc
        meta = read_metadata(_metadata(model))
        if meta.get("kind") != "frontend":
            raise BackendUnavailable(
                f"{onnx_path} is not a superpoint_ros front-end export "
                "(make one with: superpoint export-onnx --weights W -o model.onnx)"
            )
        resize = meta["frontend_config"].get("resize")
        config = dict(meta["frontend_config"], resize=tuple(resize) if resize else None)
        self.info = BackendInfo(
            FrontendConfig.from_dict(config),
            int(meta.get("descriptor_dim", 0)),
            meta.get("conventions", {}),
        )
        inputs = [i.get_any_name() for i in model.inputs]
        outputs = [o.get_any_name() for o in model.outputs]
        want = list(OUTPUTS[: 3 if self.info.descriptor_dim else 2])
        if inputs != ["image"] or sorted(outputs) != sorted(want):
            raise BackendUnavailable(
                f"{onnx_path} carries superpoint_ros metadata but its graph is not a front-end "
                f"export (inputs {inputs}, outputs {outputs}); re-export it"
            )
        settings = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            settings["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(model, "CPU", settings)
        self.request = self.compiled.create_infer_request()
        self.outputs = [(o, o.get_any_name()) for o in self.compiled.outputs]
        self.info.details = {
            "device": core.get_property("CPU", "FULL_DEVICE_NAME"),
            "openvino": ov.__version__,
            "path": str(onnx_path),
            "precision": meta.get("precision", "fp32"),
        }

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        self.request.infer({"image": image})
        return {name: self.request.get_tensor(o).data.copy() for o, name in self.outputs}
