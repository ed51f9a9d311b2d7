"""``launch/superpoint.launch.py`` and ``config/superpoint.yaml`` against the node and setup.py.

``launch``/``launch_ros`` are not installable from PyPI, so the launch file is read with ``ast``:
it parses; every executable it names is a console script of ``setup.py``; every parameter it
sets is declared by the node (``superpoint_ros.ros.node_config.PARAMETERS``, the table the
node declares from) with the same type; every file it loads is installed into the package's
share directory by ``setup.py``'s ``data_files``. Where a sourced ROS 2 provides ``launch_ros``
and the package is installed (colcon), the launch description is also run for a few seconds.
"""

from __future__ import annotations

import ast
import asyncio
import glob
import importlib.util
import os
import time
from pathlib import Path

import pytest
import yaml

from superpoint_ros.ros.node_config import PARAMETER_NAMES, PARAMETERS

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "superpoint.launch.py"
CONFIG = REPO / "config" / "superpoint.yaml"
NODE_SOURCE = REPO / "superpoint_ros" / "ros" / "superpoint_node.py"
PACKAGE = "superpoint_ros"
# Launch arguments that are not node parameters.
EXTRA_ARGUMENTS = {"image_topic", "params_file", "log_level"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _constants(tree: ast.Module) -> dict[str, object]:
    """Module-level ``NAME = <literal>`` assignments."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    out[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    pass
    return out


def _value(node: ast.AST, constants: dict[str, object]):
    """A literal, a module constant, or an f-string made of those."""
    if isinstance(node, ast.Name):
        return constants[node.id]
    if isinstance(node, ast.JoinedStr):
        parts = []
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                parts.append(str(_value(part.value, constants)))
            else:
                parts.append(part.value)
        return "".join(parts)
    return ast.literal_eval(node)


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Every call of ``name(...)`` or ``x.name(...)``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            called = (
                f.id
                if isinstance(f, ast.Name)
                else f.attr
                if isinstance(f, ast.Attribute)
                else None
            )
            if called == name:
                out.append(node)
    return out


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _setup() -> tuple[list[str], dict[str, set[str]], str]:
    """From setup.py: console script names, installed files (dest dir -> file names), name."""
    tree = _tree(REPO / "setup.py")
    constants = _constants(tree)
    (setup_call,) = _calls(tree, "setup")
    name = _value(_keyword(setup_call, "name"), constants)
    entry_points = ast.literal_eval(_keyword(setup_call, "entry_points"))
    scripts = [s.split("=")[0].strip() for s in entry_points["console_scripts"]]
    installed: dict[str, set[str]] = {}
    for item in _keyword(setup_call, "data_files").elts:
        dest_node, files_node = item.elts
        dest = _value(dest_node, constants)
        if isinstance(files_node, ast.Call) and files_node.func.id == "glob":
            pattern = _value(files_node.args[0], constants)
            files = glob.glob(str(REPO / pattern))
        else:
            files = [str(REPO / _value(f, constants)) for f in files_node.elts]
        for f in files:
            assert Path(f).is_file(), f"setup.py installs {f}, which does not exist"
        installed.setdefault(dest, set()).update(Path(f).name for f in files)
    return scripts, installed, name


def _parameter_arguments() -> list[tuple[str, str]]:
    """(name, type name) of the launch file's PARAMETER_ARGUMENTS table."""
    tree = _tree(LAUNCH)
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "PARAMETER_ARGUMENTS":
            return [(e.elts[0].value, e.elts[1].id) for e in node.value.elts]
    raise AssertionError("no PARAMETER_ARGUMENTS table in the launch file")


def test_launch_file_parses_and_defines_generate_launch_description():
    tree = _tree(LAUNCH)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    assert LAUNCH.name.endswith(".launch.py")


def test_every_executable_is_a_console_script_of_this_package():
    scripts, _, name = _setup()
    tree = _tree(LAUNCH)
    constants = _constants(tree)
    nodes = _calls(tree, "Node")
    assert nodes, "the launch file starts no Node"
    for call in nodes:
        assert _value(_keyword(call, "package"), constants) == name == PACKAGE
        executable = _value(_keyword(call, "executable"), constants)
        assert executable in scripts, f"{executable} is not a console script of setup.py"


def test_every_parameter_set_is_declared_by_the_node_with_its_type():
    declared = {p.name: p.type.__name__ for p in PARAMETERS}
    arguments = _parameter_arguments()
    for name, kind in arguments:
        assert name in declared, f"launch sets {name!r}, which the node does not declare"
        assert kind == declared[name], f"{name}: launch casts to {kind}, node has {declared[name]}"
    assert [n for n, _ in arguments] == list(PARAMETER_NAMES)  # every parameter is an argument


def test_launch_arguments_are_declared_described_and_used():
    tree = _tree(LAUNCH)
    declared = set()
    for call in _calls(tree, "DeclareLaunchArgument"):
        assert _keyword(call, "description") is not None, ast.unparse(call)
        if isinstance(call.args[0], ast.Constant):
            declared.add(call.args[0].value)
    assert declared == EXTRA_ARGUMENTS  # the rest come from PARAMETER_ARGUMENTS in one loop
    used = {
        c.args[0].value
        for c in _calls(tree, "LaunchConfiguration")
        if isinstance(c.args[0], ast.Constant)
    }
    assert used <= EXTRA_ARGUMENTS, f"undeclared launch arguments used: {used - EXTRA_ARGUMENTS}"
    defaults = {
        c.args[0].value: _keyword(c, "default_value")
        for c in _calls(tree, "DeclareLaunchArgument")
        if isinstance(c.args[0], ast.Constant)
    }
    assert ast.literal_eval(defaults["image_topic"]) == "/camera/image_raw"


def test_image_is_remapped_to_the_topic_the_node_subscribes():
    node_tree = _tree(NODE_SOURCE)
    subscribed = {
        c.args[1].value
        for c in _calls(node_tree, "create_subscription")
        if isinstance(c.args[1], ast.Constant)
    }
    assert subscribed == {"image"}
    (node,) = _calls(_tree(LAUNCH), "Node")
    remaps = _keyword(node, "remappings").elts
    sources = [r.elts[0].value for r in remaps]
    assert sources == ["image"]
    assert ast.unparse(remaps[0].elts[1]) == "LaunchConfiguration('image_topic')"


def test_every_loaded_file_is_installed_in_the_share_directory():
    _, installed, _ = _setup()
    tree = _tree(LAUNCH)
    loaded = []
    for call in _calls(tree, "join"):
        first = call.args[0]
        if (
            isinstance(first, ast.Call)
            and ast.unparse(first.func) == "get_package_share_directory"
        ):
            loaded.append(Path(*[a.value for a in call.args[1:]]))
    assert loaded == [Path("config/superpoint.yaml")]
    for rel in loaded:
        dest = f"share/{PACKAGE}/{rel.parent.as_posix()}"
        assert rel.name in installed.get(dest, set()), f"setup.py does not install {rel} to {dest}"
        assert (REPO / rel).is_file()
    assert LAUNCH.name in installed[f"share/{PACKAGE}/launch"]
    assert "package.xml" in installed[f"share/{PACKAGE}"]
    assert PACKAGE in installed["share/ament_index/resource_index/packages"]
    share = _installed_share()
    if share is not None:  # a colcon install: check the real share directory too
        for rel in loaded + [Path("launch") / LAUNCH.name]:
            assert (share / rel).is_file(), f"{share / rel} is not installed"


def test_launch_argument_casting():
    """The launch file's ``_typed`` (taken out of its source, run without ``launch``)."""
    tree = _tree(LAUNCH)
    wanted = [
        n
        for n in tree.body
        if (isinstance(n, ast.FunctionDef) and n.name == "_typed")
        or (isinstance(n, ast.Assign) and n.targets[0].id in ("_TRUE", "_FALSE"))
    ]
    namespace: dict = {}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(LAUNCH), "exec"), namespace)
    typed = namespace["_typed"]
    assert typed("fp16", bool, "True") is True and typed("fp16", bool, "0") is False
    assert typed("max_keypoints", int, "500") == 500
    assert typed("match_ratio", float, "1") == 1.0 and isinstance(typed("m", float, "1"), float)
    assert typed("resize", str, "480x640") == "480x640"
    with pytest.raises(ValueError, match="true or false"):
        typed("fp16", bool, "maybe")
    with pytest.raises(ValueError, match="must be a int"):
        typed("max_keypoints", int, "many")


