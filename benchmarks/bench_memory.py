"""Memory of ``superpoint_node`` per frame size: what a robot must budget, and that one large frame
does not keep its memory.

Two measurements, each in fresh processes:

1. **The real node** (``.venv/bin/superpoint_node``, ONNX Runtime backend, an ``.onnx``
   front-end, ``max_image_pixels`` set to the largest size asked for, a reliable subscription:
   over best effort a multi-megabyte frame is lost whenever one of its DDS fragments is) is
   sent one ``mono8`` frame
   of each size in increasing order (a real photo, stretched), then a 480x640 frame again. After
   each answer the node's ``VmRSS`` (resident now) and ``VmHWM`` (peak since start; the sizes
   increase, so it is that frame's peak) are read from ``/proc/<pid>/status``.
2. **ONNX Runtime alone** (the backend in a child process, same ``.onnx``), with its CPU memory
   arena on (ONNX Runtime's default) and off (this project's setting), the same frames: the
   difference the arena makes.

Run: ``.venv/bin/python benchmarks/bench_memory.py`` (a few minutes on 2 CPU cores; the
largest frame takes seconds). Options: ``--weights`` (an ``.onnx``, or a checkpoint exported
here; default the packaged model, ``paper`` for the random-weights paper-size network),
``--sizes 480x640,1080x1920,2160x3840``, ``--threads``, ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
NODE = "/superpoint_node"
DEFAULT_SIZES = "480x640,1080x1920,2160x3840"


def _status_mib(pid: int | str) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _onnx(weights: str | None, workdir: Path) -> tuple[Path, str]:
    if weights and weights.endswith(".onnx"):
        return Path(weights), weights
    from superpoint_ros.frontend import DEFAULT_WEIGHTS, FrontendConfig
    from superpoint_ros.model.weights import load_weights
    from superpoint_ros.onnx_export import export_onnx

    if weights == "paper":
        sys.path.insert(0, str(Path(__file__).parent))
        from _random_model import random_onnx

        return random_onnx(workdir), "paper-size network, random weights"
    source = Path(weights) if weights else DEFAULT_WEIGHTS
    return export_onnx(load_weights(source), workdir / "bench.onnx", FrontendConfig()), str(source)


def _frame(size: tuple[int, int]) -> np.ndarray:
    from skimage.data import camera

    return cv2.resize(camera(), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


_CHILD = r"""
import json, sys, time, numpy as np
from superpoint_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
def status():
    f = dict(l.split(":", 1) for l in open("/proc/self/status"))
    return int(f["VmRSS"].split()[0]) / 1024, int(f["VmHWM"].split()[0]) / 1024
path, arena, threads, sizes = sys.argv[1], sys.argv[2] == "on", int(sys.argv[3]), sys.argv[4:]
backend = OnnxRuntimeBackend(path, threads=threads, cpu_arena=arena)
backend.infer(np.zeros((1, 1, 240, 320), np.float32))
rows = [["loaded", *status(), 0.0]]
rng = np.random.default_rng(0)
for size in sizes:
    h, w = map(int, size.split("x"))
    t = time.perf_counter()
    backend.infer(rng.random((1, 1, h, w), dtype=np.float32))
    rows.append([size, *status(), time.perf_counter() - t])
print(json.dumps(rows))
"""


def _ort_alone(onnx: Path, arena: bool, threads: int, sizes: list[str]) -> list:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(onnx), "on" if arena else "off", str(threads), *sizes],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _node(onnx: Path, threads: int, sizes: list[tuple[int, int]], workdir: Path) -> list:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    from superpoint_ros.loader import load_frontend
    from superpoint_ros.ros.conversions import numpy_to_image

    domain = 100 + os.getpid() % 100
    baked = load_frontend(onnx, backend="onnxruntime").config
    largest = max(h * w for h, w in sizes)
    cmd = [
        str(Path(sys.executable).parent / "superpoint_node"), "--ros-args",
        "--params-file", str(REPO / "config" / "superpoint.yaml"),
        "-p", f"weights:={onnx}", "-p", "backend:=onnxruntime", "-p", f"threads:={threads}",
        "-p", f"max_keypoints:={baked.max_keypoints}", "-p", f"max_image_pixels:={largest}",
        "-p", "publish_debug_image:=false", "-p", "qos_reliability:=reliable",
        "-r", "image:=/bench/image",
    ]  # fmt: skip
    log = open(workdir / "node.log", "w")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, ROS_DOMAIN_ID=str(domain))
    )
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("bench_memory", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Image, "/bench/image", reliable)
    answered: set[int] = set()
    node.create_subscription(
        PointCloud2, f"{NODE}/features", lambda m: answered.add(m.header.stamp.sec), reliable
    )

    def spin_until(predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not predicate():
            if proc.poll() is not None:
                raise RuntimeError(f"the node exited: {(workdir / 'node.log').read_text()}")
            executor.spin_once(timeout_sec=0.05)
        return predicate()

    rows = []
    try:
        if not spin_until(lambda: pub.get_subscription_count() > 0, 120):
            raise RuntimeError("the node did not subscribe")
        executor.spin_once(timeout_sec=0.5)
        rows.append(["started", *_status_mib(proc.pid), 0.0])
        for k, size in enumerate([*sizes, sizes[0]], start=1):
            msg = numpy_to_image(_frame(size), "mono8")
            msg.header.stamp.sec, msg.header.frame_id = k, "bench_camera"
            t = time.perf_counter()
            pub.publish(msg)
            if not spin_until(lambda k=k: k in answered, 300):
                raise RuntimeError(f"no answer for {size}: {(workdir / 'node.log').read_text()}")
            seconds = time.perf_counter() - t
            time.sleep(0.5)  # let the worker finish publishing and free the frame
            rows.append([f"{size[0]}x{size[1]}", *_status_mib(proc.pid), seconds])
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return rows


def _table(title: str, rows: list) -> str:
    lines = [title, f"  {'frame':>12} {'RSS after MiB':>14} {'peak MiB':>9} {'seconds':>8}"]
    for name, rss, hwm, seconds in rows:
        lines.append(f"  {name:>12} {rss:14.0f} {hwm:9.0f} {seconds:8.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help=".onnx, a checkpoint, or 'paper' (default: packaged)")
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help=f"HxW,... (default {DEFAULT_SIZES})")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = default)")
    ap.add_argument("--skip-ort", action="store_true", help="only the node")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    names = [f"{h}x{w}" for h, w in sizes]
    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        onnx, source = _onnx(args.weights, Path(tmp))
        print(f"model: {source}; threads {args.threads or 'default'}")
        report["node"] = _node(onnx, args.threads, sizes, Path(tmp))
        print(_table("superpoint_node (arena off), one frame each, then 480x640 again:",
                     report["node"]))  # fmt: skip
        if not args.skip_ort:
            for arena in ("on", "off"):
                rows = _ort_alone(onnx, arena == "on", args.threads, [*names, names[0]])
                report[f"ort_arena_{arena}"] = rows
                print(_table(f"ONNX Runtime alone, CPU arena {arena}:", rows))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
