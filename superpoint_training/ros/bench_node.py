"""``bench_node``: replay an HPatches bag through ``superpoint_node`` and score the answers.

Topics (remap them; ``launch/bench.launch.py`` does):

* publishes ``image`` (``sensor_msgs/Image``, ``mono8`` under the pinned protocol; reliable,
  depth 10, which also feeds a best-effort subscription): every image of the bag that the
  protocol uses, once stretched to ``rep_size`` and once to ``hom_size``, each with a fresh
  header stamp and the bag's frame id (``"v_graffiti/3"``);
* subscribes ``features`` (``sensor_msgs/PointCloud2``, the node's ``~/features``; reliable,
  depth 100) and matches each answer to its image by header stamp and frame id.

Both take ROS' standard QoS overrides (``qos_overrides./<topic>.publisher.*`` and
``.subscription.*``: history, depth, reliability), like ``superpoint_node``'s image input.

In lockstep mode (``rate`` 0) the next frame goes out when the previous one was answered or
timed out; with ``rate`` > 0 frames go out on a fixed clock, as a camera would send them, and
the node's newest-frame-only policy drops what it cannot keep up with. When the bag is done the
node scores the answers with the offline evaluation's code
(:mod:`superpoint_training.ros.bench`), writes ``metrics.json`` + ``report.md`` (+ plots) into
``output_dir``, logs one summary line and exits (so ``ros2 launch`` ends).

Single-threaded on purpose: the main loop publishes and calls ``rclpy.spin_once`` while it
waits, so every answer is handled as soon as it arrives and no state is shared across threads.
"""

from __future__ import annotations

import sys
import time
import traceback
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters
from rclpy.node import Node
from rclpy.parameter import parameter_value_to_python
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image, PointCloud2

from superpoint_ros.errors import InputError, SuperPointError
from superpoint_ros.ros.conversions import (
    features_from_msg,
    header_at,
    numpy_to_image,
    stamp_ns,
)
from superpoint_ros.ros.node_common import (
    ExternalShutdownException,
    declare_parameters,
    one_line,
    shutdown,
)
from superpoint_ros.ros.node_config import PARAMETER_NAMES as NODE_PARAMETER_NAMES
from superpoint_training.bags.reader import bag_topics, read_hpatches_bag
from superpoint_training.evaluation import pair_metrics, results
from superpoint_training.evaluation import report as eval_report
from superpoint_training.ros import bench as B
from superpoint_training.ros.bench_config import PARAMETERS, BenchConfig, parse_bench_config

NODE_NAME = "bench_node"
SPIN_STEP_S = 0.05  # longest blocking spin while waiting (timeouts are checked in between)
PARAM_QUERY_S = 5.0  # how long to wait for the SuperPoint node's get_parameters service


