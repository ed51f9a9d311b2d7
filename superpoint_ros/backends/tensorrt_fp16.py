"""An FP16 network inside an FP32 front-end graph: the FP16 mechanism for TensorRT releases
without ``BuilderFlag.FP16`` (11.x: strongly typed networks take their precision from the
graph's types).

The network's nodes are :func:`superpoint_ros.onnx_graph.network_nodes` (backbone and heads);
everything else is post-processing (softmax, NMS, top-k, descriptor sampling and normalisation)
and stays FP32, as do the graph's input and outputs. Float32 constants the network reads become
FP16 initializers; every float tensor crossing the boundary gets a ``Cast``. Pure: a model in,
a new model out (``onnx`` and numpy only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..onnx_graph import constant_values, network_nodes

FLOAT, FLOAT16 = 1, 10


def _float_tensors(model: Any) -> set[str]:
    """Names of every FLOAT tensor of the graph (after shape inference)."""
    import onnx

    graph = onnx.shape_inference.infer_shapes(model).graph
    out = {t.name for t in graph.initializer if t.data_type == FLOAT}
    for info in (*graph.input, *graph.value_info, *graph.output):
        if info.type.tensor_type.elem_type == FLOAT:
            out.add(info.name)
    for node in graph.node:  # Constant outputs may lack value_info
        if node.op_type == "Constant":
            out.update(
                node.output[0] for a in node.attribute if a.name == "value" and a.t.data_type == 1
            )
    return out


def fp16_network_graph(model: Any) -> Any:
    """A copy of ``model`` (an exported front-end) whose network runs in FP16; the input, the
    outputs and the post-processing stay FP32."""
    import onnx
    from onnx import helper, numpy_helper

    floats = _float_tensors(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    net = network_nodes(out)
    net_ids = {id(n) for n in net}
    net_outputs = {o for n in net for o in n.output}
    constants = constant_values(graph)
    graph_outputs = {o.name for o in graph.output}

    half_names: dict[str, str] = {}  # FP32 constant or boundary tensor -> its FP16 name
    casts_before: dict[int, list[Any]] = {}  # id(net node) -> Cast nodes to insert before it
    for node in net:
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == FLOAT:
                    attr.i = FLOAT16
        for k, name in enumerate(node.input):
            if not name or name not in floats or name in net_outputs:
                continue
            if name not in half_names:
                half_names[name] = f"{name}__fp16"
                if name in constants:  # a weight or a constant: stored again in FP16
                    half = constants[name].astype(np.float16)
                    graph.initializer.append(numpy_helper.from_array(half, half_names[name]))
                else:  # the graph's input (or a post-processing tensor) read by the network
                    cast = helper.make_node(
                        "Cast", [name], [half_names[name]], to=FLOAT16, name=f"{name}/to_fp16"
                    )
                    casts_before.setdefault(id(node), []).append(cast)
            node.input[k] = half_names[name]

    # Network outputs read outside the network (or graph outputs) go back to FP32.
    readers_outside = {
        i for n in graph.node if id(n) not in net_ids and n.op_type != "Constant" for i in n.input
    }
    casts_after: dict[str, Any] = {}
    for name in sorted(net_outputs & floats & (readers_outside | graph_outputs)):
        half = f"{name}__fp16"
        for node in net:
            for k, o in enumerate(node.output):
                if o == name:
                    node.output[k] = half
            for k, i in enumerate(node.input):
                if i == name:
                    node.input[k] = half
        casts_after[half] = helper.make_node(
            "Cast", [half], [name], to=FLOAT, name=f"{name}/to_fp32"
        )
    nodes = list(graph.node)
    graph.ClearField("node")
    for node in nodes:
        graph.node.extend(casts_before.get(id(node), []))
        graph.node.append(node)
        graph.node.extend(casts_after[o] for o in node.output if o in casts_after)
    read = {i for n in graph.node for i in n.input}
    kept = [t for t in graph.initializer if t.name in read]  # FP32 weights no one reads
    graph.ClearField("initializer")
    graph.initializer.extend(kept)
    graph.ClearField("value_info")  # types changed; shape inference recomputes them
    return out
