"""Which nodes of an exported front-end graph are the network, and which are post-processing.

The network is every node a convolution depends on, plus the convolutions themselves: the
backbone and both heads (convolutions, activations, pooling, residual additions), found from the
graph's structure rather than from node names, so it holds for every backbone and for whatever
scope names an exporter writes. Everything else is post-processing (softmax, depth-to-space,
NMS, border, top-k, descriptor sampling and normalisation): the NMS max-pools and the
descriptor gathers consume the network's outputs and feed no convolution, so they are never
counted as network. Pure functions on an ``onnx.ModelProto``; no file I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

from superpoint_ros.errors import InputError

# Operators whose weights make them "the network" (the exports hold Conv only; Gemm/MatMul
# with a constant weight would be a fully connected head).
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output if out}


def network_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The network's nodes of an exported front-end, in graph order: the weighted nodes
    (``WEIGHTED_OPS`` with a constant weight) and every node they depend on. ``InputError``
    when the graph has no such node (not a network export)."""
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    seeds = [
        n
        for n in graph.node
        if n.op_type in WEIGHTED_OPS and len(n.input) > 1 and n.input[1] in constants
    ]
    if not seeds:
        raise InputError(
            "the graph has no convolution with constant weights: not a SuperPoint export"
        )
    producers = _producers(graph)
    seen: set[int] = set()
    stack = list(seeds)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(producers[i] for i in node.input if i in producers)
    return [n for n in graph.node if id(n) in seen and n.op_type != "Constant"]


def network_outputs(model: onnx.ModelProto, nodes: Iterable[onnx.NodeProto]) -> list[str]:
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
