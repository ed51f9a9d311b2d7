"""``launch/superpoint.launch.py``, ``launch/bench.launch.py`` and ``config/superpoint.yaml``
against the node and setup.py, statically and for real.

Static (no ROS needed): the launch file is read with ``ast``: it parses; every executable it
names is a console script of ``setup.py``; every parameter it sets is declared by the node
(``superpoint_ros.ros.node_config.PARAMETERS``) with the same type; every file it loads is
installed into the package's share directory by ``setup.py``'s ``data_files``.

For real: where the upstream ``launch``/``launch_ros`` import (a sourced ROS 2, or the sources
in ``../shared/ros_python/site``, which ``test/conftest.py`` puts on ``sys.path``; else these
tests skip and say why), an ament prefix is laid out as colcon installs the package and
``LaunchService`` runs both launch files: ``superpoint.launch.py`` starts the node with every
parameter of ``config/superpoint.yaml`` (read back through its parameter service) and the node
answers an image; ``bench.launch.py`` replays a small bag end to end and writes its report; a
bad launch argument ends the launch with one line.
"""

from __future__ import annotations

import ast
import asyncio
import glob
import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np
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


def _imports(tree: ast.Module) -> dict[str, str]:
    """Module-level ``from M import N``: name -> module."""
    return {
        alias.asname or alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


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


def test_parameter_arguments_come_from_the_nodes_table():
    """One launch argument per node parameter, declared from the node's own table and cast by
    its type (``params.launch_value``): nothing to keep in step by hand."""
    tree = _tree(LAUNCH)
    imported = _imports(tree)
    assert imported["PARAMETERS"] == "superpoint_ros.ros.node_config"
    assert imported["launch_value"] == "superpoint_ros.ros.params"
    loops = [
        n for n in ast.walk(tree) if isinstance(n, (ast.For, ast.comprehension))
        if ast.unparse(n.iter) == "PARAMETERS"
    ]  # fmt: skip
    assert len(loops) == 2  # the DeclareLaunchArgument list and the overrides in _node
    text = ast.unparse(tree)
    assert "DeclareLaunchArgument(spec.name" in text and "launch_value(spec, text)" in text


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


# =============================================================================================
# The launch files run for real: upstream launch/launch_ros (a sourced ROS 2, or the sources in
# ../shared/ros_python/site that test/conftest.py puts on sys.path), an ament prefix made here
# as colcon would install the package, the real nodes over DDS.


def test_launch_description_declares_every_node_parameter(ament_prefix, monkeypatch):
    _need_launch()
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(ament_prefix))  # the config folder's index
    from launch.actions import DeclareLaunchArgument

    spec = importlib.util.spec_from_file_location("superpoint_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    declared = {e.name: e for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert set(declared) == EXTRA_ARGUMENTS | set(PARAMETER_NAMES)
    for p in PARAMETERS:
        assert declared[p.name].description.startswith(p.description), p.name


DOMAIN_ID = 150 + os.getpid() % 80  # one DDS domain per test run
BENCH_LAUNCH = REPO / "launch" / "bench.launch.py"


def _need_launch() -> None:
    for module in ("launch", "launch_ros", "ament_index_python"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(
                f"{module} is not importable: no sourced ROS 2 and no ../shared/ros_python/site "
                "(launch is not on PyPI)"
            )
    pytest.importorskip("rclpy", reason="rclpy is not installed (pip install '.[ros]')")


@pytest.fixture
def ros_env(ament_prefix, monkeypatch) -> Path:
    """The environment the launched processes inherit: the prefix on AMENT_PREFIX_PATH, this
    run's DDS domain, discovery on this machine only."""
    _need_launch()
    old = os.environ.get("AMENT_PREFIX_PATH", "")
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"{ament_prefix}{os.pathsep + old if old else ''}")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(DOMAIN_ID))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    return ament_prefix


