"""The inference commands end to end, as a user runs them (subprocesses of the console script)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
from superpoint_ros.model.weights import checkpoint_dict, save_checkpoint

SUPERPOINT = str(Path(sys.executable).with_name("superpoint"))


def run(*args, cwd=None):
    env = dict(os.environ, XDG_CACHE_HOME=str(cwd or "/tmp"))
    return subprocess.run(
        [SUPERPOINT, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    net = SuperPointNet(
        ModelConfig(
            backbone_args={"channels": (8, 8, 16, 16)}, head_channels=32, descriptor_dim=32
        )
    )
    with torch.no_grad():
        net.detector[1].conv.weight.mul_(40.0)
    save_checkpoint(d / "w.pt", checkpoint_dict(net))
    rng = np.random.default_rng(0)
    for i in range(3):
        img = cv2.GaussianBlur(rng.integers(0, 256, (60 + i, 90), dtype=np.uint8), (5, 5), 2)
        cv2.imwrite(str(d / f"img{i}.png"), img)
    (d / "broken.png").write_bytes(b"not a png")
    return d


def test_extract_one_image_to_npz(workdir):
    res = run(
        "extract",
        "--weights",
        "w.pt",
        "--backend",
        "torch",
        "--max-keypoints",
        "20",
        "img0.png",
        "-o",
        "one.npz",
        cwd=workdir,
    )
    assert res.returncode == 0, res.stderr
    data = np.load(workdir / "one.npz")
    assert set(data.files) == {"keypoints", "scores", "descriptors"}
    assert 0 < len(data["keypoints"]) <= 20 and data["descriptors"].shape[1] == 32
    assert np.allclose(np.linalg.norm(data["descriptors"], axis=1), 1, atol=1e-5)


def test_extract_several_images_to_directory(workdir):
    res = run(
        "extract",
        "-w",
        "w.pt",
        "-b",
        "onnxruntime",
        "img0.png",
        "img1.png",
        "img2.png",
        "-o",
        "many",
        cwd=workdir,
    )
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (workdir / "many").iterdir()) == [
        "img0.npz",
        "img1.npz",
        "img2.npz",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-w", "w.pt", "missing.png", "-o", "x.npz"], "image not found: missing.png"),
        (["-w", "w.pt", "broken.png", "-o", "x.npz"], "cannot read image"),
        (["-w", "nope.pt", "img0.png", "-o", "x.npz"], "weights file not found"),
        (["-w", "w.pt", "-b", "tensorflow", "img0.png", "-o", "x.npz"], "unknown backend"),
        (["-w", "w.pt", "--resize", "100x7", "img0.png", "-o", "x.npz"], "bad size"),
        (["-w", "w.pt", "img0.png", "img1.png", "-o", "x.npz"], "need a directory"),
    ],
)
def test_user_errors_are_one_line(workdir, args, message):
    res = run("extract", *args, cwd=workdir)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_export_onnx_then_extract_with_it(workdir):
    res = run("export-onnx", "-w", "w.pt", "-o", "fe.onnx", "--max-keypoints", "16", cwd=workdir)
    assert res.returncode == 0, res.stderr
    assert "check 120x168 in ONNX Runtime" in res.stdout
    res = run("extract", "-w", "fe.onnx", "img1.png", "-o", "o.npz", cwd=workdir)
    assert res.returncode == 0, res.stderr
    assert 0 < len(np.load(workdir / "o.npz")["keypoints"]) <= 16


def test_benchmark_writes_json(workdir):
    res = run(
        "benchmark",
        "-w",
        "w.pt",
        "-b",
        "onnxruntime",
        "--size",
        "64x96",
        "--runs",
        "5",
        "--warmup",
        "1",
        "--network",
        "--json",
        "b.json",
        cwd=workdir,
    )
    assert res.returncode == 0, res.stderr
    report = json.loads((workdir / "b.json").read_text())
    assert report["backend"] == "onnxruntime" and report["size"] == [64, 96]
    for stage in ("preprocess", "inference", "finalize"):
        assert report["stages_ms"][stage]["p50"] > 0
    assert report["network_ms"]["p50"] > 0 and report["fps"] > 0
    assert "FPS" in res.stdout


def test_demo_writes_picture(workdir):
    pytest.importorskip("skimage")
    res = run("demo", "--still", "-w", "w.pt", "-b", "onnxruntime", cwd=workdir)
    assert res.returncode == 0, res.stderr
    assert "mutual nearest-neighbour matches" in res.stdout
    picture = cv2.imread(str(workdir / "superpoint_demo.png"))
    assert picture.shape == (480, 640 * 2 + 10, 3)
