"""Parameters of ``superpoint_node``: one table, parsed once into a frozen :class:`NodeConfig`.

Pure module (no ``rclpy``): the node declares every entry of :data:`PARAMETERS` (name, default,
description, range or choices) with an ``rcl_interfaces`` descriptor, reads the values once,
and hands them to :func:`parse_node_config`. The front-end's settings take their defaults and
meanings from :class:`~superpoint_ros.frontend.config.FrontendConfig` (their one home); the
launch file declares its arguments from this table, and ``config/superpoint.yaml`` and the
README's table are renderings of it (``superpoint ros-params superpoint_node``), which tests
compare.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..backends import PRECISIONS, backend_choices, backend_names
from ..errors import ConfigError
from ..frontend.config import (
    MAX_TOPK,
    FrontendConfig,
    format_size,
    parse_size,
    setting_doc,
)
from ..matching import MatchConfig
from .params import INT32_MAX, ParamSpec, check_parameters

BACKENDS = backend_choices()  # "auto" and the registry's names (superpoint_ros.backends)
MATCH_MODES = ("mutual", "nearest", "off")
RELIABILITIES = ("best_effort", "reliable", "system_default")
_FRONTEND = FrontendConfig()
_BAKED = set(_FRONTEND.graph_key())  # settings fixed inside an exported graph


def frontend_parameter(name: str, low: int | float | None = None, high: Any = None) -> ParamSpec:
    """The node parameter of the front-end setting ``name``: FrontendConfig's default and
    meaning (plus, for a setting baked into exported graphs, that a file must match it)."""
    default = getattr(_FRONTEND, name)
    if name == "resize":
        return ParamSpec(name, format_size(default), setting_doc(name),
                         allowed="HEIGHTxWIDTH, multiples of 8")  # fmt: skip
    doc = setting_doc(name)
    if name in _BAKED:
        doc += " Baked into .onnx/.engine files: it must match theirs."
    return ParamSpec(name, default, doc, low, high)


# The single table of parameters, in the order of config/superpoint.yaml and the README.
PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "weights",
        "",
        "Model file: a checkpoint (.pt/.pth, any supported layout), an exported front-end "
        "(.onnx, FP32 or INT8 from superpoint quantize) or a TensorRT engine (.engine/.plan); "
        "empty = the packaged default model.",
    ),
    ParamSpec(
        "backend",
        "auto",
        f"Inference backend; auto = {', then '.join(backend_names())} (the first available that "
        "runs the weights file).",
        choices=BACKENDS,
    ),
    ParamSpec(
        "precision",
        "fp32",
        "Precision of what the node builds itself from weights: a TensorRT engine (fp16: half "
        "precision; int8 needs an .onnx quantised by superpoint quantize --target tensorrt) or "
        "the CUDA torch model (fp16). Files given ready-made (.engine, INT8 .onnx) keep their "
        "own precision.",
        choices=PRECISIONS,
    ),
    ParamSpec("fp16", False, "Deprecated: true is precision fp16 (kept for old parameter files)."),
    ParamSpec(
        "rebuild_engine",
        False,
        "TensorRT engine given as weights whose record does not match this machine (TensorRT "
        "version, GPU, ONNX, precision): rebuild it from the .onnx it names instead of refusing "
        "to start (the refusal gives the superpoint build-engine command).",
    ),
    ParamSpec(
        "cache_dir",
        "",
        "Folder for exported ONNX files and TensorRT engines; empty = ~/.cache/superpoint_ros.",
    ),
    ParamSpec("threads", 0, "ONNX Runtime intra-op threads; 0 = its default.", 0, 256),
    frontend_parameter("resize"),
    frontend_parameter("max_keypoints", 1, MAX_TOPK),
    frontend_parameter("detection_threshold", 0.0, 0.999),
    frontend_parameter("nms_radius", 0, 64),
    frontend_parameter("border", 0, 256),
    frontend_parameter("subpixel"),
    ParamSpec(
        "match_mode",
        "mutual",
        "Matching of the previous processed frame to the current one: mutual nearest "
        "neighbours, one-way nearest neighbours (one match per current keypoint), or off "
        "(no ~/matches).",
        choices=MATCH_MODES,
    ),
    ParamSpec(
        "match_ratio",
        0.0,
        "Lowe's ratio test on descriptor distances (e.g. 0.8); 0 = off.",
        0.0,
        1.0,
    ),
    ParamSpec(
        "match_max_distance",
        0.0,
        "Reject matches whose descriptor distance (unit vectors, 0..2) is larger; 0 = off.",
        0.0,
        2.0,
    ),
    ParamSpec(
        "publish_debug_image",
        True,
        "Offer ~/debug_image (bgr8, keypoints and tracks drawn); it is drawn only while "
        "someone subscribes.",
    ),
    ParamSpec(
        "use_compressed",
        False,
        "The image topic carries sensor_msgs/CompressedImage (remap image to e.g. "
        "/camera/image_raw/compressed) instead of sensor_msgs/Image.",
    ),
    ParamSpec(
        "max_image_pixels",
        3840 * 2160,
        "Images with more pixels are rejected as bad input (default 3840x2160, 4K UHD: a frame's "
        "memory grows with its pixels, see the README's Memory section).",
        1,
        INT32_MAX,
    ),
    ParamSpec(
        "mono16_shift",
        8,
        "mono16 to 8 bit: value >> shift (8 = high byte; 4 for 12-bit sensors); -1 = stretch "
        "each frame's min..max.",
        -1,
        8,
    ),
    ParamSpec(
        "qos_reliability",
        "best_effort",
        "Reliability of the image subscription (sensor-data QoS is best_effort; a best-effort "
        "subscription also receives from reliable publishers); ROS' standard "
        "qos_overrides./TOPIC.subscription.reliability wins where given.",
        choices=RELIABILITIES,
    ),
    ParamSpec(
        "qos_depth",
        1,
        "History depth of the image subscription; the node processes only the newest frame "
        "anyway. ROS' standard qos_overrides./TOPIC.subscription.depth wins where given.",
        1,
        1000,
    ),
    ParamSpec(
        "diagnostics_period",
        1.0,
        "Seconds between /diagnostics messages; 0 = no diagnostics.",
        0.0,
        3600.0,
    ),
    ParamSpec(
        "log_period",
        10.0,
        "Seconds between statistics log lines (rates, processing time, drops); 0 = none.",
        0.0,
        3600.0,
    ),
)

PARAMETER_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMETERS)
DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMETERS}

# The comment on top of config/superpoint.yaml (render_params_file writes the rest).
PARAMS_FILE_HEADER = """\
Parameters of superpoint_node (superpoint_ros). Every key is declared by the node with a
description and a range (`ros2 param describe /superpoint_node <name>`); values are read once
at start-up. Generated from the table in superpoint_ros/ros/node_config.py (edit the table,
not this file) by `superpoint ros-params superpoint_node -o config/superpoint.yaml`. Use with:
  ros2 launch superpoint_ros superpoint.launch.py
  superpoint_node --ros-args --params-file config/superpoint.yaml -r image:=/camera/image_raw
