"""The machine a matrix ran on, for the report header: CPU model and cores, GPU name and
driver, CUDA, TensorRT and ONNX Runtime versions, and on a Jetson the L4T/JetPack release and
the power mode. Every field is ``None`` (shown as "absent") when the machine lacks it.

The parsers are pure (text in, values out) and tested on sample texts; :func:`collect` is the
edge that reads ``/proc/cpuinfo``, ``/etc/nv_tegra_release``, ``nvidia-smi`` and ``nvpmodel -q``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

from superpoint_ros.backends.onnxruntime_backend import import_onnxruntime

NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
CUDA_HOME = Path("/usr/local/cuda")

# L4T (Jetson Linux) release -> JetPack release, from NVIDIA's JetPack archive. A release not
# listed is reported as its L4T version alone.
JETPACK_FOR_L4T = {
    "35.1.0": "5.0.2",
    "35.2.1": "5.1",
    "35.3.1": "5.1.1",
    "35.4.1": "5.1.2",
    "35.5.0": "5.1.3",
    "35.6.0": "5.1.4",
    "35.6.1": "5.1.5",
    "36.2.0": "6.0 DP",
    "36.3.0": "6.0",
    "36.4.0": "6.1",
    "36.4.3": "6.2",
    "36.4.4": "6.2.1",
}

FIELDS = (  # (key, label) in the order of the report header
    ("cpu", "CPU"),
    ("cores", "CPU cores (usable / online)"),
    ("load_average", "load average (1, 5, 15 min) at start"),
    ("gpu", "GPU"),
    ("gpu_driver", "GPU driver"),
    ("cuda", "CUDA"),
    ("tensorrt", "TensorRT"),
    ("onnxruntime", "ONNX Runtime"),
    ("onnxruntime_providers", "ONNX Runtime providers"),
    ("torch", "PyTorch"),
    ("python", "Python"),
    ("os", "OS"),
    ("jetson_l4t", "Jetson Linux (L4T)"),
    ("jetpack", "JetPack"),
    ("jetson_power_mode", "Jetson power mode (nvpmodel)"),
)


def parse_nv_tegra_release(text: str) -> str | None:
    """``# R36 (release), REVISION: 3.0, GCID: ...`` -> ``"36.3.0"``; None if not that form."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)(?:\.(\d+))?", text)
    if not m:
        return None
    return f"{m.group(1)}.{m.group(2)}.{m.group(3) or 0}"


def jetpack_release(l4t: str | None) -> str | None:
    """The JetPack release of an L4T version (``"36.3.0"`` -> ``"6.0"``); for one not in
    :data:`JETPACK_FOR_L4T`, ``"unknown (L4T x)"``; None without an L4T version."""
    if not l4t:
        return None
    return JETPACK_FOR_L4T.get(l4t, f"unknown (L4T {l4t})")


def parse_nvpmodel(text: str) -> str | None:
    """``nvpmodel -q`` output (``NV Power Mode: MAXN`` then the mode id on its own line;
    ``NV Fan Mode`` lines are ignored) -> ``"MAXN (mode 0)"``; None when no mode is found."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        m = re.match(r"NV Power Mode\s*:\s*(.+)", line)
        if m:
            name = m.group(1).strip()
            after = lines[i + 1] if i + 1 < len(lines) else ""
            return f"{name} (mode {after})" if after.isdigit() else name
    return None


def parse_cpu_model(cpuinfo: str, lscpu: str = "") -> str | None:
    """The CPU's model name from ``/proc/cpuinfo`` (x86: ``model name``), else from ``lscpu``
    (ARM cores such as a Jetson's: ``Model name: Cortex-A78AE``)."""
    for text in (cpuinfo, lscpu):
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == "model name" and value.strip():
                return value.strip()
    return None


def parse_nvidia_smi(text: str) -> tuple[str, str] | None:
    """The first GPU of ``nvidia-smi --query-gpu=name,driver_version --format=csv,noheader``
    -> ``(name, driver)``."""
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0] and parts[1]:
            return parts[0], parts[1]
    return None


def parse_cuda_version(version_json: str | None, version_txt: str | None) -> str | None:
    """The CUDA toolkit's version from ``/usr/local/cuda/version.json`` (CUDA >= 11.1) or
    ``version.txt`` (older, ``CUDA Version 10.2.300``)."""
    if version_json:
        try:
            return str(json.loads(version_json)["cuda"]["version"])
        except (ValueError, KeyError, TypeError):
            pass
    if version_txt:
        m = re.search(r"CUDA Version\s+([\d.]+)", version_txt)
        if m:
            return m.group(1)
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    """stdout of ``cmd``, or None when it is missing, fails or hangs."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return _metadata.version(name)
        except _metadata.PackageNotFoundError:
            continue
    return None


def _tensorrt_version() -> str | None:
    version = _dist_version("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt_lean")
    if version:
        return version
    try:  # JetPack's python3-libnvinfer: a module without pip metadata
        import tensorrt

        return str(tensorrt.__version__)
    except Exception:  # noqa: BLE001 - absent or broken: reported as absent
        return None


def _onnxruntime_providers() -> str | None:
    try:
        return ", ".join(import_onnxruntime().get_available_providers())
    except Exception:  # noqa: BLE001
        return None


def collect() -> dict[str, Any]:
    """The machine's fields (:data:`FIELDS`), read here and now."""
    info: dict[str, Any] = {key: None for key, _ in FIELDS}
    info["cpu"] = parse_cpu_model(_read(Path("/proc/cpuinfo")) or "", _run(["lscpu"]) or "") or (
        platform.processor() or platform.machine() or None
    )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    info["cores"] = f"{usable} / {os.cpu_count()}"
    if hasattr(os, "getloadavg"):
        info["load_average"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    smi = _run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
    gpu = parse_nvidia_smi(smi or "")
    if gpu:
        info["gpu"], info["gpu_driver"] = gpu
    info["cuda"] = parse_cuda_version(
        _read(CUDA_HOME / "version.json"), _read(CUDA_HOME / "version.txt")
    )
    info["tensorrt"] = _tensorrt_version()
    info["onnxruntime"] = _dist_version("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")
    if info["onnxruntime"]:
        info["onnxruntime_providers"] = _onnxruntime_providers()
    info["torch"] = _dist_version("torch")
    info["python"] = platform.python_version()
    info["os"] = platform.platform()
    tegra = _read(NV_TEGRA_RELEASE)
    if tegra is not None:
        info["jetson_l4t"] = parse_nv_tegra_release(tegra)
        info["jetpack"] = jetpack_release(info["jetson_l4t"])
        info["jetson_power_mode"] = parse_nvpmodel(_run(["nvpmodel", "-q"]) or "")
        model = _read(DEVICE_TREE_MODEL)
        if not info["gpu"] and model:
            info["gpu"] = model.strip("\x00 \n") + " (integrated GPU)"
        if not info["gpu_driver"]:
            info["gpu_driver"] = info["jetson_l4t"] and f"L4T {info['jetson_l4t']}"
    return info


def header_table(info: dict[str, Any]) -> str:
    """The Markdown table of the report header; a missing field reads "absent"."""
    lines = ["| machine | |", "|---|---|"]
    for key, label in FIELDS:
        value = info.get(key)
        lines.append(f"| {label} | {value if value not in (None, '') else 'absent'} |")
    return "\n".join(lines)
