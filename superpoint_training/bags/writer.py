"""Write rosbag2 bags with the ``rosbags`` library (no ROS installation needed).

* :func:`write_hpatches_bag`: HPatches-style sequences (``1..K.ppm`` + ``H_1_N``, or the Oxford
  ``img1..K.ppm|pgm`` + ``H1toNp``; found by :func:`find_sequences`, the folder reader of
  :mod:`superpoint_training.data.sequences`) as a self-contained bag: every image on
  :data:`~superpoint_training.bags.reader.IMAGE_TOPIC` (``sensor_msgs/msg/Image``, header frame
  id ``"<sequence>/<n>"``), every ground-truth ``H_1_n`` on
  :data:`~superpoint_training.bags.reader.HOMOGRAPHY_TOPIC` (``std_msgs/msg/Float64MultiArray``,
  layout in :func:`~superpoint_training.bags.reader.homography_from_msg`), written right after
  image n with the same bag time.
* :func:`write_image_bag`: any folder of frames as a camera bag on one topic.

The target distribution decides the rosbag2 metadata version and the default storage
(:data:`DISTROS`): Humble's rosbag2 (0.15) parses ``offered_qos_profiles`` as a YAML string,
as metadata version 8 writes it; version 9 (Jazzy and later) writes a YAML list there, which
Humble fails on ("yaml-cpp: bad conversion"). So ``humble`` writes version 8, into sqlite3 by
default (Humble's default storage; mcap needs the ``ros-humble-rosbag2-storage-mcap`` package).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from superpoint_ros.errors import ConfigError, InputError
from superpoint_ros.image_encodings import convert_8bit
from superpoint_ros.image_io import read_image_file
from superpoint_training.bags.reader import (
    HOMOGRAPHY_TOPIC,
    HOMOGRAPHY_TYPE,
    IMAGE_TOPIC,
    IMAGE_TYPE,
    encoding_for,
    frame_id,
    homography_to_msg,
    image_to_msg,
)
from superpoint_training.data.sequences import (
    IMAGE_EXTENSIONS,
    HomographySequence,
    load_homography,
)
from superpoint_training.data.sequences import find_sequences as find_sequences  # re-exported


@dataclass(frozen=True)
class Distro:
    """What a bag must look like for one ROS 2 distribution to play it."""

    store: str  # rosbags.typesys.Stores member name (message definitions and type hashes)
    version: int  # rosbag2 metadata version the writer emits
    default_storage: str  # the distribution's default storage plugin


DISTROS: dict[str, Distro] = {
    "humble": Distro("ROS2_HUMBLE", 8, "sqlite3"),  # Humble parses metadata version <= 8 only
    "jazzy": Distro("ROS2_JAZZY", 9, "mcap"),
    "kilted": Distro("ROS2_KILTED", 9, "mcap"),
}
STORAGES = ("sqlite3", "mcap")
STAMP_MODES = ("auto", "name", "rate")

Progress = Callable[[int], None]


@dataclass(frozen=True)
class BagSummary:
    """What was written: message counts per topic, size on disk, wall time."""

    path: Path
    distro: str
    storage: str
    version: int
    counts: dict[str, int]
    size_bytes: int
    seconds: float


# ---------------------------------------------------------------- sources on disk


def load_image(path: str | Path) -> np.ndarray:
    """An image file's pixels as stored: ``[H, W]`` grey, ``[H, W, 3]`` BGR, ``[H, W, 4]`` BGRA,
    8 or 16 bits (the project's one reader, :func:`superpoint_ros.image_io.read_image_file`:
    header size checked first, damaged files refused with :class:`InputError`)."""
    return read_image_file(path)


def convert_image(image: np.ndarray, encoding: str | None) -> tuple[np.ndarray, str]:
    """``image`` converted to ``encoding`` (``mono8`` or ``bgr8``; None keeps what the file
    holds). Returns ``(image, encoding)``."""
    source = encoding_for(image)
    if encoding is None or encoding == source:
        return image, source
    if source == "mono16":
        raise InputError("a 16-bit image cannot be converted to 8 bits without a scale")
    return convert_8bit(image, source, encoding), encoding


def name_stamp_ns(path: Path) -> int | None:
    """The stamp a frame's name gives, in nanoseconds: ``1311868169.163498.png`` ->
    ``1311868169163498000`` (TUM's naming). Only names with a fractional part count, so frame
    numbers like ``000001.png`` are not read as seconds."""
    stem = path.stem
    if "." not in stem:
        return None
    try:
        seconds = Decimal(stem)
    except InvalidOperation:
        return None
    if not seconds.is_finite() or seconds < 0:
        return None
    return int(seconds * 1_000_000_000)


def list_frames(folder: str | Path) -> list[Path]:
    """Image files of ``folder`` sorted by name (numerically when the names are stamps)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"frame folder {folder} does not exist or is not a folder")
    frames = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not frames:
        raise InputError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    stamps = [name_stamp_ns(p) for p in frames]
    if all(s is not None for s in stamps):
        frames = [p for _, p in sorted(zip(stamps, frames))]
    return frames


