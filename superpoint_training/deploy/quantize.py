"""Static INT8 quantisation of an exported front-end with ONNX Runtime (``superpoint quantize``).

Only the network is quantised: ``graph.network_nodes`` (backbone and heads) get Q/DQ pairs,
per-channel int8 weights and calibrated per-tensor activations; post-processing (softmax, NMS,
top-k, descriptor sampling and normalisation) stays in float32 and is fed float logits and
float dense descriptors. The result is an ordinary ``.onnx`` front-end: same inputs and
outputs, same ``superpoint_ros.*`` settings, plus ``precision = int8`` and
``quantization_config`` (target, types, calibration set), so ``extract``, ``evaluate``,
``benchmark`` and the node load it like any export.

Targets (``TARGETS``):

* ``cpu``: what ONNX Runtime runs fastest on an x86 CPU with AVX-512 VNNI: uint8 activations
  (asymmetric), int8 weights, full range (measured against int8 activations and reduced range,
  README "INT8 on the CPU").
* ``tensorrt``: TensorRT's explicit quantisation: symmetric int8 activations and weights (every
  zero point 0), float weights behind a Q/DQ pair and float biases (TensorRT 8.x parses float
  weights through Q/DQ; it quantises them itself), so ``superpoint build-engine`` needs no
  calibrator on any release from 8.5 to 11.

Pure functions (``TARGETS``, ``qdq_problems``, ``quantized_metadata``) plus one edge,
``quantize_frontend``, that reads and writes the files ONNX Runtime's quantiser works on.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from superpoint_ros.errors import ConfigError, InputError
from superpoint_ros.frontend.metadata import META_PREFIX, file_sha256
from superpoint_ros.onnx_graph import network_nodes, network_outputs

from .calibration import stride_for

log = logging.getLogger(__name__)

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
DEFAULT_METHOD = "minmax"
CALIBRATION_STRIDE = 4  # images held at once during calibration (see calibration.stride_for)


@dataclass(frozen=True)
class Target:
    """How a runtime wants its Q/DQ model."""

    name: str
    activations: str  # "uint8" or "int8"
    symmetric_activations: bool  # zero point 0 for every activation
    reduce_range: bool  # 7-bit weights (CPUs without VNNI saturate otherwise)
    float_weights: bool  # weights kept in float behind Q -> DQ (TensorRT 8.x parses only that)
    quantize_bias: bool  # int32 biases (ONNX Runtime); TensorRT wants them in float
    summary: str


TARGETS: dict[str, Target] = {
    "cpu": Target(
        "cpu", "uint8", False, False, False, True,
        "ONNX Runtime on x86 with VNNI: uint8 activations, int8 per-channel weights",
    ),
    "tensorrt": Target(
        "tensorrt", "int8", True, False, True, False,
        "TensorRT explicit quantisation: symmetric int8 activations and weights",
    ),
}  # fmt: skip


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"unknown target {name!r}; valid: {', '.join(TARGETS)}") from None


def _qdq_consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _constant(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def qdq_problems(
    model: onnx.ModelProto, network: set[str], target: Target | None = None
) -> list[str]:
    """What is wrong with a quantised front-end, as sentences (empty: nothing):

    * a Q/DQ node or a quantised tensor outside the network (post-processing must stay float),
    * a network convolution left without quantised input and weight,
    * for a symmetric ``target``: a zero point that is not 0 or a quantised type that is not
      int8.

    ``network``: names of the nodes that are the network (``graph.network_nodes`` of the
    float model; the quantiser keeps their names)."""
    problems = []
    users = _qdq_consumers(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    qdq = [n for n in model.graph.node if n.op_type in QDQ_OPS]
    if not qdq:
        return ["no QuantizeLinear/DequantizeLinear node: the model is not quantised"]
    for node in model.graph.node:
        if node.op_type in QDQ_OPS:
            continue
        if node.name in network:
            if node.op_type == "Conv":
                for i in (0, 1):
                    src = producers.get(node.input[i])
                    if src is None or src.op_type != "DequantizeLinear":
                        what = "input" if i == 0 else "weight"
                        problems.append(f"convolution {node.name} has a float {what}")
            continue
        for name in node.input:
            src = producers.get(name)
            if src is not None and src.op_type == "DequantizeLinear":
                problems.append(
                    f"post-processing node {node.name} ({node.op_type}) reads a "
                    f"dequantised tensor {name}"
                )
    for node in qdq:
        feeds = [u for u in users.get(node.output[0], [])]
        if any(u.op_type not in QDQ_OPS and u.name not in network for u in feeds):
            problems.append(f"{node.op_type} {node.name} feeds post-processing")
        if target is not None and target.symmetric_activations:
            zp = _constant(model, node.input[2]) if len(node.input) > 2 else None
            if zp is None:
                problems.append(f"{node.op_type} {node.name} has no zero point (uint8 default)")
            elif zp.dtype not in (np.int8, np.int32) or np.any(zp != 0):
                problems.append(
                    f"{node.op_type} {node.name}: zero point {zp.dtype} "
                    f"{np.unique(zp)[:4].tolist()} (TensorRT needs int8 zero points of 0)"
                )
            if zp is not None and zp.dtype == np.int32 and target.name == "tensorrt":
                problems.append(
                    f"{node.op_type} {node.name} dequantises an int32 bias "
                    "(TensorRT wants float biases)"
                )
    return problems


def float_outputs(model: onnx.ModelProto, tensors: list[str]) -> int:
    """Remove the Q -> DQ pairs the quantiser put on ``tensors`` (the network's outputs), so
    post-processing reads them in float32 straight from the convolution (which still takes int8
    input and weights); returns how many pairs were removed. Edits ``model`` in place."""
    graph = model.graph
    users = _qdq_consumers(model)
    wanted = set(tensors)
    drop = []
    for q in graph.node:
        if q.op_type != "QuantizeLinear" or q.input[0] not in wanted:
            continue
        for dq in users.get(q.output[0], []):
            if dq.op_type != "DequantizeLinear":
                continue
            for user in users.get(dq.output[0], []):
                for i, name in enumerate(user.input):
                    if name == dq.output[0]:
                        user.input[i] = q.input[0]
            drop.append(dq)
        drop.append(q)
    for node in drop:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)  # the removed pairs' scales and zero points
    return sum(n.op_type == "QuantizeLinear" for n in drop)


def quantized_metadata(
    source_meta: dict[str, str],
    target: Target,
    method: str,
    calibration: dict[str, Any],
    source_sha256: str,
) -> dict[str, str]:
    """The ``superpoint_ros.*`` entries of the quantised file: the source's, plus ``precision``
    and ``quantization_config`` (JSON)."""
    meta = {k: v for k, v in source_meta.items() if k.startswith(META_PREFIX)}
    meta[META_PREFIX + "precision"] = "int8"
    meta[META_PREFIX + "quantization_config"] = json.dumps(
        {
            "target": target.name,
            "activations": target.activations,
            "symmetric_activations": target.symmetric_activations,
            "weights": "int8",
            "per_channel": True,
            "reduce_range": target.reduce_range,
            "format": "QDQ",
            "calibration_method": method,
            "calibration": calibration,
            "source_sha256": source_sha256,
        }
    )
    return meta


def check_source(model: onnx.ModelProto, path: Path) -> dict[str, str]:
    """The ``superpoint_ros.*`` metadata of a float front-end export; ``InputError`` for any
    other file (not ours, a bare network, already quantised)."""
    meta = {p.key: p.value for p in model.metadata_props}
    kind = meta.get(META_PREFIX + "kind")
    if kind is None:
        raise InputError(
            f"{path} is not a superpoint_ros export (no superpoint_ros metadata); make one with: "
            "superpoint export-onnx --weights W -o model.onnx"
        )
    if kind != "frontend":
        raise InputError(f"{path} is a bare-network export; quantise a front-end export")
    if meta.get(META_PREFIX + "precision", "fp32") != "fp32" or any(
        n.op_type in QDQ_OPS for n in model.graph.node
    ):
        raise InputError(f"{path} is already quantised; quantise the float export")
    return meta


def _ort_options(target: Target, method: str, stride: int) -> dict[str, Any]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if method not in methods:
        raise ConfigError(
            f"unknown calibration method {method!r}; valid: {', '.join(CALIBRATION_METHODS)}"
        )
    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    return {
        "quant_format": QuantFormat.QDQ,
        "per_channel": True,
        "reduce_range": target.reduce_range,
        "activation_type": types[target.activations],
        "weight_type": QuantType.QInt8,
        "calibrate_method": methods[method],
        "extra_options": {
            "ActivationSymmetric": target.symmetric_activations,
            "WeightSymmetric": True,
            "AddQDQPairToWeight": target.float_weights,
            "QuantizeBias": target.quantize_bias,
            # Calibrate ``stride`` images at a time: memory stays bounded whatever the count.
            "CalibStridedMinMax": stride,
        },
    }


def quantize_frontend(
    source: str | os.PathLike,
    output: str | os.PathLike,
    reader,
    calibration: dict[str, Any],
    target: str = "cpu",
    method: str = DEFAULT_METHOD,
) -> Path:
    """Quantise the float front-end ``source`` into ``output`` (written whole or not at all).

    ``reader``: an ONNX Runtime calibration data reader (``calibration.CalibrationImages``);
    ``calibration``: its record for the metadata (``calibration.calibration_record``)."""
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    tgt = get_target(target)
    options = _ort_options(tgt, method, stride_for(len(reader), CALIBRATION_STRIDE))
    source, output = Path(source), Path(output)
    try:
        model = onnx.load(str(source))
    except Exception as exc:  # truncated or not an ONNX file
        raise InputError(f"cannot read {source} as ONNX: {exc}") from None
    meta = check_source(model, source)
    with tempfile.TemporaryDirectory(prefix="superpoint_quantize_") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quantized = Path(tmp) / "quantized.onnx"
        # Shape inference and ONNX Runtime's basic graph clean-up, as its quantiser expects.
        quant_pre_process(str(source), str(prepared))
        prepared_model = onnx.load(str(prepared))
        nodes = network_nodes(prepared_model)
        names = [n.name for n in nodes]
        if not all(names):
            raise InputError(f"{source}: network nodes without names; re-export the model")
        log.info("quantising %d network nodes; float outputs %s", len(nodes),
                 network_outputs(prepared_model, nodes))  # fmt: skip
        quantize_static(str(prepared), str(quantized), reader, nodes_to_quantize=names, **options)
        result = onnx.load(str(quantized))
        float_outputs(result, network_outputs(prepared_model, nodes))
        problems = qdq_problems(result, set(names), tgt)
        if problems:  # a bug of this module or of the quantiser: never write such a file
            raise RuntimeError("quantised graph is malformed: " + "; ".join(problems[:5]))
        del result.metadata_props[:]
        entries = quantized_metadata(meta, tgt, method, calibration, file_sha256(source))
        for key, value in entries.items():
            entry = result.metadata_props.add()
            entry.key, entry.value = key, value
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(f".{output.name}.tmp{os.getpid()}")
        try:
            onnx.save(result, str(partial))
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
    return output


def target_table() -> list[dict[str, Any]]:
    """The targets as dicts (for ``--help`` and the README)."""
    return [asdict(t) for t in TARGETS.values()]
