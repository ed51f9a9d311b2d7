"""INT8 models for the matrix: whether ``superpoint quantize`` can make them here, and the
precision a model file already carries (an ``.onnx``'s ``superpoint_ros.*`` metadata, an
``.engine``'s record)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from superpoint_ros.backends.tensorrt_record import read_record
from superpoint_ros.errors import BackendUnavailable
from superpoint_ros.frontend.metadata import META_PREFIX

QUANTIZE_COMMAND = "superpoint_training.cli.quantize"


def int8_unavailable_reason(calib: str | Path | None) -> str | None:
    """None when INT8 models can be made here, else why not (no quantiser, no photos)."""
    if importlib.util.find_spec(QUANTIZE_COMMAND) is None:
        return "superpoint quantize is not in this build"
    if calib is None:
        return "no calibration photos: pass --calib DIR (../shared/data/photos is absent here)"
    if not Path(calib).is_dir():
        return f"calibration folder {calib} does not exist (--calib)"
    return None


def model_precision(path: str | Path) -> str:
    """``int8`` for an .onnx whose metadata says it was quantised, an engine's recorded
    precision (``superpoint build-engine``'s record beside it), else ``fp32`` (also for a file
    that cannot be read: its row fails with the loader's reason)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".engine", ".plan", ".trt"):
        try:
            return read_record(path).precision
        except BackendUnavailable:
            return "fp32"
    if suffix != ".onnx":
        return "fp32"
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - unreadable: the row says why when it runs
        return "fp32"
    meta = {p.key: p.value for p in model.metadata_props}
    return "int8" if meta.get(META_PREFIX + "precision") == "int8" else "fp32"