def frame_stamps(
    frames: Sequence[Path], rate: float, start_time: float, mode: str = "auto"
) -> tuple[list[int], str]:
    """Stamps (ns) for ``frames``: from the names (``mode="name"``, or ``"auto"`` when every
    name is a stamp) or ``start_time + i / rate`` (``"rate"``). Returns ``(stamps, mode used)``.
    """
    if mode not in STAMP_MODES:
        raise ConfigError(f"unknown stamp mode {mode!r}; choose from {STAMP_MODES}")
    named = [name_stamp_ns(p) for p in frames]
    if mode == "name" or (mode == "auto" and all(s is not None for s in named)):
        bad = [p.name for p, s in zip(frames, named) if s is None]
        if bad:
            raise InputError(f"frame names are not stamps in seconds: {bad[:3]}")
        if any(b <= a for a, b in zip(named, named[1:])):
            raise InputError("frame names give stamps that are not strictly increasing")
        return [int(s) for s in named], "name"
    return _rate_stamps(len(frames), rate, start_time), "rate"


def _rate_stamps(count: int, rate: float, start_time: float) -> list[int]:
    if not rate > 0:
        raise ConfigError(f"--rate must be > 0 Hz, got {rate}")
    if start_time < 0:
        raise ConfigError(f"--start-time must be >= 0 s, got {start_time}")
    start = round(start_time * 1e9)
    return [start + round(i * 1e9 / rate) for i in range(count)]


# ---------------------------------------------------------------- bag plumbing


def prepare_output(out: str | Path, overwrite: bool) -> Path:
    """Check ``out`` can be written: absent, or a bag that ``overwrite`` allows removing.
    Refuses to remove anything that does not look like a bag: an ordinary file, a link, a
    folder holding anything but a bag's files; and a parent path that is a file."""
    out = Path(out)
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot write {out}: {parent} is a file, not a folder")
            break
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise InputError(f"output {out} exists; pass --overwrite to replace it")
        if out.is_symlink() or not out.is_dir():
            kind = "a link" if out.is_symlink() else "a file, not a bag folder"
            raise InputError(
                f"output {out} is {kind}; --overwrite replaces only a bag: not removing it"
            )
        names = {p.name for p in out.iterdir()}
        is_bag = "metadata.yaml" in names and all(
            n == "metadata.yaml" or n.endswith((".db3", ".mcap", ".db3-journal", ".zstd"))
            for n in names
        )
        if names and not is_bag:
            raise InputError(
                f"output {out} exists and is not a bag (no metadata.yaml or other files); "
                "not removing it"
            )
        shutil.rmtree(out)
    if not out.parent.is_dir():
        out.parent.mkdir(parents=True)
    return out


