"""``superpoint quantize``: the calibration set, which nodes are the network, the Q/DQ structure
of both targets, a real quantisation through ONNX Runtime and the console script's errors.

The quantised models come from a small random-weights SuperPoint (detector made peaky, as a
trained one is) calibrated on a few photos: real ones from ../shared/data/photos where it exists,
photo-like images written by the test elsewhere (``photos`` fixture).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from superpoint_ros.errors import ConfigError, InputError
from superpoint_training.deploy.calibration import (
    CalibrationImages,
    calibration_record,
    names_sha256,
    select_calibration_images,
    spread,
    stride_for,
)

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from superpoint_ros.onnx_graph import network_nodes, network_outputs  # noqa: E402
from superpoint_training.deploy.quantize import (  # noqa: E402
    QDQ_OPS,
    TARGETS,
    check_source,
    qdq_problems,
)

CLI = [sys.executable, "-m", "superpoint_training.cli.main"]
SUPERPOINT = Path(sys.executable).with_name("superpoint")
POSTPROCESSING_OPS = {"Exp", "DepthToSpace", "TopK", "GatherElements", "Div", "ReduceSum"}


# ------------------------------------------------------------------ calibration set (pure)


def test_spread_picks_evenly_and_never_more_than_there_are():
    assert spread(10, 3) == [0, 3, 6]
    assert spread(10, 5) == [0, 2, 4, 6, 8]
    assert spread(4, 9) == [0, 1, 2, 3]
    assert spread(1, 1) == [0]
    with pytest.raises(ConfigError):
        spread(5, 0)


def _touch_images(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.full((16, 24), 128, np.uint8))


def test_calibration_images_recursive_sorted_spread(tmp_path):
    names = ["a/1.png", "a/2.png", "b/3.jpg", "b/4.png", "c.pgm", "d.png"]
    _touch_images(tmp_path, names)
    (tmp_path / "notes.txt").write_text("not an image")
    assert select_calibration_images(tmp_path, 100) == names
    assert select_calibration_images(tmp_path, 3) == ["a/1.png", "b/3.jpg", "c.pgm"]
    record = calibration_record(tmp_path, ["a/1.png", "b/3.jpg"], (48, 64))
    want = hashlib.sha256(b"a/1.png\nb/3.jpg").hexdigest()
    assert record == {
        "count": 2, "folder": tmp_path.name, "size": [48, 64], "names_sha256": want
    }  # fmt: skip
    assert names_sha256(["b/3.jpg", "a/1.png"]) != want  # the order used is part of the set


def test_calibration_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no images"):
        select_calibration_images(tmp_path)
    with pytest.raises(InputError, match="not found"):
        select_calibration_images(tmp_path / "absent")
    (tmp_path / "f.png").write_bytes(b"")
    with pytest.raises(InputError, match="is a file"):
        select_calibration_images(tmp_path / "f.png")


def test_calibration_reader_prepares_as_the_frontend(tmp_path):
    # A 30x40 BGR image whose grey is known: stretched to 16x24 and scaled to [0, 1].
    image = np.zeros((30, 40, 3), np.uint8)
    image[..., 1] = 200  # BT.601 grey of pure green 200 = round(0.587 * 200) = 117
    cv2.imwrite(str(tmp_path / "g.png"), image)
    reader = CalibrationImages([tmp_path / "g.png"], (16, 24))
    batch = reader.get_next()
    assert list(batch) == ["image"]
    assert batch["image"].shape == (1, 1, 16, 24) and batch["image"].dtype == np.float32
    np.testing.assert_allclose(batch["image"], 117 / 255, atol=1e-6)
    assert reader.get_next() is None
    reader.rewind()
    assert reader.get_next() is not None


def test_calibration_in_strides_of_a_divisor(tmp_path):
    """ONNX Runtime calibrates in strides that must divide the count; memory holds one."""
    assert [stride_for(n, 4) for n in (100, 7, 6, 2, 1, 9)] == [4, 1, 3, 2, 1, 3]
    _touch_images(tmp_path, [f"{i}.png" for i in range(5)])
    reader = CalibrationImages(sorted(tmp_path.glob("*.png")), (16, 24))
    reader.set_range(start_index=3, end_index=8)
    assert [reader.get_next() is not None for _ in range(3)] == [True, True, False]


# ------------------------------------------------------------------ models and photos


def _photo_like(rng: np.random.Generator, h: int = 240, w: int = 320) -> np.ndarray:
    """Smooth shading, edges, corners and fine texture: enough structure for keypoints."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    image = 90 + 60 * np.sin(x / rng.uniform(15, 40)) * np.cos(y / rng.uniform(15, 40))
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        cv2.rectangle(image, (x0, y0), (x0 + int(rng.integers(10, 60)),
                      y0 + int(rng.integers(10, 60))), float(rng.uniform(0, 255)), -1)  # fmt: skip
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Real photos (../shared/data/photos) where they exist, else 6 written photo-like ones."""
    from conftest import SHARED_DATA

    real = SHARED_DATA / "photos"
    if real.is_dir():
        return real
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(folder / f"photo_{i}.png"), _photo_like(rng))
    return folder


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> tuple[Path, Path]:
    """(weights .pt, float .onnx) of a small random SuperPoint with a peaky detector."""
    from superpoint_ros.frontend.config import FrontendConfig
    from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
    from superpoint_ros.model.weights import checkpoint_dict, load_weights, save_checkpoint
    from superpoint_ros.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("small_model")
    torch.manual_seed(0)
    config = ModelConfig(
        backbone_args={"channels": [8, 8, 16, 16]}, head_channels=32, descriptor_dim=32
    )
    net = SuperPointNet(config)
    with torch.no_grad():
        net.detector[1].conv.weight.mul_(40.0)
    weights = save_checkpoint(folder / "small.pt", checkpoint_dict(net))
    onnx_path = export_onnx(load_weights(weights), folder / "small.onnx", FrontendConfig())
    return weights, onnx_path


@pytest.fixture(scope="module")
def quantized(small_model, photos, tmp_path_factory) -> dict[str, Path]:
    """The small model quantised for each target on 3 photos at 120x160."""
    from superpoint_training.deploy.pipeline import quantize_onnx

    folder = tmp_path_factory.mktemp("quantized")
    return {
        target: quantize_onnx(
            small_model[1], folder / f"small.{target}.onnx", photos, target, 3, (120, 160)
        )
        for target in TARGETS
    }


# ------------------------------------------------------------------ graph and structure


def test_network_nodes_are_the_export_scope_and_no_postprocessing(small_model):
    model = onnx.load(str(small_model[1]))
    nodes = network_nodes(model)
    names = {n.name for n in nodes}
    convs = {n.name for n in model.graph.node if n.op_type == "Conv"}
    assert convs <= names and len(convs) == 12  # 8 backbone + 2 per head
    # Found from the structure, it agrees with the export's module scopes: the network module.
    assert all("/net/" in n for n in names)
    scoped = {n.name for n in model.graph.node if "/net/" in n.name and n.op_type != "Constant"}
    assert names == scoped
    assert not {n.op_type for n in nodes} & POSTPROCESSING_OPS
    outputs = network_outputs(model, nodes)
    assert len(outputs) == 2 and all(o.endswith("Conv_output_0") for o in outputs)
    assert any("detector" in o for o in outputs) and any("descriptor" in o for o in outputs)


def test_network_nodes_refuse_a_graph_without_convolutions():
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    with pytest.raises(InputError, match="no convolution"):
        network_nodes(helper.make_model(graph))


def _zero_points(model) -> list[tuple[str, np.ndarray]]:
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    return [(n.name, inits[n.input[2]]) for n in model.graph.node if n.op_type in QDQ_OPS]


@pytest.mark.parametrize("target", list(TARGETS))
def test_qdq_structure(target, quantized, small_model):
    model = onnx.load(str(quantized[target]))
    network = {n.name for n in network_nodes(onnx.load(str(small_model[1])))}
    assert qdq_problems(model, network, TARGETS[target]) == []
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 12
    for conv in convs:  # every convolution reads a dequantised input and dequantised weights
        assert producers[conv.input[0]].op_type == "DequantizeLinear"
        assert producers[conv.input[1]].op_type == "DequantizeLinear"
    # Post-processing reads float and is unchanged: same nodes, the logits and dense
    # descriptors straight from the head convolutions.
    post = [n for n in model.graph.node if n.name not in network and n.op_type not in QDQ_OPS]
    assert {"Exp", "TopK", "MaxPool", "GatherElements"} <= {n.op_type for n in post}
    for node in post:
        for name in node.input:
            src = producers.get(name)
            assert src is None or src.op_type not in QDQ_OPS, (node.name, name)
    zero_points = _zero_points(model)
    types = {zp.dtype for _, zp in zero_points}
    if target == "tensorrt":
        assert types == {np.dtype(np.int8)}  # no uint8 activations, no int32 biases
        assert all(np.all(zp == 0) for _, zp in zero_points)
        weights = [producers[c.input[1]] for c in convs]  # float weight -> Q -> DQ
        assert all(producers[dq.input[0]].op_type == "QuantizeLinear" for dq in weights)
    else:
        # uint8 activations (zero point 0 here too: every quantised activation is a ReLU
        # output or the [0, 1] image), int8 weights, int32 biases.
        assert types == {np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.int32)}


def test_per_channel_weight_scales(quantized):
    model = onnx.load(str(quantized["cpu"]))
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        dq = producers[conv.input[1]]
        weight = inits[dq.input[0]]
        assert weight.dtype == np.int8
        assert inits[dq.input[1]].shape == (weight.shape[0],)  # one scale per output channel


def test_qdq_problems_names_a_quantised_postprocessing_input(quantized, small_model):
    """The checker fails on a graph whose post-processing reads a dequantised tensor."""
    from onnx import helper

    model = onnx.load(str(quantized["tensorrt"]))
    network = {n.name for n in network_nodes(onnx.load(str(small_model[1])))}
    exp = next(n for n in model.graph.node if n.op_type == "Exp")
    dq_any = next(n for n in model.graph.node if n.op_type == "DequantizeLinear")
    model.graph.node.append(helper.make_node("Neg", [dq_any.output[0]], ["neg"], name="post_x"))
    problems = qdq_problems(model, network, TARGETS["tensorrt"])
    assert any("post_x" in p for p in problems)
    assert exp.name not in " ".join(problems)


def test_metadata_keeps_the_frontend_settings_and_records_the_calibration(
    quantized, small_model, photos
):
    float_meta = {p.key: p.value for p in onnx.load(str(small_model[1])).metadata_props}
    for target, path in quantized.items():
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        for key, value in float_meta.items():
            assert meta[key] == value
        assert meta["superpoint_ros.precision"] == "int8"
        config = json.loads(meta["superpoint_ros.quantization_config"])
        names = select_calibration_images(photos, 3)
        assert config["target"] == target
        assert config["calibration"] == {
            "count": 3, "folder": photos.name, "size": [120, 160],
            "names_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
        }  # fmt: skip
        assert config["activations"] == ("int8" if target == "tensorrt" else "uint8")
        from superpoint_ros.frontend.metadata import file_sha256

        assert config["source_sha256"] == file_sha256(small_model[1])


def test_check_source_refuses_quantised_and_foreign_files(quantized, small_model, tmp_path):
    with pytest.raises(InputError, match="already quantised"):
        check_source(onnx.load(str(quantized["cpu"])), quantized["cpu"])
    model = onnx.load(str(small_model[1]))
    del model.metadata_props[:]
    with pytest.raises(InputError, match="not a superpoint_ros export"):
        check_source(model, Path("x.onnx"))


# ------------------------------------------------------------------ it runs like any .onnx


def test_int8_frontend_runs_and_agrees_with_fp32(quantized, small_model, photos):
    from superpoint_ros.image_io import read_image
    from superpoint_ros.loader import load_frontend

    image = read_image(photos / select_calibration_images(photos, 1)[0])
    fp32 = load_frontend(small_model[1], backend="onnxruntime", config={"resize": (120, 160)})
    ref = fp32(image)
    assert len(ref["keypoints"]) > 20
    for target, path in quantized.items():
        frontend = load_frontend(path, backend="onnxruntime", config={"resize": (120, 160)})
        out = frontend(image)
        assert out["descriptors"].shape == (len(out["keypoints"]), 32)
        np.testing.assert_allclose(np.linalg.norm(out["descriptors"], axis=1), 1, atol=1e-4)
        d = np.linalg.norm(ref["keypoints"][:, None] - out["keypoints"][None], axis=2)
        near = d.min(axis=1) <= 1.5
        # A few rounding steps move some keypoints; most stay (measured ~0.9 on both targets).
        assert near.mean() > 0.5, (target, near.mean())


def test_console_script_quantizes_a_weights_file_and_extract_loads_it(
    small_model, photos, tmp_path
):
    out = tmp_path / "small.int8.onnx"
    run = subprocess.run(
        [str(SUPERPOINT), "quantize", "--onnx", str(small_model[0]), "--calib", str(photos),
         "--calib-count", "2", "--calib-size", "120x160", "-o", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"wrote {out}" in run.stdout
    image = photos / select_calibration_images(photos, 1)[0]
    npz = tmp_path / "kp.npz"
    run = subprocess.run(
        [str(SUPERPOINT), "extract", "--weights", str(out), "--backend", "onnxruntime",
         "--resize", "120x160", str(image), "-o", str(npz)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    with np.load(npz) as data:
        assert len(data["keypoints"]) > 0 and data["descriptors"].shape[1] == 32


# ------------------------------------------------------------------ command-line errors


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty_calib", "no images"),
        ("missing_model", "model not found"),
        ("bad_target", "unknown target 'gpu'; valid: cpu, tensorrt"),
        ("bad_count", "--calib-count must be positive"),
        ("engine", "TensorRT engine"),
    ],
)
def test_cli_errors_are_one_line(case, message, small_model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    calib = tmp_path / "calib"
    _touch_images(calib, ["a.png"])
    model = str(small_model[1])
    args = {
        "empty_calib": ["--onnx", model, "--calib", str(empty)],
        "missing_model": ["--onnx", str(tmp_path / "nope.onnx"), "--calib", str(calib)],
        "bad_target": ["--onnx", model, "--calib", str(calib), "--target", "gpu"],
        "bad_count": ["--onnx", model, "--calib", str(calib), "--calib-count", "0"],
        "engine": ["--onnx", str(_engine(tmp_path)), "--calib", str(calib)],
    }[case]
    run = subprocess.run(
        [*CLI, "quantize", *args, "-o", str(tmp_path / "out.onnx")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("superpoint quantize: error: "), lines
    assert message in lines[0]
    assert not (tmp_path / "out.onnx").exists()


def _engine(folder: Path) -> Path:
    path = folder / "model.engine"
    path.write_bytes(b"\0" * 16)
    return path
