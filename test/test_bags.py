"""`superpoint bag`: real rosbag2 bags written from generated folders, read back with rosbags'
AnyReader (independently of our reader) and with our reader; every byte, value, topic, count,
frame id and stamp is checked against what the test put on disk."""

from __future__ import annotations

import re
import shutil
import sqlite3
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader

from superpoint_ros.errors import InputError
from superpoint_training.bags import (
    bag_topics,
    find_sequences,
    parse_frame_id,
    read_homographies,
    read_hpatches_bag,
    read_image_bag,
    write_hpatches_bag,
)
from superpoint_training.bags.reader import image_from_msg, image_to_msg
from superpoint_training.bags.writer import list_frames, name_stamp_ns
from superpoint_training.cli.main import main

IMAGE_TOPIC = "/hpatches/image"
H_TOPIC = "/hpatches/homography"
S = 1_000_000_000  # ns per second


def hand_homography(seq: int, n: int) -> np.ndarray:
    """Distinct, hand-made values per (sequence, image); digits that a float32 or a short
    decimal print would lose, so the check is for every bit."""
    return np.array(
        [
            [1.0 + 0.01 * n, 0.123456789012345 * seq, 10.5 * n],
            [-0.25 * n, 0.987654321098765, -3.0 - seq],
            [1e-4 * n, -2.5e-5 * seq, 1.0],
        ]
    )


def write_h(path: Path, H: np.ndarray) -> None:
    path.write_text("\n".join(" ".join(repr(float(v)) for v in row) for row in H) + "\n")


@pytest.fixture
def dataset(tmp_path):
    """Two HPatches-layout colour sequences (PPM, then PNG, with image sizes that differ inside
    a sequence) and one Oxford-layout grey sequence (img1..6.pgm + H1toNp); returns the root
    and {sequence: (images, {n: H_1_n})}."""
    rng = np.random.default_rng(0)
    root = tmp_path / "hpatches"
    truth = {}
    specs = [("i_tiny", "hpatches", ".ppm", 3), ("v_tiny", "hpatches", ".png", 3)]
    specs.append(("boat_tiny", "oxford", ".pgm", 1))
    for s, (name, layout, ext, channels) in enumerate(specs, start=1):
        folder = root / name
        folder.mkdir(parents=True)
        images, Hs = [], {}
        for n in range(1, 7):
            shape = (6 + n, 10 + 2 * s) + ((3,) if channels == 3 else ())
            img = rng.integers(0, 256, shape, dtype=np.uint8)
            fname = f"{n}{ext}" if layout == "hpatches" else f"img{n}{ext}"
            assert cv2.imwrite(str(folder / fname), img)
            images.append(img)
            if n >= 2:
                Hs[n] = hand_homography(s, n)
                hname = f"H_1_{n}" if layout == "hpatches" else f"H1to{n}p"
                write_h(folder / hname, Hs[n])
        truth[name] = (images, Hs)
    return root, truth


def read_all(bag: Path):
    """Every message with rosbags' AnyReader: [(topic, msgtype, bag time, message)]."""
    out = []
    with AnyReader([bag]) as reader:
        for conn, t, raw in reader.messages():
            out.append((conn.topic, conn.msgtype, t, reader.deserialize(raw, conn.msgtype)))
    return out


def metadata(bag: Path) -> dict:
    return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


