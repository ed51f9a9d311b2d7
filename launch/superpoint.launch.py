"""Launch ``superpoint_node``: camera images in, keypoints, descriptors and matches out.

    ros2 launch superpoint_ros superpoint.launch.py image_topic:=/camera/image_raw
    ros2 launch superpoint_ros superpoint.launch.py weights:=/models/superpoint.onnx \\
        backend:=onnxruntime resize:=480x640

Parameters come from ``params_file`` (default: the installed ``config/superpoint.yaml``); a
parameter argument given on the command line overrides the file's value, one left empty keeps
it. ``image`` is remapped to ``image_topic``.
"""

# ruff would sort `launch` as first-party (this repo has a launch/ folder): keep ROS order.
# ruff: noqa: I001
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "superpoint_ros"

# (node parameter, type, description). Every name is a parameter declared by superpoint_node
# (superpoint_ros/ros/node_config.py); test/test_launch.py checks it.
PARAMETER_ARGUMENTS = (
    ("weights", str, "Model file: .pt/.pth checkpoint, .onnx export or TensorRT .engine"),
    ("backend", str, "auto | tensorrt | onnxruntime | torch"),
    ("fp16", bool, "Half precision for the TensorRT engine build (true/false)"),
    ("cache_dir", str, "Folder for exported ONNX files and TensorRT engines"),
    ("threads", int, "ONNX Runtime intra-op threads (0 = its default)"),
    ("resize", str, "Stretch images to HEIGHTxWIDTH before inference, e.g. 480x640"),
    ("max_keypoints", int, "Most keypoints per image (1..3840)"),
    ("detection_threshold", float, "Minimum keypoint probability"),
    ("nms_radius", int, "Non-maximum suppression radius (pixels)"),
    ("border", int, "Drop keypoints closer than this to the image edge (pixels)"),
    ("subpixel", bool, "Refine keypoint positions with a 3x3 soft-argmax"),
    ("match_mode", str, "mutual | nearest | off"),
    ("match_ratio", float, "Lowe's ratio test on descriptor distances; 0 = off"),
    ("match_max_distance", float, "Largest descriptor distance of a match (0..2); 0 = off"),
    ("publish_debug_image", bool, "Offer ~/debug_image (drawn only while subscribed)"),
    ("use_compressed", bool, "image_topic carries sensor_msgs/CompressedImage"),
    ("max_image_pixels", int, "Larger images are skipped as bad input"),
    ("mono16_shift", int, "mono16 to 8 bit: value >> shift; -1 = per-frame stretch"),
    ("qos_reliability", str, "Image subscription: best_effort | reliable | system_default"),
    ("qos_depth", int, "Image subscription history depth"),
    ("diagnostics_period", float, "Seconds between /diagnostics messages; 0 = none"),
    ("log_period", float, "Seconds between statistics log lines; 0 = none"),
)

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _typed(name, kind, text):
    """A launch argument's text as the parameter's type (ROS parameters are strictly typed)."""
    if kind is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"launch argument {name}:={text!r} must be true or false")
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"launch argument {name}:={text!r} must be a {kind.__name__}") from None


def _node(context, *args, **kwargs):
    overrides = {}
    for name, kind, _ in PARAMETER_ARGUMENTS:
        text = LaunchConfiguration(name).perform(context)
        if text != "":
            overrides[name] = _typed(name, kind, text)
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
            name, default_value="", description=f"{description} (empty: from params_file)"
        )
        for name, _, description in PARAMETER_ARGUMENTS
    ]
    return LaunchDescription(arguments + [OpaqueFunction(function=_node)])