def test_config_yaml_keys_are_the_declared_parameters():
    doc = yaml.safe_load(CONFIG.read_text())
    assert list(doc) == ["superpoint_node"]
    params = doc["superpoint_node"]["ros__parameters"]
    assert set(params) == set(PARAMETER_NAMES)
    for spec in PARAMETERS:  # the type ROS will see matches the declared one
        assert type(params[spec.name]) is spec.type, spec.name
    # one comment per key
    lines = CONFIG.read_text().splitlines()
    for i, line in enumerate(lines):
        key = line.strip().split(":")[0]
        if key in PARAMETER_NAMES:
            assert lines[i - 1].strip().startswith("#"), f"no comment above {key}"


def _installed_share() -> Path | None:
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, LookupError, ValueError, OSError):  # OSError: no index
        return None


def test_run_the_launch_description(tmp_path, monkeypatch, random_superpoint):
    if (
        importlib.util.find_spec("launch_ros") is None
        or importlib.util.find_spec("launch") is None
    ):
        pytest.skip("launch/launch_ros are not importable (no sourced ROS 2; not on PyPI)")
    share = _installed_share()
    if share is None:
        pytest.skip(f"{PACKAGE} is not installed in an ament index (colcon build; source it)")
    rclpy = pytest.importorskip("rclpy")
    from launch import LaunchDescription, LaunchService  # noqa: I001 (not the launch/ folder)
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from rclpy.context import Context

    onnx = random_superpoint(tmp_path, onnx=True)
    domain = 150 + os.getpid() % 80
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    service = LaunchService()
    service.include_launch_description(
        LaunchDescription(
            [
                IncludeLaunchDescription(
                    PythonLaunchDescriptionSource(str(share / "launch" / LAUNCH.name)),
                    launch_arguments={
                        "weights": str(onnx),
                        "backend": "onnxruntime",
                        "image_topic": "/launch/image",
                    }.items(),
                )
            ]
        )
    )
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    probe = rclpy.create_node("launch_probe", context=context)
    loop = asyncio.new_event_loop()
    task = loop.create_task(service.run_async())
    try:
        up = False
        end = time.monotonic() + 20
        while time.monotonic() < end and not up:
            loop.run_until_complete(asyncio.sleep(0.5))
            up = (
                probe.count_publishers("/superpoint_node/features") > 0
                and probe.count_subscribers("/launch/image") > 0
            )
        assert up, "the launched node did not publish ~/features nor subscribe /launch/image"
    finally:
        service.shutdown()
        loop.run_until_complete(task)
        loop.close()
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
