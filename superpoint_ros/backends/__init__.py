"""Inference backends behind one interface, by name: ``get_backend_class("onnxruntime")``.

Each backend is one file whose class is decorated with :func:`register_backend`; this package
imports the files (one line each). Importing this package imports neither torch, onnxruntime
nor tensorrt: each backend loads its library when it is opened, and a missing one fails then
with an actionable message.
"""

from __future__ import annotations

from . import (  # noqa: F401 (registration)
    onnxruntime_backend,
    openvino_backend,
    tensorrt_backend,
    torch_backend,
)
from .base import (
    PRECISIONS,
    SOURCE_KINDS,
    Backend,
    BackendInfo,
    BackendOptions,
    default_cache_dir,
    source_kind,
)
from .registry import (
    BACKENDS,
    backend_choices,
    backend_names,
    get_backend_class,
    register_backend,
    resolve_backend,
)

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "SOURCE_KINDS",
    "Backend",
    "BackendInfo",
    "BackendOptions",
    "backend_choices",
    "backend_names",
    "default_cache_dir",
    "get_backend_class",
    "register_backend",
    "resolve_backend",
    "source_kind",
]
