"""Build a TensorRT engine from an exported front-end with the Python builder API, ahead of
time (``superpoint build-engine``) or at run time (the TensorRT backend given an ``.onnx``);
both go through :func:`build_engine` and write the same record (``tensorrt_record``).

Everything that can be decided without TensorRT is decided first, in :func:`check_build`: the
file is a front-end export, its graph is within TensorRT's parser list (``tensorrt_ops``), the
profile is valid, INT8 comes with a Q/DQ model. Then :func:`build_engine` imports TensorRT,
asks :func:`~superpoint_ros.backends.tensorrt_precision.precision_plan` how this release does
the precision, and builds. API calls (each in the Python API docs of 8.6, 10.x and 11.x):
``Builder``, ``create_network``, ``OnnxParser.parse``/``num_errors``/``get_error``,
``create_builder_config``, ``set_memory_pool_limit(MemoryPoolType.WORKSPACE, bytes)``,
``set_flag(BuilderFlag.*)``, ``default_device_type = DeviceType.DLA``, ``DLA_core``,
``num_DLA_cores``, ``create_optimization_profile``/``set_shape``/``add_optimization_profile``,
``build_serialized_network``.

Not yet run on hardware: no machine with TensorRT was reachable while this was written.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable, ConfigError
from ..frontend.metadata import file_sha256, read_metadata
from .base import check_precision
from .tensorrt_fp16 import fp16_network_graph
from .tensorrt_ops import tensorrt_problems
from .tensorrt_precision import (
    check_dla,
    check_qdq,
    model_precision,
    network_creation_bits,
    precision_plan,
)
from .tensorrt_record import DEFAULT_PROFILE, EngineRecord, write_record

log = logging.getLogger(__name__)

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
INPUT = "image"


def has_qdq(model: Any) -> bool:
    """Whether the graph holds Q/DQ nodes (an explicitly quantised, INT8 model)."""
    return any(n.op_type in QDQ_OPS for n in model.graph.node)


def check_profile(profile) -> tuple[tuple[int, int], ...]:
    """``(min, opt, max)`` sizes (height, width): multiples of 8, at least 8, ordered."""
    sizes = tuple((int(h), int(w)) for h, w in profile)
    if len(sizes) != 3:
        raise ConfigError(f"a profile is three sizes (min, opt, max), not {len(sizes)}")
    for h, w in sizes:
        if h < 8 or w < 8 or h % 8 or w % 8:
            raise ConfigError(f"profile size {h}x{w}: height and width must be multiples of 8")
    (h0, w0), (h1, w1), (h2, w2) = sizes
    if not (h0 <= h1 <= h2 and w0 <= w1 <= w2):
        raise ConfigError(
            f"profile sizes must grow: --min {h0}x{w0} <= --opt {h1}x{w1} <= --max {h2}x{w2}"
        )
    return sizes


@dataclass(frozen=True)
class BuildRequest:
    """A checked build: the model read from ``onnx_path`` and what to build from it."""

    onnx_path: Path
    model: Any  # onnx.ModelProto
    meta: dict[str, Any]
    precision: str
    profile: tuple[tuple[int, int], ...]
    workspace_mb: int | None
    dla_core: int | None


def check_build(
    onnx_path: str | os.PathLike,
    precision: str | None = None,
    profile=DEFAULT_PROFILE,
    workspace_mb: int | None = None,
    dla_core: int | None = None,
) -> BuildRequest:
    """Every check that needs no TensorRT, each failure one line (``ConfigError``).
    ``precision`` None (and fp32 for a Q/DQ model): the model's own (``model_precision``)."""
    import onnx

    onnx_path = Path(onnx_path)
    if precision is not None:
        check_precision(precision)
    if not onnx_path.is_file():
        raise ConfigError(f"ONNX file not found: {onnx_path}")
    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # protobuf decode errors have no common base class
        raise ConfigError(f"{onnx_path} is not a readable ONNX file ({exc})") from None
    meta = read_metadata({p.key: p.value for p in model.metadata_props})
    if meta.get("kind") != "frontend":
        raise ConfigError(
            f"{onnx_path} is not a superpoint_ros front-end export (make one with: superpoint "
            "export-onnx --weights W -o model.onnx)"
        )
    problems = tensorrt_problems(model)
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ConfigError(
            f"{onnx_path.name} uses what TensorRT's ONNX parser refuses: "
            + "; ".join(problems[:3]) + more
        )  # fmt: skip
    qdq = has_qdq(model)
    precision = model_precision(precision, qdq)
    check_qdq(precision, qdq, onnx_path.name)
    if workspace_mb is not None and workspace_mb <= 0:
        raise ConfigError(f"--workspace must be a positive number of MB, not {workspace_mb}")
    if dla_core is not None:
        if dla_core < 0:
            raise ConfigError(f"--dla must be a DLA core number >= 0, not {dla_core}")
        if precision == "fp32":
            raise ConfigError("a DLA core runs FP16 or INT8: add --fp16 or --int8 to --dla")
    return BuildRequest(
        onnx_path, model, meta, precision, check_profile(profile), workspace_mb, dla_core
    )


def build_engine(
    request: BuildRequest, engine_path: str | os.PathLike, trt: Any, gpu_name: str
) -> EngineRecord:
    """Build ``request`` with the ``tensorrt`` module ``trt`` on the GPU named ``gpu_name``;
    write the engine and its record beside it (both atomically); return the record."""
    engine_path = Path(engine_path)
    plan = precision_plan(trt, request.precision, has_qdq(request.model))
    check_dla(trt, request.dla_core)
    model = fp16_network_graph(request.model) if plan.fp16_graph else request.model
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_creation_bits(trt, plan))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailable(f"TensorRT cannot parse {request.onnx_path}: {errors}")
    config = builder.create_builder_config()
    if request.workspace_mb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_mb << 20)
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if request.dla_core is not None:
        if request.dla_core >= builder.num_DLA_cores:
            raise BackendUnavailable(
                f"DLA core {request.dla_core} asked for, this device has "
                f"{builder.num_DLA_cores} (Jetson AGX/NX Orin and Xavier have DLA cores)"
            )
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = request.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run stay on the GPU
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT, *[(1, 1, h, w) for h, w in request.profile])
    config.add_optimization_profile(profile)
    log.warning(
        "building a TensorRT engine from %s (%s, %s); this takes minutes",
        request.onnx_path.name, plan.mechanism, gpu_name,
    )  # fmt: skip
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendUnavailable(f"TensorRT failed to build an engine from {request.onnx_path}")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(f".{engine_path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(bytes(serialized))
        os.replace(tmp, engine_path)
    finally:
        tmp.unlink(missing_ok=True)
    record = EngineRecord(
        tensorrt_version=str(trt.__version__),
        gpu_name=gpu_name,
        onnx_sha256=file_sha256(request.onnx_path),
        onnx_path=str(request.onnx_path.resolve()),
        precision=request.precision,
        mechanism=plan.mechanism,
        profile=request.profile,
        workspace_mb=request.workspace_mb,
        dla_core=request.dla_core,
        frontend_config=request.meta.get("frontend_config", {}),
        conventions=request.meta.get("conventions", {}),
        descriptor_dim=int(request.meta.get("descriptor_dim", 0)),
    )
    write_record(engine_path, record)
    return record
