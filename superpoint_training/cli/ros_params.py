"""Write a ROS node's parameter file (or its README table) from the node's parameter table.

  superpoint ros-params superpoint_node -o config/superpoint.yaml
  superpoint ros-params bench_node -o config/bench.yaml
  superpoint ros-params superpoint_node --markdown      # the README's parameter table
  superpoint ros-params superpoint_node --check config/superpoint.yaml

The tables (superpoint_ros/ros/node_config.py, superpoint_training/ros/bench_config.py) are
the one place a parameter, its default and its meaning are written; the front-end's settings
take theirs from FrontendConfig. Without -o the rendering goes to stdout. --check exits 1 when
the file differs from the rendering (the tests run the same comparison).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from superpoint_ros.errors import InputError
from superpoint_ros.ros import node_config
from superpoint_ros.ros.params import ParamSpec, render_markdown_table, render_params_file
from superpoint_training.ros import bench_config

COMMAND = "ros-params"

# node name -> (its parameter table, the comment on top of its parameter file)
NODES: dict[str, tuple[Sequence[ParamSpec], str]] = {
    "superpoint_node": (node_config.PARAMETERS, node_config.PARAMS_FILE_HEADER),
    "bench_node": (bench_config.PARAMETERS, bench_config.PARAMS_FILE_HEADER),
}


def rendering(node: str, markdown: bool = False) -> str:
    """The parameter file of ``node`` (or, with ``markdown``, its README table)."""
    specs, header = NODES[node]
    return render_markdown_table(specs) if markdown else render_params_file(node, specs, header)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("node", choices=sorted(NODES), help="the node whose table to render")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write FILE")
    parser.add_argument(
        "--markdown", action="store_true", help="the README's markdown table instead of YAML"
    )
    parser.add_argument(
        "--check",
        type=Path,
        metavar="FILE",
        help="compare FILE with the rendering: exit 1 if it differs",
    )


def run(args: argparse.Namespace) -> int:
    text = rendering(args.node, args.markdown)
    if args.check is not None:
        if not args.check.is_file():
            raise InputError(f"{args.check} does not exist")
        if args.check.read_text() != text:
            raise InputError(
                f"{args.check} differs from the {args.node} table: regenerate it with "
                f"superpoint ros-params {args.node} -o {args.check}"
            )
        print(f"{args.check} matches the {args.node} table")
        return 0
    if args.output is None:
        print(text, end="")
    else:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    return 0
