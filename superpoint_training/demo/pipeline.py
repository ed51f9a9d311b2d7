"""The demo's steps in order: input -> replay through the node -> recording -> metrics -> report.

``<output>/input_<source>/`` is reused by a later run with the same input (see
:mod:`.inputs`), and the node reuses its ONNX export of the model (``~/.cache/superpoint_ros``);
the replay itself runs every time (that is the demo). ``report_only`` skips the replay and
rebuilds the report from the last recording in ``<output>/run/`` and the input it was made
from.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from superpoint_ros.errors import InputError
from superpoint_ros.frontend import default_weights
from superpoint_ros.frontend.metadata import file_sha256

from .inputs import PHOTOS, load_input, prepare_input
from .metrics import build_tracks, frame_rows, summarise
from .node_process import NODE_NAME
from .recording import read_recording, write_recording
from .replay import ReplayConfig, domain_id, replay
from .report import write_report
from .sequence import SequenceConfig


@dataclass(frozen=True)
class DemoOptions:
    """What ``superpoint demo`` was asked for."""

    output: Path = Path("superpoint_demo")
    source: str | None = None  # a folder of frames or an HPatches sequence; None = synthetic
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    photo: str = PHOTOS[0]
    rate: float = 10.0  # camera frames per second
    params: dict[str, object] = field(default_factory=dict)  # superpoint_node parameters
    report_only: bool = False


@dataclass
class DemoOutcome:
    title: str
    summary: dict[str, Any]
    index: Path
    node: str  # the node's line naming its model and backend


def run_demo(options: DemoOptions, say: Callable[[str], None] = print) -> DemoOutcome:
    """Run every step; ``say`` gets one line per step."""
    times: dict[str, float] = {}
    run_dir = options.output / "run"
    info_path = run_dir / "replay.json"
    if options.report_only:
        if not info_path.is_file():
            raise InputError(f"no recording in {run_dir} to report on: run the demo first")
        info = json.loads(info_path.read_text())
        demo_input = load_input(Path(info["input_folder"]))
        say(f"input: {demo_input.description}; recorded {info['date']}")
    else:
        t0 = time.perf_counter()
        demo_input = prepare_input(options.output, options.source, options.sequence,
                                   options.photo, options.rate)  # fmt: skip
        times["input_s"] = time.perf_counter() - t0
        say(f"input: {demo_input.description}; "
            f"{'reused' if demo_input.reused else 'made'} {demo_input.bag}")  # fmt: skip
        run_dir.mkdir(parents=True, exist_ok=True)
        info_path.unlink(missing_ok=True)  # a run cut short leaves no report-only to mislead
        t1 = time.perf_counter()
        result = replay(demo_input.bag, run_dir, ReplayConfig(params=dict(options.params)), say)
        times["node_start_s"] = result.startup_s
        times["node_s"] = time.perf_counter() - t1
        bag = write_recording(run_dir, result.recording)
        model = Path(str(options.params.get("weights") or default_weights()))
        info = {
            "model": str(model),
            "model_sha256": file_sha256(model) if model.is_file() else "",
            "node": result.node_line,
            "node_parameters": {k: str(v) for k, v in options.params.items()} or "defaults",
            "node_exit_code": result.exit_code,
            "node_log": str(result.node_log),
            "recorded_bag": str(bag),
            "input_folder": str(demo_input.bag.parent),
            "ros_domain_id": domain_id(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            **{k: round(v, 2) for k, v in times.items()},
        }
        info_path.write_text(json.dumps(info, indent=1))
        say(f"recorded ~/features and ~/matches: {bag}")
    records = read_recording(run_dir)
    rows = frame_rows(records, demo_input.H_0to, demo_input.size)
    tracks = build_tracks(records)
    summary = summarise(records, rows, tracks, demo_input.H_0to)
    h, w = demo_input.size
    title = (f"{NODE_NAME} on {len(records)} frames of {h}x{w} at {demo_input.rate:g} Hz "
             f"({info['date']})")  # fmt: skip
    details = {"input": demo_input.description, "input bag": str(demo_input.bag), **info}
    index = write_report(options.output / "report", title, records, rows, tracks, summary,
                         demo_input.frames, demo_input.H_0to, details)  # fmt: skip
    return DemoOutcome(title, summary, index, info.get("node", ""))
