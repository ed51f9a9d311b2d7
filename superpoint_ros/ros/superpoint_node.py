"""``superpoint_node``: camera images in; keypoints, descriptors, matches and tracks out.

Topics (``~`` is the node's name, ``/superpoint_node`` by default):

* subscribes ``image`` (``sensor_msgs/Image``, or ``sensor_msgs/CompressedImage`` with
  ``use_compressed``), sensor-data QoS (best effort, depth 1) unless overridden;
* publishes ``~/features`` and ``~/matches`` (``sensor_msgs/PointCloud2``, schemas in
  ``superpoint_ros.ros.conversions`` and ``docs/ros_topics.md``), ``~/debug_image``
  (``sensor_msgs/Image`` bgr8, drawn only while someone subscribes) and ``/diagnostics``
  (``diagnostic_msgs/DiagnosticArray``). Every output header is the input image's header.

Latency never builds up: the subscription callback only drops the message into a one-slot
mailbox; a worker thread takes the newest frame, runs the front-end and publishes. A frame
replaced in the mailbox before the worker took it is counted as dropped.

The node only wires parameters, QoS, topics and threads to the pure core: parameters in
``node_config``, messages in ``conversions``, track ids in ``tracks``, drawing in ``draw``,
inference in ``superpoint_ros.frontend``. With an ``.onnx`` (or engine) file and the
``onnxruntime`` (or ``tensorrt``) backend, PyTorch is never imported (see the
``torch_imported`` diagnostics value).
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from ..errors import InputError, SuperPointError
from ..frontend import DEFAULT_WEIGHTS
from ..loader import load_frontend
from ..matching import match_descriptors
from .conversions import (
    compressed_to_numpy,
    features_to_msg,
    image_to_numpy,
    matches_to_msg,
    numpy_to_image,
)
from .draw import draw_debug_image
from .node_common import (
    ExternalShutdownException,
    declare_parameters,
    one_line,
    shutdown,
)
from .node_config import PARAMETERS, NodeConfig, parse_node_config
from .tracks import TrackIds, one_to_one, track_break_reason

NODE_NAME = "superpoint_node"
WARN_THROTTLE_S = 5.0
OUTPUT_DEPTH = 10  # reliable, keep last 10: a consumer that stalls loses old frames, not new

_RELIABILITY = {
    "best_effort": ReliabilityPolicy.BEST_EFFORT,
    "reliable": ReliabilityPolicy.RELIABLE,
    "system_default": ReliabilityPolicy.SYSTEM_DEFAULT,
}


class Mailbox:
    """One slot: ``put`` replaces what the consumer has not taken yet (newest frame wins)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False

    def put(self, item: Any) -> bool:
        """Store ``item``; True when it replaced an item nobody took (a dropped frame)."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self._cond.notify()
        return replaced

    def take(self, timeout: float) -> Any:
        """The stored item (emptying the slot), or None after ``timeout`` s or when closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


# Counts since start, reported in /diagnostics and the log line.
COUNTERS = ("received", "processed", "dropped", "bad_inputs", "errors", "track_resets",
            "debug_images")  # fmt: skip
PUBLISHER_CHECK_S = 2.0  # how often the node counts the publishers of its input topic


class Stats:
    """Counters and recent timings, shared by the worker and the executor's timers."""

    def __init__(self, keep: int = 20000) -> None:
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.counts = collections.Counter()
        self.received = collections.deque(maxlen=keep)  # monotonic arrival times
        # (monotonic end time, processing s, front-end s, keypoints, matches)
        self.processed = collections.deque(maxlen=keep)

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] += n

    def window(self, seconds: float) -> dict[str, float]:
        """Rates and timings over the last ``seconds`` (or since start, if shorter)."""
        now = time.monotonic()
        span = max(1e-6, min(seconds, now - self.start))
        with self.lock:
            received = sum(1 for t in self.received if t > now - span)
            done = [p for p in self.processed if p[0] > now - span]
            counts = dict(self.counts)
        out = {"input_rate_hz": received / span, "output_rate_hz": len(done) / span}
        if done:
            proc = np.array([p[1] for p in done]) * 1e3
            front = np.array([p[2] for p in done]) * 1e3
            out.update(
                processing_ms_mean=float(proc.mean()),
                processing_ms_p95=float(np.percentile(proc, 95)),
                processing_ms_max=float(proc.max()),
                frontend_ms_mean=float(front.mean()),
                keypoints_mean=float(np.mean([p[3] for p in done])),
                matches_mean=float(np.mean([p[4] for p in done])),
            )
        for name in COUNTERS:
            out[name] = counts.get(name, 0)
        return out


