"""``bench_node``: the pure core (parameters, frame plan, scoring, latency figures) and the real
pair, ``superpoint_node`` + ``bench_node`` as subprocesses over real DDS, on a generated
HPatches bag, against the offline ``superpoint evaluate`` of the same model on the same images.

Every run uses its own ``ROS_DOMAIN_ID`` (derived from the pid) so parallel runs don't talk to
each other. The model is an ONNX export of the packaged demo model when it exists, else of a
random-weights SuperPoint; both processes and the offline evaluation run it on ONNX Runtime, so
their answers must be identical, not merely close.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from superpoint_ros.errors import ConfigError, InputError
from superpoint_ros.ros.params import markdown_table_in
from superpoint_training.cli.ros_params import rendering
from superpoint_training.evaluation import results
from superpoint_training.evaluation.protocol import Protocol
from superpoint_training.ros import bench as B
from superpoint_training.ros import bench_config as C

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "bench.launch.py"
CONFIG = REPO / "config" / "bench.yaml"
DOMAIN_ID = 70 + os.getpid() % 70  # one DDS domain per test run (valid ids: 0..232)
# Small protocol sizes keep CPU inference quick; everything else is the pinned protocol.
PROTOCOL = "rep_size=120x160 hom_size=240x320"
SIZE = (240, 320)  # (height, width) of the generated sequences


# =============================================================================================
# Pure parts: no ROS needed


def test_the_shipped_yaml_and_the_docs_table_are_the_tables_renderings():
    assert CONFIG.read_text() == rendering("bench_node"), (
        "config/bench.yaml is stale: superpoint ros-params bench_node -o config/bench.yaml"
    )
    doc = (REPO / "docs" / "bench_node.md").read_text()
    assert markdown_table_in(doc) == rendering("bench_node", markdown=True), (
        "docs/bench_node.md's parameter table is stale: superpoint ros-params bench_node "
        "--markdown"
    )


def test_parameter_table_matches_the_yaml_and_parses():
    shipped = yaml.safe_load(CONFIG.read_text())["bench_node"]["ros__parameters"]
    assert list(shipped) == list(C.PARAMETER_NAMES)
    assert shipped == {p.name: p.default for p in C.PARAMETERS}
    for spec in C.PARAMETERS:
        assert spec.description.strip(), spec.name
        if spec.low is not None:
            assert spec.low <= spec.default <= spec.high, spec.name
    cfg = C.parse_bench_config({**shipped, "bag": "~/b", "output_dir": "/r"})
    assert cfg.bag == Path("~/b").expanduser() and cfg.output_dir == Path("/r")
    assert cfg.mode == "lockstep" and cfg.protocol == Protocol() and cfg.match_pair is None
    cfg = C.parse_bench_config(
        {"bag": "b", "output_dir": "o", "rate": 30, "protocol": "hom_size=240x320 eps=1,3",
         "match_pair": 2}
    )  # fmt: skip
    assert cfg.mode == "rate" and cfg.rate == 30.0 and isinstance(cfg.rate, float)
    assert cfg.protocol.hom_size == (240, 320) and cfg.protocol.eps == (1.0, 3.0)
    assert cfg.match_pair == 2
    bad = [
        ({"output_dir": "o"}, "bag is required"),
        ({"bag": "b"}, "output_dir is required"),
        ({"bag": "b", "output_dir": "o", "rate": -1.0}, "rate"),
        ({"bag": "b", "output_dir": "o", "warmup": 1.5}, "warmup"),
        ({"bag": "b", "output_dir": "o", "plots": 1}, "plots"),
        ({"bag": "b", "output_dir": "o", "protocol": "hom_sise=240x320"}, "hom_sise"),
        ({"bag": "b", "output_dir": "o", "match_pair": 7}, "match_pair"),
        ({"bag": "b", "output_dir": "o", "ratee": 1.0}, "ratee"),
    ]
    for values, message in bad:
        with pytest.raises(ConfigError, match=message):
            C.parse_bench_config(values)


def test_protocol_image_conversions():
    bgr = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 10, 10]]], np.uint8)
    gray = B.protocol_image(bgr, "bgr8", grayscale=True)
    # OpenCV's BT.601 weights (0.114 B, 0.587 G, 0.299 R), rounded: 29, 150, 76; grey stays.
    assert gray.tolist() == [[29, 150, 76, 10]]
    assert B.protocol_image(bgr[..., ::-1], "rgb8", True).tolist() == [[29, 150, 76, 10]]
    mono = np.array([[0, 7, 255]], np.uint8)
    assert B.protocol_image(mono, "mono8", True) is not None
    assert B.protocol_image(mono, "mono8", True).tolist() == [[0, 7, 255]]
    assert B.protocol_image(mono, "mono8", False).tolist() == [[[0] * 3, [7] * 3, [255] * 3]]
    m16 = np.array([[0x0000, 0x01FF, 0xFF00]], np.uint16)
    assert B.protocol_image(m16, "mono16", True).tolist() == [[0, 1, 255]]  # the high byte
    bgra = np.concatenate([bgr, np.full((1, 4, 1), 9, np.uint8)], axis=2)  # alpha is dropped
    assert B.protocol_image(bgra, "bgra8", True).tolist() == [[29, 150, 76, 10]]
    assert B.protocol_image(bgra[..., [2, 1, 0, 3]], "rgba8", True).tolist() == [[29, 150, 76, 10]]
    assert B.protocol_image(bgra, "bgra8", False).tolist() == bgr.tolist()
    assert B.protocol_image(bgr, "8UC3", True).tolist() == [[29, 150, 76, 10]]
    with pytest.raises(InputError, match="uint16"):
        B.protocol_image(m16, "mono8", True)


def test_bench_frames_have_the_offline_readers_pixels(tmp_path):
    """A colour file stored in a bag as the writer stores it, then made grey by the bench, has
    exactly the pixels ``superpoint evaluate`` reads from the file, in every format."""
    from superpoint_training.bags.reader import encoding_for
    from superpoint_training.bags.writer import load_image
    from superpoint_training.evaluation.datasets import read_image

    bgr = np.random.default_rng(1).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    for ext in (".ppm", ".png", ".jpg"):
        path = tmp_path / f"colour{ext}"
        assert cv2.imwrite(str(path), bgr)
        stored = load_image(path)
        assert encoding_for(stored) == "bgr8"
        np.testing.assert_array_equal(
            B.protocol_image(stored, "bgr8", grayscale=True), read_image(path), err_msg=ext
        )


def test_plan_sequence_frames_sizes_and_homographies():
    protocol = Protocol(reference=1, targets=(2, 4), rep_size=(16, 24), hom_size=(32, 48))
    images = [np.full((40, 60), 10 * i, np.uint8) for i in range(1, 4)]
    images[1] = np.zeros((20, 30, 3), np.uint8)  # image 2: colour and another size
    H12 = np.array([[2.0, 0, 4], [0, 2, 6], [0, 0, 2]])  # stored with H[2,2] = 2
    H13 = np.array([[1.0, 0, 5], [0, 1, 0], [0, 0, 1]])
    run = B.plan_sequence("i_x", images, ["mono8", "bgr8", "mono8"], {2: H12, 3: H13}, protocol)
    assert run.kind == "illumination"  # by the sequence's name: datasets.sequence_kind
    # Image 4 does not exist: the reference and target 2 only, rep then hom for each.
    assert [(f.index, f.pass_) for f in run.frames] == [
        (1, "rep"), (1, "hom"), (2, "rep"), (2, "hom")
    ]  # fmt: skip
    assert [f.image.shape for f in run.frames] == [(16, 24), (32, 48)] * 2
    assert [f.max_keypoints for f in run.frames] == [300, 1000] * 2
    assert run.frames[2].frame_id == "i_x/2" and run.frames[0].image.dtype == np.uint8
    assert run.sizes == {1: (40, 60), 2: (20, 30)}
    np.testing.assert_array_equal(run.homography(2, 1), [[1, 0, 2], [0, 1, 3], [0, 0, 1]])
    # Reference 2: H_2_3 = H_1_3 @ inv(H_1_2) = shift by (5 - 2, 0 - 3).
    np.testing.assert_allclose(run.homography(3, 2), [[1, 0, 3], [0, 1, -3], [0, 0, 1]])
    assert not run.complete()
    run.predictions = {(p, i): None for p in B.PASSES for i in (1, 2)}
    assert run.complete()
    warm = B.warmup_frames(run.frames[0], protocol, 2)
    assert [(f.pass_, f.image.shape) for f in warm] == [("rep", (16, 24))] * 2 + [
        ("hom", (32, 48))
    ] * 2  # fmt: skip
    assert B.warmup_frames(None, protocol, 2) == [] == B.warmup_frames(run.frames[0], protocol, 0)


def _grid_prediction(shift=(0.0, 0.0), n=40, seed=0) -> dict[str, np.ndarray]:
    """n keypoints on a grid inside a 64x96 image, moved by ``shift``; the same unit
    descriptors in every image (a perfect matcher's input)."""
    ys, xs = np.mgrid[12:52:8, 10:86:9]
    kp = np.stack([xs.ravel(), ys.ravel()], 1)[:n].astype(np.float32) + np.float32(shift)
    desc = np.linalg.qr(np.random.default_rng(seed).normal(size=(64, 64)))[0][: len(kp)]
    scores = np.linspace(1, 0.5, len(kp), dtype=np.float32)
    return {"keypoints": kp, "scores": scores, "descriptors": desc.astype(np.float32)}


def test_sequence_records_score_perfect_and_dropped_frames():
    protocol = Protocol(targets=(2, 3), rep_size=(64, 96), hom_size=(64, 96))
    T = np.array([[1.0, 0, 3], [0, 1, 2], [0, 0, 1]])  # a 3 px right, 2 px down shift
    run = B.SequenceRun(
        "v_s", "viewpoint", {1: (64, 96), 2: (64, 96), 3: (64, 96)},
        {1: np.eye(3), 2: T, 3: T}, frames=[],
    )  # fmt: skip
    p0, p1 = _grid_prediction(), _grid_prediction((3, 2))
    run.predictions = {("rep", 1): p0, ("hom", 1): p0, ("rep", 2): p1, ("hom", 2): p1,
                       ("rep", 3): p1, ("hom", 3): None}  # fmt: skip
    method = B.NodeMethod("m", protocol)
    r2, r3 = B.sequence_records(method, run, protocol, descriptor_dim=64)
    # Pair 1-2: every point repeats exactly, every match is right, H is recovered.
    assert r2["pair"] == "1-2" and r2["frames_dropped"] == 0
    assert r2["repeatability"] == 1.0 and r2["mle"] == pytest.approx(0.0, abs=1e-5)
    assert r2["matches"] == r2["correct_matches"] == 40 and r2["nn_map"] == 1.0
    assert r2["corner_error"] < 1e-3 and r2["correct"] == {"1": True, "3": True, "5": True}
    # Pair 1-3: image 3's descriptor frame was dropped: no keypoints, a failed homography
    # (still counted in the accuracy), while repeatability used the answered rep frame.
    assert r3["frames_dropped"] == 1 and r3["keypoints1"] == 0 and r3["matches"] == 0
    assert r3["corner_error"] == math.inf
    assert r3["correct"] == {"1": False, "3": False, "5": False}
    assert r3["repeatability"] == 1.0
    result = results.method_result(method, [r2, r3], ["v_s"], protocol, {})
    assert result["homography_accuracy"] == {"1": 0.5, "3": 0.5, "5": 0.5}
    assert result["pairs"] == 2 and result["splits"]["viewpoint"]["pairs"] == 2
    assert result["pair_results"][1]["corner_error"] is None  # inf is not JSON
    assert result["pair_results"][0]["pair"] == "1-2"
    assert "_matches" not in result["pair_results"][0]
    json.dumps(result, allow_nan=False)  # no private arrays, no inf


def test_latency_and_throughput_by_hand():
    s = B.latency_summary([0.010, 0.020, 0.030, 0.040])
    assert s["count"] == 4 and s["max_ms"] == pytest.approx(40.0)
    assert s["p50_ms"] == pytest.approx(25.0) and s["p95_ms"] == pytest.approx(38.5)
    assert s["mean_ms"] == pytest.approx(25.0)
    assert B.latency_summary([])["p50_ms"] is None
    logs = [
        B.FrameLog("a", 1, "rep", 0.010),
        B.FrameLog("a", 1, "hom", 0.030),
        B.FrameLog("a", 2, "rep", 0.020),
        B.FrameLog("a", 2, "hom", None, late=True),
    ]
    r = B.ros_summary(logs, first_publish=100.0, last_event=102.0, protocol=Protocol())
    assert (r["frames"], r["frames_answered"], r["frames_dropped"], r["frames_late"]) == (
        4, 3, 1, 1
    )  # fmt: skip
    assert r["drop_rate"] == 0.25 and r["wall_seconds"] == 2.0
    assert r["frames_per_second"] == 1.5 and r["images_per_second"] == 0.75
    assert r["latency_per_pass"]["hom"]["count"] == 1
    assert r["latency_per_pass"]["rep"]["size"] == [240, 320]
    assert B.seconds_per_image(logs) == pytest.approx(0.040)  # image 1 only: 10 + 30 ms


def test_protocol_deviations_and_method_name():
    p = Protocol()
    same = {"max_keypoints": 1000, "nms_radius": 4, "detection_threshold": 0.005, "border": 4,
            "resize": "", "subpixel": False, "weights": "/m/best.onnx"}  # fmt: skip
    assert B.protocol_deviations(same, p) == {}
    assert B.protocol_deviations({**same, "max_keypoints": 2000}, p) == {}  # more is cut
    dev = B.protocol_deviations({**same, "max_keypoints": 500, "resize": "480x640"}, p)
    assert dev == {
        "max_keypoints": {"protocol": 1000, "node": 500},
        "resize": {"protocol": "", "node": "480x640"},
    }
    assert B.default_method_name(same) == "best@superpoint_node"
    assert B.default_method_name({}) == "default@superpoint_node"


# =============================================================================================
# The launch file (launch/launch_ros are not installable here: checked without them)


def _launch_tables() -> dict:
    tree = ast.parse(LAUNCH.read_text())
    tables = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("NODE_ARGUMENTS", "BENCH_ARGUMENTS", "NODE_FIXED", "BENCH_FIXED",
                        "FEATURES_TOPIC", "PACKAGE"):  # fmt: skip
                tables[name] = ast.literal_eval(node.value)
    return tree, tables


def _console_scripts() -> dict[str, str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            scripts = ast.literal_eval(node.value)["console_scripts"]
            return dict(s.replace(" ", "").split("=", 1) for s in scripts)
    raise AssertionError("setup.py declares no console_scripts")


def test_launch_file_names_real_executables_parameters_and_files():
    from superpoint_ros.ros.node_config import PARAMETER_NAMES as NODE_PARAMETERS

    tree, t = _launch_tables()
    assert t["PACKAGE"] == "superpoint_ros"
    scripts = _console_scripts()
    executables = {
        kw.value.value
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node"
        for kw in call.keywords
        if kw.arg == "executable"
    }
    assert executables == {"superpoint_node", "bench_node"}
    assert executables <= set(scripts)
    # The console script targets import and are callables (the bench lives on the training
    # side: superpoint_ros never imports superpoint_training).
    assert scripts["bench_node"] == "superpoint_training.ros.bench_node:main"
    for name in executables:
        module, func = scripts[name].split(":")
        assert callable(getattr(__import__(module, fromlist=[func]), func))
    # Every parameter the launch file sets is declared by the node it sets it on; types and
    # descriptions come from the nodes' tables (their modules are what the launch file imports).
    assert set(t["NODE_ARGUMENTS"]) | set(t["NODE_FIXED"]) <= set(NODE_PARAMETERS)
    assert set(t["BENCH_ARGUMENTS"]) | set(t["BENCH_FIXED"]) <= set(C.PARAMETER_NAMES)
    assert set(C.REQUIRED) <= set(t["BENCH_ARGUMENTS"])
    imported = {
        alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported["node_config"] == "superpoint_ros.ros"
    assert imported["bench_config"] == "superpoint_training.ros"
    assert imported["launch_value"] == "superpoint_ros.ros.params"
    assert t["FEATURES_TOPIC"] == "/superpoint_node/features"
    # Every declared launch argument is used, and every LaunchConfiguration is declared.
    text = LAUNCH.read_text()
    declared = set(t["NODE_ARGUMENTS"] + t["BENCH_ARGUMENTS"])
    declared |= set(re.findall(r'DeclareLaunchArgument\(\s*"(\w+)"', text))
    used = set(re.findall(r'LaunchConfiguration\("(\w+)"\)', text))
    assert used <= declared and {"image_topic", "node_params_file", "bench_params_file"} <= used
    # The parameter files it loads exist and are installed (setup.py: config/*.yaml).
    for name in re.findall(r'os\.path\.join\(config, "([\w.]+)"\)', text):
        assert (REPO / "config" / name).is_file(), name
    assert 'glob("config/*.yaml")' in (REPO / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in (REPO / "setup.py").read_text()


def test_launch_description_builds_where_launch_ros_exists(ament_prefix, monkeypatch):
    pytest.importorskip("launch_ros", reason="launch_ros needs a sourced ROS 2")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(ament_prefix))  # the config folder's index
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    arguments = {a.name: a for a in description.get_launch_arguments()}
    assert {"bag", "output_dir", "weights", "backend", "precision", "rate"} <= set(arguments)
    for name in C.REQUIRED:  # no default: ros2 launch asks for them
        assert arguments[name].default_value is None, name
    rate = next(p for p in C.PARAMETERS if p.name == "rate")
    assert arguments["rate"].description == f"bench_node: {rate.description} " + (
        "(empty: from bench_params_file)"
    )


# =============================================================================================
# The real pair over DDS


def _photo(colour: bool = False) -> np.ndarray:
    """skimage's astronaut at ``SIZE``: grey, or BGR with ``colour``."""
    rgb = pytest.importorskip("skimage.data").astronaut()
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR if colour else cv2.COLOR_RGB2GRAY)
    return cv2.resize(image, (SIZE[1], SIZE[0]), interpolation=cv2.INTER_AREA)


def _viewpoints() -> list[np.ndarray]:
    """Growing rotation about the centre, zoom and a little perspective."""
    h, w = SIZE
    out = []
    for k in range(1, 6):
        a, s = np.deg2rad(4 * k), 1 + 0.04 * k
        centre, back = np.eye(3), np.eye(3)
        centre[:2, 2], back[:2, 2] = (-w / 2, -h / 2), (w / 2, h / 2)
        R = np.array([[s * np.cos(a), -s * np.sin(a), 0], [s * np.sin(a), s * np.cos(a), 0],
                      [2e-5 * k, 1e-5 * k, 1]])  # fmt: skip
        out.append(back @ R @ centre)
    return out


def _write_h(path: Path, H: np.ndarray) -> None:
    path.write_text("\n".join(" ".join(f"{v:.10g}" for v in row) for row in H) + "\n")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Two HPatches-layout sequences of a real photo: ``v_astro`` (grey PGM files, known
    warps) and ``i_astro`` (the colour photo as PPM files, identity homographies, brightness
    changes: the bench and the offline reader must make them grey alike)."""
    root = tmp_path_factory.mktemp("hpatches")
    photo = _photo()
    v = root / "v_astro"
    v.mkdir()
    Hs = _viewpoints()
    cv2.imwrite(str(v / "1.pgm"), photo)
    for n, H in enumerate(Hs, start=2):
        cv2.imwrite(str(v / f"{n}.pgm"), cv2.warpPerspective(photo, H, (SIZE[1], SIZE[0])))
        _write_h(v / f"H_1_{n}", H)
    i = root / "i_astro"
    i.mkdir()
    colour = _photo(colour=True)
    for n, (gain, bias) in enumerate(
        [(1, 0), (0.6, 0), (0.8, 20), (1.2, 0), (0.5, 40), (1.3, -20)]
    ):
        lit = np.clip(colour * gain + bias, 0, 255).astype(np.uint8)
        cv2.imwrite(str(i / f"{n + 1}.ppm"), lit)
        if n:
            _write_h(i / f"H_1_{n + 1}", np.eye(3))
    return root


@pytest.fixture(scope="module")
def bag(dataset, tmp_path_factory) -> Path:
    from superpoint_training.bags.writer import find_sequences, write_hpatches_bag

    out = tmp_path_factory.mktemp("bag") / "hpatches_bag"
    write_hpatches_bag(find_sequences(dataset), out)
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory, random_superpoint) -> Path:
    """The packaged demo model as ONNX when it exists, else a random-weights SuperPoint (its
    detector scaled up, so scores are well separated) exported with the default settings."""
    folder = tmp_path_factory.mktemp("model")
    from superpoint_ros.frontend import DEFAULT_WEIGHTS

    if not DEFAULT_WEIGHTS.is_file():
        return random_superpoint(folder, peaky=True, onnx=True)
    pytest.importorskip("torch")
    from superpoint_ros.frontend import FrontendConfig
    from superpoint_ros.model.weights import load_weights
    from superpoint_ros.onnx_export import export_onnx

    weights = load_weights(DEFAULT_WEIGHTS)
    return export_onnx(weights, folder / "superpoint_demo.onnx", FrontendConfig())


def _env() -> dict[str, str]:
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID), PYTHONUNBUFFERED="1")
    env.pop("ROS_LOCALHOST_ONLY", None)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env


@pytest.fixture(scope="module")
def superpoint_node(model, tmp_path_factory):
    """The real superpoint_node, reading /bench/image, on ONNX Runtime."""
    log = tmp_path_factory.mktemp("node") / "node.log"
    cmd = [sys.executable, "-m", "superpoint_ros.ros.superpoint_node", "--ros-args",
           "-p", f"weights:={model}", "-p", "backend:=onnxruntime",
           "-p", "qos_reliability:=reliable", "-p", "publish_debug_image:=false",
           "-p", "diagnostics_period:=0.0", "-r", "image:=/bench/image"]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    yield proc, log
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _bench(*params: str, remap_image: str = "/bench/image", timeout: float = 300.0):
    cmd = [sys.executable, "-m", "superpoint_training.ros.bench_node", "--ros-args",
           "-r", f"image:={remap_image}", "-r", "features:=/superpoint_node/features"]  # fmt: skip
    for p in params:
        cmd += ["-p", p]
    return subprocess.run(
        cmd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


METRIC_KEYS = ("repeatability", "mle", "nn_map", "matching_score", "corner_error", "correct",
               "matches", "inliers", "correct_matches", "keypoints0", "keypoints1")  # fmt: skip


def test_bench_node_scores_exactly_like_offline_evaluate(superpoint_node, bag, dataset, model,
                                                         tmp_path):  # fmt: skip
    node, node_log = superpoint_node
    out = tmp_path / "robot"
    run = _bench(f"bag:={bag}", f"output_dir:={out}", f"protocol:={PROTOCOL}")
    logs = run.stdout + run.stderr
    assert run.returncode == 0, logs + node_log.read_text()
    done = [line for line in logs.splitlines() if "bench done:" in line]
    assert len(done) == 1 and "0 dropped" in done[0], logs

    from superpoint_training.cli.main import main as cli_main

    offline = tmp_path / "offline"
    argv = ["evaluate", "--dataset", str(dataset), "--method", str(model), "-o", str(offline),
            "--backend", "onnxruntime", "--no-cache", "--quiet", "--no-plots"]  # fmt: skip
    for item in PROTOCOL.split():
        argv += ["--set", item]
    assert cli_main(argv) == 0

    on_robot = json.loads((out / "metrics.json").read_text())
    off = json.loads((offline / "metrics.json").read_text())
    assert on_robot["protocol"] == off["protocol"]
    assert on_robot["protocol_key"] == off["protocol_key"]
    assert on_robot["sequences"] == off["sequences"] == {"i_astro": "illumination",
                                                         "v_astro": "viewpoint"}  # fmt: skip
    ((name, robot),) = on_robot["methods"].items()
    ((_, ref),) = off["methods"].items()
    assert name == f"{model.stem}@superpoint_node"
    # The headline: the same homography accuracy, overall and per split...
    assert robot["homography_accuracy"] == ref["homography_accuracy"]
    for split in ("all", "illumination", "viewpoint"):
        assert robot["splits"][split] == ref["splits"][split], split
    # ...because every pair's figures are the same numbers.
    key = lambda r: (r["sequence"], r["pair"])  # noqa: E731
    pairs_robot = sorted(robot["pair_results"], key=key)
    pairs_ref = sorted(ref["pair_results"], key=key)
    assert [key(r) for r in pairs_robot] == [key(r) for r in pairs_ref] and len(pairs_ref) == 10
    for a, b in zip(pairs_robot, pairs_ref):
        assert {k: a[k] for k in METRIC_KEYS} == {k: b[k] for k in METRIC_KEYS}, key(a)
        assert a["frames_dropped"] == 0
    # Not a trivial equality: points were found and matched, and the illumination pairs
    # (identity homographies) are estimated well.
    assert all(r["keypoints0"] > 0 and r["matches"] > 0 for r in pairs_ref)
    assert robot["splits"]["illumination"]["homography_accuracy"]["5"] > 0
    assert robot["repeatability"] > 0.2

    # What only the replay measures.
    ros = robot["ros"]
    assert ros["frames"] == ros["frames_answered"] == 24  # 2 sequences x 6 images x 2 sizes
    assert ros["frames_dropped"] == ros["frames_late"] == ros["unexpected_answers"] == 0
    lat = ros["latency"]
    assert 0 < lat["p50_ms"] <= lat["p95_ms"] <= lat["max_ms"] < 60_000
    assert ros["latency_per_pass"]["hom"]["size"] == [240, 320]
    assert ros["frames_per_second"] > 0 and robot["timing"]["extract_seconds_per_image"] > 0
    assert on_robot["bench"]["mode"] == "lockstep"
    assert on_robot["bench"]["node_parameters"]["weights"] == str(model)
    assert on_robot["bench"]["node_parameters"]["backend"] == "onnxruntime"
    assert "protocol_deviations" not in robot and robot["backend"] == "onnxruntime"
    report = (out / "report.md").read_text()
    assert "## ROS node replay" in report and "| hom | 240x320 | 12 |" in report
    assert (out / "accuracy_vs_threshold.png").is_file()
    assert len(list((out / "matches").rglob("*.png"))) == 2
    assert node.poll() is None, node_log.read_text()  # still serving


def test_bench_node_at_a_fixed_rate_counts_what_the_node_drops(superpoint_node, bag, tmp_path):
    node, node_log = superpoint_node
    out = tmp_path / "rate"
    # 500 frames/s is far beyond what CPU inference keeps up with: the node keeps only the
    # newest frame, so most frames never get features.
    run = _bench(f"bag:={bag}", f"output_dir:={out}", f"protocol:={PROTOCOL}", "rate:=500.0",
                 "timeout:=2.0", "max_sequences:=1", "plots:=false", "warmup:=0")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr + node_log.read_text()
    (result,) = json.loads((out / "metrics.json").read_text())["methods"].values()
    ros = result["ros"]
    assert ros["frames"] == 12 and ros["frames_dropped"] > 0
    assert ros["frames_answered"] + ros["frames_dropped"] == 12 and ros["frames_answered"] > 0
    dropped_pairs = [r for r in result["pair_results"] if r["frames_dropped"]]
    assert dropped_pairs and result["pairs"] == 5
    assert all(r["frames_dropped"] <= 4 for r in result["pair_results"])
    assert not (out / "accuracy_vs_threshold.png").exists()


def test_bench_node_fails_in_one_line_without_a_node_or_a_bag(bag, tmp_path):
    run = _bench(f"bag:={bag}", f"output_dir:={tmp_path / 'x'}", "startup_timeout:=1.0",
                 remap_image="/nobody/listens", timeout=30)  # fmt: skip
    assert run.returncode == 1
    assert "no SuperPoint node after 1 s" in run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    run = _bench(f"bag:={tmp_path / 'missing'}", f"output_dir:={tmp_path / 'y'}", timeout=30)
    assert run.returncode == 1 and "does not exist" in run.stdout + run.stderr
    run = _bench("output_dir:=/tmp/z", timeout=30)
    assert run.returncode == 1 and "bag is required" in run.stdout + run.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
