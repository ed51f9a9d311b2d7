"""Measure front-end latency per stage and throughput on one image size.

Stages: preprocess (gray, resize/pad, scale; host), inference (the backend's graph: network
and post-processing), finalize (drop empty slots, map back; host). With --network, the bare
network (no post-processing) is timed too, in the same backend, so the cost of
post-processing shows as a ratio (it needs weights, .pt/.pth/.tar or the packaged default, and
the torch or onnxruntime backend: an .onnx or .engine holds the whole front-end graph, whose
network cannot be timed apart, and is refused in one line). Prints a table; --json writes the
figures.

  superpoint benchmark --weights W --backend B --size HxW [--runs N] [--network]
"""

from __future__ import annotations

import argparse
import json
import time

from ._common import add_frontend_arguments, build_frontend

COMMAND = "benchmark"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_frontend_arguments(parser)
    parser.add_argument(
        "--size", default="480x640", metavar="HxW", help="input image size (default 480x640)"
    )
    parser.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    parser.add_argument(
        "--network", action="store_true", help="also time the bare network in the same backend"
    )
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")


def percentiles(values_s: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds."""
    import numpy as np

    v = np.asarray(values_s) * 1e3
    return {
        "p50": float(np.percentile(v, 50)),
        "p90": float(np.percentile(v, 90)),
        "p99": float(np.percentile(v, 99)),
        "max": float(v.max()),
        "mean": float(v.mean()),
    }


def benchmark_image(size: tuple[int, int]):
    """A real photo (scikit-image's CC0 'astronaut', gray) stretched to ``size``; a fixed
    random texture where scikit-image is missing."""
    import cv2
    import numpy as np

    try:
        from skimage import data

        image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    except ImportError:
        image = np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8)
        image = cv2.GaussianBlur(image, (5, 5), 1.5)
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


NETWORK_BACKENDS = ("torch", "onnxruntime")  # where --network can time the bare network
GRAPH_SUFFIXES = (".onnx", ".engine")  # whole front-end graphs: no bare network inside


def check_network_request(args: argparse.Namespace) -> None:
    """``--network`` needs weights to export the bare network from: refuse an .onnx/.engine
    (and another backend) in one line, before anything is timed."""
    from superpoint_ros.errors import ConfigError

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
    """Seconds per run of the bare network in the front-end's backend, or None if not possible."""
    import tempfile

    import numpy as np

    from superpoint_ros.frontend import default_weights, prepare

    tensor = prepare(image, frontend.config.resize).tensor
    if frontend.backend_name == "torch":
        run = lambda: frontend.backend.network_only(tensor)  # noqa: E731
    elif frontend.backend_name == "onnxruntime":
        from superpoint_ros.backends.onnxruntime_backend import import_onnxruntime

        ort = import_onnxruntime()

        from superpoint_ros.model.weights import load_weights
        from superpoint_ros.onnx_export import export_onnx

        with tempfile.TemporaryDirectory() as tmp:  # the session keeps the graph: no file left
            path = tmp + "/network.onnx"
            weights = args.weights or default_weights()
            export_onnx(load_weights(weights), path, frontend.config, bare_network=True)
            options = ort.SessionOptions()
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
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
    return [float(t) for t in np.asarray(times)]


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from superpoint_ros.errors import ConfigError
    from superpoint_ros.frontend import parse_size

    size = parse_size(args.size)
    if args.runs < 1:
        raise ConfigError("--runs must be >= 1")
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