@dataclass
class _Frame:
    """What the next frame is matched against."""

    key: tuple  # (frame_id, height, width, stamp ns): see tracks.track_break_reason
    keypoints: np.ndarray
    descriptors: np.ndarray


class SuperPointNode(Node):
    """Declares and reads the parameters; :meth:`start` loads the model and wires the topics."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.config: NodeConfig | None = None
        self.frontend = None
        self.stats = Stats()
        self.mailbox = Mailbox()
        self.tracks = TrackIds()
        self._previous: _Frame | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_report = {"dropped": 0, "bad_inputs": 0, "errors": 0, "track_resets": 0}
        self.last_track_reset = ""  # reason of the latest track reset, for /diagnostics
        self._reset_logged: dict[str, float] = {}  # kind of reset -> monotonic time logged
        self.input_publishers = 0  # publishers on the image topic at the last check
        self.debug_pub = None
        self.matches_pub = None

    # ---------------------------------------------------------------------------------- setup

    def read_config(self) -> NodeConfig:
        """Declare every parameter of the table and parse the values (ConfigError if bad)."""
        values = declare_parameters(self, PARAMETERS)
        if values["weights"]:
            values["weights"] = os.path.expanduser(values["weights"])
        return parse_node_config(values)

    def start(self) -> None:
        """Load the front-end (start-up errors raise ``SuperPointError``) and wire everything."""
        cfg = self.config = self.read_config()
        if cfg.weights is None and not DEFAULT_WEIGHTS.is_file():
            raise SuperPointError(
                f"no default model at {DEFAULT_WEIGHTS}; set the weights parameter to a .pt, "
                ".onnx or .engine file"
            )
        t0 = time.perf_counter()
        self.frontend = load_frontend(
            cfg.weights,
            cfg.backend,
            cfg.frontend_overrides(),
            fp16=cfg.fp16,
            cache_dir=cfg.cache_dir,
            threads=cfg.threads,
        )
        warm = cfg.resize or (240, 320)
        self.frontend(np.zeros(warm, np.uint8))  # builds lazy state; fails here, not later
        load_s = time.perf_counter() - t0
        info = self.frontend.backend.info
        where = info.details.get("providers") or info.details.get("device") or ""
        self.get_logger().info(
            f"model {cfg.weights or 'default'} on {self.frontend.backend_name} {where} "
            f"(descriptor dim {self.frontend.descriptor_dim}, max {cfg.frontend.max_keypoints} "
            f"keypoints, resize {cfg.resize or 'none'}); loaded in {load_s:.1f} s; "
            f"torch {'loaded' if 'torch' in sys.modules else 'not loaded'}"
        )
        if cfg.match_mode != "off" and self.frontend.descriptor_dim == 0:
            self.get_logger().warning(
                "this model has no descriptors (MagicPoint): ~/matches stays empty"
            )

        self.features_pub = self.create_publisher(PointCloud2, "~/features", OUTPUT_DEPTH)
        if cfg.match_mode != "off":
            self.matches_pub = self.create_publisher(PointCloud2, "~/matches", OUTPUT_DEPTH)
        if cfg.publish_debug_image:
            self.debug_pub = self.create_publisher(Image, "~/debug_image", OUTPUT_DEPTH)
        if cfg.diagnostics_period > 0:
            self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", OUTPUT_DEPTH)
            self.create_timer(cfg.diagnostics_period, self._publish_diagnostics)
        if cfg.log_period > 0:
            self.create_timer(cfg.log_period, self._log_stats)

        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=cfg.qos_depth,
            reliability=_RELIABILITY[cfg.qos_reliability],
        )
        msg_type = CompressedImage if cfg.use_compressed else Image
        self.image_sub = self.create_subscription(msg_type, "image", self._on_image, qos)
        self.create_timer(PUBLISHER_CHECK_S, self._check_publishers)
        self._worker = threading.Thread(target=self._work, name="superpoint_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"listening on {self.image_sub.topic_name} ({msg_type.__name__}, "
            f"{cfg.qos_reliability}, depth {cfg.qos_depth})"
        )

    def destroy_node(self) -> None:
        self._stop.set()
        self.mailbox.close()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
        super().destroy_node()

    # ------------------------------------------------------------------------------- runtime

    def _on_image(self, msg: Image | CompressedImage) -> None:
        """Executor thread: only hand the frame over (never blocks on inference)."""
        with self.stats.lock:
            self.stats.counts["received"] += 1
            self.stats.received.append(time.monotonic())
        if self.mailbox.put(msg):
            self.stats.count("dropped")

    def _work(self) -> None:
        while not self._stop.is_set():
            msg = self.mailbox.take(timeout=0.2)
            if msg is None:
                continue
            try:
                self._process(msg)
            except InputError as exc:
                self.stats.count("bad_inputs")
                self.get_logger().warning(
                    f"skipping a bad input frame (stamp {msg.header.stamp.sec}."
                    f"{msg.header.stamp.nanosec:09d}, frame_id {msg.header.frame_id!r}): "
                    f"{one_line(exc)}",
                    throttle_duration_sec=WARN_THROTTLE_S,
                )
            except Exception as exc:  # a bug or a backend failure: keep serving, say it loudly
                if self._stop.is_set() or not self.context.ok():
                    return  # shutting down: publishers are gone
                self.stats.count("errors")
                self.get_logger().error(
                    f"frame failed: {type(exc).__name__}: {one_line(exc)}\n"
                    + traceback.format_exc(),
                    throttle_duration_sec=WARN_THROTTLE_S,
                )

    def _to_numpy(self, msg: Image | CompressedImage) -> np.ndarray:
        cfg = self.config
        if isinstance(msg, CompressedImage):
            return compressed_to_numpy(
                msg, max_pixels=cfg.max_image_pixels, mono16_shift=cfg.mono16_shift
            )
        return image_to_numpy(msg, max_pixels=cfg.max_image_pixels, mono16_shift=cfg.mono16_shift)

    def _process(self, msg: Image | CompressedImage) -> None:
        t0 = time.perf_counter()
        image = self._to_numpy(msg)
        t1 = time.perf_counter()
        result = self.frontend(image)
        t2 = time.perf_counter()
        keypoints, descriptors = result["keypoints"], result["descriptors"]
        header = msg.header
        self.features_pub.publish(
            features_to_msg(header, keypoints, result["scores"], descriptors)
        )

        # Tracks break where matching the previous frame makes no sense; say why, once per 5 s.
        stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        key = (header.frame_id, image.shape[0], image.shape[1], stamp_ns)
        previous = self._previous
        reason = track_break_reason(previous.key, key) if previous is not None else None
        if reason is not None:
            previous = None
            self.tracks.reset()
            self._report_track_reset(*reason)
        matches = np.zeros((0, 2), np.int64)
        distances = np.zeros(0, np.float32)
        if previous is not None and descriptors.shape[1] and self.matches_pub is not None:
            matches, distances = match_descriptors(
                previous.descriptors, descriptors, self.config.match
            )
            if not self.config.match.mutual:
                matches, distances = one_to_one(matches, distances)
        track_ids = self.tracks.update(len(keypoints), matches)
        kpts0 = previous.keypoints[matches[:, 0]] if previous is not None else np.zeros((0, 2))
        kpts1 = keypoints[matches[:, 1]]
        if self.matches_pub is not None:
            similarity = 1.0 - 0.5 * distances.astype(np.float32) ** 2  # cosine similarity
            self.matches_pub.publish(
                matches_to_msg(
                    header, kpts0, kpts1, similarity, matches[:, 0], matches[:, 1], track_ids
                )
            )
        self._previous = _Frame(key, keypoints, descriptors)

        if self.debug_pub is not None and self.debug_pub.get_subscription_count() > 0:
            drawn = draw_debug_image(image, keypoints, kpts0, kpts1, track_ids)
            self.debug_pub.publish(numpy_to_image(drawn, "bgr8", header))
            self.stats.count("debug_images")
        t3 = time.perf_counter()
        with self.stats.lock:
            self.stats.counts["processed"] += 1
            self.stats.processed.append(
                (time.monotonic(), t3 - t0, t2 - t1, len(keypoints), len(matches))
            )

    # --------------------------------------------------------------------------- reporting

    def _report_track_reset(self, kind: str, text: str) -> None:
        """Count a track reset and log it, at most once per ``WARN_THROTTLE_S`` for each kind
        (frame_id, size, stamp), so one kind of reset never hides another."""
        self.stats.count("track_resets")
        self.last_track_reset = text
        now = time.monotonic()
        if now - self._reset_logged.get(kind, -WARN_THROTTLE_S) >= WARN_THROTTLE_S:
            self._reset_logged[kind] = now
            self.get_logger().warning(
                f"tracks reset: {text}; no matches against the previous frame"
            )

    def _check_publishers(self) -> None:
        """Warn when the image topic has more than one publisher: frames of two cameras on one
        topic (same size and frame_id) would be matched against each other, bogus tracks the
        pixels cannot reveal. Said again whenever the number of publishers changes."""
        topic = self.image_sub.topic_name
        count = self.count_publishers(topic)
        if count == self.input_publishers:
            return
        self.input_publishers = count
        if count > 1:
            nodes = sorted(
                f"{i.node_namespace.rstrip('/')}/{i.node_name}"
                for i in self.get_publishers_info_by_topic(topic)
            )
            self.get_logger().warning(
                f"{count} publishers on {topic} ({', '.join(nodes)}): frames from different "
                "sources are matched against each other and make bogus tracks; give each camera "
                "its own topic"
            )

    def _publish_diagnostics(self) -> None:
        cfg = self.config
        w = self.stats.window(max(cfg.diagnostics_period, 1.0))
        new_bad = w["bad_inputs"] - self._last_report["bad_inputs"]
        new_errors = w["errors"] - self._last_report["errors"]
        new_resets = w["track_resets"] - self._last_report["track_resets"]
        self._last_report.update(
            bad_inputs=w["bad_inputs"], errors=w["errors"], track_resets=w["track_resets"]
        )
        status = DiagnosticStatus()
        status.name = f"{self.get_fully_qualified_name()}: SuperPoint front-end"
        status.hardware_id = self.frontend.backend_name
        if new_errors:
            status.level, status.message = DiagnosticStatus.ERROR, f"{new_errors} frames failed"
        elif new_bad:
            status.level, status.message = DiagnosticStatus.WARN, f"{new_bad} bad input frames"
        elif self.input_publishers > 1:
            status.level = DiagnosticStatus.WARN
            status.message = f"{self.input_publishers} publishers on the image topic"
        elif w["received"] == 0:
            status.level, status.message = DiagnosticStatus.OK, "waiting for images"
        else:
            status.level, status.message = DiagnosticStatus.OK, "ok"
        if new_resets and status.level == DiagnosticStatus.OK:
            status.message += f"; {new_resets} track resets ({self.last_track_reset})"
        values = {
            "backend": self.frontend.backend_name,
            "weights": cfg.weights or "default",
            "descriptor_dim": self.frontend.descriptor_dim,
            "torch_imported": "torch" in sys.modules,
            **w,
            "last_track_reset": self.last_track_reset,
            "input_publishers": self.input_publishers,
        }
        status.values = [
            KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v))
            for k, v in values.items()
        ]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self.diag_pub.publish(array)

    def _log_stats(self) -> None:
        w = self.stats.window(self.config.log_period)
        dropped = w["dropped"] - self._last_report["dropped"]
        self._last_report["dropped"] = w["dropped"]
        timing = (
            f"processing {w['processing_ms_mean']:.1f} ms mean / {w['processing_ms_p95']:.1f} "
            f"p95 (front-end {w['frontend_ms_mean']:.1f}), {w['keypoints_mean']:.0f} keypoints, "
            f"{w['matches_mean']:.0f} matches"
            if "processing_ms_mean" in w
            else "nothing processed"
        )
        self.get_logger().info(
            f"in {w['input_rate_hz']:.1f} Hz, out {w['output_rate_hz']:.1f} Hz, {timing}; "
            f"dropped {dropped} (total {w['dropped']}), bad inputs {w['bad_inputs']}, "
            f"errors {w['errors']}, track resets {w['track_resets']}"
        )


def main(args: list[str] | None = None) -> int:
    """Entry point of ``superpoint_node``: 0 after a normal shutdown, 1 on a start-up error."""
    rclpy.init(args=args)
    node: SuperPointNode | None = None
    try:
        node = SuperPointNode()
        logger = node.get_logger()
        try:
            node.start()
        except SuperPointError as exc:
            logger.fatal(f"cannot start: {one_line(exc)}")
            return 1
        except (KeyboardInterrupt, ExternalShutdownException):
            raise
        except Exception as exc:  # not a user error: one line here, the traceback at debug
            logger.fatal(f"cannot start: {type(exc).__name__}: {one_line(exc)}")
            logger.debug(traceback.format_exc())
            return 1
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
