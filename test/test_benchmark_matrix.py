"""``superpoint benchmark --matrix``: the variant table and its parsers, the machine header's
parsers (sample ``/etc/nv_tegra_release`` and ``nvpmodel -q`` texts), the skip rules, the
report, and real runs of a tiny matrix through the console script (a small random-weights
model, the backends that exist here, one small size, real photos; with ``../shared/data`` its
accuracy against ``superpoint evaluate``'s code on the same file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from superpoint_ros.backends import BACKENDS
from superpoint_ros.errors import ConfigError
from superpoint_training.benchmark import machine
from superpoint_training.benchmark.plan import Environment, Model, parse_models, skip_reason
from superpoint_training.benchmark.plot import pareto
from superpoint_training.benchmark.quantized import int8_unavailable_reason, model_precision
from superpoint_training.benchmark.report import grouped, render, results_table
from superpoint_training.benchmark.variants import VARIANTS, parse_sizes, parse_variants

SUPERPOINT = str(Path(sys.executable).with_name("superpoint"))
TIMEOUT = 1200  # s: each combination is a fresh process; the CPU may be shared and loaded

# ----------------------------------------------------------------------------- parsers


def test_variant_names_map_to_backend_and_precision():
    got = [(v.name, v.backend, v.precision) for v in parse_variants("onnxruntime-int8,torch")]
    assert got == [("onnxruntime-int8", "onnxruntime", "int8"), ("torch", "torch", "fp32")]
    assert (VARIANTS.get("tensorrt-fp16").backend, VARIANTS.get("tensorrt-fp16").precision) == (
        "tensorrt", "fp16",
    )  # fmt: skip
    # every registered backend has its variants in the table (a new backend needs its rows)
    assert {v.backend for v in map(VARIANTS.get, VARIANTS.names())} == set(BACKENDS.names())


@pytest.mark.parametrize(
    "text, message",
    [
        ("torch,onnx", "unknown variant 'onnx'; valid: onnxruntime, onnxruntime-int8"),
        ("torch,,onnxruntime", "without empty items"),
        ("torch,torch", "torch given twice"),
    ],
)
def test_bad_backends_name_the_problem(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_variants(text)


def test_sizes():
    assert parse_sizes("240x320,480x640") == [(240, 320), (480, 640)]
    with pytest.raises(ConfigError, match=r"--sizes: '240x321' is not a size HxW"):
        parse_sizes("240x320,240x321")
    with pytest.raises(ConfigError, match=r"--sizes: 'big' is not a size HxW"):
        parse_sizes("big")


def test_parse_models_labels(tmp_path):
    (tmp_path / "a.pt").write_bytes(b"x")
    (tmp_path / "b.onnx").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.pt").write_bytes(b"x")
    got = parse_models(f"{tmp_path}/a.pt,fast={tmp_path}/b.onnx,{tmp_path}/sub/a.pt")
    assert got == [
        ("a", tmp_path / "a.pt"), ("fast", tmp_path / "b.onnx"), ("a-2", tmp_path / "sub/a.pt"),
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="model file not found: .*missing.pt"):
        parse_models(f"{tmp_path}/missing.pt")
    with pytest.raises(ConfigError, match="a label is letters"):
        parse_models(f"a b={tmp_path}/a.pt")


# ----------------------------------------------------------------------------- machine header

TEGRA_R36 = (
    "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, "
    "DATE: Mon May  6 17:34:21 UTC 2024\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n"
)
TEGRA_R35 = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64\n"
NVPMODEL = "NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n"
NVPMODEL_15W = "NV Power Mode: 15W\n1\n"


def test_jetson_release_and_power_mode_parsing():
    assert machine.parse_nv_tegra_release(TEGRA_R36) == "36.3.0"
    assert machine.parse_nv_tegra_release(TEGRA_R35) == "35.4.1"
    assert machine.parse_nv_tegra_release("not a tegra file") is None
    assert machine.jetpack_release("36.3.0") == "6.0"
    assert machine.jetpack_release("35.4.1") == "5.1.2"
    assert machine.jetpack_release("36.9.0") == "unknown (L4T 36.9.0)"
    assert machine.jetpack_release(None) is None
    assert machine.parse_nvpmodel(NVPMODEL) == "MAXN (mode 0)"
    assert machine.parse_nvpmodel(NVPMODEL_15W) == "15W (mode 1)"
    assert machine.parse_nvpmodel("") is None


def test_cpu_gpu_cuda_parsing():
    cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) X\n"
    assert machine.parse_cpu_model(cpuinfo) == "Intel(R) Xeon(R) X"
    lscpu = "Architecture:  aarch64\nVendor ID:     ARM\nModel name:    Cortex-A78AE\n"
    assert machine.parse_cpu_model("processor : 0\nBogoMIPS : 62.50\n", lscpu) == "Cortex-A78AE"
    assert machine.parse_nvidia_smi("NVIDIA H200, 570.124.06\n") == ("NVIDIA H200", "570.124.06")
    assert machine.parse_nvidia_smi("") is None
    assert machine.parse_cuda_version('{"cuda": {"name": "CUDA SDK", "version": "12.6.68"}}',
                                      None) == "12.6.68"  # fmt: skip
    assert machine.parse_cuda_version(None, "CUDA Version 10.2.300\n") == "10.2.300"
    assert machine.parse_cuda_version("{", None) is None


def test_collect_reads_a_jetson_release_file(tmp_path, monkeypatch):
    """The edge on a sample file: the L4T and JetPack fields come from it; where a tool
    (nvpmodel) is missing its field is absent, never invented."""
    release = tmp_path / "nv_tegra_release"
    release.write_text(TEGRA_R36)
    monkeypatch.setattr(machine, "NV_TEGRA_RELEASE", release)
    monkeypatch.setattr(machine, "DEVICE_TREE_MODEL", tmp_path / "no_model")
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvpmodel, nvidia-smi or lscpu here
    info = machine.collect()
    assert (info["jetson_l4t"], info["jetpack"]) == ("36.3.0", "6.0")
    assert info["jetson_power_mode"] is None
    assert info["gpu_driver"] == "L4T 36.3.0"
    table = machine.header_table(info)
    assert "| JetPack | 6.0 |" in table
    assert "| Jetson power mode (nvpmodel) | absent |" in table


def test_collect_here_marks_what_is_missing_absent(monkeypatch, tmp_path):
    monkeypatch.setattr(machine, "NV_TEGRA_RELEASE", tmp_path / "absent")
    info = machine.collect()
    assert info["cpu"] and info["cores"].split(" / ")[1] == str(os.cpu_count())
    assert info["jetpack"] is None
    assert "| JetPack | absent |" in machine.header_table(info)


# ----------------------------------------------------------------------------- skip rules

READY = Environment(backends={"torch": None, "onnxruntime": None, "tensorrt": None}, cuda=True)


@pytest.mark.parametrize(
    "path, variant, env, reason",
    [
        ("m.pt", "torch", READY, None),
        ("m.onnx", "torch", READY, "torch runs a weights file (.pt/.pth/.tar), not an .onnx"),
        ("m.engine", "onnxruntime", READY, "a TensorRT .engine runs only on the tensorrt"),
        ("m.engine", "tensorrt-fp16", READY, "m.engine was built fp32: its row is tensorrt (pass"),
        ("m.engine", "tensorrt", READY, None),
        ("m.pt", "torch-fp16", Environment(backends=READY.backends, cuda=False),
         "torch-fp16: half precision needs a CUDA GPU (none here)"),
        ("m.pt", "onnxruntime-int8", Environment(backends=READY.backends, int8="no photos"),
         "int8: no photos"),
        ("m.pt", "tensorrt-fp16",
         Environment(backends={**READY.backends, "tensorrt": "TensorRT is not installed"}),
         "tensorrt: TensorRT is not installed"),
        ("m.pt", "onnxruntime", READY, None),
    ],
)  # fmt: skip
def test_skip_reasons(path, variant, env, reason):
    got = skip_reason(Model.from_path("m", path), VARIANTS.get(variant), env)
    assert got == reason if reason is None else got.startswith(reason)


def test_an_engine_runs_in_the_row_of_its_recorded_precision(tmp_path):
    """An engine's precision is read from the record build-engine writes beside it; without a
    record it counts as fp32 (and its row fails with the backend's "no record" line)."""
    from superpoint_ros.backends.tensorrt_record import EngineRecord, write_record

    engine = tmp_path / "sp.engine"
    engine.write_bytes(b"engine bytes")
    assert model_precision(engine) == "fp32"
    record = EngineRecord("10.3.0", "Orin", "0" * 64, "sp.onnx", "fp16", "builder flag",
                          ((64, 64), (480, 640), (480, 640)))  # fmt: skip
    write_record(engine, record)
    model = Model.from_path("sp", engine, model_precision(engine))
    assert model.precision == "fp16"
    assert skip_reason(model, VARIANTS.get("tensorrt-fp16"), READY) is None
    assert skip_reason(model, VARIANTS.get("tensorrt"), READY) == (
        "sp.engine was built fp16: its row is tensorrt-fp16 (pass the .onnx to build each "
        "precision)"
    )


def test_an_int8_onnx_runs_only_as_int8():
    model = Model.from_path("q", "q.onnx", precision="int8")
    assert skip_reason(model, VARIANTS.get("onnxruntime-int8"), READY) is None
    reason = skip_reason(model, VARIANTS.get("onnxruntime"), READY)
    assert reason == "q.onnx is already INT8: see its onnxruntime-int8 row"


# ----------------------------------------------------------------------------- report


def _row(model, variant, size, status="ok", **kw):
    base = {"model": model, "variant": variant, "size": size, "status": status}
    if status == "ok":
        base.update(p50_ms=20.0, p95_ms=25.5, fps=50.0, peak_rss_mib=312.4, keypoints=900,
                    gpu_memory=None)  # fmt: skip
    return {**base, **kw}


def test_report_table_and_skips():
    acc = {"homography_accuracy": {"1": 0.2, "3": 0.6, "5": 0.8}, "nn_map": 0.5,
           "repeatability": 0.55}  # fmt: skip
    rows = [
        _row("demo", "onnxruntime", "240x320", accuracy=acc),
        _row("demo", "tensorrt-fp16", "240x320", "skipped", reason="tensorrt: not installed"),
        _row("demo", "tensorrt-fp16", "480x640", "skipped", reason="tensorrt: not installed"),
        _row("demo", "torch", "240x320", "failed", reason="process ended with status 1: boom"),
    ]
    table = results_table(rows).splitlines()
    assert table[0] == (
        "| model | variant | size | p50 ms | p95 ms | FPS | peak RSS MiB | GPU MiB | keypoints "
        "| H@1 | H@3 | H@5 | NN mAP | Rep. |"
    )
    assert table[2] == (
        "| demo | onnxruntime | 240x320 | 20.0 | 25.5 | 50.0 | 312 | - | 900 | 0.200 | 0.600 "
        "| 0.800 | 0.500 | 0.550 |"
    )
    assert len(table) == 3  # skipped and failed rows are listed apart
    assert grouped(rows, "skipped") == [
        ("demo", "tensorrt-fp16", "240x320, 480x640", "tensorrt: not installed")
    ]
    metrics = {
        "created": "2026-11-30T12:00:00+00:00", "command": "superpoint benchmark --matrix",
        "machine": {"cpu": "Test CPU", "cores": "2 / 2"}, "load_average_end": None,
        "settings": {"runs": 30, "warmup": 5, "datasets": ["seqs"], "models": {}, "calib": None,
                     "calib_count": 100, "frontend_settings": {}},
        "rows": rows,
    }  # fmt: skip
    text = render(metrics, "accuracy_vs_fps.png")
    assert "| CPU | Test CPU |" in text and "| GPU | absent |" in text
    assert "| TensorRT | absent |" in text
    assert "| demo | tensorrt-fp16 | 240x320, 480x640 | tensorrt: not installed |" in text
    assert "| demo | torch | 240x320 | process ended with status 1: boom |" in text
    assert "![Accuracy against FPS](accuracy_vs_fps.png)" in text


def test_without_accuracy_no_accuracy_columns():
    assert "H@3" not in results_table([_row("demo", "torch", "240x320")])


def test_pareto_front():
    #  (fps, accuracy): (10, .5) beats (5, .4); (20, .3) and (2, .9) are not beaten
    assert pareto([(10, 0.5), (5, 0.4), (20, 0.3), (2, 0.9)]) == [3, 0, 2]


# ----------------------------------------------------------------------------- real runs


def run_cli(*args, cwd: Path):
    env = dict(os.environ, XDG_CACHE_HOME=str(cwd / "cache"))
    return subprocess.run(
        [SUPERPOINT, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env,
        timeout=TIMEOUT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny random-weights SuperPoint (.pt), a broken .onnx, and two real photos (CC0,
    scikit-image) as the calibration folder."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from skimage import data

    from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
    from superpoint_ros.model.weights import checkpoint_dict, save_checkpoint

    d = tmp_path_factory.mktemp("matrix")
    torch.manual_seed(0)
    config = ModelConfig(backbone_args={"channels": (8, 8, 16, 16)}, head_channels=16,
                         descriptor_dim=16)  # fmt: skip
    net = SuperPointNet(config)
    with torch.no_grad():
        net.detector[1].conv.weight.mul_(40.0)  # a trained model's well-separated scores
    save_checkpoint(d / "tiny.pt", checkpoint_dict(net))
    (d / "broken.onnx").write_bytes(b"not an onnx file")
    (d / "calib").mkdir()
    cv2.imwrite(str(d / "calib" / "camera.png"), data.camera())
    cv2.imwrite(str(d / "calib" / "coffee.png"), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    return d


@pytest.fixture(scope="module")
def matrix(workdir):
    """One real matrix: tiny (.pt) and broken (.onnx) x torch, onnxruntime, onnxruntime-int8,
    tensorrt-fp16, torch-fp16 at 64x96, 3 timed runs each, no dataset."""
    out = workdir / "report"
    proc = run_cli(
        "benchmark", "--matrix", "--quiet",
        "--models", f"tiny={workdir / 'tiny.pt'},{workdir / 'broken.onnx'}",
        "--backends", "torch,onnxruntime,onnxruntime-int8,tensorrt-fp16,torch-fp16",
        "--sizes", "64x96", "--runs", "3", "--warmup", "1", "--calib-count", "2",
        "--calib", workdir / "calib", "-o", out, cwd=workdir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out, json.loads((out / "metrics.json").read_text()), proc


def test_matrix_measures_every_available_combination(matrix):
    out, metrics, _ = matrix
    rows = {(r["model"], r["variant"]): r for r in metrics["rows"]}
    assert len(rows) == 10 and {r["size"] for r in rows.values()} == {"64x96"}
    for variant in ("torch", "onnxruntime"):
        r = rows[("tiny", variant)]
        assert r["status"] == "ok", r
        assert r["runs"] == 3
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["max_ms"]
        assert r["fps"] == pytest.approx(1000.0 / r["p50_ms"])
        assert r["peak_rss_mib"] > 20  # an interpreter with numpy and OpenCV at least
        assert r["keypoints"] > 0 and r["accuracy"] is None
    # each combination in its own process: the ONNX Runtime row never imported torch
    assert rows[("tiny", "onnxruntime")]["torch_imported"] is False
    assert rows[("tiny", "torch")]["torch_imported"] is True
    # the ONNX variants run the export made once in the report folder
    assert rows[("tiny", "onnxruntime")]["file"] == str(out / "models" / "tiny.onnx")
    assert (out / "models" / "tiny.onnx").is_file()


def test_matrix_int8_row_runs_the_quantised_model(matrix, workdir):
    """The INT8 variant quantises the exported .onnx once (superpoint quantize --target cpu on
    the two calibration photos) and times that file; where the quantiser is missing the row
    says so."""
    out, metrics, _ = matrix
    row = next(
        r for r in metrics["rows"] if (r["model"], r["variant"]) == ("tiny", "onnxruntime-int8")
    )
    reason = int8_unavailable_reason(workdir / "calib")
    if reason:
        assert (row["status"], row["reason"]) == ("skipped", f"int8: {reason}")
        return
    assert row["status"] == "ok", row
    assert row["file"] == str(out / "models" / "tiny.int8-cpu.onnx")
    assert (
        model_precision(row["file"]) == "int8"
        and model_precision(out / "models" / "tiny.onnx") == "fp32"
    )
    assert row["p50_ms"] > 0 and row["torch_imported"] is False
    broken = next(
        r for r in metrics["rows"] if (r["model"], r["variant"]) == ("broken", "onnxruntime-int8")
    )
    assert broken["status"] == "failed"
    assert broken["reason"].startswith("could not prepare the model: superpoint quantize: ")


def test_matrix_lists_skipped_and_failed_rows_with_reasons(matrix):
    _, metrics, _ = matrix
    rows = {(r["model"], r["variant"]): r for r in metrics["rows"]}
    trt = BACKENDS.get("tensorrt").unavailable_reason()
    if trt:
        assert rows[("tiny", "tensorrt-fp16")] == {
            **rows[("tiny", "tensorrt-fp16")], "status": "skipped", "reason": f"tensorrt: {trt}",
        }  # fmt: skip
    import torch

    if not torch.cuda.is_available():
        assert rows[("tiny", "torch-fp16")]["reason"] == (
            "torch-fp16: half precision needs a CUDA GPU (none here)"
        )
    broken = rows[("broken", "torch")]
    assert (broken["status"], broken["reason"]) == (
        "skipped", "torch runs a weights file (.pt/.pth/.tar), not an .onnx",
    )  # fmt: skip
    failed = rows[("broken", "onnxruntime")]
    assert failed["status"] == "failed"
    assert "ONNX Runtime cannot load" in failed["reason"] and "\n" not in failed["reason"]


def test_matrix_report_files(matrix):
    out, metrics, proc = matrix
    text = (out / "report.md").read_text()
    assert text.startswith("# Benchmark matrix")
    assert "superpoint benchmark --matrix" in text
    assert f"| CPU | {metrics['machine']['cpu']} |" in text
    for _key, label in machine.FIELDS:
        assert f"| {label} | " in text
    ok = [r for r in metrics["rows"] if r["status"] == "ok"]
    for r in ok:
        assert f"| {r['model']} | {r['variant']} | {r['size']} | {r['p50_ms']:.1f} |" in text
    assert "## Skipped" in text and "## Failed" in text
    png = (out / "accuracy_vs_fps.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[0] > 100 and image.shape[1] > 400
    assert str(out / "report.md") in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backends", "torch,tensorrt-fp8"], "unknown variant 'tensorrt-fp8'; valid:"),
        (["--sizes", "480x641"], "--sizes: '480x641' is not a size HxW"),
        (["--weights", "x.pt"], "--matrix takes its models from --models"),
        ([], "--matrix needs -o REPORT_DIR"),
    ],
)
def test_matrix_bad_options_fail_in_one_line(workdir, args, message):
    extra = [] if not args else ["-o", workdir / "never"]
    proc = run_cli(
        "benchmark", "--matrix", "--models", workdir / "tiny.pt", *args, *extra, cwd=workdir
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (workdir / "never").exists()


def test_matrix_options_need_matrix(workdir):
    proc = run_cli("benchmark", "--models", workdir / "tiny.pt", cwd=workdir)
    assert proc.returncode == 1
    assert "--models: only with --matrix" in proc.stderr


# ----------------------------------------------------------------------------- with a dataset


def test_matrix_accuracy_is_superpoint_evaluates(workdir, shared_data):
    """With --dataset, a row's accuracy equals ``superpoint evaluate``'s on the same file
    (the exported .onnx the row ran) under the protocol with both passes at the row's size."""
    from superpoint_training.evaluation.pipeline import evaluate
    from superpoint_training.evaluation.protocol import Protocol

    sequence = shared_data / "hpatches" / "v_graffiti"
    out = workdir / "report_dataset"
    proc = run_cli(
        "benchmark", "--matrix", "--quiet", "--models", f"tiny={workdir / 'tiny.pt'}",
        "--backends", "onnxruntime", "--sizes", "120x160", "--runs", "2", "--warmup", "1",
        "--dataset", sequence, "-o", out, cwd=workdir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads((out / "metrics.json").read_text())["rows"]
    acc = row["accuracy"]
    assert acc["pairs"] == 5 and set(acc["homography_accuracy"]) == {"1", "3", "5"}
    protocol = Protocol().replace(rep_size=(120, 160), hom_size=(120, 160))
    report = evaluate(
        sequence, [out / "models" / "tiny.onnx"], workdir / "evaluate", protocol=protocol,
        cache_dir=None, backend="onnxruntime", plots=False, progress=False,
    )  # fmt: skip
    (entry,) = report["methods"].values()
    for key in ("homography_accuracy", "nn_map", "repeatability", "mle", "keypoints"):
        assert acc[key] == pytest.approx(entry[key]), key
    text = (out / "report.md").read_text()
    assert "| H@1 | H@3 | H@5 | NN mAP | Rep. |" in text
    assert "![Accuracy against FPS](accuracy_vs_fps.png)" in text
