"""TensorRT backend: runs a front-end engine with the named-tensor API (TensorRT >= 8.5).

Sources: an ``.engine`` built by ``superpoint build-engine`` (its record ``.engine.json``
beside it), or an ``.onnx`` from which an engine is built at run time by the same builder
(``tensorrt_build``) and cached under ``~/.cache/superpoint_ros`` keyed by TensorRT version,
GPU name, the ONNX's SHA-256, precision and profile. An engine whose record does not match the
running TensorRT, this GPU or the ONNX file now at the recorded path is refused in one line
that gives the rebuild command, or rebuilt with ``rebuild_engine``.

Precision (``BackendOptions.precision``): fp32, fp16 (``BuilderFlag.FP16`` where the release
has it, an FP16 network graph on 11.x: ``tensorrt_precision``), int8 from a Q/DQ model only
(``superpoint quantize --target tensorrt``; a Q/DQ model is built int8 whatever the default).
Device buffers are torch CUDA tensors (JetPack ships a CUDA PyTorch; one CUDA runtime in the
process). Runtime calls: ``Runtime(logger)``, ``Runtime.DLA_core``,
``deserialize_cuda_engine``, ``create_execution_context``, ``num_io_tensors``,
``get_tensor_name``/``get_tensor_mode``/``get_tensor_dtype``, ``set_input_shape``,
``get_tensor_shape``, ``set_tensor_address``, ``execute_async_v3`` (8.5 to 11.x).

Not yet run on hardware: exercised only where an NVIDIA GPU and TensorRT exist (tests skip
elsewhere, with the reason).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailable
from ..frontend.config import FrontendConfig
from ..frontend.metadata import file_sha256
from .base import Backend, BackendInfo, BackendOptions, source_kind
from .onnxruntime_backend import _tuple_resize
from .registry import register_backend
from .tensorrt_build import build_engine, check_build
from .tensorrt_record import (
    DEFAULT_PROFILE,
    EngineRecord,
    engine_action,
    read_record,
    record_path,
)

log = logging.getLogger(__name__)


def engine_cache_key(
    trt_version: str, gpu_name: str, onnx_sha256: str, precision: str, profile
) -> str:
    """The runtime engine cache's key: any change of these inputs means another engine."""
    blob = json.dumps(
        {
            "trt": trt_version,
            "gpu": gpu_name,
            "onnx": onnx_sha256,
            "precision": precision,
            "profile": [list(s) for s in profile],
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@register_backend
class TensorRTBackend(Backend):
    name = "tensorrt"
    sources = ("onnx", "engine")
    auto_rank = 10

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("tensorrt") is None:
            return (
                "TensorRT is not installed (JetPack ships it; elsewhere "
                "pip install 'superpoint_ros[tensorrt]')"
            )
        if importlib.util.find_spec("torch") is None:
            return "the TensorRT backend needs a CUDA build of PyTorch for device buffers"
        import torch

        if not torch.cuda.is_available():
            return "TensorRT needs an NVIDIA GPU, and CUDA reports none"
        return None

    @classmethod
    def open(cls, source: Path, options: BackendOptions) -> TensorRTBackend:
        reason = cls.unavailable_reason()
        if reason:
            raise BackendUnavailable(reason)
        import tensorrt as trt
        import torch

        gpu = torch.cuda.get_device_name()
        if source_kind(source) == "engine":
            engine_path, record = cls._checked_engine(Path(source), options, trt, gpu)
        else:
            engine_path, record = cls._cached_engine(Path(source), options, trt, gpu)
        return cls(engine_path, record, trt, torch)

    @staticmethod
    def _checked_engine(engine_path: Path, options: BackendOptions, trt, gpu: str):
        """The engine as given if its record matches here; else refused, or rebuilt."""
        record = read_record(engine_path)
        onnx_path = Path(record.onnx_path)
        problems = engine_action(
            engine_path,
            record,
            tensorrt_version=str(trt.__version__),
            gpu_name=gpu,
            onnx_sha256=file_sha256(onnx_path) if onnx_path.is_file() else None,
            precision=options.precision,
            rebuild=options.rebuild_engine,
        )
        if not problems:
            return engine_path, record
        precision = record.precision if options.precision == "fp32" else options.precision
        request = check_build(
            onnx_path, precision, record.profile, record.workspace_mb, record.dla_core
        )
        log.warning("rebuilding %s: %s", engine_path.name, "; ".join(problems))
        return engine_path, build_engine(request, engine_path, trt, gpu)

    @staticmethod
    def _cached_engine(onnx_path: Path, options: BackendOptions, trt, gpu: str):
        """An engine for ``onnx_path`` built here once, then reused from the cache."""
        request = check_build(onnx_path, options.precision, DEFAULT_PROFILE)
        key = engine_cache_key(
            str(trt.__version__), gpu, file_sha256(onnx_path), request.precision, DEFAULT_PROFILE
        )
        engine_path = options.cache / f"superpoint_{key}.engine"
        if engine_path.is_file() and record_path(engine_path).is_file():
            log.info("using cached TensorRT engine %s", engine_path)
            return engine_path, read_record(engine_path)
        return engine_path, build_engine(request, engine_path, trt, gpu)

    def __init__(self, engine_path: Path, record: EngineRecord, trt: Any, torch: Any):
        self.trt, self.torch = trt, torch
        self.logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self.logger)
        if record.dla_core is not None:
            runtime.DLA_core = record.dla_core
        self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise BackendUnavailable(f"TensorRT could not deserialize {engine_path}")
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.outputs = [
            n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT
        ]
        self.stream = torch.cuda.Stream()
        self.info = BackendInfo(
            FrontendConfig.from_dict(_tuple_resize(record.frontend_config)),
            record.descriptor_dim,
            record.conventions,
            {
                "engine": str(engine_path),
                "precision": record.precision,
                "mechanism": record.mechanism,
                "tensorrt": record.tensorrt_version,
                "gpu": record.gpu_name,
            },
        )

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        torch, trt = self.torch, self.trt
        with torch.cuda.stream(self.stream):
            source = torch.from_numpy(np.ascontiguousarray(image)).cuda(non_blocking=True)
            self.context.set_input_shape("image", tuple(source.shape))
            self.context.set_tensor_address("image", source.data_ptr())
            buffers = {}
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                dtype = _torch_dtype(trt, torch, self.engine.get_tensor_dtype(name))
                buffers[name] = torch.empty(shape, dtype=dtype, device="cuda")
                self.context.set_tensor_address(name, buffers[name].data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
        self.stream.synchronize()
        return {n: b.float().cpu().numpy() for n, b in buffers.items()}


def _torch_dtype(trt, torch, dtype):
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32}
    if hasattr(trt, "int64"):
        table[trt.int64] = torch.int64
    return table[dtype]
