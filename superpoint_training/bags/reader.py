"""Read the bags ``superpoint bag`` writes (and any camera bag) back into numpy.

Two readers, both streaming (one sequence or one frame in memory at a time), so the bench node
can replay a bag of any length:

* :func:`read_hpatches_bag` yields one :class:`BagSequence` per sequence: its name, its images
  (image 1 first) as numpy arrays exactly as stored, and the ground-truth homographies
  ``H_1_N`` (3x3 float64, mapping image-1 pixels to image-N pixels, the convention of
  :mod:`superpoint_ros.geometry`).
* :func:`read_image_bag` yields one :class:`BagImage` per ``sensor_msgs/msg/Image`` message of
  one topic: the header stamp and frame id, the encoding and the pixels.

Helpers for a node that publishes the frames itself and matches answers back by frame id:
:func:`read_homographies` (all ground truth of a bag, keyed by frame id) and
:func:`parse_frame_id` (``"v_graffiti/3"`` -> ``("v_graffiti", 3)``).

The conversion between ``rosbags`` Image messages and numpy lives here, once
(:func:`image_from_msg`, :func:`image_to_msg`); the writer uses it too. ``rosbags`` message
classes are plain dataclasses, not ``rclpy`` types, hence a small adapter; the table of
encodings, the header checks and the raw pixel view are those of the ROS-free
:mod:`superpoint_ros.image_encodings`, shared with the node's conversions (one home for every
encoding rule), so reading and writing bags needs no ROS message package.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from superpoint_ros.errors import InputError
from superpoint_ros.image_encodings import ENCODINGS, check_image_header, raw_image_view

IMAGE_TOPIC = "/hpatches/image"
HOMOGRAPHY_TOPIC = "/hpatches/homography"
IMAGE_TYPE = "sensor_msgs/msg/Image"
HOMOGRAPHY_TYPE = "std_msgs/msg/Float64MultiArray"


# What an image decoded by OpenCV is stored as, by (dtype, channels); names from ENCODINGS.
_FILE_ENCODINGS = ("mono8", "bgr8", "bgra8", "mono16")


def encoding_for(image: np.ndarray) -> str:
    """The encoding an image decoded by OpenCV has: mono8, bgr8, bgra8 or mono16."""
    channels = 1 if image.ndim == 2 else image.shape[2]
    for name in _FILE_ENCODINGS:
        if image.ndim in (2, 3) and ENCODINGS[name] == (image.dtype, channels):
            return name
    raise InputError(
        f"cannot store an image of shape {image.shape} and dtype {image.dtype} in a bag "
        "(supported: 8-bit grey, BGR, BGRA; 16-bit grey)"
    )


def image_to_msg(typestore, image: np.ndarray, encoding: str, frame_id: str, stamp_ns: int):
    """A ``rosbags`` ``sensor_msgs/msg/Image`` holding ``image`` (``[H, W]`` or ``[H, W, C]``,
    the encoding's own channel order) with a header of ``frame_id`` and ``stamp_ns``
    (nanoseconds). Rows are packed (``step = W * C * itemsize``), multi-byte pixels
    little-endian."""
    if encoding not in ENCODINGS:
        raise InputError(f"unknown image encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
    dtype, channels = ENCODINGS[encoding]
    has = 1 if image.ndim == 2 else image.shape[2]
    if image.dtype != dtype or has != channels or image.ndim not in (2, 3):
        raise InputError(
            f"an image of shape {image.shape} and dtype {image.dtype} is not {encoding}"
        )
    height, width = image.shape[:2]
    types = typestore.types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](
            sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)
        ),
        frame_id=frame_id,
    )
    pixels = np.ascontiguousarray(image, dtype=dtype.newbyteorder("<"))
    return types[IMAGE_TYPE](
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels * dtype.itemsize,
        data=pixels.reshape(-1).view(np.uint8),
    )


def image_from_msg(msg) -> np.ndarray:
    """The pixels of a ``rosbags`` ``sensor_msgs/msg/Image`` as ``[H, W]`` (one channel) or
    ``[H, W, C]``, exactly as stored: the encoding's own dtype and channel order, no colour or
    depth conversion (``superpoint_ros.ros.conversions.image_to_numpy`` does those for the
    front-end). Honours ``step`` padding and ``is_bigendian``; validates the header as the node
    does. Returns a native-endian copy the caller owns."""
    dtype, channels, _ = check_image_header(msg, None)
    return np.array(raw_image_view(msg, dtype, channels), dtype=dtype)


def stamp_ns(header) -> int:
    """Header stamp in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def frame_id(sequence: str, index: int) -> str:
    """The frame id of image ``index`` (1-based) of ``sequence``: ``"v_graffiti/3"``."""
    return f"{sequence}/{index}"


def parse_frame_id(text: str) -> tuple[str, int]:
    """``"v_graffiti/3"`` -> ``("v_graffiti", 3)``; inverse of :func:`frame_id`."""
    name, sep, index = text.rpartition("/")
    if not sep or not name or not index.isdigit():
        raise InputError(f"frame id {text!r} is not '<sequence>/<index>'")
    return name, int(index)


def homography_from_msg(msg) -> tuple[str, str, np.ndarray]:
    """Decode a ground-truth ``std_msgs/msg/Float64MultiArray``.

    Layout (see docs/bags.md): ``dim[0]`` = rows, ``size 3, stride 9``, labelled with the frame
    id of image N; ``dim[1]`` = columns, ``size 3, stride 3``, labelled with the frame id of
    image 1; ``data_offset 0``; ``data`` = the 9 values of ``H_1_N`` row-major.
    Returns ``(target_frame_id, source_frame_id, H [3, 3] float64)``.
    """
    dims = msg.layout.dim
    if (
        len(dims) != 2
        or [(d.size, d.stride) for d in dims] != [(3, 9), (3, 3)]
        or msg.layout.data_offset != 0
        or len(msg.data) != 9
    ):
        raise InputError(
            "homography message does not have the 3x3 row-major layout "
            f"(dims {[(d.label, d.size, d.stride) for d in dims]}, {len(msg.data)} values)"
        )
    H = np.asarray(msg.data, dtype=np.float64).reshape(3, 3).copy()
    return dims[0].label, dims[1].label, H


def homography_to_msg(typestore, H: np.ndarray, target: str, source: str):
    """Encode ``H`` (3x3, maps ``source`` pixels to ``target`` pixels) with the layout of
    :func:`homography_from_msg`."""
    H = np.asarray(H, dtype=np.float64)
    if H.shape != (3, 3):
        raise InputError(f"a homography is 3x3, got shape {H.shape}")
    types = typestore.types
    dim = types["std_msgs/msg/MultiArrayDimension"]
    layout = types["std_msgs/msg/MultiArrayLayout"](
        dim=[dim(label=target, size=3, stride=9), dim(label=source, size=3, stride=3)],
        data_offset=0,
    )
    return types[HOMOGRAPHY_TYPE](layout=layout, data=np.ascontiguousarray(H).reshape(9))


@dataclass
class BagImage:
    """One image message: ``image`` is ``[H, W]`` or ``[H, W, C]`` in ``encoding``."""

    topic: str
    timestamp_ns: int  # bag (receive) time
    stamp_ns: int  # header stamp
    frame_id: str
    encoding: str
    image: np.ndarray


@dataclass
class BagSequence:
    """One sequence of an HPatches bag. ``images[0]`` is image 1; ``homographies[n]`` is
    ``H_1_n`` (3x3 float64, image-1 pixels to image-n pixels) for n = 2..len(images)."""

    name: str
    images: list[np.ndarray] = field(default_factory=list)
    encodings: list[str] = field(default_factory=list)
    stamps_ns: list[int] = field(default_factory=list)
    homographies: dict[int, np.ndarray] = field(default_factory=dict)

    def pairs(self) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """``(n, image_1, image_n, H_1_n)`` for n = 2..len(images), the protocol's pairs."""
        for n in range(2, len(self.images) + 1):
            yield n, self.images[0], self.images[n - 1], self.homographies[n]


def _open(path: str | Path):
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    path = Path(path)
    if not path.exists():
        raise InputError(f"bag {path} does not exist")
    # Bags written by rosbag2 >= Iron (and by `superpoint bag`) carry their message
    # definitions; older ones need a type store. Image and Float64MultiArray are the same in
    # every ROS 2 distribution.
    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.LATEST))
        reader.open()
    except Exception as exc:  # rosbags raises its own error classes per format
        raise InputError(f"cannot open bag {path}: {exc}") from exc
    return reader


