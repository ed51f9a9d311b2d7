"""Load test of ``superpoint_node``: a camera stream in, does the node keep up without backing up?

Publishes ``480x640 mono8`` frames (the cameraman photo, shifted a little every frame) at 30 Hz
for 30 s with sensor-data QoS to a ``superpoint_node`` it starts itself (ONNX Runtime backend,
an ``.onnx`` front-end), and reports:

* output rate (``~/features`` per second) and the frames never answered;
* end-to-end latency, header stamp (set at publish) to receipt of ``~/features``: p50/p95/max;
* frames the node dropped (its newest-frame mailbox, from ``/diagnostics``);
* the node's resident memory (``VmRSS`` of ``/proc/<pid>/status``) after warm-up and at the end;
* the front-end's own processing time (same ``.onnx``, same threads, in this process, before
  the node starts) and the node's processing time (``/diagnostics``).

Criteria (PASS/FAIL each): p95 latency <= 1.5 x the front-end's median processing time (the
node does not back up: a frame waits at most for the frame in progress), RSS growth < 5%, and
torch not imported by the node.

Run: ``.venv/bin/python benchmarks/bench_node.py`` (about 45 s). Options: ``--weights`` (an
``.onnx``, or a checkpoint exported here; default the packaged model, else random weights:
same cost), ``--rate``, ``--duration``, ``--size``, ``--threads``, ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
NODE = "/superpoint_node"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _onnx_weights(weights: str | None, workdir: Path) -> tuple[Path, str]:
    """An ``.onnx`` front-end to run, and where it came from."""
    if weights and weights.endswith(".onnx"):
        return Path(weights), weights
    from superpoint_ros.frontend import DEFAULT_WEIGHTS

    source = Path(weights) if weights else DEFAULT_WEIGHTS
    if not weights and not DEFAULT_WEIGHTS.is_file():
        from _random_model import random_onnx

        return random_onnx(workdir), "random weights (no trained model yet)"
    from superpoint_ros.frontend import FrontendConfig
    from superpoint_ros.model.weights import load_weights
    from superpoint_ros.onnx_export import export_onnx

    return export_onnx(load_weights(source), workdir / "bench.onnx", FrontendConfig()), str(source)


def _frames(size: tuple[int, int], count: int = 30) -> list[np.ndarray]:
    """``count`` views of the cameraman, shifted by up to a few pixels: consecutive frames
    match like a slowly moving camera."""
    from skimage.data import camera

    base = cv2.resize(camera(), (size[1] + 16, size[0] + 16), interpolation=cv2.INTER_AREA)
    out = []
    for i in range(count):
        dx, dy = 8 + round(6 * np.sin(i / 5)), 8 + round(6 * np.cos(i / 7))
        out.append(np.ascontiguousarray(base[dy : dy + size[0], dx : dx + size[1]]))
    return out


def _frontend_time(onnx: Path, threads: int, frames: list[np.ndarray], repeats: int) -> dict:
    from superpoint_ros.loader import load_frontend

    fe = load_frontend(onnx, backend="onnxruntime", threads=threads)
    for f in frames[:3]:
        fe(f)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fe(frames[i % len(frames)])
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95))}


def _mean_of(diagnostics: list[dict[str, str]], key: str) -> float:
    """Mean of one diagnostics value over the messages that have it (1 s windows)."""
    values = [float(d[key]) for d in diagnostics if key in d]
    return float(np.mean(values)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help=".onnx, or a checkpoint to export")
    p.add_argument("--rate", type=float, default=30.0, help="frames per second (30)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds measured (30)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring (3)")
    p.add_argument("--size", default="480x640", help="HEIGHTxWIDTH of the frames (480x640)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: default)")
    p.add_argument("--repeats", type=int, default=20, help="front-end timing calls (20)")
    p.add_argument("--json", default=None, help="also write the report here")
    args = p.parse_args(argv)

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import PointCloud2

    from superpoint_ros.loader import load_frontend
    from superpoint_ros.ros.conversions import numpy_to_image

    h, w = (int(v) for v in args.size.lower().split("x"))
    workdir = Path(tempfile.mkdtemp(prefix="bench_node_"))
    onnx, label = _onnx_weights(args.weights, workdir)
    frames = _frames((h, w))
    print(f"weights: {label}\nsize {h}x{w}, {args.rate:g} Hz for {args.duration:g} s")
    frontend = _frontend_time(onnx, args.threads, frames, args.repeats)
    print(f"front-end alone: {frontend['median_ms']:.1f} ms median, {frontend['p95_ms']:.1f} p95")
    baked = load_frontend(onnx, backend="onnxruntime").config.graph_key()

    domain = 150 + os.getpid() % 80
    exe = Path(sys.executable).parent / "superpoint_node"
    cmd = [
        str(exe),
        "--ros-args",
        "--params-file",
        str(REPO / "config" / "superpoint.yaml"),
        "-p",
        f"weights:={onnx}",
        "-p",
        "backend:=onnxruntime",
        "-p",
        f"threads:={args.threads}",
        "-p",
        "log_period:=5.0",
        "-r",
        "image:=/bench/image",
    ]
    for k, v in baked.items():
        cmd += ["-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}"]
    log_path = workdir / "node.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, ROS_DOMAIN_ID=str(domain))
    )

    context = Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("bench_node_load", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    pub = node.create_publisher(
        type(numpy_to_image(frames[0], "mono8")), "/bench/image", qos_profile_sensor_data
    )
    latencies: dict[int, float] = {}  # stamp ns -> latency s
    diagnostics: list[dict[str, str]] = []

    def on_features(msg) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latencies[stamp] = (now - stamp) / 1e9

    measuring = threading.Event()
    during: list[dict[str, str]] = []  # diagnostics received while measuring

    def on_diagnostics(msg) -> None:
        for s in msg.status:
            if s.name.startswith(NODE):
                values = {kv.key: kv.value for kv in s.values}
                diagnostics.append(values)
                if measuring.is_set():
                    during.append(values)

    node.create_subscription(
        PointCloud2,
        f"{NODE}/features",
        on_features,
        QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE),
    )
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    spinning = threading.Event()
    spinning.set()
    spinner = threading.Thread(
        target=lambda: [
            executor.spin_once(timeout_sec=0.01) for _ in iter(spinning.is_set, False)
        ],
        daemon=True,
    )
    spinner.start()

    messages = [numpy_to_image(f, "mono8") for f in frames]
    for m in messages:
        m.header.frame_id = "bench_camera"

    def publish_for(seconds: float) -> list[int]:
        stamps = []
        period = 1.0 / args.rate
        start = time.perf_counter()
        for i in range(int(round(seconds * args.rate))):
            delay = start + i * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            msg = messages[i % len(messages)]
            now = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
            pub.publish(msg)
            stamps.append(now)
        return stamps

    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and not (
            pub.get_subscription_count() > 0 and node.count_publishers(f"{NODE}/features") > 0
        ):
            if proc.poll() is not None:
                raise RuntimeError(f"the node exited:\n{log_path.read_text()}")
            time.sleep(0.1)
        time.sleep(1.0)
        publish_for(args.warmup)
        time.sleep(2.0)
        rss_start = _rss_kib(proc.pid)
        base = dict(diagnostics[-1]) if diagnostics else {}
        latencies.clear()
        measuring.set()
        stamps = publish_for(args.duration)
        measuring.clear()
        time.sleep(max(3.0, 3 * frontend["median_ms"] / 1e3))
        rss_end = _rss_kib(proc.pid)
        time.sleep(1.5)  # one more diagnostics period
        last = dict(diagnostics[-1])
    finally:
        spinning.clear()
        spinner.join()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        log.close()
        node.destroy_node()
        rclpy.try_shutdown(context=context)

    answered = [latencies[s] for s in stamps if s in latencies]
    lat_ms = np.array(answered) * 1e3
    window = (stamps[-1] - stamps[0]) / 1e9 if len(stamps) > 1 else args.duration
    dropped = int(last["dropped"]) - int(base.get("dropped", 0))
    report = {
        "weights": label,
        "size": [h, w],
        "rate_hz": args.rate,
        "duration_s": args.duration,
        "frames_published": len(stamps),
        "frames_answered": len(answered),
        "output_rate_hz": len(answered) / window,
        "latency_ms": {
            "p50": float(np.percentile(lat_ms, 50)) if len(lat_ms) else None,
            "p95": float(np.percentile(lat_ms, 95)) if len(lat_ms) else None,
            "max": float(lat_ms.max()) if len(lat_ms) else None,
        },
        "dropped_by_node": dropped,
        "received_by_node": int(last["received"]) - int(base.get("received", 0)),
        "frontend_ms": frontend,
        "node_processing_ms_mean": _mean_of(during, "processing_ms_mean"),
        "node_processing_ms_p95": _mean_of(during, "processing_ms_p95"),
        "node_frontend_ms_mean": _mean_of(during, "frontend_ms_mean"),
        "rss_kib": {"start": rss_start, "end": rss_end},
        "torch_imported_by_node": last.get("torch_imported"),
        "node_exit_code": code,
        "cpu_count": os.cpu_count(),
    }
    growth = (rss_end - rss_start) / rss_start
    p95 = report["latency_ms"]["p95"]
    criteria = {
        "p95 latency <= 1.5 x front-end time": p95 is not None
        and p95 <= 1.5 * frontend["median_ms"],
        "RSS growth < 5%": growth < 0.05,
        "node did not import torch": last.get("torch_imported") == "False",
    }
    report["criteria"] = criteria

    lat = report["latency_ms"]
    print(
        f"published {len(stamps)} frames, answered {len(answered)} "
        f"({report['output_rate_hz']:.2f} Hz out); node dropped {dropped} "
        f"of {report['received_by_node']} received"
    )
    if len(lat_ms):
        print(
            f"latency stamp->features: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, "
            f"max {lat['max']:.1f} ms"
        )
    print(
        f"front-end alone {frontend['median_ms']:.1f} ms median; node processing "
        f"{report['node_processing_ms_mean']:.1f} ms mean, "
        f"{report['node_processing_ms_p95']:.1f} ms p95 (front-end part "
        f"{report['node_frontend_ms_mean']:.1f} ms)"
    )
    print(
        f"node RSS {rss_start / 1024:.1f} MiB -> {rss_end / 1024:.1f} MiB "
        f"({100 * growth:+.2f}%); torch imported by the node: {last.get('torch_imported')}"
    )
    for name, ok in criteria.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if all(criteria.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
