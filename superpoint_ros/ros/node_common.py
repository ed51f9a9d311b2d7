"""What every ``rclpy`` node of the project shares: parameters declared from a
:class:`~superpoint_ros.ros.node_config.ParamSpec` table, one-line error text, and shutdown.

Used by ``superpoint_node`` and by the workstation's ``bench_node``
(``superpoint_training.ros.bench_node``), so both declare, check and report their parameters
the same way. Imports ``rclpy`` (unlike :mod:`~superpoint_ros.ros.node_config`, which stays
pure).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import rclpy
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
)
from rclpy.node import Node

from ..errors import ConfigError
from .params import ParamSpec

try:  # rclpy >= Humble; the fallback keeps older or unusual builds importable
    from rclpy.executors import ExternalShutdownException
except ImportError:  # pragma: no cover

    class ExternalShutdownException(Exception):  # type: ignore[no-redef]
        """Stand-in: never raised where rclpy does not define it."""


__all__ = [
    "ROS_BUILTIN_PARAMETERS",
    "ExternalShutdownException",
    "declare_parameters",
    "one_line",
    "parameter_descriptor",
    "shutdown",
]

# Parameters every ROS node understands; an override of them is not a typo.
ROS_BUILTIN_PARAMETERS = ("use_sim_time", "start_type_description_service")


def one_line(exc: BaseException) -> str:
    """``exc``'s message with its white space folded into one line (its type name if empty)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def parameter_descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The ``rcl_interfaces`` descriptor of a table entry: type, description, range, read-only
    (values are read once at start-up; restart the node to change them)."""
    types = {
        bool: ParameterType.PARAMETER_BOOL,
        int: ParameterType.PARAMETER_INTEGER,
        float: ParameterType.PARAMETER_DOUBLE,
        str: ParameterType.PARAMETER_STRING,
    }
    descriptor = ParameterDescriptor(
        name=spec.name,
        type=types[spec.type],
        description=spec.description,
        additional_constraints=spec.constraints(),
        read_only=True,
    )
    if spec.low is not None and spec.type is int:
        descriptor.integer_range = [
            IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=0)
        ]
    elif spec.low is not None and spec.type is float:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)
        ]
    return descriptor


def declare_parameters(node: Node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Declare every entry of ``specs`` on ``node`` and return their values (name -> value).

    A value of the wrong type or out of range (rclpy checks the descriptor) raises a one-line
    :class:`ConfigError` naming the parameter and what it allows. Overrides of names that are
    neither in ``specs``, nor ROS built-ins, nor ``qos_overrides.*`` are logged as a warning
    (a typo on the command line), not an error: ROS tools pass extra parameters freely. The
    values still go through the node's parser (``check_parameters``) afterwards.
    """
    from rclpy.exceptions import (
        InvalidParameterTypeException,
        InvalidParameterValueException,
    )

    for spec in specs:
        try:
            node.declare_parameter(spec.name, spec.default, parameter_descriptor(spec))
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            allowed = ", ".join(filter(None, [spec.type.__name__, spec.constraints()]))
            raise ConfigError(
                f"parameter {spec.name}: {one_line(exc)} (allowed: {allowed})"
            ) from None
    known = {p.name for p in specs} | set(ROS_BUILTIN_PARAMETERS)
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    unknown = sorted(n for n in overrides if n not in known and not n.startswith("qos_overrides."))
    if unknown:
        node.get_logger().warning(
            f"ignoring unknown parameters {unknown} (typo? valid: {', '.join(sorted(known))})"
        )
    return {p.name: node.get_parameter(p.name).value for p in specs}


def shutdown() -> None:
    """``rclpy.try_shutdown()`` where it exists (Humble and later), else ``shutdown`` if up."""
    try_shutdown = getattr(rclpy, "try_shutdown", None)
    if try_shutdown is not None:
        try_shutdown()
    elif rclpy.ok():  # pragma: no cover - rclpy without try_shutdown
        rclpy.shutdown()
