"""One run's recording: what ``superpoint_node`` answered, as a rosbag2 bag, and when each frame
was published; read back into :class:`~.metrics.FrameRecord` for the metrics.

``<run>/recorded/`` is a bag (metadata version 8, sqlite3: Humble, Jazzy and Kilted play it) of
the node's ``~/features`` and ``~/matches`` messages exactly as they arrived (serialized CDR,
bag time = arrival time), so ``ros2 bag play`` can feed them to another consumer;
``<run>/published.json`` lists each frame's header stamp and publish time (ns, wall clock).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import PointCloud2

from superpoint_ros.errors import InputError
from superpoint_ros.ros.conversions import features_from_msg, matches_from_msg
from superpoint_training.bags.writer import DISTROS, prepare_output

from .metrics import FrameRecord

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
DISTRO = "humble"  # the oldest distribution we support plays it, and so do the newer ones


@dataclass
class Recording:
    """What one replay collected: ``published[i]`` = ``(stamp_ns, publish wall ns)`` of frame
    i; ``messages`` = ``(topic, arrival wall ns, serialized message)`` in arrival order."""

    features_topic: str
    matches_topic: str
    published: list[tuple[int, int]] = field(default_factory=list)
    messages: list[tuple[str, int, bytes]] = field(default_factory=list)


def write_recording(folder: Path, recording: Recording) -> Path:
    """Write ``folder/recorded`` (replacing an older one) and ``folder/published.json``."""
    profile = DISTROS[DISTRO]
    bag = prepare_output(folder / "recorded", overwrite=True)
    typestore = get_typestore(getattr(Stores, profile.store))
    writer = Writer(
        bag,
        version=profile.version,
        storage_plugin=getattr(StoragePlugin, profile.default_storage.upper()),
    )
    writer.open()
    try:
        connections = {
            topic: writer.add_connection(topic, POINTCLOUD2, typestore=typestore)
            for topic in (recording.features_topic, recording.matches_topic)
        }
        for topic, arrival_ns, raw in recording.messages:
            writer.write(connections[topic], arrival_ns, raw)
    finally:
        writer.close()
    (folder / "published.json").write_text(json.dumps({
        "features_topic": recording.features_topic, "matches_topic": recording.matches_topic,
        "frames": [list(p) for p in recording.published],
    }))  # fmt: skip
    return bag


def read_recording(folder: Path) -> list[FrameRecord]:
    """One :class:`FrameRecord` per published frame, in camera order, with the node's answers
    decoded by ``superpoint_ros.ros.conversions``."""
    meta_path = folder / "published.json"
    if not meta_path.is_file():
        raise InputError(f"no recording in {folder} (run the demo first)")
    meta = json.loads(meta_path.read_text())
    records = [FrameRecord(i, int(stamp), ns / 1e9) for i, (stamp, ns) in
               enumerate(meta["frames"])]  # fmt: skip
    by_stamp = {r.stamp_ns: r for r in records}
    with AnyReader([folder / "recorded"]) as reader:
        for conn, arrival_ns, raw in reader.messages():
            msg = deserialize_message(bytes(raw), PointCloud2)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            rec = by_stamp.get(stamp)
            if rec is None:
                continue  # not one of the demo's frames (the warm-up frame)
            if conn.topic == meta["features_topic"]:
                rec.features, rec.features_s = features_from_msg(msg), arrival_ns / 1e9
            elif conn.topic == meta["matches_topic"]:
                rec.matches = matches_from_msg(msg)
    return records
