"""Flags every ``superpoint`` command accepts (``--quiet``, ``--debug``, anywhere on the line),
and ``benchmark --network``'s one-line refusal of a file it cannot time the bare network of;
through the real console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SUPERPOINT = Path(sys.executable).parent / "superpoint"
pytestmark = pytest.mark.skipif(not SUPERPOINT.is_file(), reason=f"{SUPERPOINT} not installed")


def superpoint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SUPERPOINT), *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def models(tmp_path_factory, random_superpoint) -> tuple[Path, Path]:
    """A random-weights SuperPoint: its .pt and its exported .onnx front-end."""
    folder = tmp_path_factory.mktemp("models")
    onnx = random_superpoint(folder, onnx=True)
    return onnx.with_suffix(".pt"), onnx


def test_benchmark_network_refuses_an_onnx_in_one_line(models, tmp_path):
    _, onnx = models
    out = superpoint("benchmark", "--weights", str(onnx), "--network", "--runs", "2",
                     "--json", str(tmp_path / "b.json"))  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"superpoint benchmark: error: --network times the bare network of a weights file; "
        f"{onnx} is a whole front-end graph (network and post-processing, which cannot be "
        "timed apart): pass the .pt/.pth/.tar it was exported from, or leave --network out"
    ]
    assert not (tmp_path / "b.json").exists()


def test_benchmark_network_times_the_bare_network_of_weights(models, tmp_path):
    pt, _ = models
    out = superpoint("benchmark", "--weights", str(pt), "--backend", "onnxruntime", "--network",
                     "--runs", "2", "--warmup", "0", "--size", "64x96", "--quiet",
                     "--json", str(tmp_path / "b.json"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "bare network" in out.stdout and "front-end graph / bare network" in out.stdout
    assert "benchmark onnxruntime" not in out.stderr  # --quiet: no bar


@pytest.mark.parametrize("where", ["after", "before"])
def test_quiet_is_accepted_by_every_command(models, tmp_path, where):
    """``--quiet`` (evaluate's and data download's flag) works for benchmark, extract and train
    too, before or after the command's own options; without it the bar shows."""
    pt, _ = models
    flag = ["--quiet"]
    bench = ["benchmark", "--weights", str(pt), "--backend", "torch", "--runs", "3",
             "--warmup", "0", "--size", "64x96"]  # fmt: skip
    loud = superpoint(*bench)
    assert loud.returncode == 0 and "benchmark torch" in loud.stderr  # the bar
    quiet = superpoint(*(flag + bench if where == "before" else bench + flag))
    assert quiet.returncode == 0, quiet.stderr
    assert "benchmark torch" not in quiet.stderr and "FPS" in quiet.stdout
    train = ["train", "magicpoint", "--print-config"]
    printed = superpoint(*(flag + train if where == "before" else train + flag))
    assert printed.returncode == 0, printed.stderr
    assert yaml.safe_load(printed.stdout)["train"]["progress"] is False
