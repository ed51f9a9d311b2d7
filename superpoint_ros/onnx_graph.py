"""Which nodes of an exported front-end graph are the network, and which are post-processing.

The network is every node a convolution with constant weights depends on, plus those
convolutions: backbone and both heads, found from the graph's structure (not from node names),
so it holds for every backbone and exporter. Everything else is post-processing (softmax,
depth-to-space, NMS, border, top-k, descriptor sampling and normalisation): the NMS max-pools
and descriptor gathers consume the network's outputs and feed no convolution. Used by the INT8
quantiser (only the network gets Q/DQ) and by TensorRT's FP16 graph (only the network goes
FP16). Pure functions on an ``onnx.ModelProto`` (``onnx`` imported where a value is read).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import InputError

# Operators whose weights make them "the network" (the exports hold Conv only; Gemm/MatMul
# with a constant weight would be a fully connected head).
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def constant_names(graph: Any) -> set[str]:
    """Initializers and ``Constant`` node outputs: tensors whose values are in the file."""
    names = {init.name for init in graph.initializer}
    return names | {o for n in graph.node if n.op_type == "Constant" for o in n.output}


def constant_values(graph: Any) -> dict[str, Any]:
    """Name -> numpy value of every initializer and ``Constant`` node output."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def network_nodes(model: Any) -> list[Any]:
    """The network's nodes, in graph order: the weighted nodes (``WEIGHTED_OPS`` with a constant
    weight) and every non-``Constant`` node they depend on. ``InputError`` when the graph has
    none (not a network export)."""
    graph = model.graph
    constants = constant_names(graph)
    seeds = [
        n
        for n in graph.node
        if n.op_type in WEIGHTED_OPS and len(n.input) > 1 and n.input[1] in constants
    ]
    if not seeds:
        raise InputError(
            "the graph has no convolution with constant weights: not a SuperPoint export"
        )
    producers = {out: node for node in graph.node for out in node.output if out}
    seen: set[int] = set()
    stack = list(seeds)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(producers[i] for i in node.input if i in producers)
    return [n for n in graph.node if id(n) in seen and n.op_type != "Constant"]


def network_outputs(model: Any, nodes: Iterable[Any]) -> list[str]:
    """Tensors the network ``nodes`` hand to post-processing (or to the graph's outputs): the
    detector logits and the dense descriptors in a front-end export."""
    inside = {id(n) for n in nodes}
    produced = {o for n in model.graph.node if id(n) in inside for o in n.output}
    graph_outputs = {o.name for o in model.graph.output}
    used_outside = {
        i for n in model.graph.node if id(n) not in inside for i in n.input if i in produced
    }
    return [
        o
        for n in model.graph.node
        if id(n) in inside
        for o in n.output
        if o in used_outside or o in graph_outputs
    ]
