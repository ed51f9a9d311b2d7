"""``superpoint build-engine``: every check that needs no TensorRT runs first and each failure is
one line; where TensorRT is missing (here) a valid request ends with one line saying the checks
passed and what is missing. No engine is built on this machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from superpoint_ros.backends import get_backend_class
from superpoint_ros.frontend import FrontendConfig
from superpoint_ros.model.weights import load_weights
from superpoint_ros.onnx_export import export_onnx
from superpoint_training.cli.main import main

SUPERPOINT = str(Path(sys.executable).with_name("superpoint"))
TRT_MISSING = get_backend_class("tensorrt").unavailable_reason()


@pytest.fixture(scope="module")
def models(tmp_path_factory, random_superpoint):
    folder = tmp_path_factory.mktemp("engine")
    onnx_path = random_superpoint(folder, onnx=True, max_keypoints=64)
    bare = export_onnx(
        load_weights(folder / "random.pt"), folder / "bare.onnx", FrontendConfig(),
        bare_network=True,
    )  # fmt: skip
    broken = folder / "broken.onnx"
    broken.write_bytes(b"not a protobuf at all")
    return {"onnx": onnx_path, "bare": bare, "broken": broken, "folder": folder}


def build(capsys, *args):
    code = main(["build-engine", *map(str, args)])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--int8"],
            "INT8 on TensorRT needs an explicitly quantised (Q/DQ) model, random.onnx has none "
            "(no calibrator: deprecated since TensorRT 10.1, removed in 11); make one with: "
            "superpoint quantize --onnx random.onnx --calib DIR --target tensorrt "
            "-o random.int8.onnx",
        ),
        (["--min", "64x64", "--opt", "32x32"], "profile sizes must grow: --min 64x64 <= --opt"),
        (["--max", "1084x1920"], "bad size 1084x1920"),
        (["--dla", "0"], "a DLA core runs FP16 or INT8: add --fp16 or --int8 to --dla"),
        (["--workspace", "0"], "--workspace must be a positive number of MB"),
    ],
)
def test_bad_requests_are_one_line(models, tmp_path, capsys, args, message):
    code, err = build(capsys, "--onnx", models["onnx"], "-o", tmp_path / "m.engine", *args)
    assert code == 1
    assert len(err.splitlines()) == 1 and message in err, err
    assert not list(tmp_path.iterdir())  # nothing written


def test_bad_inputs_are_one_line(models, tmp_path, capsys):
    out = tmp_path / "m.engine"
    cases = {
        "missing.onnx": "ONNX file not found: missing.onnx",
        models["broken"]: "broken.onnx is not a readable ONNX file",
        models["bare"]: "bare.onnx is not a superpoint_ros front-end export",
    }
    for onnx_path, message in cases.items():
        code, err = build(capsys, "--onnx", onnx_path, "-o", out)
        assert code == 1 and len(err.splitlines()) == 1 and message in err, err
    code, err = build(capsys, "--onnx", models["onnx"], "-o", tmp_path / "m.trt")
    assert code == 1 and "output must end with .engine or .plan" in err
    out.write_bytes(b"old")
    code, err = build(capsys, "--onnx", models["onnx"], "-o", out)
    assert code == 1 and "exists; pass --force to overwrite it" in err
    assert out.read_bytes() == b"old"


def test_fp16_and_int8_flags_exclude_each_other(models, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["build-engine", "--onnx", str(models["onnx"]), "-o", str(tmp_path / "m.engine"),
              "--fp16", "--int8"])  # fmt: skip
    assert exc.value.code == 2


@pytest.mark.skipif(TRT_MISSING is None, reason="TensorRT runs here: build-engine builds")
def test_valid_request_without_tensorrt_says_what_is_missing(models, tmp_path):
    """The real console script: the checks pass and the one line says TensorRT is missing."""
    out = tmp_path / "m.engine"
    res = subprocess.run(
        [SUPERPOINT, "build-engine", "--onnx", str(models["onnx"]), "-o", str(out), "--fp16",
         "--min", "120x160", "--opt", "480x640", "--max", "720x1280"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip().splitlines() == [
        "superpoint build-engine: error: checks passed (fp16, profile 120x160 / 480x640 / "
        f"720x1280), but {TRT_MISSING}"
    ]
    assert not out.exists()
