"""Replay an HPatches bag through superpoint_node and score it: the on-robot benchmark.

Starts ``superpoint_node`` and ``bench_node`` together; the bench publishes the bag's images
on ``image_topic`` (the node's input), reads ``/superpoint_node/features`` back, writes
``metrics.json`` + ``report.md`` into ``output_dir`` and exits, which shuts the launch down.

  ros2 launch superpoint_ros bench.launch.py bag:=hpatches_bag output_dir:=reports/robot \\
      weights:=model.onnx backend:=onnxruntime

Walk-through and every parameter: docs/bench_node.md.
"""

from launch.actions import DeclareLaunchArgument, EmitEvent, LogInfo, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "superpoint_ros"

# (name, default or None when required, description)
ARGUMENTS = (
    ("bag", None, "HPatches bag to replay (written by `superpoint bag hpatches DIR -o BAG`)."),
    ("output_dir", None, "Report folder: metrics.json, report.md and plots."),
    (
        "weights",
        "",
        "Model for superpoint_node: a checkpoint (.pt/.pth), an .onnx or a TensorRT engine; "
        "empty = the packaged default model.",
    ),
    (
        "backend",
        "auto",
        "Inference backend of superpoint_node: auto, tensorrt, onnxruntime or torch.",
    ),
    (
        "rate",
        "0.0",
        "Frames per second the bench publishes; 0.0 = the next frame as soon as the previous "
        "one's features came back (or timed out).",
    ),
    ("timeout", "10.0", "Seconds to wait for a frame's features before counting it dropped."),
    (
        "protocol",
        "",
        "Protocol overrides as `superpoint evaluate --set`, space-separated, e.g. "
        "'hom_size=240x320 eps=1,3,5'; empty = the pinned protocol.",
    ),
    (
        "image_topic",
        "/bench/image",
        "Topic between the bench and the node (kept apart from a live camera's topics).",
    ),
    (
        "node_params_file",
        PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "superpoint.yaml"]),
        "Parameter file of superpoint_node; its detection settings should be the protocol's "
        "(the report lists any difference).",
    ),
    (
        "bench_params_file",
        PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "bench.yaml"]),
        "Parameter file of bench_node (defaults of the parameters not given here).",
    ),
)


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument(name, description=description)
        if default is None
        else DeclareLaunchArgument(name, default_value=default, description=description)
        for name, default, description in ARGUMENTS
    ]
    image_topic = LaunchConfiguration("image_topic")

    superpoint = Node(
        package=PACKAGE,
        executable="superpoint_node",
        name="superpoint_node",
        output="screen",
        parameters=[
            LaunchConfiguration("node_params_file"),
            {
                "weights": ParameterValue(LaunchConfiguration("weights"), value_type=str),
                "backend": ParameterValue(LaunchConfiguration("backend"), value_type=str),
                # Reliable input: the bench measures the model, not DDS losing large frames;
                # in rate mode the node's newest-frame-only policy still drops what it can't
                # keep up with.
                "qos_reliability": "reliable",
                "publish_debug_image": False,
            },
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
            {
                "bag": ParameterValue(LaunchConfiguration("bag"), value_type=str),
                "output_dir": ParameterValue(LaunchConfiguration("output_dir"), value_type=str),
                "rate": ParameterValue(LaunchConfiguration("rate"), value_type=float),
                "timeout": ParameterValue(LaunchConfiguration("timeout"), value_type=float),
                "protocol": ParameterValue(LaunchConfiguration("protocol"), value_type=str),
                "node_name": "/superpoint_node",
            },
        ],
        remappings=[("image", image_topic), ("features", "/superpoint_node/features")],
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
    return LaunchDescription([*arguments, superpoint, bench, stop])
