"""Replay real sequences through superpoint_node with bench_node and compare with the offline
evaluation of the same model on the same images (the pinned protocol, 480x640 / 240x320).

    .venv/bin/python benchmarks/bench_node_replay.py \\
        --dataset ../shared/data/hpatches --dataset ../shared/data/oxford_affine \\
        [--model model.onnx | --random] [--rate 0] -o /tmp/bench_replay

Writes the bag, starts superpoint_node (ONNX Runtime) and bench_node as subprocesses on a
private ROS_DOMAIN_ID, runs ``superpoint evaluate`` in-process, and prints: both summary
tables, how many pairs have identical figures (and the largest difference otherwise), the
node's latency per pass, throughput, and the time the 116 HPatches sequences would take
(extrapolated from the measured per-image times, stated as such).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HPATCHES_IMAGES = 116 * 6  # the full release: 116 sequences of 6 images
METRICS = ("repeatability", "mle", "nn_map", "matching_score", "corner_error")


def compare(r: dict, o: dict, what: str) -> None:
    """Print how many pairs have identical figures on the node and offline."""
    by_pair = {(p["sequence"], p["pair"]): p for p in o["pair_results"]}
    same, worst = 0, {k: 0.0 for k in METRICS}
    identical = set()
    for p in r["pair_results"]:
        q = by_pair[(p["sequence"], p["pair"])]
        keys = (*METRICS, "correct", "matches", "inliers", "correct_matches")
        if all(p[k] == q[k] for k in keys):
            same += 1
            identical.add(p["sequence"])
        for k in METRICS:
            a, b = p[k], q[k]
            if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
                worst[k] = max(worst[k], abs(a - b))
    print(
        f"node vs {what}: pairs with identical figures {same}/{len(r['pair_results'])} "
        f"(sequences {sorted(identical)}); largest differences "
        + ", ".join(f"{k} {v:.4g}" for k, v in worst.items())
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", action="append", required=True, metavar="DIR")
    parser.add_argument("--model", help="an .onnx front-end (default: --random)")
    parser.add_argument("--random", action="store_true", help="export a random-weights model")
    parser.add_argument("--rate", type=float, default=0.0, help="bench rate (0 = lockstep)")
    parser.add_argument("--protocol", default="", help="protocol overrides (space-separated)")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()

    from _random_model import random_onnx

    from superpoint_training.bags.writer import find_sequences, write_hpatches_bag
    from superpoint_training.evaluation.pipeline import evaluate
    from superpoint_training.evaluation.protocol import Protocol
    from superpoint_training.evaluation.report import summary_table

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else random_onnx(out, peaky=True, seed=3)
    sources = [s for d in args.dataset for s in find_sequences(d)]
    bag = out / "bag"
    t0 = time.perf_counter()
    write_hpatches_bag(sources, bag, overwrite=True)
    print(f"bag: {len(sources)} sequences in {time.perf_counter() - t0:.1f} s -> {bag}")

    env = dict(os.environ, ROS_DOMAIN_ID=str(100 + os.getpid() % 100), PYTHONUNBUFFERED="1")
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    node_log = open(out / "node.log", "w")
    node = subprocess.Popen(
        [sys.executable, "-m", "superpoint_ros.ros.superpoint_node", "--ros-args",
         "-p", f"weights:={model}", "-p", "backend:=onnxruntime",
         "-p", "qos_reliability:=reliable", "-p", "publish_debug_image:=false",
         "-r", "image:=/bench/image"],
        env=env, stdout=node_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        t0 = time.perf_counter()
        bench = subprocess.run(
            [sys.executable, "-m", "superpoint_training.ros.bench_node", "--ros-args",
             "-r", "image:=/bench/image", "-r", "features:=/superpoint_node/features",
             "-p", f"bag:={bag}", "-p", f"output_dir:={out / 'robot'}",
             "-p", f"rate:={args.rate}"]
            + (["-p", f"protocol:={args.protocol}"] if args.protocol else []),
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        bench_wall = time.perf_counter() - t0
    finally:
        node.send_signal(signal.SIGINT)
        node.wait(timeout=20)
        node_log.close()
    print(bench.stdout + bench.stderr)
    if bench.returncode != 0:
        print((out / "node.log").read_text())
        return 1

    protocol = Protocol().with_overrides(args.protocol.split())
    t0 = time.perf_counter()
    evaluate(args.dataset, [str(model)], out / "offline", protocol=protocol, cache_dir=None,
             backend="onnxruntime", progress=False)  # fmt: skip
    offline_wall = time.perf_counter() - t0

    robot = json.loads((out / "robot" / "metrics.json").read_text())
    offline = json.loads((out / "offline" / "metrics.json").read_text())
    print("offline (superpoint evaluate):\n" + summary_table(offline))
    print("on the node (bench_node):\n" + summary_table(robot))
    (r,) = robot["methods"].values()
    (o,) = offline["methods"].values()
    compare(r, o, "offline")
    ros = r["ros"]
    for p, s in ros["latency_per_pass"].items():
        print(
            f"latency {p} {s['size'][0]}x{s['size'][1]}: p50 {s['p50_ms']:.1f} ms, "
            f"p95 {s['p95_ms']:.1f} ms, max {s['max_ms']:.1f} ms ({s['count']} frames)"
        )
    ips = ros["images_per_second"]
    fps = ros["frames_per_second"]
    print(
        f"frames {ros['frames']}, dropped {ros['frames_dropped']}, {fps:.2f} frames/s = "
        f"{ips:.2f} images/s; bench process {bench_wall:.1f} s wall, offline evaluate "
        f"{offline_wall:.1f} s wall"
    )
    off_s = o["timing"]["extract_seconds_per_image"]
    node_s = r["timing"]["extract_seconds_per_image"]
    print(
        f"per image, both sizes: node {node_s:.3f} s (publish to features), offline {off_s:.3f} s"
    )
    print(f"extrapolated to the full HPatches ({HPATCHES_IMAGES} images, not measured): replay "
          f"~{HPATCHES_IMAGES / ips / 60:.0f} min, offline extraction "
          f"~{HPATCHES_IMAGES * off_s / 60:.0f} min on this machine")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
