"""Quantise an exported front-end to INT8 (ONNX Runtime static quantisation, Q/DQ).

The network is quantised (per-channel int8 weights, activations calibrated on real photos
prepared as the front-end prepares a frame); post-processing stays float32. The result loads
like any .onnx (extract, evaluate, benchmark, the node).

  superpoint quantize --onnx model.onnx --calib DIR [--calib-count N] [--calib-size HxW]
                      [--target cpu|tensorrt] [--method minmax|percentile|entropy]
                      -o model.int8.onnx

--target cpu: what ONNX Runtime runs fastest on x86 (uint8 activations, int8 weights);
--target tensorrt: symmetric int8 activations and weights for superpoint build-engine.
--onnx also takes a weights file (.pt), exported first with the default front-end settings.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from superpoint_ros.errors import ConfigError, InputError
from superpoint_ros.frontend.config import parse_size
from superpoint_ros.frontend.metadata import META_PREFIX
from superpoint_training.deploy.calibration import (
    DEFAULT_COUNT,
    DEFAULT_SIZE,
    select_calibration_images,
)
from superpoint_training.deploy.pipeline import quantize_onnx
from superpoint_training.deploy.quantize import (
    CALIBRATION_METHODS,
    DEFAULT_METHOD,
    TARGETS,
    get_target,
)

from ._common import check_output

COMMAND = "quantize"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--onnx",
        required=True,
        metavar="MODEL",
        help="the float front-end: an .onnx from superpoint export-onnx, or a weights file",
    )
    parser.add_argument(
        "--calib", required=True, metavar="DIR", help="folder of photos (searched recursively)"
    )
    parser.add_argument(
        "--calib-count",
        type=int,
        default=DEFAULT_COUNT,
        metavar="N",
        help=f"photos to calibrate on, spread over the folder (default {DEFAULT_COUNT})",
    )
    parser.add_argument(
        "--calib-size",
        default="x".join(map(str, DEFAULT_SIZE)),
        metavar="HxW",
        help="size the photos are stretched to, as the front-end's --resize would "
        f"(default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}: the size the model will run at)",
    )
    parser.add_argument(
        "--target",
        default="cpu",
        metavar="T",
        help=f"{' or '.join(TARGETS)} (default cpu): "
        + "; ".join(f"{t.name}: {t.summary}" for t in TARGETS.values()),
    )
    parser.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        metavar="M",
        help=f"activation range calibration: {', '.join(CALIBRATION_METHODS)} "
        f"(default {DEFAULT_METHOD})",
    )
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write")


def run(args: argparse.Namespace) -> int:
    # Everything the user gave is checked before the minute of calibration starts.
    get_target(args.target)
    if args.method not in CALIBRATION_METHODS:
        raise ConfigError(
            f"unknown calibration method {args.method!r}; valid: {', '.join(CALIBRATION_METHODS)}"
        )
    if not args.output.endswith(".onnx"):
        raise ConfigError(f"output must end with .onnx: {args.output}")
    check_output(args.output)
    source = Path(args.onnx)
    if not source.is_file():
        raise InputError(f"model not found: {source}")
    if source.resolve() == Path(args.output).resolve():
        raise ConfigError("the output would overwrite the float model; choose another -o")
    if args.calib_count <= 0:
        raise ConfigError(f"--calib-count must be positive, got {args.calib_count}")
    size = parse_size(args.calib_size)
    names = select_calibration_images(args.calib, args.calib_count)
    print(
        f"calibrating on {len(names)} photos from {args.calib} at {size[0]}x{size[1]}, "
        f"target {args.target}, {args.method}"
    )
    t0 = time.perf_counter()
    path = quantize_onnx(
        source, args.output, args.calib, args.target, args.calib_count, size, args.method
    )
    seconds = time.perf_counter() - t0
    size_mb = path.stat().st_size / 1e6
    print(
        f"wrote {path} ({size_mb:.1f} MB, int8 for {args.target}, {seconds:.0f} s); its "
        f"metadata: {META_PREFIX}precision, {META_PREFIX}quantization_config"
    )
    return 0
