"""Shared fixtures. Real data lives in ../shared/data beside the project on developer and CI
machines; users' clones don't have it, so tests that use it skip with a reason.

``random_superpoint`` makes the random-weights SuperPoint (checkpoint or ONNX front-end) that
stands in for trained weights in the node, bench and backend tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SUPERPOINT_SHARED_DATA", REPO.parent / "shared" / "data"))
# Upstream launch, launch_ros and sensor_msgs_py sources (not on PyPI) beside the project on
# developer and CI machines. Appended, so a sourced ROS 2's own packages come first.
ROS_PYTHON_SITE = Path(
    os.environ.get("SUPERPOINT_ROS_PYTHON_SITE", REPO.parent / "shared" / "ros_python" / "site")
)
if ROS_PYTHON_SITE.is_dir() and importlib.util.find_spec("launch_ros") is None:
    sys.path.append(str(ROS_PYTHON_SITE))


# Modules whose tests start processes (console scripts, torchrun), ROS nodes, launch files or
# training runs: marked ``slow`` (``make test-fast`` skips them; ``make test`` runs everything).
SLOW_MODULES = {
    "test_backends", "test_bad_inputs", "test_bench_node", "test_benchmark_matrix",
    "test_cli_common_flags", "test_cli_inference", "test_cli_main", "test_demo_node",
    "test_distributed", "test_evaluation", "test_export_sharded", "test_gpu_check",
    "test_image_io", "test_label_store", "test_launch", "test_node", "test_onnx_export_tensorrt",
    "test_quantize", "test_ros_node_config", "test_tensorrt_cli", "test_training_magicpoint",
    "test_training_superpoint", "test_training_workflow",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.stem in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or $SUPERPOINT_SHARED_DATA); skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (developer/CI machines only)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def make_random_superpoint(
    folder: Path,
    *,
    peaky: bool = False,
    seed: int = 3,
    onnx: bool = False,
    max_keypoints: int = 1000,
) -> Path:
    """A random-weights SuperPoint (seeded) saved as ``folder/random[_peaky].pt``; with ``onnx``
    also exported as an ONNX front-end beside it (same stem, ``max_keypoints`` and the other
    ``FrontendConfig`` defaults baked in) and that ``.onnx`` path returned.

    ``peaky`` multiplies the detector head's last convolution by 40: keypoint scores are then
    well separated, as a trained model's are, instead of a near-flat heatmap whose ties make
    backends keep different points. Skips the test where torch (or, for ``onnx``, ONNX Runtime)
    is missing.
    """
    torch = pytest.importorskip("torch")
    from superpoint_ros.model.superpoint import SuperPointNet
    from superpoint_ros.model.weights import checkpoint_dict, load_weights, save_checkpoint

    torch.manual_seed(seed)
    net = SuperPointNet()
    if peaky:
        with torch.no_grad():
            net.detector[1].conv.weight.mul_(40.0)
    stem = "random_peaky" if peaky else "random"
    checkpoint = save_checkpoint(folder / f"{stem}.pt", checkpoint_dict(net))
    if not onnx:
        return checkpoint
    pytest.importorskip("onnxruntime")
    from superpoint_ros.frontend import FrontendConfig
    from superpoint_ros.onnx_export import export_onnx

    config = FrontendConfig(max_keypoints=max_keypoints)
    return export_onnx(load_weights(checkpoint), folder / f"{stem}.onnx", config)


@pytest.fixture(scope="session")
def random_superpoint():
    """:func:`make_random_superpoint`, for fixtures of any scope: ``random_superpoint(folder,
    peaky=True, onnx=True)``."""
    return make_random_superpoint


# console script -> module it runs, for the ament prefix below
EXECUTABLES = {
    "superpoint_node": "superpoint_ros.ros.superpoint_node",
    "bench_node": "superpoint_training.ros.bench_node",
}


@pytest.fixture(scope="session")
def ament_prefix(tmp_path_factory) -> Path:
    """An install prefix laid out as ``colcon build`` makes it, for launch tests (put it on
    ``AMENT_PREFIX_PATH``): the package in the ament index, ``share/superpoint_ros/{launch,
    config,package.xml}`` (this checkout's files) and ``lib/superpoint_ros/<executable>``
    (running this interpreter's modules)."""
    prefix = tmp_path_factory.mktemp("install")
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "superpoint_ros").write_text("")
    share = prefix / "share" / "superpoint_ros"
    for folder, pattern in (("launch", "*.launch.py"), ("config", "*.yaml")):
        (share / folder).mkdir(parents=True)
        for f in (REPO / folder).glob(pattern):
            shutil.copy(f, share / folder / f.name)
    shutil.copy(REPO / "package.xml", share / "package.xml")
    lib = prefix / "lib" / "superpoint_ros"
    lib.mkdir(parents=True)
    for name, module in EXECUTABLES.items():
        exe = lib / name
        exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        exe.chmod(0o755)
    return prefix