class _Bag:
    """A rosbags writer set up for one distribution and storage; removes a half-written bag
    when an error or Ctrl-C interrupts it."""

    def __init__(self, out: str | Path, distro: str, storage: str | None, overwrite: bool):
        from rosbags.interfaces import (
            Qos,
            QosDurability,
            QosHistory,
            QosLiveliness,
            QosReliability,
            QosTime,
        )
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        if distro not in DISTROS:
            raise ConfigError(f"unknown distro {distro!r}; choose from {sorted(DISTROS)}")
        profile = DISTROS[distro]
        storage = storage or profile.default_storage
        if storage not in STORAGES:
            raise ConfigError(f"unknown storage {storage!r}; choose from {STORAGES}")
        out = prepare_output(out, overwrite)  # after the checks: a bad option removes nothing
        self.out, self.distro, self.storage, self.version = out, distro, storage, profile.version
        self.typestore = get_typestore(getattr(Stores, profile.store))
        self.writer = Writer(
            out, version=profile.version, storage_plugin=getattr(StoragePlugin, storage.upper())
        )
        zero = QosTime(0, 0)  # 0 = "unspecified": the player's default, in every distro
        # What a camera driver offers: reliable, volatile. Recording it lets `ros2 bag play`
        # publish with matching QoS instead of guessing.
        self.qos = Qos(
            QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, QosDurability.VOLATILE,
            zero, zero, QosLiveliness.AUTOMATIC, zero, False,
        )  # fmt: skip
        self.connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        self.started = time.perf_counter()

    def __enter__(self) -> _Bag:
        self.writer.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.writer.close()
            return
        self.writer.abort()
        shutil.rmtree(self.out, ignore_errors=True)

    def topic(self, name: str, msgtype: str) -> None:
        self.connections[name] = self.writer.add_connection(
            name, msgtype, typestore=self.typestore, offered_qos_profiles=[self.qos]
        )
        self.counts[name] = 0

    def write(self, topic: str, msg, timestamp_ns: int) -> None:
        data = self.typestore.serialize_cdr(msg, msg.__msgtype__)
        self.writer.write(self.connections[topic], timestamp_ns, data)
        self.counts[topic] += 1

    def summary(self) -> BagSummary:
        size = sum(p.stat().st_size for p in self.out.rglob("*") if p.is_file())
        return BagSummary(
            path=self.out,
            distro=self.distro,
            storage=self.storage,
            version=self.version,
            counts=dict(self.counts),
            size_bytes=size,
            seconds=time.perf_counter() - self.started,
        )


# ---------------------------------------------------------------- the two bag kinds


def write_hpatches_bag(
    sequences: Sequence[HomographySequence],
    out: str | Path,
    *,
    distro: str = "humble",
    storage: str | None = None,
    rate: float = 10.0,
    start_time: float = 1.0,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> BagSummary:
    """Write ``sequences`` into the bag ``out``; returns what was written.

    Image k of the whole bag (0-based, over all sequences) is stamped
    ``start_time + k / rate`` seconds (header stamp = bag time); ``H_1_n`` follows image n
    at the same bag time. ``progress(1)`` is called per image.
    """
    if not sequences:
        raise InputError("no sequences to write")
    stamps = iter(_rate_stamps(sum(len(s.images) for s in sequences), rate, start_time))
    with _Bag(out, distro, storage, overwrite) as bag:
        bag.topic(IMAGE_TOPIC, IMAGE_TYPE)
        bag.topic(HOMOGRAPHY_TOPIC, HOMOGRAPHY_TYPE)
        for seq in sequences:
            # As the files hold them (not normalised): the bag keeps the dataset's values.
            homographies = {n: load_homography(p) for n, p in seq.homographies.items()}
            for n, path in sorted(seq.images.items()):
                image = load_image(path)
                stamp = next(stamps)
                msg = image_to_msg(
                    bag.typestore, image, encoding_for(image), frame_id(seq.name, n), stamp
                )
                bag.write(IMAGE_TOPIC, msg, stamp)
                if n >= 2:
                    H = homography_to_msg(
                        bag.typestore, homographies[n], frame_id(seq.name, n),
                        frame_id(seq.name, 1),
                    )  # fmt: skip
                    bag.write(HOMOGRAPHY_TOPIC, H, stamp)
                if progress is not None:
                    progress(1)
    return bag.summary()


def write_image_bag(
    frames: Sequence[Path],
    out: str | Path,
    *,
    topic: str = "/camera/image_raw",
    frame: str = "camera",
    encoding: str | None = None,
    rate: float = 10.0,
    start_time: float = 1.0,
    stamps: str = "auto",
    distro: str = "humble",
    storage: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> tuple[BagSummary, str]:
    """Write ``frames`` (in order) as a camera bag on ``topic`` with header frame id ``frame``;
    ``encoding`` ``mono8``/``bgr8`` converts, None keeps each file's own. Stamps as
    :func:`frame_stamps`. Returns ``(summary, stamp mode used)``."""
    if not frames:
        raise InputError("no frames to write")
    if not topic.startswith("/"):
        raise ConfigError(f"topic {topic!r} must be absolute (start with '/')")
    times, mode = frame_stamps(frames, rate, start_time, stamps)
    with _Bag(out, distro, storage, overwrite) as bag:
        bag.topic(topic, IMAGE_TYPE)
        for path, stamp in zip(frames, times):
            image, enc = convert_image(load_image(path), encoding)
            bag.write(topic, image_to_msg(bag.typestore, image, enc, frame, stamp), stamp)
            if progress is not None:
                progress(1)
    return bag.summary(), mode
