"""Measure front-end latency per stage and throughput on one image size, or a whole matrix of
models x backends x precisions x sizes (--matrix).

One combination: stages preprocess (gray, resize/pad, scale; host), inference (the backend's
graph: network and post-processing), finalize (drop empty slots, map back; host). With
--network, the bare network (no post-processing) is timed too, in the same backend, so the cost
of post-processing shows as a ratio (it needs weights, .pt/.pth/.tar or the packaged default,
and the torch or onnxruntime backend: an .onnx or .engine holds the whole front-end graph, whose
network cannot be timed apart, and is refused in one line). Prints a table; --json writes the
figures.

  superpoint benchmark --weights W --backend B --size HxW [--runs N] [--network]

The matrix (docs/benchmark.md, "The benchmark matrix"): every available combination measured in
its own process (latency p50/p95, FPS, peak memory; with --dataset the accuracy of superpoint
evaluate), the others listed as skipped with the reason; writes report.md, metrics.json and
accuracy_vs_fps.png into REPORT_DIR.

  superpoint benchmark --matrix --models A.pt,B.onnx --backends torch,onnxruntime,...
      --sizes 240x320,480x640 [--dataset DIR ...] [--calib DIR] -o REPORT_DIR
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from superpoint_ros.backends.onnxruntime_backend import import_onnxruntime
from superpoint_ros.errors import ConfigError
from superpoint_ros.frontend import default_weights, parse_size, prepare
from superpoint_training.benchmark.measure import timing_image as benchmark_image
from superpoint_training.benchmark.models import run_command
from superpoint_training.benchmark.plan import parse_models
from superpoint_training.benchmark.report import results_table, write_report
from superpoint_training.benchmark.runner import MatrixRequest, run_matrix
from superpoint_training.benchmark.variants import (
    DEFAULT_SIZES,
    DEFAULT_VARIANTS,
    VARIANTS,
    parse_sizes,
    parse_variants,
)

from ._common import add_frontend_arguments, build_frontend, check_output, frontend_overrides

COMMAND = "benchmark"
DEFAULT_CALIB = Path("../shared/data/photos")  # the real photos beside a development checkout
MATRIX_ONLY = ("models", "backends", "sizes", "dataset", "calib", "calib_count", "output")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_frontend_arguments(parser)
    parser.add_argument(
        "--size", metavar="HxW", help="input image size (default 480x640; --matrix: --sizes)"
    )
    parser.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    parser.add_argument(
        "--network", action="store_true", help="also time the bare network in the same backend"
    )
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    matrix = parser.add_argument_group("benchmark matrix (--matrix)")
    matrix.add_argument(
        "--matrix", action="store_true", help="run models x backends x sizes into a report"
    )
    matrix.add_argument(
        "--models",
        metavar="LIST",
        help="comma-separated model files (.pt/.pth/.tar, .onnx, .engine), each optionally "
        "LABEL=PATH (default: the packaged demo model)",
    )
    matrix.add_argument(
        "--backends",
        metavar="LIST",
        help=f"comma-separated variants among {', '.join(VARIANTS.names())} "
        f"(default: {','.join(DEFAULT_VARIANTS)})",
    )
    matrix.add_argument(
        "--sizes", metavar="LIST", help=f"comma-separated HxW sizes (default: {DEFAULT_SIZES})"
    )
    matrix.add_argument(
        "--dataset",
        action="append",
        metavar="DIR",
        help="homography sequences (as superpoint evaluate's --dataset) for the accuracy "
        "columns; repeatable",
    )
    matrix.add_argument(
        "--calib",
        metavar="DIR",
        help=f"photos that calibrate the INT8 variants (default: {DEFAULT_CALIB} when present)",
    )
    matrix.add_argument(
        "--calib-count", type=int, metavar="N", help="photos used, at most (default 100)"
    )
    matrix.add_argument("-o", "--output", metavar="REPORT_DIR", help="the matrix's report folder")


def percentiles(values_s: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds."""
    v = np.asarray(values_s) * 1e3
    return {
        "p50": float(np.percentile(v, 50)),
        "p90": float(np.percentile(v, 90)),
        "p99": float(np.percentile(v, 99)),
        "max": float(v.max()),
        "mean": float(v.mean()),
    }


