"""Launch ``superpoint_node``: camera images in, keypoints, descriptors and matches out.

    ros2 launch superpoint_ros superpoint.launch.py image_topic:=/camera/image_raw
    ros2 launch superpoint_ros superpoint.launch.py weights:=/models/superpoint.onnx \\
        backend:=onnxruntime resize:=480x640

Parameters come from ``params_file`` (default: the installed ``config/superpoint.yaml``); a
parameter argument given on the command line overrides the file's value, one left empty keeps
it. ``image`` is remapped to ``image_topic``. There is one launch argument per node parameter,
declared from the node's own table (``superpoint_ros.ros.node_config.PARAMETERS``: name,
type, description), so the two cannot drift apart.
"""

# ruff would sort `launch` as first-party (this repo has a launch/ folder): keep ROS order.
# ruff: noqa: I001
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from superpoint_ros.ros.node_config import PARAMETERS
from superpoint_ros.ros.params import launch_value

PACKAGE = "superpoint_ros"


def _node(context, *args, **kwargs):
    overrides = {}
    for spec in PARAMETERS:
        text = LaunchConfiguration(spec.name).perform(context)
        if text != "":
            overrides[spec.name] = launch_value(spec, text)
    return [
        Node(
            package=PACKAGE,
            executable="superpoint_node",
            name="superpoint_node",
            parameters=[LaunchConfiguration("params_file"), overrides],
            remappings=[("image", LaunchConfiguration("image_topic"))],
            arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    default_params = os.path.join(
        get_package_share_directory(PACKAGE), "config", "superpoint.yaml"
    )
    arguments = [
        DeclareLaunchArgument(
            "image_topic",
            default_value="/camera/image_raw",
            description="Camera topic (sensor_msgs/Image; CompressedImage with use_compressed)",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=default_params,
            description="YAML file with the node's parameters (superpoint_node: ros__parameters:)",
        ),
        DeclareLaunchArgument(
            "log_level", default_value="info", description="debug | info | warn | error"
        ),
    ]
    arguments += [
        DeclareLaunchArgument(
            spec.name,
            default_value="",
            description=f"{spec.description} (empty: from params_file)",
        )
        for spec in PARAMETERS
    ]
    return LaunchDescription(arguments + [OpaqueFunction(function=_node)])
