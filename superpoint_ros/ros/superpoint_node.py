"""``superpoint_node``: camera images in; keypoints, descriptors, matches and tracks out.

Topics (``~`` is the node's name, ``/superpoint_node`` by default):

* subscribes ``image`` (``sensor_msgs/Image``, or ``sensor_msgs/CompressedImage`` with
  ``use_compressed``), sensor-data QoS (best effort, depth 1) unless the ``qos_*`` parameters
  or ROS' standard ``qos_overrides./<topic>.subscription.*`` parameters say otherwise;
* publishes ``~/features`` and ``~/matches`` (``sensor_msgs/PointCloud2``, schemas in
  ``superpoint_ros.ros.conversions`` and ``docs/ros_topics.md``), ``~/debug_image``
  (``sensor_msgs/Image`` bgr8, drawn only while someone subscribes) and ``/diagnostics``
  (``diagnostic_msgs/DiagnosticArray``). Every output header is the input image's header.

Latency never builds up: the subscription callback only drops the message into a one-slot
mailbox; a worker thread takes the newest frame, runs the front-end and publishes. A frame
replaced in the mailbox before the worker took it is counted as dropped.

The node only wires parameters, QoS, topics and threads to the pure core: parameters in
``node_config``, the hand-over to the worker in ``mailbox``, counters and health in
``node_stats``, messages in ``conversions``, matching and track ids in ``tracks``
(``FrameTracker``), drawing in ``draw``, inference in ``superpoint_ros.frontend``. With an
``.onnx`` (or engine) file and the ``onnxruntime`` (or ``tensorrt``) backend, PyTorch is never
imported (see the ``torch_imported`` diagnostics value).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import InvalidQosOverridesError, QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from ..errors import ConfigError, InputError, SuperPointError
from ..frontend import DEFAULT_WEIGHTS
from ..loader import load_frontend
from .conversions import (
    compressed_to_numpy,
    features_to_msg,
    image_to_numpy,
    matches_to_msg,
    numpy_to_image,
    stamp_ns,
)
from .draw import draw_debug_image
from .mailbox import Mailbox
from .node_common import (
    ExternalShutdownException,
    declare_parameters,
    one_line,
    shutdown,
)
from .node_config import PARAMETERS, NodeConfig, parse_node_config
from .node_stats import Stats, health, log_line
from .tracks import FrameTracker, TrackStep, frame_key

NODE_NAME = "superpoint_node"
WARN_THROTTLE_S = 5.0
OUTPUT_DEPTH = 10  # reliable, keep last 10: a consumer that stalls loses old frames, not new
PUBLISHER_CHECK_S = 2.0  # how often the node counts the publishers of its input topic

_RELIABILITY = {
    "best_effort": ReliabilityPolicy.BEST_EFFORT,
    "reliable": ReliabilityPolicy.RELIABLE,
    "system_default": ReliabilityPolicy.SYSTEM_DEFAULT,
}
_LEVELS = {
    "ok": DiagnosticStatus.OK,
    "warn": DiagnosticStatus.WARN,
    "error": DiagnosticStatus.ERROR,
}


def image_qos(cfg: NodeConfig) -> QoSProfile:
    """The image subscription's profile from the ``qos_*`` parameters (before any standard
    ``qos_overrides`` parameter, which rclpy applies on top)."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=cfg.qos_depth,
        reliability=_RELIABILITY[cfg.qos_reliability],
    )


def check_image_qos(qos: QoSProfile) -> SetParametersResult:
    """rclpy's validation callback for the image subscription's ``qos_overrides``: the depth
    range of the ``qos_depth`` parameter (1 to 1000) for a keep-last history."""
    if qos.history == HistoryPolicy.KEEP_LAST and not 1 <= qos.depth <= 1000:
        return SetParametersResult(successful=False, reason=f"depth {qos.depth} is not 1 to 1000")
    return SetParametersResult(successful=True)


def describe_qos(qos: QoSProfile) -> str:
    """``best_effort, depth 1`` (or ``..., keep all``): what the log line says."""
    history = "keep all" if qos.history == HistoryPolicy.KEEP_ALL else f"depth {qos.depth}"
    return f"{qos.reliability.name.lower()}, {history}"


