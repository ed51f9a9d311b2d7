"""ROS parameter tables: one :class:`ParamSpec` per parameter, and everything derived from a
table (pure: no ``rclpy``, no files; PyYAML only to tell which strings YAML would read as
something else).

A node's table (``node_config.PARAMETERS``, the bench's ``bench_config.PARAMETERS``) is the one
place its parameters are written. From it come the ``rcl_interfaces`` descriptors
(``node_common.declare_parameters``), the check of the values (:func:`check_parameters`), the
launch arguments and their casting (:func:`launch_value`), the shipped parameter file
(:func:`render_params_file`, written by ``superpoint ros-params``) and the README's table
(:func:`render_markdown_table`); tests compare the shipped files with the renderings.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import ConfigError

INT32_MAX = 2**31 - 1
LINE = 99  # columns, as ruff and ament_flake8
ROS_TYPE_NAMES = {bool: "bool", int: "int", float: "double", str: "string"}


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: its default fixes the type (bool, int, float or str).

    ``low``/``high`` give an inclusive range for numbers (an ``IntegerRange`` or
    ``FloatingPointRange`` in the descriptor); ``choices`` lists the valid strings; ``allowed``
    describes what a string accepts where neither applies (e.g. a size format).
    """

    name: str
    default: bool | int | float | str
    description: str
    low: int | float | None = None
    high: int | float | None = None
    choices: tuple[str, ...] = ()
    allowed: str = ""

    @property
    def type(self) -> type:
        return type(self.default)

    def constraints(self) -> str:
        """Human-readable constraint text for the descriptor's ``additional_constraints``."""
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        if self.low is not None:
            return f"{self.low} to {self.high}"
        return self.allowed


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


# --------------------------------------------------------------------------------------------
# Launch arguments: text in, the parameter's type out

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def launch_value(spec: ParamSpec, text: str) -> bool | int | float | str:
    """A launch argument's text as ``spec``'s type (ROS parameters are strictly typed).

    Raises ``ValueError`` with one line, ``launch argument NAME:='TEXT' must be a TYPE``, which
    ``ros2 launch`` prints as the launch's only error.
    """
    kind = spec.type
    if kind is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"launch argument {spec.name}:={text!r} must be true or false")
    try:
        return kind(text)
    except ValueError:
        raise ValueError(
            f"launch argument {spec.name}:={text!r} must be a {kind.__name__}"
        ) from None


# --------------------------------------------------------------------------------------------
# Renderings: the shipped parameter file and the README's table

_PLAIN = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./-]*")


def yaml_scalar(value: bool | int | float | str) -> str:
    """``value`` as a YAML 1.1 scalar that reads back as the same type and value: strings
    quoted unless plain words, floats always with a decimal point and never in exponent form
    (``1e-05`` would read back as a string in YAML 1.1)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text or "E" in text:
            text = f"{value:.15f}".rstrip("0")
        return text if "." in text else text + ".0"
    if _PLAIN.fullmatch(value) and yaml.safe_load(value) == value:  # not a number, bool...
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str, indent: str) -> list[str]:
    return textwrap.wrap(
        text, LINE, initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# ",
        break_on_hyphens=False,
    )  # fmt: skip


def render_params_file(node_name: str, specs: Sequence[ParamSpec], header: str) -> str:
    """The ``<node_name>: ros__parameters:`` YAML file of ``specs``: ``header`` as comment lines
    first, then every parameter with its default, a comment above it (its description and
    constraints), in the table's order."""
    lines = [f"# {line}".rstrip() for line in header.strip("\n").splitlines()]
    lines += [f"{node_name}:", "  ros__parameters:"]
    for spec in specs:
        constraints = spec.constraints()
        text = spec.description + (f" ({constraints})" if constraints else "")
        lines += _comment(text, "    ")
        lines.append(f"    {spec.name}: {yaml_scalar(spec.default)}")
    return "\n".join(lines) + "\n"


def _markdown_allowed(spec: ParamSpec) -> str:
    if spec.choices:
        return ", ".join(f"`{c}`" for c in spec.choices)
    if spec.low is not None:
        return f"{yaml_scalar(spec.low)} .. {yaml_scalar(spec.high)}"
    return spec.allowed


def render_markdown_table(specs: Sequence[ParamSpec]) -> str:
    """The README's parameter table: name, type, default, allowed values, meaning."""
    rows = ["| name | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for spec in specs:
        default = '""' if spec.default == "" else yaml_scalar(spec.default)
        rows.append(
            f"| `{spec.name}` | {ROS_TYPE_NAMES[spec.type]} | `{default}` | "
            f"{_markdown_allowed(spec)} | {spec.description.replace('|', '/')} |"
        )
    return "\n".join(rows) + "\n"


def markdown_table_in(text: str, first_row: str = "| name | type | default |") -> str:
    """The markdown table of ``text`` whose header row starts with ``first_row`` (up to the
    first line that is not a table row); "" when there is none. Tests compare it with
    :func:`render_markdown_table`."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(first_row):
            end = i
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            return "\n".join(lines[i:end]) + "\n"
    return ""


__all__ = [
    "INT32_MAX",
    "ParamSpec",
    "check_parameter",
    "check_parameters",
    "launch_value",
    "markdown_table_in",
    "render_markdown_table",
    "render_params_file",
    "yaml_scalar",
]
