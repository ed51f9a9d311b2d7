"""The float front-end a quantisation starts from: an exported ``.onnx`` as it is, or a weights
file exported first (default front-end settings, ``superpoint_ros.onnx_export``), so
``superpoint quantize`` takes what ``extract`` takes."""

from __future__ import annotations

import os
from pathlib import Path

from superpoint_ros.backends.base import source_kind
from superpoint_ros.errors import InputError
from superpoint_ros.frontend.config import FrontendConfig
from superpoint_ros.model.weights import load_weights
from superpoint_ros.onnx_export import export_onnx


def float_frontend(path: str | os.PathLike, workdir: str | os.PathLike) -> Path:
    """``path`` itself when it is an ``.onnx``; for a weights file, its front-end exported
    with the default settings into ``workdir``. ``InputError`` for a missing file or an
    engine."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model not found: {path}")
    kind = source_kind(path)
    if kind == "onnx":
        return path
    if kind == "engine":
        raise InputError(f"{path} is a TensorRT engine; quantise the .onnx it was built from")
    return export_onnx(load_weights(path), Path(workdir) / f"{path.stem}.onnx", FrontendConfig())