ORDER = ["boat_tiny", "i_tiny", "v_tiny"]  # sequences are written sorted by folder name


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("distro", ["humble", "jazzy", "kilted"])
def test_hpatches_bag_round_trip(dataset, tmp_path, storage, distro):
    root, truth = dataset
    out = tmp_path / "bag"
    argv = ["bag", "hpatches", str(root), "-o", str(out), "--storage", storage]
    argv += ["--distro", distro, "--rate", "4", "--start-time", "2.5", "--no-progress"]
    assert main(argv) == 0

    meta = metadata(out)
    assert meta["version"] == (8 if distro == "humble" else 9)
    assert meta["storage_identifier"] == storage
    assert meta["relative_file_paths"] == [f"bag.{'db3' if storage == 'sqlite3' else 'mcap'}"]
    assert meta["message_count"] == 3 * 6 + 3 * 5
    counts = {
        t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]
    }
    assert counts == {IMAGE_TOPIC: 18, H_TOPIC: 15}
    qos = [t["topic_metadata"]["offered_qos_profiles"] for t in meta["topics_with_message_count"]]
    if distro == "humble":  # Humble's rosbag2 parses this field as a YAML string (v4..v8)
        assert all(isinstance(q, str) and "reliability: 1" in q for q in qos)
    else:  # v9: a YAML list of profiles
        assert all(isinstance(q, list) and q[0]["reliability"] == "reliable" for q in qos)

    messages = read_all(out)
    images = [m for m in messages if m[0] == IMAGE_TOPIC]
    homs = [m for m in messages if m[0] == H_TOPIC]
    assert {m[1] for m in images} == {"sensor_msgs/msg/Image"}
    assert {m[1] for m in homs} == {"std_msgs/msg/Float64MultiArray"}
    expected_ids = [f"{name}/{n}" for name in ORDER for n in range(1, 7)]
    assert [m[3].header.frame_id for m in images] == expected_ids
    # image k of the bag at 2.5 s + k / 4 Hz, header stamp == bag time
    expected_stamps = [2_500_000_000 + k * 250_000_000 for k in range(18)]
    assert [m[2] for m in images] == expected_stamps
    assert [m[3].header.stamp.sec * S + m[3].header.stamp.nanosec for m in images] == (
        expected_stamps
    )
    for (_, _, _, msg), fid in zip(images, expected_ids):
        name, n = fid.split("/")
        original = truth[name][0][int(n) - 1]
        grey = original.ndim == 2
        assert msg.encoding == ("mono8" if grey else "bgr8")
        assert (msg.height, msg.width) == original.shape[:2]
        assert msg.step == original.shape[1] * (1 if grey else 3)
        assert bytes(msg.data) == original.tobytes()

    # H_1_n: right after image n, same bag time; 9 values row-major, labelled dims
    assert len(homs) == 15
    for _, _, t, msg in homs:
        rows, cols = msg.layout.dim
        name, n = rows.label.split("/")
        assert cols.label == f"{name}/1"
        assert (rows.size, rows.stride, cols.size, cols.stride) == (3, 9, 3, 3)
        assert msg.layout.data_offset == 0
        assert np.array_equal(np.asarray(msg.data), truth[name][1][int(n)].reshape(9))
        assert t == expected_stamps[expected_ids.index(rows.label)]

    # our streaming reader gives the same
    seqs = list(read_hpatches_bag(out))
    assert [s.name for s in seqs] == ORDER
    for seq in seqs:
        originals, Hs = truth[seq.name]
        assert len(seq.images) == 6 and sorted(seq.homographies) == [2, 3, 4, 5, 6]
        for img, original in zip(seq.images, originals):
            assert img.dtype == np.uint8 and np.array_equal(img, original)
        for n, H in seq.homographies.items():
            assert H.dtype == np.float64 and np.array_equal(H, Hs[n])
        assert [n for n, *_ in seq.pairs()] == [2, 3, 4, 5, 6]


def test_humble_bag_is_what_humble_reads(dataset, tmp_path):
    """The default (humble): metadata version <= 8, sqlite3 (Humble's default storage), and a
    topics table with the columns Humble's sqlite3 plugin selects."""
    root, _ = dataset
    out = tmp_path / "humble"
    assert main(["bag", "hpatches", str(root / "v_tiny"), "-o", str(out), "--no-progress"]) == 0
    meta = metadata(out)
    assert meta["version"] <= 8
    assert meta["storage_identifier"] == "sqlite3"
    db = sqlite3.connect(out / meta["relative_file_paths"][0])
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(topics)")]
        assert columns[:5] == [
            "id",
            "name",
            "type",
            "serialization_format",
            "offered_qos_profiles",
        ]
        rows = db.execute("SELECT name, type FROM topics ORDER BY id").fetchall()
        assert rows == [
            (IMAGE_TOPIC, "sensor_msgs/msg/Image"),
            (H_TOPIC, "std_msgs/msg/Float64MultiArray"),
        ]
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone() == (11,)
    finally:
        db.close()


def test_single_sequence_folder_and_oxford_layout(dataset):
    root, _ = dataset
    (seq,) = find_sequences(root / "boat_tiny")
    assert (seq.name, seq.layout) == ("boat_tiny", "oxford")
    assert [(n, p.name) for n, p in seq.images.items()] == [
        (n, f"img{n}.pgm") for n in range(1, 7)
    ]
    assert [(n, p.name) for n, p in seq.homographies.items()] == [
        (n, f"H1to{n}p") for n in range(2, 7)
    ]
    assert [s.name for s in find_sequences(root)] == ORDER


