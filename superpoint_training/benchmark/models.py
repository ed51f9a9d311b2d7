"""The file each combination of the matrix opens, made once per model in ``REPORT_DIR/models``:

* a weights file's front-end exported to ONNX (``superpoint export-onnx``, with the evaluation
  protocol's settings), for the ONNX Runtime and TensorRT variants: every ONNX variant of a
  model runs the same graph;
* INT8 models quantised from that ONNX (``superpoint quantize``), one per target (``cpu`` for
  onnxruntime-int8, ``tensorrt`` for tensorrt-int8), calibrated on the ``--calib`` photos.

Both run as commands in their own process, as a user would run them: the matrix's own process
never imports torch (a Jetson with only TensorRT and ONNX Runtime runs the matrix of its
``.onnx`` models). A model given as ``.onnx`` or ``.engine`` is used as it is (an ``.onnx`` is
quantised when an INT8 variant asks for it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from superpoint_ros.errors import SuperPointError

from .plan import Model
from .variants import Variant

# backend -> superpoint quantize --target of its INT8 model
INT8_TARGET = {"onnxruntime": "cpu", "openvino": "cpu", "tensorrt": "tensorrt"}
SETTING_FLAGS = {  # front-end setting -> its export-onnx option
    "max_keypoints": "--max-keypoints",
    "nms_radius": "--nms-radius",
    "detection_threshold": "--threshold",
    "border": "--border",
}


def run_command(args: list[str], timeout_s: float = 3600.0) -> None:
    """``superpoint ARGS`` in a child process; ``SuperPointError`` with its one-line error."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "superpoint_training", *args, "--quiet"],
            capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise SuperPointError(f"superpoint {args[0]} did not finish in {timeout_s:g} s") from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise SuperPointError(lines[-1] if lines else f"superpoint {args[0]} failed")


def export_args(weights: Path, out: Path, settings: dict[str, Any]) -> list[str]:
    """The ``superpoint export-onnx`` line that exports ``weights`` with ``settings``."""
    args = ["export-onnx", "--weights", str(weights), "-o", str(out)]
    for key, flag in SETTING_FLAGS.items():
        if settings.get(key) is not None:
            args += [flag, str(settings[key])]
    return args


def quantize_args(fp32: Path, out: Path, calib: Path, target: str, count: int) -> list[str]:
    """The ``superpoint quantize`` line that makes the INT8 model of ``fp32`` for ``target``."""
    return ["quantize", "--onnx", str(fp32), "--calib", str(calib), "--calib-count",
            str(count), "--target", target, "-o", str(out)]  # fmt: skip


class ModelFiles:
    """Makes (once) and returns the file a (model, variant) combination runs."""

    def __init__(
        self, folder: str | Path, settings: dict[str, Any], calib: Path | None, calib_count: int
    ):
        self.folder = Path(folder)
        self.settings = dict(settings)
        self.calib = calib
        self.calib_count = calib_count
        self._made: dict[tuple[str, str], Path] = {}

    def file_for(self, model: Model, variant: Variant) -> Path:
        """The model file of this combination (exported or quantised here when needed)."""
        if model.kind == "engine" or variant.backend == "torch":
            return model.path
        if variant.quantized and model.precision != "int8":
            return self._once(model, INT8_TARGET[variant.backend])
        if model.kind == "onnx":
            return model.path
        return self._once(model, "fp32")

    def _once(self, model: Model, what: str) -> Path:
        """``what``: ``fp32`` (the export) or a quantize target."""
        key = (model.label, what)
        if key not in self._made:
            self.folder.mkdir(parents=True, exist_ok=True)
            if what == "fp32":
                path = self.folder / f"{model.label}.onnx"
                run_command(export_args(model.path, path, self.settings))
            else:
                fp32 = model.path if model.kind == "onnx" else self._once(model, "fp32")
                path = self.folder / f"{model.label}.int8-{what}.onnx"
                assert self.calib is not None  # plan.skip_reason skipped INT8 without photos
                run_command(quantize_args(fp32, path, self.calib, what, self.calib_count))
            self._made[key] = path
        return self._made[key]
