"""Parameters of ``superpoint_node``: one table, parsed once into a frozen :class:`NodeConfig`.

Pure module (no ``rclpy``): the node declares every entry of :data:`PARAMETERS` (name, default,
description, range or choices) with an ``rcl_interfaces`` descriptor, reads the values once,
and hands them to :func:`parse_node_config`. The launch file, ``config/superpoint.yaml`` and
their tests check themselves against the same table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..frontend.config import MAX_TOPK, FrontendConfig, parse_size
from ..matching import MatchConfig

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
MATCH_MODES = ("mutual", "nearest", "off")
RELIABILITIES = ("best_effort", "reliable", "system_default")
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: its default fixes the type (bool, int, float or str).

    ``low``/``high`` give an inclusive range for numbers (an ``IntegerRange`` or
    ``FloatingPointRange`` in the descriptor); ``choices`` lists the valid strings.
    """

    name: str
    default: bool | int | float | str
    description: str
    low: int | float | None = None
    high: int | float | None = None
    choices: tuple[str, ...] = ()

    @property
    def type(self) -> type:
        return type(self.default)

    def constraints(self) -> str:
        """Human-readable constraint text for the descriptor's ``additional_constraints``."""
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        if self.low is not None:
            return f"{self.low} to {self.high}"
        return ""


# The single table of parameters, in the order of config/superpoint.yaml and the README.
PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "weights",
        "",
        "Model file: a checkpoint (.pt/.pth, any supported layout), an exported front-end "
        "(.onnx) or a TensorRT engine (.engine/.plan); empty = the packaged default model.",
    ),
    ParamSpec(
        "backend",
        "auto",
        "Inference backend; auto = tensorrt, then onnxruntime, then torch (first available).",
        choices=BACKENDS,
    ),
    ParamSpec("fp16", False, "Half precision (TensorRT engine build, CUDA torch); else ignored."),
    ParamSpec(
        "cache_dir",
        "",
        "Folder for exported ONNX files and TensorRT engines; empty = ~/.cache/superpoint_ros.",
    ),
    ParamSpec("threads", 0, "ONNX Runtime intra-op threads; 0 = its default.", 0, 256),
    ParamSpec(
        "resize",
        "",
        "Stretch every image to HEIGHTxWIDTH (multiples of 8, e.g. 480x640) before inference; "
        "keypoints are mapped back to input pixels. Empty = keep the input size.",
    ),
    ParamSpec("max_keypoints", 1000, "Most keypoints per image (best scores first).", 1, MAX_TOPK),
    ParamSpec("detection_threshold", 0.005, "Minimum keypoint probability.", 0.0, 0.999),
    ParamSpec("nms_radius", 4, "Non-maximum suppression radius in pixels.", 0, 64),
    ParamSpec("border", 4, "Drop keypoints closer than this to the image edge (pixels).", 0, 256),
    ParamSpec("subpixel", False, "Refine keypoint positions by a 3x3 soft-argmax."),
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
        "Reliability of the image subscription (sensor data QoS is best_effort).",
        choices=RELIABILITIES,
    ),
    ParamSpec(
        "qos_depth",
        1,
        "History depth of the image subscription; the node processes only the newest frame "
        "anyway.",
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


@dataclass(frozen=True)
class NodeConfig:
    """Everything the node needs, parsed and checked (see :data:`PARAMETERS` for meanings)."""

    weights: str | None  # None = the packaged default model
    backend: str
    fp16: bool
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

    def frontend_overrides(self) -> dict[str, Any]:
        """The ``config`` argument of ``load_frontend``: every front-end setting."""
        d = self.frontend.to_dict()
        d["resize"] = self.resize
        return d


def check_parameter(spec: ParamSpec, value: Any) -> Any:
    """``value`` checked against ``spec``: its type (an int is accepted for a float, as YAML
    writes ``1``), choices and range. Returns the value (as float for a float parameter);
    raises a one-line :class:`ConfigError` naming the parameter."""
    want = spec.type
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # a YAML "1" for a float parameter
    if want is bool:
        ok = isinstance(value, bool)
    elif want is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, want)
    if not ok:
        raise ConfigError(
            f"parameter {spec.name!r} must be a {want.__name__}, got {value!r} "
            f"({type(value).__name__})"
        )
    if spec.choices and value not in spec.choices:
        raise ConfigError(
            f"parameter {spec.name}={value!r} is not one of: {', '.join(spec.choices)}"
        )
    if spec.low is not None and not spec.low <= value <= spec.high:
        raise ConfigError(f"parameter {spec.name}={value!r} is outside {spec.low} to {spec.high}")
    return value


def check_parameters(specs: Sequence[ParamSpec], values: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of ``specs`` (name -> checked value), ``values`` over the defaults.

    Raises a one-line :class:`ConfigError` for a name not in ``specs`` (listing the valid
    ones) or a value :func:`check_parameter` rejects. Shared by every node's parser.
    """
    names = [p.name for p in specs]
    unknown = set(values) - set(names)
    if unknown:
        raise ConfigError(f"unknown parameters {sorted(unknown)}; valid: {', '.join(names)}")
    return {p.name: check_parameter(p, values.get(p.name, p.default)) for p in specs}


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
        fp16=v["fp16"],
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
    )


__all__ = [
    "BACKENDS",
    "DEFAULTS",
    "MATCH_MODES",
    "PARAMETERS",
    "PARAMETER_NAMES",
    "RELIABILITIES",
    "NodeConfig",
    "ParamSpec",
    "check_parameter",
    "check_parameters",
    "parse_node_config",
]
