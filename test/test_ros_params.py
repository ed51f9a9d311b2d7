"""``superpoint_ros.ros.params``: parameter tables rendered as a ROS parameter file and a
markdown table, and launch-argument casting. Hand-written expectations; the YAML renderings
are read back with PyYAML (as ``rcl_yaml_param_parser`` reads the same YAML 1.1 scalars)."""

from __future__ import annotations

import pytest
import yaml

from superpoint_ros.ros.params import (
    ParamSpec,
    launch_value,
    markdown_table_in,
    render_markdown_table,
    render_params_file,
    yaml_scalar,
)

SPECS = (
    ParamSpec("name", "", "A file; empty = none."),
    ParamSpec(
        "mode",
        "on",
        "How. It is a rather long description that has to wrap onto a "
        "second comment line because it goes past ninety-nine columns.",
        choices=("on", "off"),
    ),  # fmt: skip
    ParamSpec("rate", 1e-5, "Small.", 0.0, 1.0),
    ParamSpec("count", 3, "How many.", 1, 9),
    ParamSpec("flag", True, "A switch."),
    ParamSpec("size", "480x640", "A size.", allowed="HxW"),
)


def test_yaml_scalars_read_back_as_the_same_type_and_value():
    values = ("", "auto", "/superpoint_node", "480x640", "true", "no", "1", "a b", 'q"x', "1.5",
              "1e3", 0, -1, 8294400, 0.0, 0.005, 1e-5, 3600.0, 2.5e10, True, False)  # fmt: skip
    for value in values:
        text = yaml_scalar(value)
        back = yaml.safe_load(f"k: {text}")["k"]
        assert back == value and type(back) is type(value), (value, text)
    assert yaml_scalar("") == '""' and yaml_scalar("auto") == "auto"
    assert yaml_scalar(1e-5) == "0.00001" and yaml_scalar(1.0) == "1.0"
    assert yaml_scalar("yes") == '"yes"'  # YAML 1.1 would read a bare yes as a bool


def test_params_file_by_hand():
    text = render_params_file("my_node", SPECS[:2], "Header line.\n  indented")
    assert text == (
        "# Header line.\n"
        "#   indented\n"
        "my_node:\n"
        "  ros__parameters:\n"
        "    # A file; empty = none.\n"
        '    name: ""\n'
        "    # How. It is a rather long description that has to wrap onto a second comment line"
        " because it\n"
        "    # goes past ninety-nine columns. (one of: on, off)\n"
        '    mode: "on"\n'  # YAML 1.1 reads a bare on as true
    )
    assert all(len(line) <= 99 for line in text.splitlines())
    doc = yaml.safe_load(render_params_file("my_node", SPECS, "h"))
    assert doc == {
        "my_node": {
            "ros__parameters": {
                "name": "", "mode": "on", "rate": 1e-5, "count": 3, "flag": True,
                "size": "480x640",
            }
        }
    }  # fmt: skip


def test_markdown_table_by_hand_and_found_in_a_document():
    table = render_markdown_table(SPECS[2:])
    assert table == (
        "| name | type | default | allowed | meaning |\n"
        "|---|---|---|---|---|\n"
        "| `rate` | double | `0.00001` | 0.0 .. 1.0 | Small. |\n"
        "| `count` | int | `3` | 1 .. 9 | How many. |\n"
        "| `flag` | bool | `true` |  | A switch. |\n"
        "| `size` | string | `480x640` | HxW | A size. |\n"
    )
    doc = f"# Title\n\ntext\n\n{table}\nmore text\n| other | table |\n"
    assert markdown_table_in(doc) == table
    assert markdown_table_in("no table here") == ""


def test_launch_values_are_typed_or_refused_in_one_line():
    flag, count, rate, size = SPECS[4], SPECS[3], SPECS[2], SPECS[5]
    assert launch_value(flag, "True") is True and launch_value(flag, "0") is False
    assert launch_value(count, "500") == 500
    assert launch_value(rate, "1") == 1.0 and isinstance(launch_value(rate, "1"), float)
    assert launch_value(size, "240x320") == "240x320"
    with pytest.raises(ValueError, match=r"^launch argument flag:='maybe' must be true or false$"):
        launch_value(flag, "maybe")
    with pytest.raises(ValueError, match=r"^launch argument count:='many' must be a int$"):
        launch_value(count, "many")