NETWORK_BACKENDS = ("torch", "onnxruntime")  # where --network can time the bare network
GRAPH_SUFFIXES = (".onnx", ".engine")  # whole front-end graphs: no bare network inside


def check_network_request(args: argparse.Namespace) -> None:
    """``--network`` needs weights to export the bare network from: refuse an .onnx/.engine
    (and another backend) in one line, before anything is timed."""
    if not args.network:
        return
    weights = str(args.weights or "")
    if weights.lower().endswith(GRAPH_SUFFIXES):
        raise ConfigError(
            f"--network times the bare network of a weights file; {weights} is a whole front-end "
            "graph (network and post-processing, which cannot be timed apart): pass the "
            ".pt/.pth/.tar it was exported from, or leave --network out"
        )
    if args.backend not in ("auto", *NETWORK_BACKENDS):
        raise ConfigError(
            f"--network works with the backends {', '.join(NETWORK_BACKENDS)}, not "
            f"{args.backend!r}; leave --network out"
        )


def _time_network(frontend, args, image, runs: int) -> list[float] | None:
    """Seconds per run of the bare network in the front-end's backend, or None if not possible.
    For onnxruntime the bare network is exported by ``superpoint export-onnx --bare-network``
    in its own process (this command never imports torch for an ONNX Runtime run)."""
    tensor = prepare(image, frontend.config.resize).tensor
    if frontend.backend_name == "torch":
        run = lambda: frontend.backend.network_only(tensor)  # noqa: E731
    elif frontend.backend_name == "onnxruntime":
        ort = import_onnxruntime()
        with tempfile.TemporaryDirectory() as tmp:  # the session keeps the graph: no file left
            path = Path(tmp) / "network.onnx"
            weights = args.weights or default_weights()
            run_command(["export-onnx", "--weights", str(weights), "-o", str(path),
                         "--bare-network"])  # fmt: skip
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        run = lambda: session.run(None, {"image": tensor})  # noqa: E731
    else:
        return None
    for _ in range(args.warmup):
        run()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return times


