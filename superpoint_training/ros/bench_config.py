"""Parameters of ``bench_node``: one table, parsed once into a frozen :class:`BenchConfig`.

Pure (no ``rclpy``, light imports): ``launch/bench.launch.py`` declares its bench arguments
from this table, ``config/bench.yaml`` and the table of ``docs/bench_node.md`` are renderings of
it (``superpoint ros-params bench_node``), and the node declares and parses it.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superpoint_ros.errors import ConfigError
from superpoint_ros.ros.params import INT32_MAX, ParamSpec, check_parameters
from superpoint_training.evaluation.protocol import Protocol

DEFAULT_NODE = "/superpoint_node"
REQUIRED = ("bag", "output_dir")  # no usable default: the launch file requires them too

# The bench node's parameters (declared with these descriptions and ranges); config/bench.yaml
# and the table of docs/bench_node.md are renderings of it (superpoint ros-params bench_node).
PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "bag", "", "HPatches bag to replay (written by `superpoint bag hpatches`). Required."
    ),
    ParamSpec(
        "output_dir",
        "",
        "Report folder: metrics.json, report.md and plots, in the format of `superpoint "
        "evaluate`. Required.",
    ),
    ParamSpec(
        "rate",
        0.0,
        "Frames per second to publish; 0 = as fast as the node answers (the next frame goes out "
        "when the previous one's features came back or timed out).",
        0.0,
        1000.0,
    ),
    ParamSpec(
        "timeout",
        10.0,
        "Seconds to wait for a frame's features; later is a dropped frame.",
        0.01,
        3600.0,
    ),
    ParamSpec(
        "startup_timeout",
        120.0,
        "Seconds to wait for the SuperPoint node to subscribe to the images and offer "
        "~/features (model loading, TensorRT engine builds).",
        1.0,
        36000.0,
    ),
    ParamSpec(
        "warmup",
        2,
        "Frames per protocol size sent before measuring (first image of the bag); not scored.",
        0,
        1000,
    ),
    ParamSpec(
        "protocol",
        "",
        "Protocol overrides, space-separated key=value as `superpoint evaluate --set`, e.g. "
        "'hom_size=240x320 eps=1,3,5'; empty = the pinned protocol (leave it unset rather than "
        "-p protocol:=, which rcl rejects).",
    ),
    ParamSpec(
        "node_name",
        DEFAULT_NODE,
        "The SuperPoint node whose parameters (weights, backend, detection settings) are "
        "recorded in the report; empty = do not ask.",
    ),
    ParamSpec(
        "method_name",
        "",
        "Name of the method in the report; empty = '<weights file stem>@superpoint_node' "
        "('default@superpoint_node' for the packaged model).",
    ),
    ParamSpec("image_topic", "/hpatches/image", "Image topic inside the bag."),
    ParamSpec("homography_topic", "/hpatches/homography", "Ground-truth topic inside the bag."),
    ParamSpec(
        "max_sequences", 0, "Replay only the first N sequences of the bag; 0 = all.", 0, INT32_MAX
    ),
    ParamSpec("plots", True, "Write the PNG plots and one match image per sequence."),
    ParamSpec(
        "match_pair",
        0,
        "Target image drawn against the reference in the match images; 0 = middle target.",
        0,
        99,
    ),
)
PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)


@dataclass(frozen=True)
class BenchConfig:
    """The bench node's parameters, checked (meanings in :data:`PARAMETERS`)."""

    bag: Path
    output_dir: Path
    rate: float  # 0 = lockstep
    timeout: float
    startup_timeout: float
    warmup: int
    protocol: Protocol
    node_name: str  # "" = do not query
    method_name: str  # "" = derived from the node's weights
    image_topic: str
    homography_topic: str
    max_sequences: int  # 0 = all
    plots: bool
    match_pair: int | None  # None = the protocol's middle target

    @property
    def mode(self) -> str:
        return "lockstep" if self.rate == 0 else "rate"


def parse_bench_config(values: Mapping[str, Any]) -> BenchConfig:
    """Check ``values`` (missing names take their defaults); one-line ``ConfigError`` if bad."""
    # Names, types and ranges checked as the node checks its own (one rule, one message).
    v = check_parameters(PARAMETERS, values)
    for name in REQUIRED:
        if not v[name]:
            raise ConfigError(f"parameter {name} is required (e.g. -p {name}:=/path)")
    try:
        protocol = Protocol().with_overrides(shlex.split(v["protocol"]))
    except ValueError as exc:  # shlex: unbalanced quotes
        raise ConfigError(f"parameter protocol: {exc}") from None
    match_pair = v["match_pair"] or None
    if match_pair is not None and match_pair not in protocol.targets:
        raise ConfigError(
            f"parameter match_pair={match_pair} is not one of the protocol's targets "
            f"{list(protocol.targets)}"
        )
    return BenchConfig(
        bag=Path(v["bag"]).expanduser(),
        output_dir=Path(v["output_dir"]).expanduser(),
        rate=v["rate"],
        timeout=v["timeout"],
        startup_timeout=v["startup_timeout"],
        warmup=v["warmup"],
        protocol=protocol,
        node_name=v["node_name"],
        method_name=v["method_name"],
        image_topic=v["image_topic"],
        homography_topic=v["homography_topic"],
        max_sequences=v["max_sequences"],
        plots=v["plots"],
        match_pair=match_pair,
    )


# The comment on top of config/bench.yaml (render_params_file writes the rest).
PARAMS_FILE_HEADER = """\
Parameters of bench_node (superpoint_ros): replays an HPatches bag through superpoint_node and
writes the offline evaluation's report (docs/bench_node.md). Every key is declared by the node
with a description and a range (`ros2 param describe /bench_node <name>`). Generated from the
table in superpoint_training/ros/bench_config.py (edit the table, not this file) by
`superpoint ros-params bench_node -o config/bench.yaml`. Use with:
  ros2 launch superpoint_ros bench.launch.py bag:=BAG output_dir:=DIR
  bench_node --ros-args --params-file config/bench.yaml -p bag:=BAG -p output_dir:=DIR \\
      -r image:=/bench/image -r features:=/superpoint_node/features
"""

__all__ = [
    "DEFAULT_NODE",
    "PARAMETERS",
    "PARAMETER_NAMES",
    "PARAMS_FILE_HEADER",
    "REQUIRED",
    "BenchConfig",
    "parse_bench_config",
]