The image subscription also takes ROS' standard QoS overrides, e.g.
  qos_overrides./camera/image_raw.subscription.reliability: reliable
"""


@dataclass(frozen=True)
class NodeConfig:
    """Everything the node needs, parsed and checked (see :data:`PARAMETERS` for meanings)."""

    weights: str | None  # None = the packaged default model
    backend: str
    precision: str  # fp32 | fp16 | int8, for what the node builds itself
    rebuild_engine: bool  # rebuild a mismatched .engine instead of refusing it
    cache_dir: str | None
    threads: int
    frontend: FrontendConfig  # max_keypoints, nms_radius, detection_threshold, border, ...
    resize: tuple[int, int] | None  # (height, width)
    match_mode: str  # mutual | nearest | off
    match: MatchConfig
    publish_debug_image: bool
    use_compressed: bool
    max_image_pixels: int
    mono16_shift: int | None  # None = stretch min..max
    qos_reliability: str
    qos_depth: int
    diagnostics_period: float  # 0 = off
    log_period: float  # 0 = off
    notes: tuple[str, ...] = ()  # warnings for the node to log (deprecated parameters)

    def frontend_overrides(self) -> dict[str, Any]:
        """The ``config`` argument of ``load_frontend``: every front-end setting."""
        d = self.frontend.to_dict()
        d["resize"] = self.resize
        return d


def parse_node_config(values: Mapping[str, Any]) -> NodeConfig:
    """Check ``values`` (name -> value; missing names take their defaults) and build the config.

    Raises :class:`ConfigError` with a one-line message for unknown names, wrong types, values
    out of range or not among the choices, and bad ``resize`` strings.
    """
    v = check_parameters(PARAMETERS, values)
    try:
        resize = parse_size(v["resize"])
    except ConfigError as exc:
        raise ConfigError(f"parameter resize: {exc}") from None
    precision, notes = v["precision"], ()
    if v["fp16"]:
        if precision == "int8":
            raise ConfigError(
                "parameter fp16=true contradicts precision=int8; set precision alone (fp16 is "
                "deprecated)"
            )
        precision = "fp16"
        notes = ("parameter fp16 is deprecated: use precision:=fp16",)
    frontend = FrontendConfig(
        max_keypoints=v["max_keypoints"],
        nms_radius=v["nms_radius"],
        detection_threshold=v["detection_threshold"],
        border=v["border"],
        subpixel=v["subpixel"],
    )
    match = MatchConfig(
        mutual=v["match_mode"] == "mutual",
        ratio=v["match_ratio"] or None,
        max_distance=v["match_max_distance"] or None,
    )
    return NodeConfig(
        weights=v["weights"] or None,
        backend=v["backend"],
        precision=precision,
        rebuild_engine=v["rebuild_engine"],
        cache_dir=v["cache_dir"] or None,
        threads=v["threads"],
        frontend=frontend,
        resize=resize,
        match_mode=v["match_mode"],
        match=match,
        publish_debug_image=v["publish_debug_image"],
        use_compressed=v["use_compressed"],
        max_image_pixels=v["max_image_pixels"],
        mono16_shift=None if v["mono16_shift"] < 0 else v["mono16_shift"],
        qos_reliability=v["qos_reliability"],
        qos_depth=v["qos_depth"],
        diagnostics_period=v["diagnostics_period"],
        log_period=v["log_period"],
        notes=notes,
    )


__all__ = [
    "BACKENDS",
    "DEFAULTS",
    "MATCH_MODES",
    "PARAMETERS",
    "PARAMETER_NAMES",
    "PARAMS_FILE_HEADER",
    "PRECISIONS",
    "RELIABILITIES",
    "NodeConfig",
    "frontend_parameter",
    "parse_node_config",
]
