"""Inference backends behind one interface, by name: ``get_backend_class("onnxruntime")``.

Importing this package imports neither torch, onnxruntime nor tensorrt: each backend loads its
library when it is constructed, and a missing one fails then with an actionable message.
"""

from __future__ import annotations

from ..errors import BackendUnavailable
from ..registry import Registry
from .base import Backend, BackendInfo, source_kind
from .onnxruntime_backend import OnnxRuntimeBackend
from .tensorrt_backend import TensorRTBackend
from .torch_backend import TorchBackend

BACKENDS: Registry[type[Backend]] = Registry("backend")
for _cls in (TensorRTBackend, OnnxRuntimeBackend, TorchBackend):
    BACKENDS.add(_cls.name, _cls)

AUTO_ORDER = ("tensorrt", "onnxruntime", "torch")
BACKEND_CHOICES = ("auto", *AUTO_ORDER)


def get_backend_class(name: str) -> type[Backend]:
    """The backend class registered as ``name``; ``BackendUnavailable`` lists the valid names."""
    try:
        return BACKENDS.get(name)
    except KeyError as exc:
        raise BackendUnavailable(str(exc.args[0])) from None


def resolve_backend(name: str, kind: str) -> str:
    """The backend to use for a weights source of ``kind`` (torch/onnx/engine): ``auto`` picks
    tensorrt, then onnxruntime, then torch, among those installed and able to run ``kind``."""
    if name == "auto":
        candidates = {"engine": ("tensorrt",), "onnx": ("tensorrt", "onnxruntime")}.get(
            kind, AUTO_ORDER
        )
        reasons = []
        for candidate in candidates:
            reason = BACKENDS.get(candidate).unavailable_reason()
            if reason is None:
                return candidate
            reasons.append(f"{candidate}: {reason}")
        raise BackendUnavailable("no backend can run this model here (" + "; ".join(reasons) + ")")
    cls = get_backend_class(name)
    reason = cls.unavailable_reason()
    if reason:
        raise BackendUnavailable(f"backend {name!r} unavailable: {reason}")
    if kind == "engine" and name != "tensorrt":
        raise BackendUnavailable("a TensorRT engine file runs only with --backend tensorrt")
    if kind == "onnx" and name == "torch":
        raise BackendUnavailable(
            "the torch backend needs a weights file (.pt/.pth), not an .onnx; "
            "use --backend onnxruntime or tensorrt"
        )
    return name


__all__ = [
    "AUTO_ORDER", "BACKENDS", "BACKEND_CHOICES", "Backend", "BackendInfo",
    "get_backend_class", "resolve_backend", "source_kind",
]
