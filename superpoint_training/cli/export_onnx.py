"""Export the whole front-end to ONNX with dynamic height and width.

The graph holds the network and all post-processing (NMS, threshold, border, top-k,
descriptor sampling); the export is checked in ONNX Runtime.

  superpoint export-onnx --weights W -o model.onnx [--max-keypoints K] [--nms-radius R]
                         [--threshold T] [--border B] [--subpixel] [--opset N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from superpoint_ros.backends.onnxruntime_backend import import_onnxruntime
from superpoint_ros.errors import ConfigError
from superpoint_ros.frontend import FrontendConfig, default_weights
from superpoint_ros.model.weights import load_weights
from superpoint_ros.onnx_export import OPSET, export_onnx

from ._common import add_frontend_arguments, check_output, frontend_overrides

COMMAND = "export-onnx"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_frontend_arguments(parser, backend=False)
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument(
        "--bare-network",
        action="store_true",
        help="export the network alone (logits, dense descriptors), for benchmarks",
    )


def run(args: argparse.Namespace) -> int:
    if not args.output.endswith(".onnx"):
        raise ConfigError(f"output must end with .onnx: {args.output}")
    check_output(args.output)  # before the weights are even read
    overrides = frontend_overrides(args)
    if "resize" in overrides:
        raise ConfigError(
            "--resize is applied on the host, not in the graph; pass it to "
            "extract/benchmark or the node instead"
        )
    weights = load_weights(args.weights or default_weights())
    config = FrontendConfig().replace(**overrides)
    path = export_onnx(
        weights, args.output, config, opset=args.opset, bare_network=args.bare_network
    )
    size_mb = Path(path).stat().st_size / 1e6
    print(
        f"wrote {path} ({size_mb:.1f} MB, opset {args.opset}, "
        f"{'network only' if args.bare_network else 'front-end'}: {config.graph_key()})"
    )
    try:
        ort = import_onnxruntime()
    except ImportError:
        print("onnxruntime not installed: skipped the check run")
        return 0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in ((240, 320), (120, 168)):
        outs = session.run(None, {"image": np.zeros((1, 1, h, w), np.float32)})
        shapes = ", ".join(
            f"{o.name} {list(v.shape)}" for o, v in zip(session.get_outputs(), outs)
        )
        print(f"check {h}x{w} in ONNX Runtime: {shapes}")
    return 0
