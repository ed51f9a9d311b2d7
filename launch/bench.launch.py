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

PACKAGE = "superpoint_ros"

# (parameter, type, launch default, description): launch arguments that set a parameter of
# superpoint_node (superpoint_ros/ros/node_config.py) or of bench_node
# (superpoint_training/ros/bench.py); test/test_bench_node.py checks the names. Default None =
# required; "" = keep the parameter file's value.
NODE_ARGUMENTS = (
    (
        "weights",
        "str",
        "",
        "Model of superpoint_node: a checkpoint (.pt/.pth), an .onnx or a TensorRT engine; "
        "empty = the parameter file's (the packaged default model)",
    ),
    ("backend", "str", "", "Backend of superpoint_node: auto | tensorrt | onnxruntime | torch"),
)
BENCH_ARGUMENTS = (
    ("bag", "str", None, "HPatches bag to replay (`superpoint bag hpatches DIR -o BAG`)"),
    ("output_dir", "str", None, "Report folder: metrics.json, report.md and plots"),
    (
        "rate",
        "float",
        "",
        "Frames per second the bench publishes; 0.0 = the next frame when the previous one's "
        "features came back or timed out (bench.yaml: 0.0)",
    ),
    ("timeout", "float", "", "Seconds to wait for a frame's features before counting it dropped"),
    (
        "protocol",
        "str",
        "",
        "Protocol overrides as `superpoint evaluate --set`, space-separated, e.g. "
        "'hom_size=240x320 eps=1,3,5'; empty = the pinned protocol",
    ),
    ("max_sequences", "int", "", "Replay only the first N sequences of the bag; 0 = all"),
)
# Set on every bench run. Reliable input: the bench measures the model, not DDS losing large
# frames; with a rate the node's newest-frame-only policy still drops what it can't keep up
# with.
NODE_FIXED = {"qos_reliability": "reliable", "publish_debug_image": False}
BENCH_FIXED = {"node_name": "/superpoint_node"}
FEATURES_TOPIC = "/superpoint_node/features"

_TYPES = {"str": str, "int": int, "float": float}


def _typed(name, kind, text):
    """A launch argument's text as the parameter's type (ROS parameters are strictly typed)."""
    try:
        return _TYPES[kind](text)
    except ValueError:
        raise ValueError(f"launch argument {name}:={text!r} must be a {kind}") from None


def _overrides(context, arguments, fixed):
    out = dict(fixed)
    for name, kind, _, _ in arguments:
        text = LaunchConfiguration(name).perform(context)
        if text != "":
            out[name] = _typed(name, kind, text)
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
            _overrides(context, NODE_ARGUMENTS, NODE_FIXED),
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
            _overrides(context, BENCH_ARGUMENTS, BENCH_FIXED),
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
    for name, _, default, description in NODE_ARGUMENTS + BENCH_ARGUMENTS:
        if default is None:
            arguments.append(DeclareLaunchArgument(name, description=description))
        else:
            arguments.append(
                DeclareLaunchArgument(name, default_value=default, description=description)
            )
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
