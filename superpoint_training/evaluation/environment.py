"""The versions and the machine behind a report's numbers (written into every report)."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata as _metadata
from pathlib import Path


def versions() -> dict[str, str | None]:
    """Versions of Python and the libraries that shape the numbers (without importing torch)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in (
        "numpy",
        "opencv-python-headless",
        "opencv-python",
        "opencv-contrib-python",
        "torch",
        "onnxruntime",
    ):
        try:
            out[dist] = _metadata.version(dist)
        except _metadata.PackageNotFoundError:
            if not dist.startswith("opencv"):  # one of the OpenCV wheels is enough
                out[dist] = None
    import cv2

    out["cv2"] = cv2.__version__
    out["platform"] = platform.platform()
    out["processor"] = _cpu_name() or platform.processor() or platform.machine()
    out["cpu_count"] = str(os.cpu_count())
    out["git_revision"] = _git_revision()
    return out


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _git_revision() -> str | None:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() or None
