"""The OpenVINO backend against ONNX Runtime on the same files: a float export and its INT8
quantisation (``superpoint quantize``), through ``load_frontend`` as every tool loads a model.
Skips where the ``openvino`` package is absent (``pip install 'superpoint_ros[openvino]'``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino", reason="OpenVINO is not installed (extra 'openvino')")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from superpoint_ros.backends.openvino_backend import OpenVinoBackend  # noqa: E402
from superpoint_ros.errors import BackendUnavailable, ConfigError  # noqa: E402
from superpoint_ros.loader import load_frontend  # noqa: E402

SIZE = (120, 160)


def _scene(seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:240, 0:320].astype(np.float32)
    image = 100 + 50 * np.sin(x / 17.0) * np.cos(y / 23.0)
    for _ in range(15):
        x0, y0 = int(rng.integers(0, 280)), int(rng.integers(0, 200))
        cv2.rectangle(image, (x0, y0), (x0 + 30, y0 + 25), float(rng.uniform(0, 255)), -1)
    return np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A small random SuperPoint (peaky detector) as float and INT8 (cpu target) .onnx."""
    import cv2

    from superpoint_ros.frontend.config import FrontendConfig
    from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
    from superpoint_ros.model.weights import checkpoint_dict, load_weights, save_checkpoint
    from superpoint_ros.onnx_export import export_onnx
    from superpoint_training.deploy.pipeline import quantize_onnx

    folder = tmp_path_factory.mktemp("openvino")
    torch.manual_seed(1)
    net = SuperPointNet(ModelConfig(backbone_args={"channels": [8, 8, 16, 16]},
                                    head_channels=32, descriptor_dim=32))  # fmt: skip
    with torch.no_grad():
        net.detector[1].conv.weight.mul_(40.0)
    weights = load_weights(save_checkpoint(folder / "small.pt", checkpoint_dict(net)))
    fp32 = export_onnx(weights, folder / "small.onnx", FrontendConfig())
    photos = folder / "photos"
    photos.mkdir()
    for i in range(3):
        cv2.imwrite(str(photos / f"{i}.png"), _scene(i))
    int8 = quantize_onnx(fp32, folder / "small.int8.onnx", photos, "cpu", 3, SIZE)
    return {"fp32": fp32, "int8": int8}


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_openvino_matches_onnxruntime_on_the_same_file(models, precision):
    ov = load_frontend(models[precision], backend="openvino", config={"resize": SIZE})
    ort = load_frontend(models[precision], backend="onnxruntime", config={"resize": SIZE})
    assert ov.backend_name == "openvino"
    assert ov.backend.info.config == ort.backend.info.config
    assert ov.backend.info.details["precision"] == precision
    for seed in (7, 8):
        image = _scene(seed)
        a, b = ov(image), ort(image)
        assert len(b["keypoints"]) > 20
        d = np.linalg.norm(a["keypoints"][:, None] - b["keypoints"][None], axis=2)
        nearest = d.argmin(axis=1)
        close = d[np.arange(len(d)), nearest] <= 0.5
        # Float layers run in float32 in both (bf16 is switched off), so the points agree as
        # closely as two float runtimes do (the backends' parity rule: >= 99% within 0.5 px).
        assert close.mean() >= (0.99 if precision == "fp32" else 0.95), close.mean()
        cosine = (a["descriptors"][close] * b["descriptors"][nearest[close]]).sum(axis=1)
        assert np.median(cosine) >= 0.99


def test_openvino_refuses_fp16_and_foreign_files(models, tmp_path):
    with pytest.raises(ConfigError, match="precision it was exported in"):
        load_frontend(models["fp32"], backend="openvino", precision="fp16")
    import onnx

    model = onnx.load(str(models["fp32"]))
    del model.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(model, str(foreign))
    with pytest.raises(BackendUnavailable, match="not a superpoint_ros front-end export"):
        OpenVinoBackend(foreign)
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(BackendUnavailable, match="OpenVINO cannot load"):
        OpenVinoBackend(tmp_path / "bad.onnx")
