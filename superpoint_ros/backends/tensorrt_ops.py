"""What TensorRT's ONNX parser accepts, as an explicit list, and a check of a graph against it.

The list is the oldest release our users run: TensorRT 8.5 (JetPack 5; 8.6 and 10.x accept a
superset). Source: onnx/onnx-tensorrt ``docs/operators.md`` for TensorRT 8.5 ("supports
operators up to Opset 17"), its restrictions column, and ``ITopKLayer::setK`` ("only values up
to 3840 are supported", TensorRT 8.5 to 11.0 C++ API). Only ops of the default ONNX domain;
``NonZero`` is left out on purpose although the parser takes it: its output size depends on the
data, which the fixed-slot front-end never needs.

:func:`tensorrt_problems` returns one line per problem (empty: the graph parses), used by
``superpoint build-engine`` before TensorRT is even imported, and by the tests on every export
variant. Needs ``onnx`` only.
"""

from __future__ import annotations

from typing import Any

from ..onnx_graph import constant_values

MAX_OPSET = 17  # TensorRT 8.5's parser: operators up to opset 17
TOPK_MAX_K = 3840  # ITopKLayer: "currently only values up to 3840 are supported"

# ONNX operators TensorRT 8.5's parser imports (default domain), alphabetical.
TENSORRT_ONNX_OPS = frozenset(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
    Cast Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum
    DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten
    Floor Gather GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool
    Greater GreaterOrEqual GridSample GRU HardSigmoid HardSwish Identity If ImageScaler
    InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM
    LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mod Mul Neg
    NonMaxSuppression Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear
    RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1
    ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
    ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan
    Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax
    Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK
    Transpose Trilu Unsqueeze Upsample Where Xor
    """.split()
)

# Inputs that must be constants (an initializer or a Constant node's output): op -> indices.
CONSTANT_INPUTS = {
    "TopK": (1,),  # "K input must be an initializer"
    "Slice": (3,),  # "axes must be an initializer"
    "Squeeze": (1,),  # "axes must be an initializer"
    "Unsqueeze": (1,),  # "axes must be a constant tensor"
    "CumSum": (1,),  # "axis must be an initializer"
    "QuantizeLinear": (1, 2),  # scale and zero point
    "DequantizeLinear": (1, 2),
}
# Element types TensorRT takes in a graph (INT64 is cast down to INT32 by the parser).
TENSOR_TYPES = {1: "FLOAT", 10: "FLOAT16", 6: "INT32", 7: "INT64", 3: "INT8", 9: "BOOL"}
RESIZE_MODES = {"nearest", "linear"}
RESIZE_COORDINATES = {
    "half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners",
}  # fmt: skip


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def tensorrt_problems(model) -> list[str]:
    """One line per construct of ``model`` (an ``onnx.ModelProto``) that TensorRT 8.5's ONNX
    parser refuses; empty when the graph is within the list and the rules above."""
    problems: list[str] = []
    for opset in model.opset_import:  # other domains' imports matter only where a node uses one
        if opset.domain in ("", "ai.onnx") and opset.version > MAX_OPSET:
            problems.append(f"opset {opset.version} > {MAX_OPSET} (TensorRT 8.5's parser)")
    graph = model.graph
    constants = constant_values(graph)
    for node in graph.node:
        where = f"{node.op_type} {node.name or node.output[0]}"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where}: domain {node.domain!r}")
            continue
        if node.op_type not in TENSORRT_ONNX_OPS:
            problems.append(f"{where}: operator not in TensorRT's ONNX parser list")
            continue
        for index in CONSTANT_INPUTS.get(node.op_type, ()):
            if (
                index < len(node.input)
                and node.input[index]
                and (node.input[index] not in constants)
            ):
                problems.append(f"{where}: input {index} must be a constant")
        attrs = _attrs(node)
        if node.op_type == "TopK":
            k = constants.get(node.input[1])
            if k is not None and int(k.reshape(-1)[0]) > TOPK_MAX_K:
                problems.append(f"{where}: K={int(k.reshape(-1)[0])} > {TOPK_MAX_K}")
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zero = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if zero is not None and (zero.dtype.name != "int8" or zero.any()):
                problems.append(f"{where}: zero point must be int8 zeros (symmetric)")
        elif node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
            problems.append(f"{where}: the Indices output is not supported")
        elif node.op_type in ("MaxPool", "AveragePool", "Conv", "ConvTranspose"):
            kernel = attrs.get("kernel_shape")
            if kernel is not None and len(kernel) not in (2, 3):
                problems.append(f"{where}: only 2-D or 3-D kernels")
        elif node.op_type == "Resize":
            mode = attrs.get("mode", b"nearest").decode()
            coords = attrs.get("coordinate_transformation_mode", b"half_pixel").decode()
            if mode not in RESIZE_MODES or coords not in RESIZE_COORDINATES:
                problems.append(f"{where}: resize mode {mode}/{coords}")
        elif node.op_type == "ConstantOfShape" and "value" in attrs:
            if attrs["value"].data_type not in TENSOR_TYPES:
                problems.append(f"{where}: value type {attrs['value'].data_type}")
        elif node.op_type == "Cast" and attrs.get("to") not in TENSOR_TYPES:
            problems.append(f"{where}: cast to type {attrs.get('to')}")
    problems += _io_problems(graph)
    return problems


def _io_problems(graph) -> list[str]:
    """The shape rules of the engine's input and outputs: one input ``image [1, 1, H, W]``
    float32 (H, W static or named dynamic), float outputs."""
    problems = []
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if [i.name for i in inputs] != ["image"]:
        return [f"inputs {[i.name for i in inputs]}: one input named 'image' expected"]
    tensor = inputs[0].type.tensor_type
    dims = tensor.shape.dim
    if tensor.elem_type != 1:
        problems.append(f"input image type {tensor.elem_type}: FLOAT expected")
    if len(dims) != 4 or [d.dim_value for d in dims[:2]] != [1, 1]:
        problems.append("input image must be [1, 1, H, W] (batch 1, one channel, static)")
    for output in graph.output:
        if output.type.tensor_type.elem_type not in (1, 10):
            problems.append(f"output {output.name} is not float")
    return problems
