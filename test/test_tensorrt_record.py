"""The engine record beside every engine, its invalidation, and what the backend says about an
engine where TensorRT cannot run (here: no NVIDIA GPU, no TensorRT). No engine is built."""

from __future__ import annotations

import json
import shlex

import pytest

from superpoint_ros.backends import get_backend_class
from superpoint_ros.backends.tensorrt_backend import engine_cache_key
from superpoint_ros.backends.tensorrt_record import (
    EngineRecord,
    engine_action,
    mismatch_error,
    read_record,
    rebuild_command,
    record_mismatches,
    record_path,
    write_record,
)
from superpoint_ros.errors import BackendUnavailable
from superpoint_ros.loader import load_frontend

RECORD = EngineRecord(
    tensorrt_version="10.3.0.30",
    gpu_name="Orin",
    onnx_sha256="ab" * 32,
    onnx_path="/models/sp.onnx",
    precision="fp16",
    mechanism="BuilderFlag.FP16 (TensorRT 10.3)",
    profile=((64, 64), (480, 640), (1088, 1920)),
    workspace_mb=1024,
    dla_core=None,
    frontend_config={"max_keypoints": 1000, "nms_radius": 4, "resize": None},
    conventions={"descriptor_sampling": "center"},
    descriptor_dim=256,
)
HERE = {"tensorrt_version": "10.3.0.30", "gpu_name": "Orin"}


def test_record_round_trip_beside_the_engine(tmp_path):
    engine = tmp_path / "sp.engine"
    path = write_record(engine, RECORD)
    assert path == tmp_path / "sp.engine.json" == record_path(engine)
    saved = json.loads(path.read_text())
    assert saved["tensorrt_version"] == "10.3.0.30" and saved["gpu_name"] == "Orin"
    assert saved["onnx_sha256"] == "ab" * 32 and saved["precision"] == "fp16"
    assert saved["profile"] == [[64, 64], [480, 640], [1088, 1920]]
    assert read_record(engine) == RECORD
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left behind


def test_missing_or_broken_record_is_one_line(tmp_path):
    engine = tmp_path / "sp.engine"
    engine.write_bytes(b"\0" * 16)
    with pytest.raises(
        BackendUnavailable, match="no record sp.engine.json beside it.*build-engine"
    ):
        read_record(engine)
    record_path(engine).write_text("{not json")
    with pytest.raises(BackendUnavailable, match="not a readable engine record"):
        read_record(engine)


def test_matching_record_has_no_mismatch():
    assert record_mismatches(RECORD, **HERE) == []
    assert record_mismatches(RECORD, **HERE, onnx_sha256="ab" * 32, precision="fp16") == []
    assert record_mismatches(RECORD, **HERE, precision="fp32") == []  # the default: any engine


def test_each_change_is_a_mismatch():
    assert record_mismatches(RECORD, tensorrt_version="10.3.0.26", gpu_name="Orin") == [
        "built with TensorRT 10.3.0.30, running 10.3.0.26"
    ]
    assert record_mismatches(RECORD, tensorrt_version="10.3.0.30", gpu_name="NVIDIA A100") == [
        "built for GPU 'Orin', this one is 'NVIDIA A100'"
    ]
    assert record_mismatches(RECORD, **HERE, onnx_sha256="cd" * 32) == [
        "/models/sp.onnx changed since the build (SHA-256 differs)"
    ]
    assert record_mismatches(RECORD, **HERE, precision="int8") == ["built fp16, int8 asked for"]
    assert len(record_mismatches(RECORD, tensorrt_version="8.6.2", gpu_name="Xavier")) == 2


def test_rebuild_command_is_the_build_engine_line():
    assert rebuild_command(RECORD, "sp.engine") == (
        "superpoint build-engine --onnx /models/sp.onnx -o sp.engine --fp16 --min 64x64 "
        "--opt 480x640 --max 1088x1920 --workspace 1024"
    )
    dla = EngineRecord(**{**RECORD.__dict__, "precision": "int8", "dla_core": 1,
                          "workspace_mb": None, "onnx_path": "/m/a b.onnx"})  # fmt: skip
    assert shlex.split(rebuild_command(dla, "x.engine")) == [
        "superpoint", "build-engine", "--onnx", "/m/a b.onnx", "-o", "x.engine", "--int8",
        "--min", "64x64", "--opt", "480x640", "--max", "1088x1920", "--dla", "1",
    ]  # fmt: skip


def test_mismatch_error_is_one_line_with_the_rebuild_command():
    problems = record_mismatches(RECORD, tensorrt_version="10.3.0.26", gpu_name="Orin")
    text = str(mismatch_error("/robot/sp.engine", RECORD, problems))
    assert "\n" not in text
    assert text.startswith("sp.engine does not match this machine or model (built with TensorRT")
    assert (
        "rebuild it here: superpoint build-engine --onnx /models/sp.onnx -o /robot/sp.engine"
        in text
    )
    assert "--rebuild-engine" in text


def test_runtime_cache_key_changes_with_every_input():
    base = ("10.3.0.30", "Orin", "ab" * 32, "fp16", ((64, 64), (480, 640), (1088, 1920)))
    keys = {engine_cache_key(*base)}
    for i, other in enumerate(("8.6.2", "A100", "cd" * 32, "fp32", ((64, 64),) * 3)):
        changed = list(base)
        changed[i] = other
        keys.add(engine_cache_key(*changed))
    assert len(keys) == 6
    assert engine_cache_key(*base) == engine_cache_key(*base)


def test_engine_without_tensorrt_is_refused_in_one_line(tmp_path):
    if get_backend_class("tensorrt").unavailable_reason() is None:
        pytest.skip("TensorRT runs here; this checks the machines where it cannot")
    engine = tmp_path / "sp.engine"
    engine.write_bytes(b"\0" * 16)
    write_record(engine, RECORD)
    with pytest.raises(BackendUnavailable, match="backend 'tensorrt' unavailable: TensorRT is "
                       "not installed"):  # fmt: skip
        load_frontend(engine, "tensorrt")
    with pytest.raises(BackendUnavailable, match="no backend can run a TensorRT engine .*"
                       r"here \(tensorrt: TensorRT is not installed"):  # fmt: skip
        load_frontend(engine, "auto")


def test_engine_action_runs_refuses_or_rebuilds():
    """The rules the CLI, load_frontend and the node share before running an engine."""
    here = dict(HERE, onnx_sha256="ab" * 32)
    assert engine_action("sp.engine", RECORD, **here) == []  # matches: run it
    assert engine_action("sp.engine", RECORD, **here, rebuild=True) == []  # nothing to rebuild
    moved = dict(here, gpu_name="NVIDIA A100")
    with pytest.raises(BackendUnavailable, match="rebuild it here: superpoint build-engine"):
        engine_action("sp.engine", RECORD, **moved)  # refused by default
    assert engine_action("sp.engine", RECORD, **moved, rebuild=True) == [
        "built for GPU 'Orin', this one is 'NVIDIA A100'"
    ]  # rebuilt when asked
    gone = dict(moved, onnx_sha256=None)  # the ONNX it came from is not there any more
    with pytest.raises(
        BackendUnavailable, match="cannot rebuild sp.engine .*/models/sp.onnx, is gone"
    ):
        engine_action("sp.engine", RECORD, **gone, rebuild=True)
    assert (
        engine_action("sp.engine", RECORD, **dict(HERE, onnx_sha256=None)) == []
    )  # not checkable
