"""Watch superpoint_node work: a camera sequence replayed through it, measured, with pictures.

Offline, on this machine: synthesises a moving-camera sequence over a photo scikit-image ships
(60 frames of 480x640: a smooth random homography path, a lighting change, sensor noise, with
the ground truth of every frame) or takes --input DIR (a folder of frames, or an HPatches /
Oxford sequence with its H_1_n files); writes it as a rosbag2 camera bag; starts the real
superpoint_node (rclpy, its default model unless --weights), replays the bag into it at the
camera rate and records ~/features and ~/matches into a second bag. Prints keypoints and
matches per frame, the correct-match ratio and homography accuracy against the ground truth,
how many points were followed over 5, 10 and 30 frames, latency p50/p95, processed frames per
second and dropped frames; writes a report folder (index.html, match and track pictures,
plots, the table) and the command that opens it.

  superpoint demo [--input DIR] [-o superpoint_demo] [--rate 10] [--frames 60]
                  [--weights W] [--backend B] [-p NAME:=VALUE ...]
  superpoint demo --report-only          # the report again, from the last recording
  superpoint demo --still [--image PATH] # the older in-process two-view demo, no ROS
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2

from superpoint_ros.errors import ConfigError, SuperPointError
from superpoint_ros.frontend import parse_size
from superpoint_ros.loader import load_frontend
from superpoint_training.demo.still import still_demo

from ._common import read_image

try:  # the ROS side: rclpy and the message packages, from the [ros] extra or a sourced ROS
    from superpoint_training.demo.inputs import PHOTOS
    from superpoint_training.demo.pipeline import DemoOptions, run_demo
    from superpoint_training.demo.report import open_command
    from superpoint_training.demo.sequence import SequenceConfig
    from superpoint_training.demo.table import render_summary

    ROS_MISSING = None
except ImportError as exc:  # --still needs none of it; the ROS demo says what is missing
    ROS_MISSING = exc.name

COMMAND = "demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        metavar="DIR",
        help="frames to replay: a folder of images, or an HPatches/Oxford "
        "sequence folder (ground truth from its H files); default: synthetic",
    )
    parser.add_argument(
        "-o",
        "--output",
        default="superpoint_demo",
        metavar="DIR",
        help="folder for the input bag, the recording and the report (default: superpoint_demo)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=10.0,
        metavar="HZ",
        help="camera rate of the replay, frames per second (default: 10)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=60,
        metavar="N",
        help="frames of the synthetic sequence (default: 60)",
    )
    parser.add_argument(
        "--size",
        default="480x640",
        metavar="HxW",
        help="frame size of the synthetic sequence (default: 480x640)",
    )
    parser.add_argument(
        "--photo",
        default=None,
        metavar="NAME",
        help="scikit-image photo the synthetic camera looks at (default: coffee)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="camera path, lighting and noise of the synthetic sequence",
    )
    parser.add_argument(
        "--weights",
        "-w",
        metavar="W",
        help="the node's model (.pt, .onnx, .engine); default: its packaged one",
    )
    parser.add_argument(
        "--backend",
        "-b",
        metavar="B",
        help="the node's backend: auto, tensorrt, onnxruntime, torch",
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="any other superpoint_node parameter, e.g. -p match_ratio:=0.8 (repeatable)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild the report from the last recording (no node)",
    )
    parser.add_argument(
        "--still",
        action="store_true",
        help="the in-process two-view demo instead (no ROS): one photo and a "
        "warped copy, matches drawn to superpoint_demo.png",
    )
    parser.add_argument(
        "--image", help="--still: photo to use (default: scikit-image's astronaut)"
    )


def node_parameters(args: argparse.Namespace) -> dict[str, object]:
    """The node's parameters from ``--weights``, ``--backend`` and ``-p NAME:=VALUE``."""
    params: dict[str, object] = {}
    if args.weights:
        params["weights"] = str(Path(args.weights).expanduser().resolve())
    if args.backend:
        params["backend"] = args.backend
    for item in args.param:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ConfigError(f"-p {item!r}: expected NAME:=VALUE, e.g. -p match_ratio:=0.8")
        params[name] = value
    return params


def run_still(args: argparse.Namespace) -> int:
    if args.image:
        image, source = read_image(args.image), args.image
    else:
        try:
            from skimage import data
        except ImportError:
            raise SuperPointError("scikit-image is not installed: pass --image PATH") from None
        image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        source = "scikit-image astronaut (CC0)"
    frontend = load_frontend(args.weights, args.backend or "auto")
    r = still_demo(frontend, image)
    output = "superpoint_demo.png"
    cv2.imwrite(output, r.picture)
    print(f"image: {source}; second view: known homography; backend: {frontend.backend_name}")
    print(f"keypoints: {r.keypoints[0]} / {r.keypoints[1]}")
    print(f"mutual nearest-neighbour matches: {r.matches}")
    print(
        f"correct within 3 px (ground truth): {r.correct} "
        f"({r.correct / r.matches if r.matches else 0:.1%})"
    )
    print(
        f"RANSAC inlier ratio: {r.inlier_ratio:.1%}; homography corner error: "
        f"{r.corner_error:.2f} px"
    )
    print(f"wrote {output}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.still:
        return run_still(args)
    if ROS_MISSING is not None:
        raise SuperPointError(
            f"the demo needs ROS 2's Python packages ({ROS_MISSING} is missing): source a ROS 2 "
            "installation or pip install '.[ros,train]' (make venv does)"
        )

    started = time.perf_counter()
    size = parse_size(args.size)
    if size is None:
        raise ConfigError("--size must be HxW, e.g. 480x640")
    options = DemoOptions(
        output=Path(args.output),
        source=args.input or None,
        sequence=SequenceConfig(frames=args.frames, size=size, seed=args.seed),
        photo=args.photo or PHOTOS[0],
        rate=args.rate,
        params=node_parameters(args),
        report_only=args.report_only,
    )
    outcome = run_demo(options, say=lambda line: print(line, flush=True))
    print()
    print(render_summary(outcome.summary, outcome.title))
    print(f"  ({outcome.node})")
    print()
    print(f"demo done in {time.perf_counter() - started:.0f} s; report: {outcome.index.parent}")
    print(f"open it: {open_command(outcome.index.resolve(), os.environ, sys.platform)}")
    return 0
