"""Build a TensorRT engine from an exported front-end, ahead of time, on the machine that runs it.

The engine holds the whole front-end graph; an optimisation profile covers the input sizes it
will see (height x width, multiples of 8). A record (``OUT.json``: TensorRT version, GPU name,
the ONNX's SHA-256, precision, profile) is written beside it; the backend and the node refuse
the engine where the record does not match and print this command to rebuild it.

Precision: FP32 by default; --fp16 (the builder flag where the TensorRT release has it, an
FP16 network graph on 11.x); INT8 from a Q/DQ model only (superpoint quantize --target
tensorrt), which is built INT8 with or without --int8. Every check that needs no TensorRT
(export, parser's operator list, profile, Q/DQ) runs first.

  superpoint build-engine --onnx model.onnx -o model.engine [--fp16 | --int8]
                          [--min HxW --opt HxW --max HxW] [--workspace MB] [--dla N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from superpoint_ros.backends import get_backend_class
from superpoint_ros.backends.tensorrt_build import build_engine, check_build
from superpoint_ros.backends.tensorrt_record import DEFAULT_PROFILE, record_path
from superpoint_ros.errors import BackendUnavailable, ConfigError
from superpoint_ros.frontend import parse_size

from ._common import check_output

COMMAND = "build-engine"
ENGINE_SUFFIXES = (".engine", ".plan")


def _size(text: str) -> tuple[int, int]:
    size = parse_size(text)
    if size is None:
        raise ConfigError(f"bad size {text!r}: expected HxW, e.g. 480x640")
    return size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    (hmin, wmin), (hopt, wopt), (hmax, wmax) = DEFAULT_PROFILE
    parser.add_argument(
        "--onnx", required=True, help="the front-end .onnx (export-onnx, quantize)"
    )
    parser.add_argument("-o", "--output", required=True, help="the .engine file to write")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="half precision")
    precision.add_argument(
        "--int8", action="store_true", help="INT8 (needs a Q/DQ model from superpoint quantize)"
    )
    parser.add_argument("--min", default=f"{hmin}x{wmin}", metavar="HxW", help="smallest input")
    parser.add_argument("--opt", default=f"{hopt}x{wopt}", metavar="HxW", help="tuned-for input")
    parser.add_argument("--max", default=f"{hmax}x{wmax}", metavar="HxW", help="largest input")
    parser.add_argument("--workspace", type=int, metavar="MB", help="builder workspace limit")
    parser.add_argument("--dla", type=int, metavar="N", help="build for DLA core N (Jetson)")
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing engine and its record"
    )


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix not in ENGINE_SUFFIXES:
        raise ConfigError(f"output must end with .engine or .plan: {out}")
    check_output(out)
    if out.exists() and not args.force:
        raise ConfigError(f"{out} exists; pass --force to overwrite it")
    profile = (_size(args.min), _size(args.opt), _size(args.max))
    requested = "fp16" if args.fp16 else "int8" if args.int8 else None
    request = check_build(args.onnx, requested, profile, args.workspace, args.dla)
    backend = get_backend_class("tensorrt")
    reason = backend.unavailable_reason()
    if reason:
        raise BackendUnavailable(
            f"checks passed ({request.precision}, profile "
            f"{' / '.join(f'{h}x{w}' for h, w in request.profile)}), but {reason}"
        )
    import tensorrt as trt
    import torch

    record = build_engine(request, out, trt, torch.cuda.get_device_name())
    print(
        f"wrote {out} and {record_path(out).name}: TensorRT {record.tensorrt_version} on "
        f"{record.gpu_name}, {record.mechanism}, profile "
        f"{' / '.join(f'{h}x{w}' for h, w in record.profile)}"
    )
    return 0