def _describe(reader) -> str:
    """``/a (sensor_msgs/msg/Image, 6 messages), ...`` as the bag's metadata says."""
    return (
        ", ".join(
            f"{name} ({info.msgtype}, {info.msgcount} messages)"
            for name, info in sorted(reader.topics.items())
        )
        or "no topics"
    )


def _require_topic(reader, path, topic: str, msgtype: str, role: str) -> None:
    """Refuse a bag without ``topic`` or whose metadata gives it another type than ``msgtype``
    (``rosbags`` would silently yield no message for it), naming what the bag has."""
    info = reader.topics.get(topic)
    if info is None:
        raise InputError(f"bag {path} has no {role} topic {topic}; it has {_describe(reader)}")
    if info.msgtype != msgtype:
        raise InputError(
            f"bag {path}: the {role} topic {topic} has type {info.msgtype}, expected {msgtype}"
        )


def bag_topics(
    path: str | Path, warn: Callable[[str], None] | None = None
) -> dict[str, tuple[str, int]]:
    """``{topic: (msgtype, message count)}`` of a bag, the counts being the messages really in
    its storage (counted, not taken from ``metadata.yaml``). Where the metadata says otherwise
    (a bag cut short, an edited or stale ``metadata.yaml``, a type that does not match the
    storage's), ``warn`` (default: :func:`warnings.warn`) receives one line per topic."""
    reader = _open(path)
    try:
        real = dict.fromkeys(reader.topics, 0)
        for conn, _, _ in reader.messages(connections=reader.connections):
            real[conn.topic] += 1
        for name, info in sorted(reader.topics.items()):
            if info.msgcount != real[name]:
                (warn or _warn)(
                    f"bag {path}: metadata.yaml says {info.msgcount} messages of type "
                    f"{info.msgtype} on {name}, the storage holds {real[name]}; using "
                    f"{real[name]}"
                )
        return {name: (info.msgtype, real[name]) for name, info in reader.topics.items()}
    finally:
        reader.close()


