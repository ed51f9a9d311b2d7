"""``superpoint demo`` at a small scale (6 frames of 120x160) through the real console script,
the real ``superpoint_node`` and real DDS: the table, the report folder, the recorded bag, the
node's answers against the front-end run here, a second run reusing the input, the report
rebuilt from the recording, and the one-line errors (a busy DDS domain, a node that cannot
start). The node runs a random-weights ONNX model: its figures mean nothing, so only what the
demo must get right (counts, stamps, files, exact features) is checked, never quality.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rosbags")

DOMAIN_ID = 30 + os.getpid() % 60  # this run's own DDS domain (the node tests use 150..229)
FRAMES, SIZE = 6, "120x160"
NAMESPACE = "/superpoint_demo"
TIMEOUT = 240  # a loaded 2-core machine: model loading, DDS discovery, the replay


def _superpoint() -> list[str]:
    local = Path(sys.executable).parent / "superpoint"
    if not local.exists():
        pytest.skip("the superpoint console script is not installed (pip install -e .)")
    return [str(local)]


def _demo(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID), PYTHONUNBUFFERED="1")
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.run(
        [*_superpoint(), "demo", *args], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=TIMEOUT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def model(tmp_path_factory, random_superpoint) -> Path:
    return random_superpoint(tmp_path_factory.mktemp("weights"), peaky=True, onnx=True,
                             max_keypoints=200)  # fmt: skip


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, model):
    out = tmp_path_factory.mktemp("demo") / "out"
    args = ["-o", str(out), "--frames", str(FRAMES), "--size", SIZE, "--rate", "5",
            "--weights", str(model), "--backend", "onnxruntime", "-p", "threads:=1",
            "-p", "max_keypoints:=200"]  # fmt: skip
    result = _demo(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, args, result


@pytest.mark.ros
def test_demo_prints_the_table_and_writes_the_report(first_run):
    out, _, result = first_run
    lines = result.stdout.strip().splitlines()
    for row in ("keypoints per frame", "matches per frame", "correct matches", "homography",
                "points followed", "latency", "processed", "dropped"):  # fmt: skip
        assert any(line.strip().startswith(row) for line in lines), (row, result.stdout)
    assert "made" in lines[0]  # the input was synthesised this time
    assert lines[-2].startswith("demo done in") and str(out / "report") in lines[-2]
    assert lines[-1].startswith("open it: python3 -m http.server ")  # no display in the test
    report = out / "report"
    for name in ("index.html", "tracks.png", "plots.png", "summary.md", "metrics.json"):
        assert (report / name).stat().st_size > 0, name
    assert list(report.glob("matches_*.png"))
    metrics = json.loads((report / "metrics.json").read_text())
    s = metrics["summary"]
    assert s["frames_published"] == FRAMES
    assert s["frames_processed"] + s["frames_dropped"] == FRAMES and s["frames_processed"] >= 2
    assert len(metrics["frames"]) == FRAMES
    assert metrics["details"]["node_exit_code"] == 0  # Ctrl-C: the node's clean shutdown


@pytest.mark.ros
def test_recording_holds_the_nodes_answers_for_the_frames_sent(first_run, model):
    from rosbags.highlevel import AnyReader

    from superpoint_ros.loader import load_frontend
    from superpoint_training.bags.reader import read_image_bag
    from superpoint_training.demo.recording import read_recording

    out, _, _ = first_run
    with AnyReader([out / "run" / "recorded"]) as reader:
        counts = {t: i.msgcount for t, i in reader.topics.items()}
    summary = json.loads((out / "report" / "metrics.json").read_text())["summary"]
    assert counts[f"{NAMESPACE}/superpoint_node/features"] == summary["frames_processed"]
    assert counts[f"{NAMESPACE}/superpoint_node/matches"] == summary["frames_processed"]
    sent = list(read_image_bag(out / "input_synthetic" / "bag"))
    records = read_recording(out / "run")
    assert [r.stamp_ns for r in records] == [f.stamp_ns for f in sent]
    reference = load_frontend(model, backend="onnxruntime")
    answered = [r for r in records if r.answered]
    for rec in answered:
        expected = reference(sent[rec.index].image)
        np.testing.assert_allclose(rec.features["keypoints"], expected["keypoints"], atol=1e-3)
        assert rec.features_s > rec.published_s
    # every frame after the first answered one is matched with the previous answered one
    for prev, rec in zip(answered, answered[1:]):
        m = rec.matches
        np.testing.assert_array_equal(m["kpts0"], prev.features["keypoints"][m["matches"][:, 0]])
        np.testing.assert_array_equal(m["kpts1"], rec.features["keypoints"][m["matches"][:, 1]])


@pytest.mark.ros
def test_second_run_reuses_the_input_and_report_only_needs_no_node(first_run):
    out, args, first = first_run
    bag_time = (out / "input_synthetic" / "bag" / "metadata.yaml").stat().st_mtime_ns
    again = _demo(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "reused" in again.stdout.splitlines()[0]
    assert (out / "input_synthetic" / "bag" / "metadata.yaml").stat().st_mtime_ns == bag_time
    report = _demo(*args, "--report-only")
    assert report.returncode == 0, report.stdout + report.stderr
    assert "started superpoint_node" not in report.stdout
    assert "recorded" in report.stdout.splitlines()[0]  # the input of the recording, not remade
    table = [ln for ln in report.stdout.splitlines() if ln.startswith("  dropped")]
    assert table and table == [
        ln for ln in again.stdout.splitlines() if ln.startswith("  dropped")
    ]


@pytest.mark.ros
def test_a_busy_domain_ends_in_one_line(tmp_path, model):
    import rclpy
    from sensor_msgs.msg import Image

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    node = rclpy.create_node("another_demo_player", context=context)
    try:
        node.create_publisher(Image, f"{NAMESPACE}/camera/image_raw", 1)
        time.sleep(0.5)
        # 40 frames at 10 Hz: a replay longer than Fast DDS's 3 s announcement period, so a
        # discovery missed at the start is made before the demo's last look
        result = _demo("-o", str(tmp_path / "out"), "--frames", "40", "--size", "64x80",
                       "--weights", str(model), "-p", "max_keypoints:=200")  # fmt: skip
    finally:
        node.destroy_node()
        context.try_shutdown()
    assert result.returncode == 1
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and f"DDS domain {DOMAIN_ID} is busy" in err[0], result.stderr
    assert "ROS_DOMAIN_ID=" in err[0]


@pytest.mark.ros
def test_a_busy_domain_found_late_still_stops_the_demo(tmp_path, first_run, model, monkeypatch):
    """No time for discovery before the first look (discovery_s=0, as on a machine too loaded
    for 1.5 s to do): a later look (once the node runs, after the replay) still finds the
    other demo."""
    import rclpy
    from sensor_msgs.msg import Image

    from superpoint_ros.errors import SuperPointError
    from superpoint_training.demo.replay import ReplayConfig, replay

    monkeypatch.setenv("ROS_DOMAIN_ID", str(DOMAIN_ID))
    out, _, _ = first_run
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    node = rclpy.create_node("another_demo_player", context=context)
    try:
        node.create_publisher(Image, f"{NAMESPACE}/camera/image_raw", 1)
        params = {"weights": str(model), "backend": "onnxruntime", "threads": 1,
                  "max_keypoints": 200}  # fmt: skip
        config = ReplayConfig(params=params, discovery_s=0.0)
        with pytest.raises(SuperPointError, match=f"DDS domain {DOMAIN_ID} is busy"):
            replay(out / "input_synthetic" / "bag", tmp_path, config, say=lambda _: None)
    finally:
        node.destroy_node()
        context.try_shutdown()


@pytest.mark.ros
def test_a_node_that_cannot_start_ends_in_one_line(tmp_path):
    result = _demo("-o", str(tmp_path / "out"), "--frames", "3", "--size", "64x80",
                   "--weights", str(tmp_path / "missing.onnx"))  # fmt: skip
    assert result.returncode == 1
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "superpoint_node stopped while starting" in err[0], result.stderr
    assert "missing.onnx" in err[0] and "node.log" in err[0]


def test_still_demo_writes_its_picture(tmp_path, model):
    result = _demo("--still", "--weights", str(model), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mutual nearest-neighbour matches" in result.stdout
    assert (tmp_path / "superpoint_demo.png").stat().st_size > 0
