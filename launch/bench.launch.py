"""Replay an HPatches bag through superpoint_node and score it: the on-robot benchmark.

    ros2 launch superpoint_ros bench.launch.py bag:=hpatches_bag output_dir:=reports/robot \\
        weights:=/models/superpoint.onnx backend:=onnxruntime

Starts ``superpoint_node`` and ``bench_node`` together. The bench publishes the bag's images on
``image_topic`` (the node's input), reads ``/superpoint_node/features`` back, writes
``metrics.json`` + ``report.md`` into ``output_dir`` and exits, which shuts the launch down.
Parameters come from the two parameter files (defaults: the installed ``config/superpoint.yaml``
and ``config/bench.yaml``); an argument given here overrides the file's value, one left empty
keeps it. Walk-through and every parameter: docs/bench_node.md.
"""

# ruff would sort `launch` as first-party (this repo has a launch/ folder): keep ROS order.
# ruff: noqa: I001
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from superpoint_ros.ros import node_config
from superpoint_ros.ros.params import launch_value
from superpoint_training.ros import bench_config

PACKAGE = "superpoint_ros"

# Launch arguments that set a parameter of superpoint_node or of bench_node: names only; type,
# description and whether it is required come from the nodes' own tables
# (superpoint_ros/ros/node_config.py, superpoint_training/ros/bench_config.py). An empty
# argument keeps the parameter file's value.
NODE_ARGUMENTS = ("weights", "backend", "precision")
BENCH_ARGUMENTS = ("bag", "output_dir", "rate", "timeout", "protocol", "max_sequences")
# Set on every bench run. Reliable input: the bench measures the model, not DDS losing large
# frames; with a rate the node's newest-frame-only policy still drops what it can't keep up
# with.
NODE_FIXED = {"qos_reliability": "reliable", "publish_debug_image": False}
BENCH_FIXED = {"node_name": "/superpoint_node"}
FEATURES_TOPIC = "/superpoint_node/features"

_NODE_SPECS = {p.name: p for p in node_config.PARAMETERS}
_BENCH_SPECS = {p.name: p for p in bench_config.PARAMETERS}


def _overrides(context, names, specs, fixed):
    out = dict(fixed)
    for name in names:
        text = LaunchConfiguration(name).perform(context)
        if text != "":
            out[name] = launch_value(specs[name], text)
    return out


def _nodes(context, *args, **kwargs):
    image_topic = LaunchConfiguration("image_topic")
    superpoint = Node(
        package=PACKAGE,
        executable="superpoint_node",
        name="superpoint_node",
        output="screen",
        parameters=[
            LaunchConfiguration("node_params_file"),
            _overrides(context, NODE_ARGUMENTS, _NODE_SPECS, NODE_FIXED),
        ],
        remappings=[("image", image_topic)],
    )
    bench = Node(
        package=PACKAGE,
        executable="bench_node",
        name="bench_node",
        output="screen",
        parameters=[
            LaunchConfiguration("bench_params_file"),
            _overrides(context, BENCH_ARGUMENTS, _BENCH_SPECS, BENCH_FIXED),
        ],
        remappings=[("image", image_topic), ("features", FEATURES_TOPIC)],
    )
    # The bench ends the run: when it exits (report written, or failed), stop everything.
    stop = RegisterEventHandler(
        OnProcessExit(
            target_action=bench,
            on_exit=[
                LogInfo(msg="bench_node finished; shutting down superpoint_node"),
                EmitEvent(event=Shutdown(reason="bench_node finished")),
            ],
        )
    )
    return [superpoint, bench, stop]


def generate_launch_description() -> LaunchDescription:
    config = os.path.join(get_package_share_directory(PACKAGE), "config")
    arguments = [
        DeclareLaunchArgument(
            "image_topic",
            default_value="/bench/image",
            description="Topic between the bench and the node (apart from a live camera's)",
        ),
        DeclareLaunchArgument(
            "node_params_file",
            default_value=os.path.join(config, "superpoint.yaml"),
            description="Parameter file of superpoint_node; its detection settings should be "
            "the protocol's (the report lists any difference)",
        ),
        DeclareLaunchArgument(
            "bench_params_file",
            default_value=os.path.join(config, "bench.yaml"),
            description="Parameter file of bench_node",
        ),
    ]
    for name in NODE_ARGUMENTS:
        arguments.append(
            DeclareLaunchArgument(
                name,
                default_value="",
                description=f"superpoint_node: {_NODE_SPECS[name].description} "
                "(empty: from node_params_file)",
            )
        )
    for name in BENCH_ARGUMENTS:
        description = f"bench_node: {_BENCH_SPECS[name].description}"
        if name in bench_config.REQUIRED:
            arguments.append(DeclareLaunchArgument(name, description=description))
        else:
            arguments.append(
                DeclareLaunchArgument(
                    name,
                    default_value="",
                    description=f"{description} (empty: from bench_params_file)",
                )
            )
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