def test_reader_helpers(dataset, tmp_path):
    root, truth = dataset
    out = tmp_path / "bag"
    summary = write_hpatches_bag(find_sequences(root / "i_tiny"), out, storage="mcap")
    assert summary.counts == {IMAGE_TOPIC: 6, H_TOPIC: 5} and summary.size_bytes > 0
    assert bag_topics(out) == {
        IMAGE_TOPIC: ("sensor_msgs/msg/Image", 6),
        H_TOPIC: ("std_msgs/msg/Float64MultiArray", 5),
    }
    frames = list(read_image_bag(out))  # the only image topic
    assert [f.frame_id for f in frames] == [f"i_tiny/{n}" for n in range(1, 7)]
    assert [f.stamp_ns for f in frames] == [S + k * 100_000_000 for k in range(6)]  # defaults
    assert all(np.array_equal(f.image, o) for f, o in zip(frames, truth["i_tiny"][0]))
    gt = read_homographies(out)
    assert sorted(gt) == [f"i_tiny/{n}" for n in range(2, 7)]
    source, H = gt["i_tiny/4"]
    assert source == "i_tiny/1" and np.array_equal(H, hand_homography(1, 4))
    assert parse_frame_id("v_graffiti/3") == ("v_graffiti", 3)
    assert parse_frame_id("a/b/12") == ("a/b", 12)
    for bad in ("v_graffiti", "v_graffiti/", "/3", "v/x"):
        with pytest.raises(InputError):
            parse_frame_id(bad)
    with pytest.raises(InputError, match="no image topic"):
        next(read_image_bag(out, topic="/nope"))


def test_image_from_msg_padded_rows_and_big_endian():
    """Hand-built messages: padded rows are skipped; big-endian mono16 is read as such."""
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    Image, Header, Time = (
        ts.types[t]
        for t in ("sensor_msgs/msg/Image", "std_msgs/msg/Header", "builtin_interfaces/msg/Time")
    )
    header = Header(stamp=Time(sec=1, nanosec=2), frame_id="f")
    # 2x2 bgr8, step 8 (2 padding bytes per row)
    data = np.array([1, 2, 3, 4, 5, 6, 99, 99, 7, 8, 9, 10, 11, 12, 99, 99], np.uint8)
    msg = Image(
        header=header, height=2, width=2, encoding="bgr8", is_bigendian=0, step=8, data=data
    )
    assert image_from_msg(msg).tolist() == [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]]
    # 1x2 mono16 big-endian: 0x0102 = 258, 0xA0B0 = 41136
    data = np.array([0x01, 0x02, 0xA0, 0xB0], np.uint8)
    msg = Image(
        header=header, height=1, width=2, encoding="mono16", is_bigendian=1, step=4, data=data
    )
    out = image_from_msg(msg)
    assert out.dtype == np.uint16 and out.tolist() == [[258, 41136]]
    # and our own writer stores little-endian, packed
    back = image_to_msg(ts, out, "mono16", "f", 5)
    assert (back.is_bigendian, back.step, bytes(back.data)) == (0, 4, b"\x02\x01\xb0\xa0")
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (0, 5)


def test_bag_images_tum_names(tmp_path):
    """Frames named by timestamp (TUM): the names are the stamps, sorted numerically."""
    folder = tmp_path / "frames"
    folder.mkdir()
    names = ["1311868169.163498", "1311868169.263274", "1311868169.363470", "999.5"]
    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (10, 20, 30)]  # BGR
    for name, colour in zip(names, colours):
        assert cv2.imwrite(str(folder / f"{name}.png"), np.full((4, 6, 3), colour, np.uint8))
    out = tmp_path / "cam"
    argv = ["bag", "images", str(folder), "-o", str(out), "--rate", "30", "--no-progress"]
    assert main(argv + ["--distro", "jazzy"]) == 0
    msgs = read_all(out)
    assert {(m[0], m[1]) for m in msgs} == {("/camera/image_raw", "sensor_msgs/msg/Image")}
    stamps = [999_500_000_000, 1311868169_163498000, 1311868169_263274000, 1311868169_363470000]
    assert [m[2] for m in msgs] == stamps  # 999.5 sorts first: numeric order, not text
    assert [m[3].header.stamp.sec * S + m[3].header.stamp.nanosec for m in msgs] == stamps
    assert {m[3].header.frame_id for m in msgs} == {"camera"}
    assert [bytes(m[3].data)[:3] for m in msgs] == [bytes(c) for c in [colours[3], *colours[:3]]]
    assert metadata(out)["storage_identifier"] == "mcap"

    # --encoding mono8: BT.601, 0.299 R + 0.587 G + 0.114 B rounded (30,20,10 RGB -> 21.85)
    out2 = tmp_path / "cam_mono"
    argv = ["bag", "images", str(folder), "-o", str(out2), "--encoding", "mono8"]
    argv += ["--topic", "/cam/gray", "--frame-id", "cam0", "--no-progress"]
    assert main(argv) == 0
    frames = list(read_image_bag(out2, topic="/cam/gray"))
    assert [f.encoding for f in frames] == ["mono8"] * 4
    assert [int(f.image[0, 0]) for f in frames] == [22, 76, 150, 29]
    assert all(f.image.shape == (4, 6) and f.frame_id == "cam0" for f in frames)


