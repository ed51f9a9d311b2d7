"""The record beside every engine this project builds (``model.engine.json``) and the rules
that refuse an engine built for another machine or model.

A serialized TensorRT engine runs only on the TensorRT version and the GPU model it was built
with; it also carries the settings of the ONNX it came from. The record says all of that:
TensorRT version, GPU name, the ONNX file's SHA-256 (and path), precision and how it was
obtained, the optimisation profile, workspace and DLA core, and the front-end's settings
(config, conventions, descriptor size) the backend needs to run it.

Pure apart from :func:`read_record`/:func:`write_record` (JSON file I/O).
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable

RECORD_VERSION = 1
# (min, opt, max) input sizes (height, width) of the optimisation profile.
DEFAULT_PROFILE = ((64, 64), (480, 640), (1088, 1920))


@dataclass(frozen=True)
class EngineRecord:
    tensorrt_version: str
    gpu_name: str
    onnx_sha256: str
    onnx_path: str
    precision: str  # fp32 | fp16 | int8
    mechanism: str  # how the precision was obtained (tensorrt_precision.PrecisionPlan)
    profile: tuple[tuple[int, int], ...]  # (min, opt, max) (height, width)
    workspace_mb: int | None = None
    dla_core: int | None = None
    frontend_config: dict[str, Any] = field(default_factory=dict)
    conventions: dict[str, Any] = field(default_factory=dict)
    descriptor_dim: int = 0
    record_version: int = RECORD_VERSION

    def to_json(self) -> str:
        d = asdict(self)
        d["profile"] = [list(s) for s in self.profile]
        return json.dumps(d, indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineRecord:
        d = dict(d)
        d["profile"] = tuple(tuple(int(v) for v in s) for s in d["profile"])
        d["descriptor_dim"] = int(d.get("descriptor_dim", 0))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def record_path(engine_path: str | os.PathLike) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def write_record(engine_path: str | os.PathLike, record: EngineRecord) -> Path:
    path = record_path(engine_path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(record.to_json())
    os.replace(tmp, path)
    return path


def read_record(engine_path: str | os.PathLike) -> EngineRecord:
    path = record_path(engine_path)
    if not path.is_file():
        raise BackendUnavailable(
            f"{engine_path} has no record {path.name} beside it, so its TensorRT version, GPU "
            "and settings are unknown; build engines with: superpoint build-engine --onnx "
            f"MODEL.onnx -o {Path(engine_path).name}"
        )
    try:
        return EngineRecord.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise BackendUnavailable(f"{path} is not a readable engine record ({exc})") from None


def rebuild_command(record: EngineRecord, engine_path: str | os.PathLike) -> str:
    """The ``superpoint build-engine`` line that rebuilds ``engine_path`` from its record."""
    (hmin, wmin), (hopt, wopt), (hmax, wmax) = record.profile
    args = ["superpoint", "build-engine", "--onnx", record.onnx_path, "-o", str(engine_path)]
    if record.precision != "fp32":
        args.append(f"--{record.precision}")
    args += ["--min", f"{hmin}x{wmin}", "--opt", f"{hopt}x{wopt}", "--max", f"{hmax}x{wmax}"]
    if record.workspace_mb:
        args += ["--workspace", str(record.workspace_mb)]
    if record.dla_core is not None:
        args += ["--dla", str(record.dla_core)]
    return shlex.join(args)


def record_mismatches(
    record: EngineRecord,
    *,
    tensorrt_version: str,
    gpu_name: str,
    onnx_sha256: str | None = None,
    precision: str | None = None,
    profile: tuple[tuple[int, int], ...] | None = None,
) -> list[str]:
    """What differs between the record and this machine (and, when given, the ONNX file now at
    the recorded path, the precision and profile asked for); empty: the engine may run."""
    out = []
    if record.tensorrt_version != tensorrt_version:
        out.append(f"built with TensorRT {record.tensorrt_version}, running {tensorrt_version}")
    if record.gpu_name != gpu_name:
        out.append(f"built for GPU {record.gpu_name!r}, this one is {gpu_name!r}")
    if onnx_sha256 is not None and record.onnx_sha256 != onnx_sha256:
        out.append(f"{record.onnx_path} changed since the build (SHA-256 differs)")
    if precision is not None and precision != "fp32" and record.precision != precision:
        out.append(f"built {record.precision}, {precision} asked for")
    if profile is not None and tuple(map(tuple, profile)) != record.profile:
        out.append(f"profile {list(map(list, record.profile))}, {list(map(list, profile))} asked")
    return out


def mismatch_error(
    engine_path: str | os.PathLike, record: EngineRecord, problems: list[str]
) -> BackendUnavailable:
    """The one-line refusal: what differs and the command that rebuilds the engine here."""
    return BackendUnavailable(
        f"{Path(engine_path).name} does not match this machine or model ("
        + "; ".join(problems)
        + f"); rebuild it here: {rebuild_command(record, engine_path)} "
        "(or load it with --rebuild-engine, rebuild_engine=True in Python)"
    )


def engine_action(
    engine_path: str | os.PathLike,
    record: EngineRecord,
    *,
    tensorrt_version: str,
    gpu_name: str,
    onnx_sha256: str | None,
    precision: str | None = None,
    rebuild: bool = False,
) -> list[str]:
    """What to do with an engine before running it, by the rules the CLI, ``load_frontend`` and
    the node share: ``[]`` run it as it is; the mismatches when ``rebuild`` was asked and the
    ONNX it came from is still there (``onnx_sha256`` not None): rebuild it; otherwise the
    one-line refusal (``BackendUnavailable``) that gives the rebuild command."""
    problems = record_mismatches(
        record,
        tensorrt_version=tensorrt_version,
        gpu_name=gpu_name,
        onnx_sha256=onnx_sha256,
        precision=precision,
    )
    if not problems:
        return []
    if not rebuild:
        raise mismatch_error(engine_path, record, problems)
    if onnx_sha256 is None:
        raise BackendUnavailable(
            f"cannot rebuild {Path(engine_path).name} ({'; '.join(problems)}): the ONNX it was "
            f"built from, {record.onnx_path}, is gone; run build-engine on the .onnx again"
        )
    return problems