class Launched:
    """A launch file run by ``LaunchService`` on an event loop of this thread.

    The loop is made the thread's current loop: ``LaunchService.shutdown()`` compares the
    thread's loop with the one it runs on, and with any other it hands the Shutdown event to
    that loop and blocks until the loop takes it, which never happens while this thread is the
    one that would run it. ``pump`` runs the loop a while; ``close`` shuts down and waits.
    """

    def __init__(self, path: Path, arguments: dict[str, str]):
        from launch import LaunchDescription, LaunchService  # noqa: I001 (not the launch/ folder)
        from launch.actions import IncludeLaunchDescription
        from launch.launch_description_sources import PythonLaunchDescriptionSource

        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.service = LaunchService()
        self.service.include_launch_description(
            LaunchDescription(
                [
                    IncludeLaunchDescription(
                        PythonLaunchDescriptionSource(str(path)),
                        launch_arguments=arguments.items(),
                    )
                ]
            )
        )
        self.task = self.loop.create_task(self.service.run_async())

    def pump(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def wait(self, timeout: float) -> int | None:
        """Run until the launch ends by itself; its return code, or None at the timeout."""
        end = time.monotonic() + timeout
        while not self.task.done() and time.monotonic() < end:
            self.pump(0.2)
        return self.task.result() if self.task.done() else None

    def close(self, timeout: float = 60.0) -> int:
        try:
            if not self.task.done():
                shutdown = self.service.shutdown()
                if shutdown is not None:
                    self.loop.run_until_complete(shutdown)
                self.loop.run_until_complete(asyncio.wait_for(self.task, timeout))
            return self.task.result()
        finally:
            self.loop.close()
            asyncio.set_event_loop(None)


@pytest.fixture
def probe(ros_env):
    """A node of this test on the launch's DDS domain, with an executor to spin it."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    node = rclpy.create_node("launch_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def _until(launched: Launched, executor, condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if launched.task.done():
            return condition()
        launched.pump(0.05)
        executor.spin_once(timeout_sec=0.05)
        if condition():
            return True
    return False


def _get_parameters(launched, node, executor, names: list[str]) -> dict[str, object]:
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    client = node.create_client(GetParameters, "/superpoint_node/get_parameters")
    assert _until(launched, executor, client.service_is_ready, 60), "no parameter service"
    future = client.call_async(GetParameters.Request(names=names))
    assert _until(launched, executor, future.done, 30), "the parameter service did not answer"
    return {n: parameter_value_to_python(v) for n, v in zip(names, future.result().values)}


def test_superpoint_launch_runs_the_node_with_the_parameter_file(
    ros_env, probe, tmp_path, random_superpoint
):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, PointCloud2

    node, executor = probe
    onnx = random_superpoint(tmp_path, peaky=True, onnx=True)  # the yaml's settings baked in
    arguments = {"weights": str(onnx), "backend": "onnxruntime", "image_topic": "/launch/image"}
    launched = Launched(ros_env / "share" / PACKAGE / "launch" / LAUNCH.name, arguments)
    try:
        up = _until(
            launched,
            executor,
            lambda: (
                node.count_publishers("/superpoint_node/features") > 0
                and node.count_subscribers("/launch/image") > 0
            ),
            120,
        )
        assert up, "the launched node did not publish ~/features nor subscribe /launch/image"

        # Every parameter of config/superpoint.yaml, read back through the parameter service:
        # the file's values, except the two the launch arguments override.
        shipped = yaml.safe_load(CONFIG.read_text())["superpoint_node"]["ros__parameters"]
        expected = {**shipped, "weights": str(onnx), "backend": "onnxruntime"}
        got = _get_parameters(launched, node, executor, list(expected))
        assert got == expected

        # It answers an image.
        answers: list = []
        node.create_subscription(
            PointCloud2, "/superpoint_node/features", answers.append, qos_profile_sensor_data
        )
        pub = node.create_publisher(Image, "/launch/image", 10)
        image = Image(height=64, width=80, encoding="mono8", step=80)
        image.header.frame_id = "launch_camera"
        image.header.stamp.sec = 42
        rng = np.random.default_rng(0)
        image.data = (rng.random(64 * 80) * 255).astype(np.uint8).tobytes()
        end = time.monotonic() + 60
        while not answers and time.monotonic() < end:
            pub.publish(image)
            _until(launched, executor, lambda: bool(answers), 1.0)
        assert answers, "no ~/features for the published image"
        assert answers[0].header.frame_id == "launch_camera"
        assert answers[0].header.stamp.sec == 42
        if importlib.util.find_spec("sensor_msgs_py") is not None:  # as ROS users read it
            from sensor_msgs_py.point_cloud2 import read_points_numpy

            assert read_points_numpy(answers[0]).shape == (answers[0].width, 3 + 256)
    finally:
        rc = launched.close()
    assert rc == 0


def test_bench_launch_replays_a_bag_and_writes_its_report(ros_env, tmp_path, random_superpoint):
    cv2 = pytest.importorskip("cv2")
    from superpoint_training.bags.writer import find_sequences, write_hpatches_bag

    seq = tmp_path / "hpatches" / "v_noise"
    seq.mkdir(parents=True)
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur((rng.random((240, 320)) * 255).astype(np.uint8), (5, 5), 0)
    cv2.imwrite(str(seq / "1.pgm"), base)
    for n in range(2, 7):
        H = np.array([[1, 0, 2.0 * n], [0, 1, -1.0 * n], [0, 0, 1]])
        cv2.imwrite(str(seq / f"{n}.pgm"), cv2.warpPerspective(base, H, (320, 240)))
        (seq / f"H_1_{n}").write_text("\n".join(" ".join(map(str, r)) for r in H) + "\n")
    bag = tmp_path / "bag"
    write_hpatches_bag(find_sequences(tmp_path / "hpatches"), bag)
    onnx = random_superpoint(tmp_path, peaky=True, onnx=True)
    out = tmp_path / "report"
    arguments = {
        "bag": str(bag),
        "output_dir": str(out),
        "weights": str(onnx),
        "backend": "onnxruntime",
        "protocol": "rep_size=120x160 hom_size=240x320",
    }
    launched = Launched(ros_env / "share" / PACKAGE / "launch" / BENCH_LAUNCH.name, arguments)
    try:
        rc = launched.wait(300)  # the bench exits when its report is written; the launch ends
    finally:
        closed = launched.close()
    assert rc == 0 == closed, "bench.launch.py did not end by itself with status 0"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics and (out / "report.md").is_file()


def test_bad_launch_argument_is_one_line(ros_env, caplog):
    launched = Launched(
        ros_env / "share" / PACKAGE / "launch" / LAUNCH.name, {"max_keypoints": "many"}
    )
    try:
        rc = launched.wait(60)
    finally:
        closed = launched.close()
    assert rc == closed == 1
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, [r.getMessage() for r in caplog.records]
    message = errors[0].getMessage()
    assert message.endswith("launch argument max_keypoints:='many' must be a int")
    assert "\n" not in message and errors[0].exc_info is None  # one line, no traceback
