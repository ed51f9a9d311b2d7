"""The benchmark matrix: every model x variant x size. Each combination that can run here is
measured in its own process (``child.py``: peak memory is the combination's own, and a crash
stays in its row); the others are recorded as skipped with the reason (:mod:`.plan`).

Model files are prepared once in the parent (:mod:`.models`: ONNX exports, INT8 models) and
shared by every size and variant that runs them.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superpoint_ros.backends import BACKENDS
from superpoint_ros.errors import SuperPointError
from superpoint_ros.frontend.metadata import file_sha256
from superpoint_training.evaluation.methods import frontend_settings

from . import machine
from .accuracy import row_protocol
from .models import ModelFiles
from .plan import Environment, Model, skip_reason
from .quantized import int8_unavailable_reason, model_precision
from .variants import Variant

MATRIX_FORMAT = "superpoint_ros.benchmark_matrix.v1"
CHILD = "superpoint_training.benchmark.child"


@dataclass(frozen=True)
class MatrixRequest:
    """What to run: ``models`` as (label, path) pairs, the variants and sizes (height, width),
    optional homography datasets and the INT8 calibration folder, runs per combination."""

    models: Sequence[tuple[str, Path]]
    variants: Sequence[Variant]
    sizes: Sequence[tuple[int, int]]
    datasets: Sequence[str] = ()
    calib: Path | None = None  # INT8 calibration photos
    calib_count: int = 100
    runs: int = 50
    warmup: int = 5
    timeout_s: float = 3600.0  # per combination


def environment(calib: Path | None) -> Environment:
    """What this machine offers (:class:`plan.Environment`), asked of each registered backend."""
    reasons = {name: BACKENDS.get(name).unavailable_reason() for name in BACKENDS.names()}
    cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        cuda = bool(torch.cuda.is_available())
    return Environment(backends=reasons, cuda=cuda, int8=int8_unavailable_reason(calib))


def run_child(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Measure one combination in a fresh interpreter; ``{"ok": bool, "result"|"error"}``."""
    with tempfile.TemporaryDirectory(prefix="superpoint_matrix_") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ, ORT_DISABLE_TELEMETRY=os.environ.get("ORT_DISABLE_TELEMETRY", "1"))
        try:
            proc = subprocess.run(
                [sys.executable, "-m", CHILD, str(spec_path), str(result_path)],
                capture_output=True, text=True, timeout=timeout_s, env=env,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"did not finish within {timeout_s:g} s"}
        if proc.returncode != 0 or not result_path.is_file():
            lines = [line for line in (proc.stderr or "").splitlines() if line.strip()]
            last = lines[-1] if lines else "no output"
            return {"ok": False, "error": f"process ended with status {proc.returncode}: {last}"}
        return json.loads(result_path.read_text())


def _size_text(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


def run_matrix(
    request: MatrixRequest,
    out_dir: str | Path,
    command: str = "",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the matrix; returns the ``metrics.json`` dict (the caller writes the report).
    Rows are ordered model, variant, size, as given."""
    out_dir = Path(out_dir)
    say = progress or (lambda line: None)
    info = machine.collect()
    env = environment(request.calib)
    protocol = row_protocol(request.sizes[0])
    settings = frontend_settings(protocol)
    files = ModelFiles(out_dir / "models", settings, request.calib, request.calib_count)
    models = [
        Model.from_path(label, path, model_precision(path)) for label, path in request.models
    ]
    rows: list[dict[str, Any]] = []
    total = len(models) * len(request.variants) * len(request.sizes)
    for model in models:
        for variant in request.variants:
            reason = skip_reason(model, variant, env)
            path, error = None, None
            if reason is None:
                try:
                    path = files.file_for(model, variant)
                except SuperPointError as exc:
                    error = f"could not prepare the model: {exc}"
            for size in request.sizes:
                row: dict[str, Any] = {
                    "model": model.label,
                    "variant": variant.name,
                    "backend": variant.backend,
                    "precision": variant.precision,
                    "size": _size_text(size),
                    "file": str(path) if path else str(model.path),
                }
                n = len(rows) + 1
                if reason is not None or error is not None:
                    status = "skipped" if reason is not None else "failed"
                    rows.append({**row, "status": status, "reason": reason or error})
                    say(f"[{n}/{total}] {model.label} {variant.name} {row['size']}: {status}")
                    continue
                say(f"[{n}/{total}] {model.label} {variant.name} {row['size']}: running")
                spec = {
                    "model": str(path),
                    "backend": variant.backend,
                    "precision": variant.precision,
                    "size": list(size),
                    "runs": request.runs,
                    "warmup": request.warmup,
                    "settings": settings if Path(path).suffix not in (".onnx", ".engine") else {},
                    "datasets": [str(d) for d in request.datasets],
                }
                out = run_child(spec, request.timeout_s)
                if out["ok"]:
                    rows.append({**row, "status": "ok", **out["result"]})
                    res = out["result"]
                    say(f"    {res['p50_ms']:.1f} ms p50, {res['fps']:.1f} FPS")
                else:
                    rows.append({**row, "status": "failed", "reason": out["error"]})
                    say(f"    failed: {out['error']}")
    return {
        "format": MATRIX_FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "machine": info,
        "load_average_end": ", ".join(f"{v:.2f}" for v in os.getloadavg())
        if hasattr(os, "getloadavg")
        else None,
        "settings": {
            "runs": request.runs,
            "warmup": request.warmup,
            "sizes": [_size_text(s) for s in request.sizes],
            "variants": [v.name for v in request.variants],
            "models": {
                m.label: {
                    "path": str(m.path),
                    "kind": m.kind,
                    "precision": m.precision,
                    "sha256": file_sha256(m.path),
                }
                for m in models
            },  # fmt: skip
            "datasets": [str(d) for d in request.datasets],
            "calib": str(request.calib) if request.calib else None,
            "calib_count": request.calib_count,
            "frontend_settings": settings,
            "protocol": {
                k: v for k, v in protocol.to_dict().items() if k not in ("rep_size", "hom_size")
            },
        },  # fmt: skip
        "rows": rows,
    }