def test_bag_images_rate_stamps_and_16_bit(tmp_path):
    """Frame numbers are not seconds: rate-based stamps. A 16-bit PNG stays mono16."""
    folder = tmp_path / "frames"
    folder.mkdir()
    depth = [np.array([[0, 1000], [65535, 258]], np.uint16) + i for i in range(3)]
    for i, d in enumerate(depth):
        assert cv2.imwrite(str(folder / f"{i:06d}.png"), d)
    assert name_stamp_ns(folder / "000001.png") is None
    assert name_stamp_ns(Path("12.25.png")) == 12_250_000_000
    out = tmp_path / "depth"
    argv = ["bag", "images", str(folder), "-o", str(out), "--rate", "4"]
    assert main(argv + ["--start-time", "2", "--no-progress"]) == 0
    frames = list(read_image_bag(out))
    assert [f.stamp_ns for f in frames] == [2_000_000_000, 2_250_000_000, 2_500_000_000]
    assert [f.encoding for f in frames] == ["mono16"] * 3
    assert all(np.array_equal(f.image, d) for f, d in zip(frames, depth))
    assert [p.name for p in list_frames(folder)] == ["000000.png", "000001.png", "000002.png"]


def test_cli_errors(dataset, tmp_path, capsys):
    root, _ = dataset
    out = tmp_path / "bag"

    def fails(argv, text):
        assert main(argv + ["--no-progress"]) == 1
        err = capsys.readouterr().err
        assert text in err and err.count("\n") == 1, err

    fails(["bag", "hpatches", str(tmp_path / "missing"), "-o", str(out)], "does not exist")
    (tmp_path / "empty").mkdir()
    fails(["bag", "hpatches", str(tmp_path / "empty"), "-o", str(out)], "no sequences found")
    fails(["bag", "images", str(tmp_path / "empty"), "-o", str(out)], "no image files")

    assert main(["bag", "hpatches", str(root / "v_tiny"), "-o", str(out), "--no-progress"]) == 0
    before = (out / "metadata.yaml").read_text()
    fails(["bag", "hpatches", str(root / "i_tiny"), "-o", str(out)], "--overwrite")
    assert (out / "metadata.yaml").read_text() == before  # untouched
    argv = ["bag", "hpatches", str(root / "i_tiny"), "-o", str(out), "--overwrite"]
    assert main(argv + ["--no-progress"]) == 0
    assert [s.name for s in read_hpatches_bag(out)] == ["i_tiny"]

    not_a_bag = tmp_path / "precious"
    not_a_bag.mkdir()
    (not_a_bag / "thesis.tex").write_text("keep me")
    fails(["bag", "hpatches", str(root), "-o", str(not_a_bag), "--overwrite"], "not a bag")
    assert (not_a_bag / "thesis.tex").exists()

    (root / "v_tiny" / "H_1_4").unlink()
    fails(["bag", "hpatches", str(root), "-o", str(tmp_path / "b2")], "H_1_4")


def test_failed_write_leaves_no_bag(dataset, tmp_path):
    root, _ = dataset
    (root / "v_tiny" / "4.png").write_bytes(b"not a png")
    out = tmp_path / "bag"
    with pytest.raises(InputError, match="cannot read image"):
        write_hpatches_bag(find_sequences(root), out)
    assert not out.exists()


@pytest.mark.shared_data
def test_real_v_graffiti(shared_data, tmp_path):
    src = shared_data / "hpatches" / "v_graffiti"
    if not src.is_dir():
        pytest.skip(f"{src} is absent")
    out = tmp_path / "graffiti"
    start = time.perf_counter()
    summary = write_hpatches_bag(find_sequences(src), out)
    assert time.perf_counter() - start < 30
    assert summary.counts == {IMAGE_TOPIC: 6, H_TOPIC: 5}
    assert metadata(out)["version"] == 8
    (seq,) = read_hpatches_bag(out)
    assert seq.name == "v_graffiti" and seq.encodings == ["bgr8"] * 6
    for n, img in enumerate(seq.images, start=1):
        assert np.array_equal(img, cv2.imread(str(src / f"{n}.ppm"), cv2.IMREAD_UNCHANGED))
    for n, H in seq.homographies.items():
        assert np.array_equal(H, np.loadtxt(src / f"H_1_{n}"))
    # H_1_2's first row and last value, as printed in the file
    assert seq.homographies[2][0].tolist() == [0.88184, 0.31397, -39.976]
    assert seq.homographies[2][2, 2] == 0.99997

    boat = shared_data / "oxford_affine" / "boat"
    if boat.is_dir():  # Oxford layout, grey PGM -> mono8
        out = tmp_path / "boat"
        write_hpatches_bag(find_sequences(boat), out, distro="jazzy")
        (seq,) = read_hpatches_bag(out)
        assert seq.name == "boat" and seq.encodings == ["mono8"] * 6
        assert np.array_equal(seq.images[5], cv2.imread(str(boat / "img6.pgm"), -1))
        assert seq.homographies[2][1, 2] == 1.3047838e02