class SuperPointNode(Node):
    """Declares and reads the parameters; :meth:`start` loads the model and wires the topics."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.config: NodeConfig | None = None
        self.frontend = None
        self.stats = Stats()
        self.mailbox = Mailbox()
        self.tracker: FrameTracker | None = None  # made in start(), from the match settings
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
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
        for note in cfg.notes:
            self.get_logger().warning(note)
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
            precision=cfg.precision,
            rebuild_engine=cfg.rebuild_engine,
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
            f"({cfg.precision}, descriptor dim {self.frontend.descriptor_dim}, max "
            f"{cfg.frontend.max_keypoints} "
            f"keypoints, resize {cfg.resize or 'none'}); loaded in {load_s:.1f} s; "
            f"torch {'loaded' if 'torch' in sys.modules else 'not loaded'}"
        )
        if cfg.match_mode != "off" and self.frontend.descriptor_dim == 0:
            self.get_logger().warning(
                "this model has no descriptors (MagicPoint): ~/matches stays empty"
            )

        self.tracker = FrameTracker(cfg.match if cfg.match_mode != "off" else None)
        self._create_publishers(cfg)
        if cfg.diagnostics_period > 0:
            self.create_timer(cfg.diagnostics_period, self._publish_diagnostics)
        if cfg.log_period > 0:
            self.create_timer(cfg.log_period, self._log_stats)
        self._subscribe(cfg)
        self.create_timer(PUBLISHER_CHECK_S, self._check_publishers)
        self._worker = threading.Thread(target=self._work, name="superpoint_worker", daemon=True)
        self._worker.start()

    def _create_publishers(self, cfg: NodeConfig) -> None:
        """Every output topic (a new one: its publisher here, its message in ``conversions``,
        its publish call in :meth:`_process`, its schema in ``docs/ros_topics.md``)."""
        self.features_pub = self.create_publisher(PointCloud2, "~/features", OUTPUT_DEPTH)
        if cfg.match_mode != "off":
            self.matches_pub = self.create_publisher(PointCloud2, "~/matches", OUTPUT_DEPTH)
        if cfg.publish_debug_image:
            self.debug_pub = self.create_publisher(Image, "~/debug_image", OUTPUT_DEPTH)
        if cfg.diagnostics_period > 0:
            self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", OUTPUT_DEPTH)

    def _subscribe(self, cfg: NodeConfig) -> None:
        """The image subscription: the ``qos_*`` parameters give its profile, which ROS'
        standard ``qos_overrides./<topic>.subscription.{history,depth,reliability}`` parameters
        (rclpy's ``QoSOverridingOptions``) override where given."""
        msg_type = CompressedImage if cfg.use_compressed else Image
        try:
            self.image_sub = self.create_subscription(
                msg_type,
                "image",
                self._on_image,
                image_qos(cfg),
                qos_overriding_options=QoSOverridingOptions.with_default_policies(
                    callback=check_image_qos
                ),
            )
        except (
            InvalidQosOverridesError,
            InvalidParameterTypeException,
            InvalidParameterValueException,
        ) as exc:
            raise ConfigError(f"image subscription: {one_line(exc)}") from None
        except RuntimeError as exc:  # rclpy: "Unexpected QoS override for policy ..."
            if "QoS override" not in str(exc):
                raise
            raise ConfigError(f"image subscription: {one_line(exc)}") from None
        topic = self.image_sub.topic_name
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        stray = sorted(
            n
            for n in overrides
            if n.startswith("qos_overrides.") and not n.startswith(f"qos_overrides.{topic}.")
        )
        if stray:  # e.g. written for the topic before a remap: rclpy would ignore them silently
            self.get_logger().warning(
                f"ignoring {stray}: the only QoS the node takes overrides for is its image "
                f"subscription, qos_overrides.{topic}.subscription.*"
            )
        self.get_logger().info(
            f"listening on {topic} ({msg_type.__name__}, "
            f"{describe_qos(self.image_sub.qos_profile)})"
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
        self.stats.frame_received()
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
        """Worker thread, one frame: decode, infer, publish features, match against the
        previous frame (track ids), publish matches and the debug image, count."""
        t0 = time.perf_counter()
        image = self._to_numpy(msg)
        t1 = time.perf_counter()
        result = self.frontend(image)
        t2 = time.perf_counter()
        header = msg.header
        keypoints = result["keypoints"]
        self.features_pub.publish(
            features_to_msg(header, keypoints, result["scores"], result["descriptors"])
        )
        step = self.tracker.step(
            frame_key(header.frame_id, image.shape, stamp_ns(header)),
            keypoints,
            result["descriptors"],
        )
        if step.reset is not None:
            self._report_track_reset(*step.reset)
        if self.matches_pub is not None:
            self.matches_pub.publish(
                matches_to_msg(
                    header,
                    step.kpts0,
                    step.kpts1,
                    step.similarity,
                    step.matches[:, 0],
                    step.matches[:, 1],
                    step.track_ids,
                )
            )
        self._publish_debug_image(header, image, keypoints, step)
        self.stats.frame_processed(
            time.perf_counter() - t0, t2 - t1, len(keypoints), len(step.matches)
        )

    def _publish_debug_image(
        self, header: Any, image: np.ndarray, keypoints: np.ndarray, step: TrackStep
    ) -> None:
        """Draw and publish ``~/debug_image``, only while someone subscribes (drawing costs)."""
        if self.debug_pub is None or self.debug_pub.get_subscription_count() == 0:
            return
        drawn = draw_debug_image(image, keypoints, step.kpts0, step.kpts1, step.track_ids)
        self.debug_pub.publish(numpy_to_image(drawn, "bgr8", header))
        self.stats.count("debug_images")

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
        new = self.stats.new_since_last_look(
            "diagnostics", w, ("bad_inputs", "errors", "track_resets")
        )
        level, message = health(w, new, self.input_publishers, self.last_track_reset)
        status = DiagnosticStatus()
        status.name = f"{self.get_fully_qualified_name()}: SuperPoint front-end"
        status.hardware_id = self.frontend.backend_name
        status.level, status.message = _LEVELS[level], message
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
        new = self.stats.new_since_last_look("log", w, ("dropped",))
        self.get_logger().info(log_line(w, new["dropped"]))


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