def _warn(text: str) -> None:
    warnings.warn(text, stacklevel=3)


def read_image_bag(path: str | Path, topic: str | None = None) -> Iterator[BagImage]:
    """Stream the ``sensor_msgs/msg/Image`` messages of ``topic`` in bag-time order.

    With ``topic=None`` the bag must have exactly one Image topic.
    """
    reader = _open(path)
    try:
        image_topics = sorted(t for t, i in reader.topics.items() if i.msgtype == IMAGE_TYPE)
        if topic is not None:
            _require_topic(reader, path, topic, IMAGE_TYPE, "image")
        if topic is None:
            if len(image_topics) != 1:
                raise InputError(
                    f"bag {path} has {len(image_topics)} image topics {image_topics}; "
                    "choose one with topic="
                )
            topic = image_topics[0]
        connections = [c for c in reader.connections if c.topic == topic]
        for conn, timestamp, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, conn.msgtype)
            yield BagImage(
                topic=topic,
                timestamp_ns=timestamp,
                stamp_ns=stamp_ns(msg.header),
                frame_id=msg.header.frame_id,
                encoding=msg.encoding,
                image=image_from_msg(msg),
            )
    finally:
        reader.close()


def read_homographies(
    path: str | Path, topic: str = HOMOGRAPHY_TOPIC
) -> dict[str, tuple[str, np.ndarray]]:
    """All ground truth of an HPatches bag: ``{target frame id: (source frame id, H)}``, e.g.
    ``{"v_graffiti/3": ("v_graffiti/1", H_1_3)}``."""
    reader = _open(path)
    try:
        _require_topic(reader, path, topic, HOMOGRAPHY_TYPE, "homography")
        out = {}
        connections = [c for c in reader.connections if c.topic == topic]
        for conn, _, raw in reader.messages(connections=connections):
            target, source, H = homography_from_msg(reader.deserialize(raw, conn.msgtype))
            out[target] = (source, H)
        return out
    finally:
        reader.close()


def read_hpatches_bag(
    path: str | Path,
    image_topic: str = IMAGE_TOPIC,
    homography_topic: str = HOMOGRAPHY_TOPIC,
) -> Iterator[BagSequence]:
    """Stream the sequences of a bag written by ``superpoint bag hpatches``, in bag order.

    A sequence is complete when the messages of the next one begin (the writer writes
    sequences one after the other); each is checked: images 1..K all present, ``H_1_n`` for
    every n = 2..K, nothing else.
    """
    reader = _open(path)
    try:
        missing = [t for t in (image_topic, homography_topic) if t not in reader.topics]
        if missing:
            raise InputError(
                f"bag {path} is not an HPatches bag: no topic {missing} "
                f"(it has {_describe(reader)})"
            )
        _require_topic(reader, path, image_topic, IMAGE_TYPE, "image")
        _require_topic(reader, path, homography_topic, HOMOGRAPHY_TYPE, "homography")
        connections = [c for c in reader.connections if c.topic in (image_topic, homography_topic)]
        current: dict | None = None
        done: set[str] = set()
        for conn, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == image_topic:
                name, index = parse_frame_id(msg.header.frame_id)
            else:
                target, source, H = homography_from_msg(msg)
                name, index = parse_frame_id(target)
                if source != frame_id(name, 1):
                    raise InputError(f"homography for {target} maps from {source}, not image 1")
            if current is None or current["name"] != name:
                if current is not None:
                    yield _finish(current, path)
                    done.add(current["name"])
                if name in done:
                    raise InputError(f"bag {path}: sequence {name} is not contiguous")
                current = {"name": name, "images": {}, "H": {}}
            if conn.topic == image_topic:
                image = image_from_msg(msg)
                current["images"][index] = (image, msg.encoding, stamp_ns(msg.header))
            else:
                current["H"][index] = H
        if current is not None:
            yield _finish(current, path)
    finally:
        reader.close()


def _finish(current: dict, path) -> BagSequence:
    name, images, Hs = current["name"], current["images"], current["H"]
    count = len(images)
    if sorted(images) != list(range(1, count + 1)) or count < 2:
        raise InputError(f"bag {path}: sequence {name} has images {sorted(images)}, not 1..K")
    if sorted(Hs) != list(range(2, count + 1)):
        raise InputError(
            f"bag {path}: sequence {name} has homographies for {sorted(Hs)}, expected 2..{count}"
        )
    seq = BagSequence(name=name, homographies=dict(sorted(Hs.items())))
    for index in range(1, count + 1):
        image, encoding, stamp = images[index]
        seq.images.append(image)
        seq.encodings.append(encoding)
        seq.stamps_ns.append(stamp)
    return seq
