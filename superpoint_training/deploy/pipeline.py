"""``quantize_onnx``: a model file and a folder of photos in, an INT8 front-end out (what
``superpoint quantize`` and the benchmark matrix call)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .calibration import (
    DEFAULT_COUNT,
    DEFAULT_SIZE,
    CalibrationImages,
    calibration_record,
    select_calibration_images,
)
from .quantize import DEFAULT_METHOD, get_target, quantize_frontend
from .source import float_frontend


def quantize_onnx(
    source: str | os.PathLike,
    output: str | os.PathLike,
    calib_dir: str | os.PathLike,
    target: str = "cpu",
    count: int = DEFAULT_COUNT,
    size: tuple[int, int] = DEFAULT_SIZE,
    method: str = DEFAULT_METHOD,
) -> Path:
    """Quantise ``source`` (an exported ``.onnx`` or a weights file) for ``target`` (``cpu``
    or ``tensorrt``), calibrated on ``count`` photos of ``calib_dir`` prepared at ``size``
    (h, w); writes and returns ``output``. Inputs are checked before any work."""
    get_target(target)
    names = select_calibration_images(calib_dir, count)
    record = calibration_record(calib_dir, names, size)
    reader = CalibrationImages([Path(calib_dir) / n for n in names], size)
    with tempfile.TemporaryDirectory(prefix="superpoint_quantize_src_") as tmp:
        onnx_path = float_frontend(source, tmp)
        return quantize_frontend(onnx_path, output, reader, record, target, method)
