"""INT8 models for the matrix: whether ``superpoint quantize`` can make them here, and telling
an ``.onnx`` that is already quantised from a float one (its ``superpoint_ros.*`` metadata)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

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


def onnx_precision(path: str | Path) -> str:
    """``int8`` for an .onnx whose metadata says it was quantised, else ``fp32`` (also for a
    file that is not an .onnx or cannot be read: its row fails with the loader's reason)."""
    if Path(path).suffix.lower() != ".onnx":
        return "fp32"
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - unreadable: the row says why when it runs
        return "fp32"
    meta = {p.key: p.value for p in model.metadata_props}
    return "int8" if meta.get(META_PREFIX + "precision") == "int8" else "fp32"
