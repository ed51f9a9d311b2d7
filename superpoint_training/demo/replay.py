"""Replay the demo's camera bag into a real ``superpoint_node`` at the camera rate, and record
what it answers (real rclpy, real DDS).

One player node in this process publishes the bag's frames on ``<ns>/camera/image_raw`` at the
times their stamps say (as ``ros2 bag play`` would, reliable QoS like a camera driver; the node
subscribes best effort, depth 1), and subscribes to ``<ns>/superpoint_node/features`` and
``.../matches`` (reliable, deep) to keep every answer as serialized bytes with its arrival time.
Everything runs in this thread: the executor is spun between publications.

Before the node starts, the player looks at the DDS domain: another demo there (a node or a
publisher in the demo's namespace) would mix its frames with ours, so the demo stops with the
one line that says what to do. A frame the node never answers is a dropped frame: the node keeps
only the newest frame, so a camera faster than inference loses frames, never adds latency.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Header

from superpoint_ros.errors import InputError, SuperPointError
from superpoint_ros.ros.conversions import numpy_to_image
from superpoint_training.bags.reader import read_image_bag

from .node_process import NODE_NAME, NodeProcess
from .recording import Recording

NAMESPACE = "/superpoint_demo"
WARMUP_FRAME_ID = "superpoint_demo_warmup"  # another frame id: the node restarts its tracks
WARMUP_STAMP = 0  # the bag's stamps start later (write_image_bag's start time)


@dataclass(frozen=True)
class ReplayConfig:
    """How the replay runs. ``params``: the node's ROS parameters (name -> value)."""

    namespace: str = NAMESPACE
    params: dict[str, object] = field(default_factory=dict)
    startup_timeout: float = 180.0  # model loading; the first run also exports it to ONNX
    answer_timeout: float = 60.0  # for the warm-up frame and the last one (a starved CPU: s)
    discovery_s: float = 1.5  # time given to DDS discovery before looking at the domain


@dataclass
class ReplayResult:
    recording: Recording
    node_log: Path
    node_line: str  # the node's own line saying which model and backend it runs
    startup_s: float
    exit_code: int | None


def domain_id() -> str:
    return os.environ.get("ROS_DOMAIN_ID", "") or "0"


