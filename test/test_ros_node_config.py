"""``superpoint_ros.ros.node_config``: the node's parameter table, its parser, and the files
derived from it (``config/superpoint.yaml``, the README's table, the launch arguments), which
must be exactly the table's renderings. No ROS needed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from superpoint_ros.errors import ConfigError
from superpoint_ros.frontend.config import FrontendConfig, setting_doc
from superpoint_ros.ros.node_config import (
    DEFAULTS,
    PARAMETER_NAMES,
    PARAMETERS,
    PARAMS_FILE_HEADER,
    parse_node_config,
)
from superpoint_ros.ros.params import (
    ParamSpec,
    check_parameters,
    markdown_table_in,
    render_markdown_table,
    render_params_file,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "superpoint.yaml"


def test_the_shipped_yaml_is_the_tables_rendering():
    assert CONFIG.read_text() == render_params_file(
        "superpoint_node", PARAMETERS, PARAMS_FILE_HEADER
    ), "config/superpoint.yaml is stale: superpoint ros-params superpoint_node -o " + str(CONFIG)


def test_the_readme_table_is_the_tables_rendering():
    readme = (REPO / "README.md").read_text()
    assert markdown_table_in(readme) == render_markdown_table(PARAMETERS), (
        "the README's parameter table is stale: superpoint ros-params superpoint_node --markdown"
    )


def test_front_end_parameters_take_frontend_configs_defaults_and_meanings():
    defaults = FrontendConfig()
    node_side = {"max_keypoints", "detection_threshold", "nms_radius", "border", "subpixel"}
    for spec in PARAMETERS:
        if spec.name in node_side:
            assert spec.default == getattr(defaults, spec.name), spec.name
            assert type(spec.default) is type(getattr(defaults, spec.name)), spec.name
            assert spec.description.startswith(setting_doc(spec.name)), spec.name
    assert DEFAULTS["resize"] == "" and defaults.resize is None
    assert {f.name for f in fields(FrontendConfig)} >= node_side | {"resize"}
    # The parsed defaults are FrontendConfig's defaults.
    assert parse_node_config({}).frontend == FrontendConfig()


def test_parameter_table_matches_the_yaml_and_parses_to_defaults():
    shipped = yaml.safe_load(CONFIG.read_text())["superpoint_node"]["ros__parameters"]
    assert list(shipped) == list(PARAMETER_NAMES)  # same keys, same order as the table
    assert shipped == DEFAULTS
    for name, value in shipped.items():  # the type ROS will see is the declared one
        assert type(value) is type(DEFAULTS[name]), name
    cfg = parse_node_config(shipped)
    assert cfg.weights is None and cfg.resize is None and cfg.mono16_shift == 8
    assert cfg.match.mutual and cfg.match.ratio is None and cfg.match.max_distance is None
    assert cfg.frontend.max_keypoints == 1000 and cfg.frontend.nms_radius == 4
    assert cfg.qos_reliability == "best_effort" and cfg.qos_depth == 1
    assert cfg.precision == "fp32" and cfg.notes == () and not cfg.rebuild_engine
    assert parse_node_config({"rebuild_engine": True}).rebuild_engine
    for spec in PARAMETERS:
        assert spec.description.strip(), spec.name
        assert isinstance(spec.default, (bool, int, float, str))
        if spec.low is not None:
            assert spec.low <= spec.default <= spec.high, spec.name


def test_parse_node_config_converts_and_rejects():
    cfg = parse_node_config(
        {
            "resize": "480x640",
            "match_ratio": 0.8,
            "match_max_distance": 1,
            "mono16_shift": -1,
            "match_mode": "nearest",
            "weights": "/w.onnx",
            "max_keypoints": 7,
        }
    )
    assert cfg.resize == (480, 640) and cfg.weights == "/w.onnx"
    assert cfg.match.ratio == 0.8 and cfg.match.max_distance == 1.0 and not cfg.match.mutual
    assert cfg.mono16_shift is None and cfg.frontend.max_keypoints == 7
    assert cfg.frontend_overrides()["resize"] == (480, 640)
    assert cfg.frontend_overrides()["max_keypoints"] == 7
    bad = [
        ({"backend": "cuda"}, "backend"),
        ({"match_mode": "best"}, "match_mode"),
        ({"max_keypoints": 0}, "max_keypoints"),
        ({"max_keypoints": 5000}, "max_keypoints"),
        ({"detection_threshold": 1.0}, "detection_threshold"),
        ({"resize": "100x100"}, "resize"),
        ({"fp16": 1}, "fp16"),
        ({"max_keypoints": 1.5}, "max_keypoints"),
        ({"qos_reliability": "fast"}, "qos_reliability"),
        ({"precision": "fp8"}, "precision"),
        ({"max_keypoint": 5}, "max_keypoint"),
    ]
    for values, name in bad:
        with pytest.raises(ConfigError, match=name):
            parse_node_config(values)


def test_precision_and_the_deprecated_fp16():
    assert parse_node_config({"precision": "int8"}).precision == "int8"
    assert parse_node_config({"precision": "fp16"}).notes == ()
    old = parse_node_config({"fp16": True})  # an old parameter file: still fp16, with a note
    assert old.precision == "fp16" and "deprecated" in old.notes[0]
    assert parse_node_config({"fp16": True, "precision": "fp16"}).precision == "fp16"
    with pytest.raises(ConfigError, match="fp16=true contradicts precision=int8"):
        parse_node_config({"fp16": True, "precision": "int8"})


def test_check_parameters_fills_defaults_converts_and_names_the_culprit():
    specs = (
        ParamSpec("rate", 0.5, "r", 0.0, 2.0),
        ParamSpec("mode", "a", "m", choices=("a", "b")),
    )
    assert check_parameters(specs, {}) == {"rate": 0.5, "mode": "a"}
    got = check_parameters(specs, {"rate": 2, "mode": "b"})
    assert got == {"rate": 2.0, "mode": "b"} and isinstance(got["rate"], float)
    with pytest.raises(ConfigError, match=r"unknown parameters \['mdoe'\]; valid: rate, mode$"):
        check_parameters(specs, {"mdoe": "b"})
    with pytest.raises(ConfigError, match=r"parameter rate=3.0 is outside 0.0 to 2.0$"):
        check_parameters(specs, {"rate": 3})
    with pytest.raises(ConfigError, match=r"parameter mode='c' is not one of: a, b$"):
        check_parameters(specs, {"mode": "c"})


def test_ros_params_command_writes_and_checks(tmp_path):
    """``superpoint ros-params`` (the real console script) writes the rendering and ``--check``
    refuses a stale file in one line."""
    exe = Path(sys.executable).parent / "superpoint"
    if not exe.exists() and not shutil.which("superpoint"):
        pytest.skip("the superpoint console script is not installed (pip install -e .)")
    cmd = [str(exe) if exe.exists() else "superpoint", "ros-params", "superpoint_node"]
    out = tmp_path / "superpoint.yaml"
    done = subprocess.run([*cmd, "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == CONFIG.read_text()
    out.write_text(out.read_text().replace("max_keypoints: 1000", "max_keypoints: 500"))
    done = subprocess.run([*cmd, "--check", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "differs from the superpoint_node table" in (
        done.stderr
    )