class BenchNode(Node):
    """Declares and reads the parameters; :meth:`run` replays the bag and writes the report."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.config = self._read_config()
        self.pub = self.create_publisher(
            Image,
            "image",
            QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE
            ),
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
        self.sub = self.create_subscription(
            PointCloud2,
            "features",
            self._on_features,
            QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE
            ),
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
        # key (stamp ns, frame id) -> (frame, publish time, its SequenceRun or None for warm-up)
        self.inflight: dict[tuple[int, str], tuple[B.Frame, float, B.SequenceRun | None]] = {}
        self.expired: dict[tuple[int, str], B.FrameLog | None] = {}
        self.logs: list[B.FrameLog] = []
        self.runs: list[B.SequenceRun] = []
        self.records: list[dict[str, Any]] = []
        self.sequences: dict[str, str] = {}
        self.match_figures: list[str] = []
        self.descriptor_dim: int | None = None
        self.first_publish: float | None = None
        self.last_event: float | None = None
        self.unexpected = 0
        self.metric_seconds = 0.0
        self.bad_answers = 0
        self._last_stamp = 0
        self.method: B.NodeMethod | None = None

    # ---------------------------------------------------------------------------------- setup

    def _read_config(self) -> BenchConfig:
        """Declare the table's parameters and parse them (``ConfigError`` if bad)."""
        return parse_bench_config(declare_parameters(self, PARAMETERS))

    def wait_for_node(self) -> None:
        """Block until the SuperPoint node subscribes to ``image`` and offers ``features``."""
        deadline = time.monotonic() + self.config.startup_timeout
        while time.monotonic() < deadline:
            if self.pub.get_subscription_count() > 0 and self.sub.get_publisher_count() > 0:
                return
            rclpy.spin_once(self, timeout_sec=0.1)
        raise SuperPointError(
            f"no SuperPoint node after {self.config.startup_timeout:g} s: "
            f"{self.pub.get_subscription_count()} subscriber(s) on {self.pub.topic_name}, "
            f"{self.sub.get_publisher_count()} publisher(s) on {self.sub.topic_name} "
            "(start superpoint_node and remap image/features, or use launch/bench.launch.py)"
        )

    def node_parameters(self) -> dict[str, Any]:
        """The SuperPoint node's parameters via its ``get_parameters`` service ({} if none)."""
        name = self.config.node_name
        if not name:
            return {}
        client = self.create_client(GetParameters, f"{name.rstrip('/')}/get_parameters")
        try:
            if not client.wait_for_service(timeout_sec=PARAM_QUERY_S):
                self.get_logger().warning(f"{name} offers no get_parameters service")
                return {}
            future = client.call_async(GetParameters.Request(names=list(NODE_PARAMETER_NAMES)))
            rclpy.spin_until_future_complete(self, future, timeout_sec=PARAM_QUERY_S)
            if not future.done() or future.result() is None:
                self.get_logger().warning(f"{name} did not answer get_parameters")
                return {}
            values = future.result().values
            return {
                n: parameter_value_to_python(v)
                for n, v in zip(NODE_PARAMETER_NAMES, values)
                if v.type != ParameterType.PARAMETER_NOT_SET
            }
        finally:
            self.destroy_client(client)

    # ------------------------------------------------------------------------------- runtime

    def _stamp_ns(self) -> int:
        """Strictly increasing header stamps (the node clock; +1 ns on ties)."""
        self._last_stamp = max(self.get_clock().now().nanoseconds, self._last_stamp + 1)
        return self._last_stamp

    def publish(self, frame: B.Frame, run: B.SequenceRun | None) -> tuple[int, str]:
        stamp = self._stamp_ns()
        header = header_at(stamp, frame.frame_id)
        encoding = "mono8" if frame.image.ndim == 2 else "bgr8"
        msg = numpy_to_image(frame.image, encoding, header)
        key = (stamp, frame.frame_id)
        now = time.perf_counter()
        self.inflight[key] = (frame, now, run)
        if run is not None and self.first_publish is None:
            self.first_publish = now
        self.pub.publish(msg)
        return key

    def _on_features(self, msg: PointCloud2) -> None:
        now = time.perf_counter()
        key = (stamp_ns(msg.header), msg.header.frame_id)
        entry = self.inflight.pop(key, None)
        if entry is None:
            if key in self.expired:
                log = self.expired.pop(key)
                if log is not None:
                    log.late = True
            else:
                self.unexpected += 1
            return
        frame, published, run = entry
        try:
            features = features_from_msg(msg)
        except InputError as exc:
            self.bad_answers += 1
            self.get_logger().warning(f"unreadable features for {frame.frame_id}: {exc}")
            features = None
        if features is not None:
            self.descriptor_dim = int(features["descriptors"].shape[1])
        if run is None:  # warm-up
            return
        pred = None if features is None else B.prediction(features, frame.max_keypoints)
        run.predictions[(frame.pass_, frame.index)] = pred
        latency = None if pred is None else now - published
        self.logs.append(B.FrameLog(frame.sequence, frame.index, frame.pass_, latency))
        self.last_event = now

    def _expire(self) -> None:
        now = time.perf_counter()
        for key, (frame, published, run) in list(self.inflight.items()):
            if now - published <= self.config.timeout:
                continue
            del self.inflight[key]
            log = None
            if run is not None:
                run.predictions[(frame.pass_, frame.index)] = None
                log = B.FrameLog(frame.sequence, frame.index, frame.pass_, None)
                self.logs.append(log)
                self.last_event = published + self.config.timeout
            self.expired[key] = log

    def _spin_until(self, done, deadline: float) -> None:
        """Handle answers and timeouts until ``done()`` or ``deadline`` (perf_counter s)."""
        while not done():
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            rclpy.spin_once(self, timeout_sec=min(SPIN_STEP_S, remaining))
            self._expire()
        self._expire()

    def _finish_runs(self) -> None:
        for run in [r for r in self.runs if r.complete()]:
            self.runs.remove(run)
            self._score(run)

    def _score(self, run: B.SequenceRun) -> None:
        cfg, p = self.config, self.config.protocol
        dim = self.descriptor_dim if self.descriptor_dim is not None else 1
        t0 = time.perf_counter()
        records = B.sequence_records(self.method, run, p, dim)
        target = cfg.match_pair or p.targets[len(p.targets) // 2]
        for rec in records:
            if cfg.plots and rec["pair"] == f"{p.reference}-{target}":
                fig = B.draw_sequence_matches(self.method, run, rec, p, cfg.output_dir)
                if fig:
                    self.match_figures.append(fig)
            self.records.append(pair_metrics.public_record(rec))
        self.metric_seconds += time.perf_counter() - t0
        answered = [g for g in self.logs if g.sequence == run.name and g.latency is not None]
        lat = B.latency_summary(g.latency for g in answered)
        acc = pair_metrics.summarise(records, p.eps)["homography_accuracy"] if records else {}
        number = list(self.sequences).index(run.name) + 1
        self.get_logger().info(
            f"sequence {number} {run.name}: {len(answered)}/{len(run.frames)} "
            f"frames answered, latency p50 {B._ms(lat['p50_ms'])} ms, homography accuracy "
            + "/".join("-" if v is None else f"{v:.2f}" for v in acc.values())
        )

    def _send(self, frame: B.Frame, run: B.SequenceRun | None, next_time: float) -> float:
        """Publish one frame (lockstep: and wait for it); returns the next rate slot."""
        cfg = self.config
        if cfg.rate > 0:
            self._spin_until(lambda: False, next_time)
            self.publish(frame, run)
            return max(next_time, time.perf_counter()) + 1.0 / cfg.rate
        key = self.publish(frame, run)
        self._spin_until(lambda: key not in self.inflight, time.perf_counter() + cfg.timeout)
        return next_time

    def run(self) -> int:
        """Replay the bag, score, write the report; 0 when at least one frame was answered."""
        cfg, p = self.config, self.config.protocol
        log = self.get_logger()
        topics = bag_topics(cfg.bag, warn=log.warning)  # fails early on a missing/bad bag
        total = topics.get(cfg.image_topic, ("", 0))[1]
        self.wait_for_node()
        node = self.node_parameters()
        name = cfg.method_name or B.default_method_name(node)
        self.method = B.NodeMethod(name, p, node)
        if self.method.deviations:
            log.warning(f"the node's settings differ from the protocol: {self.method.deviations}")
        log.info(
            f"replaying {cfg.bag} ({total} images) through {cfg.node_name or 'the node'} "
            f"({node.get('weights') or 'default model'}, backend {node.get('backend', '?')}), "
            f"{cfg.mode}" + (f" {cfg.rate:g} frames/s" if cfg.rate else "")
            + f", protocol {p.key()}; report -> {cfg.output_dir}"
        )  # fmt: skip
        next_time = time.perf_counter()
        t_start = time.perf_counter()
        sequences = read_hpatches_bag(cfg.bag, cfg.image_topic, cfg.homography_topic)
        for k, seq in enumerate(B.iter_limited(sequences, cfg.max_sequences)):
            run = B.plan_sequence(seq.name, seq.images, seq.encodings, seq.homographies, p)
            if k == 0:
                for frame in B.warmup_frames(run.frames[0] if run.frames else None, p,
                                             cfg.warmup):  # fmt: skip
                    next_time = self._send(frame, None, next_time)
            self.sequences[run.name] = run.kind
            self.runs.append(run)
            for frame in run.frames:
                next_time = self._send(frame, run, next_time)
                self._finish_runs()
        self._spin_until(lambda: not any(r[2] is not None for r in self.inflight.values()),
                         time.perf_counter() + cfg.timeout + SPIN_STEP_S)  # fmt: skip
        self._finish_runs()
        for run in self.runs:  # only possible if a frame never resolved: score what came back
            self._score(run)
        if not self.sequences:
            raise InputError(f"bag {cfg.bag} holds no sequence")

        ros = B.ros_summary(self.logs, self.first_publish, self.last_event, p)
        ros.update(unexpected_answers=self.unexpected, unreadable_answers=self.bad_answers)
        timing = results.method_timing(
            p, len(self.sequences), 0, B.seconds_per_image(self.logs), self.metric_seconds
        )
        timing["replay_seconds"] = time.perf_counter() - t_start
        result = results.method_result(self.method, self.records, self.sequences, p, timing)
        result["ros"] = ros
        bench = {
            "bag": str(cfg.bag),
            "mode": cfg.mode,
            "rate": cfg.rate,
            "timeout": cfg.timeout,
            "warmup": cfg.warmup,
            "node_name": cfg.node_name,
            "image_topic": self.pub.topic_name,
            "features_topic": self.sub.topic_name,
            "node_parameters": node,
        }
        report = eval_report.build_report(
            [str(cfg.bag)], self.sequences, p, {name: result}, bench=bench
        )
        B.write_report(cfg.output_dir, report, {name: self.match_figures}, cfg.plots)
        log.info(f"bench done: {B.summary_line(report)}; report {cfg.output_dir / 'report.md'}")
        if ros["frames_answered"] == 0:
            log.error("the node answered no frame: check that it runs and the topics match")
            return 1
        return 0


def main(args: list[str] | None = None) -> int:
    """Entry point of ``bench_node``: 0 when the bag was replayed and the report written."""
    logger = rclpy.logging.get_logger(NODE_NAME)
    try:
        rclpy.init(args=args)
    except Exception as exc:  # rcl rejects the command line (e.g. "-p name:=" without a value)
        logger.fatal(f"bench failed: bad ROS arguments: {one_line(exc)}")
        return 2
    node: BenchNode | None = None
    try:
        try:
            node = BenchNode()
            logger = node.get_logger()
            return node.run()
        except SuperPointError as exc:
            logger.fatal(f"bench failed: {one_line(exc)}")
            return 1
        except (KeyboardInterrupt, ExternalShutdownException):
            raise
        except Exception as exc:  # a bug: one line, then the traceback
            logger.fatal(f"bench failed: {type(exc).__name__}: {one_line(exc)}")
            logger.fatal(traceback.format_exc())
            return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        return 130
    finally:
        if node is not None:
            node.destroy_node()
        shutdown()


if __name__ == "__main__":
    sys.exit(main())