class Player:
    """The demo's rclpy side: an image publisher and raw subscriptions to the node's outputs."""

    def __init__(self, context, namespace: str) -> None:
        self.node = rclpy.create_node("superpoint_demo_player", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.namespace = namespace
        self.image_topic = f"{namespace}/camera/image_raw"
        self.features_topic = f"{namespace}/{NODE_NAME}/features"
        self.matches_topic = f"{namespace}/{NODE_NAME}/matches"
        self.recording = Recording(self.features_topic, self.matches_topic)
        self.answered: dict[str, set[int]] = {
            self.features_topic: set(),
            self.matches_topic: set(),
        }
        camera = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                            reliability=ReliabilityPolicy.RELIABLE)  # fmt: skip
        record = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                            reliability=ReliabilityPolicy.RELIABLE)  # fmt: skip
        self.publisher = self.node.create_publisher(Image, self.image_topic, camera)
        for topic in self.answered:
            self.node.create_subscription(
                PointCloud2, topic, lambda raw, t=topic: self._on_answer(t, raw), record,
                raw=True,
            )  # fmt: skip

    def _on_answer(self, topic: str, raw: bytes) -> None:
        arrival = time.time_ns()
        stamp = deserialize_message(raw, PointCloud2).header.stamp
        stamp_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
        self.answered[topic].add(stamp_ns)
        if stamp_ns != WARMUP_STAMP:  # the warm-up frame is not part of the run
            self.recording.messages.append((topic, arrival, bytes(raw)))

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.executor.spin_once(timeout_sec=min(left, 0.05))

    def spin_until(self, done: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not done():
            if time.monotonic() > end:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def check_domain_free(self, ours: tuple[str, ...] = ()) -> None:
        """Raise when another demo already runs on this DDS domain (``ours``: names of our own
        nodes in the namespace, once they run)."""
        others = [f"{ns.rstrip('/')}/{name}" for name, ns in
                  self.node.get_node_names_and_namespaces()
                  if ns == self.namespace and name not in ours]  # fmt: skip
        if self.node.count_publishers(self.image_topic) > 1:  # ours, and another one
            others.append(f"a publisher on {self.image_topic}")
        if others:
            raise SuperPointError(
                f"DDS domain {domain_id()} is busy: another demo runs there ({others[0]}); stop "
                "it, or run on a free domain: ROS_DOMAIN_ID=42 make demo"
            )

    def node_ready(self) -> bool:
        return (
            self.node.count_subscribers(self.image_topic) > 0
            and self.node.count_publishers(self.features_topic) > 0
        )

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.node.destroy_node()


def _message(image, encoding: str, frame_id: str, stamp_ns: int) -> Image:
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return numpy_to_image(image, encoding, header)


def replay(
    bag: Path, run_dir: Path, config: ReplayConfig, say: Callable[[str], None] = print
) -> ReplayResult:
    """Start the node, replay ``bag`` into it at the rate of its stamps, stop the node; the
    answers and the node's log (``run_dir/node.log``) are returned."""
    frames = list(read_image_bag(bag))
    if len(frames) < 2:
        raise InputError(f"bag {bag} holds {len(frames)} frame(s); the demo needs at least 2")
    messages = [_message(f.image, f.encoding, f.frame_id, f.stamp_ns) for f in frames]
    if frames[0].stamp_ns <= WARMUP_STAMP:
        raise InputError(f"bag {bag}: the first frame is stamped 0; the demo needs later stamps")
    warmup = _message(frames[0].image, frames[0].encoding, WARMUP_FRAME_ID, WARMUP_STAMP)
    context = rclpy.Context()
    try:
        rclpy.init(context=context)
    except Exception as exc:  # rclpy's RCLError and friends: a bad ROS_DOMAIN_ID, DDS failing
        raise SuperPointError(
            f"ROS 2 did not start on DDS domain {domain_id()} ({' '.join(str(exc).split())}); "
            "set ROS_DOMAIN_ID to a number from 0 to 101"
        ) from None
    player = None
    try:
        player = Player(context, config.namespace)
        player.spin_for(config.discovery_s)
        player.check_domain_free()
        return _run(player, messages, warmup, frames, run_dir, config, say)
    finally:
        if player is not None:
            player.close()
        context.try_shutdown()


def _run(player: Player, messages, warmup, frames, run_dir: Path, config: ReplayConfig, say):
    log = run_dir / "node.log"
    t0 = time.monotonic()
    proc = NodeProcess(log, config.namespace, player.image_topic, config.params)
    try:
        say(f"started superpoint_node in {config.namespace} (DDS domain {domain_id()}); "
            f"log: {log}")  # fmt: skip

        def ready() -> bool:
            if not proc.alive():
                raise SuperPointError(
                    f"superpoint_node stopped while starting: {proc.failure()} (log: {log})"
                )
            return player.node_ready()

        if not player.spin_until(ready, config.startup_timeout):
            raise SuperPointError(
                f"superpoint_node did not come up within {config.startup_timeout:.0f} s (log: "
                f"{log}); if DDS discovery is blocked here, try ROS_AUTOMATIC_DISCOVERY_RANGE="
                "LOCALHOST make demo"
            )
        player.spin_for(0.5)  # let both ends of every topic match
        # again, seconds later: on a loaded machine discovery can outlast discovery_s
        player.check_domain_free(ours=(NODE_NAME,))
        features = player.answered[player.features_topic]
        end = time.monotonic() + config.answer_timeout
        while WARMUP_STAMP not in features:  # the warm-up frame: first inference at this size
            if time.monotonic() > end or not proc.alive():
                raise SuperPointError(
                    f"superpoint_node does not answer on {player.features_topic} (log: {log})"
                )
            player.publisher.publish(warmup)
            player.spin_until(lambda: WARMUP_STAMP in features, 2.0)
        startup_s = time.monotonic() - t0
        offsets = [(f.stamp_ns - frames[0].stamp_ns) / 1e9 for f in frames]
        say(f"replaying {len(messages)} frames at {(len(frames) - 1) / offsets[-1]:.1f} Hz "
            f"into {config.namespace}/{NODE_NAME}")  # fmt: skip
        start = time.monotonic() + 0.05
        for offset, msg, frame in zip(offsets, messages, frames):
            player.spin_for(start + offset - time.monotonic())
            player.recording.published.append((frame.stamp_ns, time.time_ns()))
            player.publisher.publish(msg)
        last = frames[-1].stamp_ns
        matches = player.answered[player.matches_topic]

        def last_answered() -> bool:
            if not proc.alive():
                raise SuperPointError(f"superpoint_node stopped during the replay: "
                                      f"{proc.failure()} (log: {log})")  # fmt: skip
            return last in features

        if not player.spin_until(last_answered, config.answer_timeout):
            raise SuperPointError(
                f"superpoint_node did not answer the last frame within "
                f"{config.answer_timeout:.0f} s (log: {log})"
            )
        if config.params.get("match_mode") != "off":
            player.spin_until(lambda: last in matches, 2.0)
        # and after the replay: another demo found this late still fed our node its frames.
        # Fast DDS announces participants every 3 s, so a missed first exchange shows up here
        player.check_domain_free(ours=(NODE_NAME,))
    finally:
        exit_code = proc.stop()
    node_line = next((ln.split("]: ", 1)[-1] for ln in log.read_text(errors="replace")
                      .splitlines() if "loaded in" in ln), "")  # fmt: skip
    return ReplayResult(player.recording, log, node_line, startup_s, exit_code)
