"""Write rosbag2 bags: HPatches sequences with ground truth, or a folder of camera frames.

  superpoint bag hpatches DIR -o OUT [--distro humble|jazzy|kilted] [--storage sqlite3|mcap]
  superpoint bag images DIR -o OUT [--rate HZ] [--topic /camera/image_raw] [--encoding mono8]

`hpatches`: DIR is one sequence folder or a folder of them (HPatches 1..6.ppm + H_1_N, or
Oxford img1..6.ppm|pgm + H1toNp). Images go on /hpatches/image (sensor_msgs/Image, frame id
"<sequence>/<n>"), ground truth H_1_n on /hpatches/homography (std_msgs/Float64MultiArray,
9 values row-major; dim[0].label = "<sequence>/<n>", dim[1].label = "<sequence>/1").
`images`: frames sorted by name; names that are stamps in seconds (TUM: 1311868169.163498.png)
give the stamps, otherwise start-time + i / rate.
`--distro humble` (the default) writes rosbag2 metadata version 8 into sqlite3, which Humble,
Jazzy and Kilted all play; jazzy/kilted write version 9 into mcap. See docs/bags.md.
"""

from __future__ import annotations

import argparse

from superpoint_training.bags import writer
from superpoint_training.bags.writer import DISTROS, STORAGES

COMMAND = "bag"


def _common(p: argparse.ArgumentParser) -> None:

    p.add_argument("-o", "--output", required=True, metavar="OUT", help="bag folder to create")
    p.add_argument(
        "--distro",
        choices=sorted(DISTROS),
        default="humble",
        help="ROS 2 distribution that must play the bag: humble writes metadata version 8 "
        "(readable by all three), jazzy/kilted version 9 (default: humble)",
    )
    p.add_argument(
        "--storage",
        choices=STORAGES,
        default=None,
        help="storage plugin (default: the distro's default: sqlite3 for humble, mcap for "
        "jazzy/kilted; mcap on Humble needs ros-humble-rosbag2-storage-mcap)",
    )
    p.add_argument(
        "--start-time",
        type=float,
        default=1.0,
        metavar="S",
        help="stamp of the first rate-based message, in seconds (default: 1.0)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it is a bag")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bag_kind", metavar="KIND")
    sub.required = True

    hp = sub.add_parser(
        "hpatches",
        help="HPatches/Oxford sequences with their ground-truth homographies",
        description="Images on /hpatches/image, H_1_n on /hpatches/homography.",
    )
    hp.add_argument("dataset", metavar="DIR", help="a sequence folder or a folder of them")
    hp.add_argument(
        "--rate", type=float, default=10.0, metavar="HZ", help="images per second (default: 10)"
    )
    _common(hp)

    im = sub.add_parser(
        "images",
        help="a folder of frames as a camera bag",
        description="Frames sorted by name on one sensor_msgs/Image topic.",
    )
    im.add_argument("frames", metavar="DIR", help="folder of image files")
    im.add_argument(
        "--rate",
        type=float,
        default=10.0,
        metavar="HZ",
        help="frame rate for rate-based stamps (default: 10)",
    )
    im.add_argument(
        "--stamps",
        choices=("auto", "name", "rate"),
        default="auto",
        help="auto: from the names when every name is a stamp in seconds with a fraction "
        "(TUM), else from --rate; name/rate force one (default: auto)",
    )
    im.add_argument("--topic", default="/camera/image_raw", help="image topic")
    im.add_argument("--frame-id", default="camera", help="header frame id (default: camera)")
    im.add_argument(
        "--encoding",
        choices=("mono8", "bgr8"),
        default=None,
        help="convert every frame to this encoding (default: keep each file's own)",
    )
    _common(im)


def _progress(total: int, disabled: bool, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=disabled, dynamic_ncols=True)


def _report(summary, extra: str = "") -> None:
    counts = ", ".join(f"{topic}: {n}" for topic, n in summary.counts.items())
    print(
        f"wrote {summary.path} ({summary.storage}, metadata version {summary.version} for "
        f"{summary.distro}; {summary.size_bytes / 1e6:.1f} MB in {summary.seconds:.2f} s){extra}"
    )
    print(f"  {counts}")


def run(args: argparse.Namespace) -> int:

    if args.bag_kind == "hpatches":
        sequences = writer.find_sequences(args.dataset)
        total = sum(len(s.images) for s in sequences)
        with _progress(total, args.no_progress or getattr(args, "quiet", False), "img") as bar:
            summary = writer.write_hpatches_bag(
                sequences,
                args.output,
                distro=args.distro,
                storage=args.storage,
                rate=args.rate,
                start_time=args.start_time,
                overwrite=args.overwrite,
                progress=bar.update,
            )
        _report(summary, f"; {len(sequences)} sequence(s)")
        return 0

    frames = writer.list_frames(args.frames)
    with _progress(len(frames), args.no_progress or getattr(args, "quiet", False), "frame") as bar:
        summary, mode = writer.write_image_bag(
            frames,
            args.output,
            topic=args.topic,
            frame=args.frame_id,
            encoding=args.encoding,
            rate=args.rate,
            start_time=args.start_time,
            stamps=args.stamps,
            distro=args.distro,
            storage=args.storage,
            overwrite=args.overwrite,
            progress=bar.update,
        )
    _report(summary, f"; stamps from the {'names' if mode == 'name' else 'rate'}")
    return 0
