"""Cost of post-processing inside the exported graph: the whole front-end vs the bare network,
both in ONNX Runtime on the CPU, runs interleaved (A, B, A, B...) so machine noise hits both
alike. Target (issue 2): front-end <= 1.10x the bare network at 480x640.

    .venv/bin/python benchmarks/bench_frontend_overhead.py [--weights W] [--runs 30]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from superpoint_ros.frontend import DEFAULT_WEIGHTS, FrontendConfig, prepare
from superpoint_ros.model.superpoint import SuperPointNet
from superpoint_ros.model.weights import Weights, load_weights
from superpoint_ros.onnx_export import export_onnx
from superpoint_training.cli.benchmark import benchmark_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--weights", default=str(DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.is_file() else None
    )
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--sizes", default="240x320,480x640")
    args = parser.parse_args()
    if args.weights:
        weights = load_weights(args.weights)
        label = Path(args.weights).name
    else:
        torch.manual_seed(0)
        net = SuperPointNet()
        weights = Weights(net.state_dict(), net.config)
        label = "random weights (no demo model present)"
    tmp = Path(tempfile.mkdtemp())
    fe_path = export_onnx(weights, tmp / "frontend.onnx", FrontendConfig())
    net_path = export_onnx(weights, tmp / "network.onnx", FrontendConfig(), bare_network=True)
    sessions = {
        name: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        for name, p in (("frontend", fe_path), ("network", net_path))
    }
    print(f"model: {label}; onnxruntime {ort.__version__}; {args.runs} interleaved runs")
    print(f"{'size':<10}{'network ms':>12}{'front-end ms':>14}{'ratio':>8}")
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        x = prepare(benchmark_image((h, w)), None).tensor
        times = {k: [] for k in sessions}
        for s in sessions.values():  # warm-up
            for _ in range(3):
                s.run(None, {"image": x})
        for _ in range(args.runs):
            for name, s in sessions.items():
                t0 = time.perf_counter()
                s.run(None, {"image": x})
                times[name].append(time.perf_counter() - t0)
        net_ms = np.median(times["network"]) * 1e3
        fe_ms = np.median(times["frontend"]) * 1e3
        ratios = np.array(times["frontend"]) / np.array(times["network"])
        print(
            f"{size:<10}{net_ms:>12.1f}{fe_ms:>14.1f}{fe_ms / net_ms:>8.3f}"
            f"   (median of per-pair ratios {np.median(ratios):.3f})"
        )


if __name__ == "__main__":
    main()
