"""One combination of the matrix, measured inside its own process (``child.py`` runs it): the
front-end is built, warmed up and timed on one image of the row's size, the process's peak
resident memory (and the GPU memory it holds, where there is a GPU) is read right after the
timed runs, and then, with datasets, its accuracy is scored (after the memory reading, so the
evaluation's own buffers never count).

A spec is a plain dict (it crosses the process boundary as JSON):
``model`` (path), ``backend`` (a registered backend's name), ``precision`` (fp32/fp16/int8),
``size`` ([h, w]), ``runs``, ``warmup``, ``settings`` (front-end settings for a weights file),
``datasets`` (list of folders, may be empty).
"""

from __future__ import annotations

import importlib.util
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from superpoint_ros.loader import load_frontend

from .accuracy import row_protocol, score


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """Timed runs in seconds -> ``p50``/``p95``/``mean``/``max`` in milliseconds and ``fps``
    (1000 / p50)."""
    ms = np.asarray(seconds, np.float64) * 1e3
    p50 = float(np.percentile(ms, 50))
    return {
        "p50_ms": p50,
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "max_ms": float(ms.max()),
        "fps": 1000.0 / p50 if p50 > 0 else float("inf"),
    }


def timing_image(size: tuple[int, int]) -> np.ndarray:
    """The image every row is timed on: scikit-image's CC0 'astronaut' photo in gray, stretched
    to ``size`` (a fixed random texture where scikit-image is missing). A real photo, so the
    graph's post-processing works as it does on camera frames. The file is read from the
    installed package without importing scikit-image (its import, scipy included, would add
    about 40 MiB to the peak memory measured)."""
    spec = importlib.util.find_spec("skimage")
    path = Path(spec.origin).parent / "data" / "astronaut.png" if spec and spec.origin else None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path and path.is_file() else None
    if image is not None:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    else:
        image = np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8)
        image = cv2.GaussianBlur(image, (5, 5), 1.5)
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, MiB (``ru_maxrss``: KiB on Linux, bytes
    on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def gpu_memory_mib(frontend) -> dict[str, Any] | None:
    """GPU memory of this process: the peak torch allocated when the torch backend runs on
    CUDA, else what ``nvidia-smi`` says this process holds; None without a GPU (or on a Jetson,
    whose nvidia-smi lists no processes: its GPU shares RAM, counted in the RSS)."""
    if frontend.backend_name == "torch":
        device = str(frontend.backend.info.details.get("device", "cpu"))
        if device.startswith("cuda"):
            import torch

            return {"mib": torch.cuda.max_memory_allocated() / 2**20, "how": "torch peak"}
        return None
    try:
        query = ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
        out = subprocess.run(["nvidia-smi", *query], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(os.getpid()) and parts[1].isdigit():
            return {"mib": float(parts[1]), "how": "nvidia-smi, after the timed runs"}
    return None


def build(spec: dict[str, Any]):
    """The row's front-end: its model file on its backend at its precision."""
    precision = spec["precision"]  # int8: the file is the quantised model already
    settings = dict(spec.get("settings") or {})
    settings["resize"] = None  # every timed image already has the row's size
    return load_frontend(spec["model"], spec["backend"], settings, precision=precision)


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Time, memory and (with ``datasets``) accuracy of one combination; see the module doc."""
    t0 = time.perf_counter()
    frontend = build(spec)
    load_s = time.perf_counter() - t0
    image = timing_image(tuple(spec["size"]))
    for _ in range(int(spec["warmup"])):
        frontend(image)
    seconds, counts = [], []
    for _ in range(int(spec["runs"])):
        t = time.perf_counter()
        result = frontend(image)
        seconds.append(time.perf_counter() - t)
        counts.append(len(result["keypoints"]))
    out: dict[str, Any] = {
        **latency_summary(seconds),
        "runs": len(seconds),
        "keypoints": int(np.median(counts)),
        "peak_rss_mib": peak_rss_mib(),
        "gpu_memory": gpu_memory_mib(frontend),
        "load_seconds": load_s,
        "backend_details": {k: str(v) for k, v in frontend.backend.info.details.items()},
        "torch_imported": "torch" in sys.modules,  # its memory is in the RSS when True
        "accuracy": None,
    }
    if spec.get("datasets"):
        t = time.perf_counter()
        out["accuracy"] = score(frontend, spec["datasets"], row_protocol(tuple(spec["size"])))
        out["accuracy_seconds"] = time.perf_counter() - t
    return out