def _lying_copy(bag: Path, dest: Path, old: str, new: str, count: int = 1) -> Path:
    """A copy of ``bag`` whose metadata.yaml has ``old`` replaced by ``new`` (storage intact)."""
    shutil.copytree(bag, dest)
    text = (dest / "metadata.yaml").read_text()
    assert text.count(old) >= count, old
    (dest / "metadata.yaml").write_text(text.replace(old, new, count))
    return dest


@pytest.mark.parametrize("source", ["tiny", "v_graffiti"])
def test_bags_whose_metadata_lies(source, dataset, tmp_path, request):
    """An edited or stale metadata.yaml: a topic's type changed (rosbags then yields nothing
    for it) is refused naming the topic, its type and the expected one; a message count that
    disagrees with the storage is counted, and the difference warned about."""
    if source == "tiny":
        folder = dataset[0] / "v_tiny"
    else:
        folder = request.getfixturevalue("shared_data") / "hpatches" / "v_graffiti"
        if not folder.is_dir():
            pytest.skip(f"{folder} is absent")
    bag = tmp_path / "good"
    write_hpatches_bag(find_sequences(folder), bag)
    name = folder.name

    image_type = _lying_copy(
        bag,
        tmp_path / "image_type",
        "type: sensor_msgs/msg/Image",
        "type: sensor_msgs/msg/CompressedImage",
    )
    expected = (
        f"the image topic {IMAGE_TOPIC} has type sensor_msgs/msg/CompressedImage, "
        "expected sensor_msgs/msg/Image"
    )
    with pytest.raises(InputError, match=re.escape(expected)):
        next(read_hpatches_bag(image_type))
    with pytest.raises(InputError, match=re.escape(expected)):
        next(read_image_bag(image_type, topic=IMAGE_TOPIC))

    h_type = _lying_copy(
        bag, tmp_path / "h_type", "type: std_msgs/msg/Float64MultiArray",
        "type: std_msgs/msg/Float32MultiArray",
    )  # fmt: skip
    with pytest.raises(
        InputError, match="homography topic /hpatches/homography has type std_msgs"
    ):
        read_homographies(h_type)  # was: an empty result, no error
    with pytest.raises(InputError, match="expected std_msgs/msg/Float64MultiArray"):
        next(read_hpatches_bag(h_type))

    count = _lying_copy(
        bag, tmp_path / "count", "  - message_count: 6\n", "  - message_count: 60\n"
    )
    warnings: list[str] = []
    assert bag_topics(count, warn=warnings.append)[IMAGE_TOPIC] == ("sensor_msgs/msg/Image", 6)
    assert warnings == [
        f"bag {count}: metadata.yaml says 60 messages of type sensor_msgs/msg/Image on "
        f"{IMAGE_TOPIC}, the storage holds 6; using 6"
    ]
    assert [s.name for s in read_hpatches_bag(count)] == [name]  # the data itself is fine
    assert bag_topics(bag, warn=warnings.append)[IMAGE_TOPIC][1] == 6 and len(warnings) == 1


def test_overwrite_replaces_only_a_bag(dataset, tmp_path, capsys):
    """--overwrite onto an ordinary file, a link or a path under a file: refused, untouched."""
    root, _ = dataset
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    link = tmp_path / "link"
    link.symlink_to(precious)
    for out, text in (
        (precious, "is a file, not a bag folder"),
        (link, "is a link"),
        (precious / "bag", "is a file, not a folder"),
    ):
        argv = ["bag", "hpatches", str(root / "v_tiny"), "-o", str(out), "--overwrite"]
        assert main(argv + ["--no-progress"]) == 1
        err = capsys.readouterr().err
        assert text in err and err.count("\n") == 1, err
        assert precious.read_text() == "keep me" and link.is_symlink()
