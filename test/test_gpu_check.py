"""``benchmarks/gpu_check.sh``, the prepared GPU check: its syntax, and its CPU fallback run for
real where there is no GPU (GPU-only tests skip with a reason, the benchmark prints CPU figures
and the projection and writes its JSON)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def test_syntax_and_arguments():
    assert os.access(SCRIPT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    bad = subprocess.run([str(SCRIPT), "--nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument --nope" in bad.stderr
    usage = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "benchmarks/gpu_check.sh [--smoke]" in usage.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: run the script itself")
@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils' timeout")
def test_cpu_fallback_runs_and_projects(tmp_path):
    env = {
        **os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable,
        "GPU_CHECK_TEST_S": "900", "GPU_CHECK_BENCH_S": "900", "OMP_NUM_THREADS": "1",
    }  # fmt: skip
    res = subprocess.run(
        [str(SCRIPT), "--smoke"], env=env, capture_output=True, text=True, timeout=1800
    )
    out = res.stdout
    assert res.returncode == 0, out[-3000:] + res.stderr[-3000:]
    assert "NO GPU: the CPU fallback runs" in out
    assert "no CUDA GPU here" in out  # the GPU-only tests said why they skipped
    assert "tests: exit status 0" in out and "benchmark: exit status 0" in out
    assert "NO GPU: these are CPU figures" in out and "PROJECTION, one CPU" in out
    for stage in ("1+2 MagicPoint", "3 export", "4 SuperPoint", "all four"):
        assert f"| {stage} |" in out
    figures = json.loads((tmp_path / "pipeline.json").read_text())
    assert figures["device"] == "cpu" and figures["smoke"] and figures["quick"]
    proj = figures["projection_s"]
    assert proj["total"] == pytest.approx(proj["magicpoint"] + proj["export"] + proj["superpoint"])
    assert all(v > 0 for v in proj.values())
