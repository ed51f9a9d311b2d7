"""TensorRT backend: builds an engine from the exported front-end ONNX with the Python builder
API, caches it, and runs it with the named-tensor API (TensorRT >= 8.5).

The engine cache key is the TensorRT version, the GPU name, the ONNX file's SHA-256, the
precision and the optimisation profile: change any of them and the engine is rebuilt. Device
buffers are torch CUDA tensors (JetPack ships a CUDA PyTorch; this keeps one CUDA runtime in
the process).

This module is exercised only where an NVIDIA GPU and TensorRT exist (tests skip elsewhere).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailable
from ..frontend.config import FrontendConfig
from ..frontend.metadata import file_sha256, read_metadata
from .base import Backend, BackendInfo, BackendOptions, default_cache_dir, source_kind
from .onnxruntime_backend import _tuple_resize
from .registry import register_backend

log = logging.getLogger(__name__)

# (min, opt, max) input sizes (height, width) of the optimisation profile.
DEFAULT_PROFILE = ((64, 64), (480, 640), (1088, 1920))


def engine_cache_key(
    trt_version: str, gpu_name: str, onnx_sha256: str, fp16: bool, profile
) -> str:
    """The engine cache's key: any change of these inputs means a rebuild."""
    blob = json.dumps(
        {
            "trt": trt_version,
            "gpu": gpu_name,
            "onnx": onnx_sha256,
            "fp16": bool(fp16),
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
    def open(cls, source: Path, options: BackendOptions) -> TensorRTBackend:
        if source_kind(source) == "engine":
            return cls(None, engine_path=source)
        return cls(source, fp16=options.precision == "fp16", cache_dir=options.cache_dir)

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

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        fp16: bool = False,
        cache_dir: str | os.PathLike | None = None,
        profile=DEFAULT_PROFILE,
        engine_path: str | os.PathLike | None = None,
    ):
        reason = self.unavailable_reason()
        if reason:
            raise BackendUnavailable(reason)
        import tensorrt as trt
        import torch

        self.trt, self.torch = trt, torch
        self.logger = trt.Logger(trt.Logger.WARNING)
        if engine_path is not None:  # a serialized engine with its JSON sidecar
            engine_path = Path(engine_path)
            sidecar = _read_sidecar(engine_path)
        else:
            engine_path, sidecar = self._cached_engine(Path(onnx_path), fp16, cache_dir, profile)
        runtime = trt.Runtime(self.logger)
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
            FrontendConfig.from_dict(_tuple_resize(sidecar["frontend_config"])),
            int(sidecar.get("descriptor_dim", 0)),
            sidecar.get("conventions", {}),
            {
                "engine": str(engine_path),
                "fp16": sidecar.get("fp16", fp16),
                "gpu": torch.cuda.get_device_name(),
            },
        )

    def _cached_engine(self, onnx_path: Path, fp16: bool, cache_dir, profile):
        trt, torch = self.trt, self.torch
        gpu = torch.cuda.get_device_name()
        key = engine_cache_key(trt.__version__, gpu, file_sha256(onnx_path), fp16, profile)
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        engine_path = cache / f"superpoint_{key}.engine"
        if engine_path.is_file() and engine_path.with_suffix(".json").is_file():
            log.info("using cached TensorRT engine %s", engine_path)
            return engine_path, _read_sidecar(engine_path)
        import onnx

        meta = read_metadata({p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props})
        if meta.get("kind") != "frontend":
            raise BackendUnavailable(f"{onnx_path} is not a superpoint_ros front-end export")
        log.warning(
            "building a TensorRT engine for %s on %s (fp16=%s); this takes minutes "
            "once, then it is cached in %s",
            onnx_path.name,
            gpu,
            fp16,
            cache,
        )
        builder = trt.Builder(self.logger)
        flags = 0
        if int(trt.__version__.split(".")[0]) < 10:
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendUnavailable(f"TensorRT cannot parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
        if fp16:
            if not builder.platform_has_fast_fp16:
                log.warning("this GPU has no fast FP16; building FP16 anyway")
            config.set_flag(trt.BuilderFlag.FP16)
        opt = builder.create_optimization_profile()
        opt.set_shape("image", *[(1, 1, h, w) for h, w in profile])
        config.add_optimization_profile(opt)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendUnavailable(f"TensorRT failed to build an engine from {onnx_path}")
        cache.mkdir(parents=True, exist_ok=True)
        tmp = engine_path.with_name(engine_path.name + f".tmp{os.getpid()}")
        tmp.write_bytes(bytes(serialized))
        os.replace(tmp, engine_path)
        sidecar = {
            "frontend_config": meta["frontend_config"],
            "conventions": meta.get("conventions", {}),
            "descriptor_dim": meta.get("descriptor_dim", "0"),
            "fp16": bool(fp16),
            "trt": trt.__version__,
            "gpu": gpu,
            "onnx": str(onnx_path),
            "profile": [list(s) for s in profile],
        }
        engine_path.with_suffix(".json").write_text(json.dumps(sidecar, indent=1))
        return engine_path, sidecar

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


def _read_sidecar(engine_path: Path) -> dict:
    sidecar = engine_path.with_suffix(".json")
    if not sidecar.is_file():
        raise BackendUnavailable(
            f"{engine_path} has no {sidecar.name} beside it; build engines with this package "
            "(superpoint export-onnx, then --backend tensorrt) so their settings are known"
        )
    return json.loads(sidecar.read_text())