def run(args: argparse.Namespace) -> int:
    if args.runs < 1:
        raise ConfigError("--runs must be >= 1")
    if args.warmup < 0:
        raise ConfigError("--warmup must be >= 0")
    if args.matrix:
        return run_matrix_command(args)
    given = [f"--{k.replace('_', '-')}" for k in MATRIX_ONLY if _given(args, k)]
    if given:
        raise ConfigError(
            f"{', '.join(given)}: only with --matrix (superpoint benchmark --matrix ...)"
        )
    size = parse_size(args.size or "480x640")
    check_network_request(args)
    frontend = build_frontend(args)
    if args.network and frontend.backend_name not in NETWORK_BACKENDS:
        raise ConfigError(
            f"--network works with the backends {', '.join(NETWORK_BACKENDS)}; auto chose "
            f"{frontend.backend_name}: pass --backend torch or onnxruntime, or leave --network out"
        )
    image = benchmark_image(size)
    for _ in range(args.warmup):
        frontend(image)
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "finalize": []}
    totals, counts = [], []
    bar = tqdm(
        range(args.runs), desc=f"benchmark {frontend.backend_name}", unit="run",
        disable=getattr(args, "quiet", False),
    )  # fmt: skip
    for _ in bar:
        t0 = time.perf_counter()
        result, timing = frontend.timed(image)
        totals.append(time.perf_counter() - t0)
        counts.append(len(result["keypoints"]))
        for k, v in timing.items():
            stages[k].append(v)
    report = {
        "backend": frontend.backend_name,
        "details": {k: str(v) for k, v in frontend.backend.info.details.items()},
        "size": list(size),
        "runs": args.runs,
        "config": frontend.config.to_dict(),
        "keypoints_median": int(sorted(counts)[len(counts) // 2]),
        "stages_ms": {k: percentiles(v) for k, v in stages.items()},
        "total_ms": percentiles(totals),
    }
    report["fps"] = 1000.0 / report["total_ms"]["p50"]
    if args.network:
        net = _time_network(frontend, args, image, args.runs)
        report["network_ms"] = percentiles(net)
        report["inference_over_network"] = (
            report["stages_ms"]["inference"]["p50"] / report["network_ms"]["p50"]
        )
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def _given(args: argparse.Namespace, key: str) -> bool:
    value = getattr(args, key, None)
    return value not in (None, False, [])


def check_matrix_request(args: argparse.Namespace) -> None:
    """Refuse, in one line and before any work, single-run options given with --matrix."""
    single = {
        "--weights": args.weights, "--backend": args.backend != "auto", "--size": args.size,
        "--network": args.network, "--json": args.json,
        "--precision": getattr(args, "precision", None), "--fp16": getattr(args, "fp16", False),
        "--device": getattr(args, "device", None),
        "--rebuild-engine": getattr(args, "rebuild_engine", False),
    }  # fmt: skip
    single.update({f"--{k.replace('_', '-')}": True for k in frontend_overrides(args)})
    wrong = [flag for flag, value in single.items() if value]
    if wrong:
        raise ConfigError(
            f"{', '.join(wrong)}: --matrix takes its models from --models, its backends and "
            "precisions from --backends, its sizes from --sizes, and runs weights files with "
            "the evaluation protocol's settings; leave them out"
        )
    if not args.output:
        raise ConfigError("--matrix needs -o REPORT_DIR (the folder the report is written to)")


def matrix_request(args: argparse.Namespace) -> MatrixRequest:
    """The matrix the command line asks for, every option checked."""
    check_matrix_request(args)
    check_output(args.output, directory=True)
    models = parse_models(args.models) if args.models else [("demo", default_weights())]
    calib = Path(args.calib) if args.calib else (DEFAULT_CALIB if DEFAULT_CALIB.is_dir() else None)
    calib_count = 100 if args.calib_count is None else args.calib_count
    if calib_count < 1:
        raise ConfigError("--calib-count must be >= 1")
    for folder in args.dataset or []:
        if not Path(folder).is_dir():
            raise ConfigError(f"--dataset {folder}: no such folder")
    return MatrixRequest(
        models=models,
        variants=parse_variants(args.backends or ",".join(DEFAULT_VARIANTS)),
        sizes=parse_sizes(args.sizes or DEFAULT_SIZES),
        datasets=list(args.dataset or []),
        calib=calib,
        calib_count=calib_count,
        runs=args.runs,
        warmup=args.warmup,
    )


def run_matrix_command(args: argparse.Namespace) -> int:
    request = matrix_request(args)
    command = "superpoint " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    quiet = getattr(args, "quiet", False)
    metrics = run_matrix(request, args.output, command, None if quiet else print)
    paths = write_report(args.output, metrics)
    print(results_table(metrics["rows"]))
    skipped = sum(r["status"] == "skipped" for r in metrics["rows"])
    failed = sum(r["status"] == "failed" for r in metrics["rows"])
    print(f"{len(metrics['rows']) - skipped - failed} measured, {skipped} skipped, {failed} "
          f"failed (reasons in the report)")  # fmt: skip
    print(", ".join(f"{k}: {v}" for k, v in paths.items()))
    return 0


def format_table(report: dict) -> str:
    h, w = report["size"]
    lines = [
        f"backend {report['backend']}  size {h}x{w}  runs {report['runs']}  "
        f"keypoints {report['keypoints_median']}",
        f"{'stage':<14}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}",
    ]
    rows = dict(report["stages_ms"], total=report["total_ms"])
    if "network_ms" in report:
        rows["bare network"] = report["network_ms"]
    for name, p in rows.items():
        lines.append(f"{name:<14}{p['p50']:>9.2f}{p['p90']:>9.2f}{p['p99']:>9.2f}{p['max']:>9.2f}")
    lines.append(f"FPS (1 / median total): {report['fps']:.1f}")
    if "inference_over_network" in report:
        lines.append(
            f"front-end graph / bare network (median): {report['inference_over_network']:.3f}x"
        )
    return "\n".join(lines)
