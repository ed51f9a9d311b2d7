"""Every available backend against the PyTorch reference, on real photos.

A peaky random network (detector logits scaled up) stands in for trained weights so that
keypoint scores are well separated; the packaged demo model is used too when present.
"""

import sys

import cv2
import numpy as np
import pytest
import torch

from superpoint_ros.backends import (
    BACKENDS,
    Backend,
    backend_choices,
    backend_names,
    get_backend_class,
    register_backend,
    resolve_backend,
)
from superpoint_ros.errors import BackendUnavailable, ConfigError
from superpoint_ros.frontend import DEFAULT_WEIGHTS, FrontendConfig
from superpoint_ros.loader import load_frontend
from superpoint_ros.model.weights import load_weights
from superpoint_ros.onnx_export import export_onnx

skimage_data = pytest.importorskip("skimage.data")


def photos():
    """Real photos (scikit-image's CC0 samples): gray, colour, non-multiple-of-8 sizes."""
    astronaut = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    return {
        "camera_512": skimage_data.camera(),
        "astronaut_bgr_512": astronaut,
        "coffee_crop_397x603": cv2.cvtColor(skimage_data.coffee(), cv2.COLOR_RGB2BGR)[:397, :603],
    }


@pytest.fixture(scope="module")
def peaky_weights(tmp_path_factory, random_superpoint):
    return random_superpoint(tmp_path_factory.mktemp("w"), peaky=True)


def model_files(peaky_weights):
    files = [peaky_weights]
    if DEFAULT_WEIGHTS.is_file():
        files.append(DEFAULT_WEIGHTS)
    return files


def compare(ref, out):
    """Fraction of reference keypoints with a keypoint of ``out`` within 0.5 px, and the
    median descriptor cosine of those pairs."""
    if len(ref["keypoints"]) == 0:
        return 1.0, 1.0
    d = np.linalg.norm(ref["keypoints"][:, None] - out["keypoints"][None], axis=-1)
    nearest = d.argmin(1)
    close = d[np.arange(len(d)), nearest] <= 0.5
    cos = np.sum(ref["descriptors"][close] * out["descriptors"][nearest[close]], axis=1)
    return close.mean(), float(np.min(cos)) if len(cos) else 0.0


def available_backends():
    return [
        n
        for n in ("onnxruntime", "openvino", "tensorrt")
        if BACKENDS.get(n).unavailable_reason() is None
    ]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "tensorrt"])
def test_backend_parity_with_torch(backend, peaky_weights, tmp_path):
    reason = get_backend_class(backend).unavailable_reason()
    if reason:
        pytest.skip(f"{backend}: {reason}")
    for weights in model_files(peaky_weights):
        cfg = FrontendConfig(max_keypoints=500)
        ref_fe = load_frontend(weights, "torch", cfg, device="cpu")
        fe = load_frontend(weights, backend, cfg, cache_dir=tmp_path)
        assert fe.backend_name == backend
        for name, image in photos().items():
            ref, out = ref_fe(image), fe(image)
            assert len(ref["keypoints"]) > 50, name
            frac, min_cos = compare(ref, out)
            assert frac >= 0.99, (weights.name, name, frac)
            assert min_cos >= 0.99, (weights.name, name, min_cos)
            assert abs(len(ref["keypoints"]) - len(out["keypoints"])) <= 0.01 * len(
                ref["keypoints"]
            )


def test_exported_onnx_file_runs_with_baked_settings(peaky_weights, tmp_path):
    path = export_onnx(
        load_weights(peaky_weights),
        tmp_path / "m.onnx",
        FrontendConfig(max_keypoints=64, nms_radius=3),
    )
    fe = load_frontend(path, "onnxruntime")
    assert fe.config.max_keypoints == 64 and fe.config.nms_radius == 3
    out = fe(photos()["camera_512"])
    assert 0 < len(out["keypoints"]) <= 64
    assert np.allclose(np.linalg.norm(out["descriptors"], axis=1), 1.0, atol=1e-4)
    # Changing a setting that is baked into the graph is an error, resize is not.
    with pytest.raises(ConfigError, match="re-export"):
        load_frontend(path, "onnxruntime", {"max_keypoints": 100})
    assert load_frontend(path, "onnxruntime", {"resize": "240x320"}).config.resize == (240, 320)


def test_blank_and_tiny_images_give_valid_empty_outputs(peaky_weights):
    fe = load_frontend(peaky_weights, "onnxruntime")
    for image in (np.zeros((480, 640), np.uint8), np.full((5, 3), 128, np.uint8)):
        out = fe(image)
        assert out["keypoints"].shape[1:] == (2,) and out["descriptors"].shape[1:] == (256,)
        assert out["keypoints"].dtype == np.float32
        assert len(out["keypoints"]) == len(out["scores"]) == len(out["descriptors"])


def test_blank_image_gives_zero_keypoints_with_trained_model():
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("the packaged demo model is absent (a random network fires on blank images)")
    out = load_frontend(DEFAULT_WEIGHTS, "onnxruntime")(np.zeros((480, 640), np.uint8))
    assert out["keypoints"].shape == (0, 2) and out["descriptors"].shape == (0, 256)


def test_keypoints_stay_in_the_input_frame(peaky_weights):
    fe = load_frontend(peaky_weights, "onnxruntime", {"resize": "240x320", "border": 4})
    image = photos()["coffee_crop_397x603"]
    out = fe(image)
    h, w = image.shape[:2]
    assert len(out["keypoints"]) > 0
    assert out["keypoints"][:, 0].max() <= w - 1 and out["keypoints"][:, 1].max() <= h - 1
    assert out["keypoints"].min() >= 0


def test_auto_prefers_onnxruntime_without_tensorrt():
    if BACKENDS.get("tensorrt").unavailable_reason() is None:
        pytest.skip("TensorRT is available here; auto picks it")
    assert resolve_backend("auto", "torch").name == "onnxruntime"
    assert resolve_backend("auto", "onnx").name == "onnxruntime"
    with pytest.raises(BackendUnavailable, match="no backend can run a TensorRT engine.*tensorrt"):
        resolve_backend("auto", "engine")
    with pytest.raises(BackendUnavailable, match="valid: onnxruntime, openvino, tensorrt, torch"):
        resolve_backend("cuda", "torch")
    with pytest.raises(
        BackendUnavailable,
        match="torch backend runs a weights file .*, not an "
        r"\.onnx; use --backend tensorrt or onnxruntime",
    ):
        resolve_backend("torch", "onnx")
    with pytest.raises(
        BackendUnavailable, match="onnxruntime backend runs an .onnx, not a TensorRT engine"
    ):
        resolve_backend("onnxruntime", "engine")


def test_registry_declarations_drive_names_and_auto_order():
    """The names, their order and the choices come from each class's declarations."""
    assert backend_names() == ["tensorrt", "onnxruntime", "openvino", "torch"]  # 10, 20, 25, 30
    assert backend_choices() == ("auto", "tensorrt", "onnxruntime", "openvino", "torch")
    assert {n: BACKENDS.get(n).sources for n in backend_names()} == {
        "tensorrt": ("onnx", "engine"),
        "onnxruntime": ("onnx",),
        "openvino": ("onnx",),
        "torch": ("torch",),
    }


def test_adding_a_backend_is_one_class_and_its_registration(peaky_weights, tmp_path):
    """A backend registered from outside the package shows in the names, in auto's order
    (here first) and is opened through ``load_frontend`` like the shipped ones."""

    class EchoBackend(Backend):  # runs an .onnx through ONNX Runtime, under another name
        name, sources, auto_rank = "echo-test", ("onnx",), 1

        @classmethod
        def unavailable_reason(cls):
            return None

        @classmethod
        def open(cls, source, options):
            self = cls()
            self.inner = get_backend_class("onnxruntime").open(source, options)
            self.info = self.inner.info
            return self

        def infer(self, image):
            return self.inner.infer(image)

    register_backend(EchoBackend)
    try:
        assert backend_names()[0] == "echo-test" and "echo-test" in backend_choices()
        assert resolve_backend("auto", "onnx") is EchoBackend
        with pytest.raises(ValueError, match="registered twice"):
            register_backend(EchoBackend)
        # weights reach it exported to ONNX, like any backend that runs ONNX
        image = photos()["camera_512"]
        fe = load_frontend(peaky_weights, "auto", {"max_keypoints": 100}, cache_dir=tmp_path)
        ref = load_frontend(
            peaky_weights, "onnxruntime", {"max_keypoints": 100}, cache_dir=tmp_path
        )(image)
        assert fe.backend_name == "echo-test"
        out = fe(image)
        assert len(out["keypoints"]) == 100 and np.array_equal(out["keypoints"], ref["keypoints"])
    finally:
        BACKENDS.remove("echo-test")
    assert "echo-test" not in backend_names()


def test_precision_rules_are_one_line_errors(peaky_weights):
    with pytest.raises(ConfigError, match="unknown precision 'int4'; valid: fp32, fp16, int8"):
        load_frontend(peaky_weights, "onnxruntime", precision="int4")
    with pytest.raises(ConfigError, match="ONNX Runtime runs an .onnx at the precision"):
        load_frontend(peaky_weights, "onnxruntime", precision="fp16")
    with pytest.raises(ConfigError, match="int8 asked for, but this .onnx is an fp32 export"):
        load_frontend(peaky_weights, "onnxruntime", precision="int8")
    with pytest.raises(ConfigError, match="fp16 runs on a CUDA device"):
        load_frontend(peaky_weights, "torch", device="cpu", fp16=True)  # the older spelling
    with pytest.raises(ConfigError, match="torch backend runs fp32 or fp16"):
        load_frontend(peaky_weights, "torch", precision="int8")
    with pytest.raises(ConfigError, match="contradicts"):
        load_frontend(peaky_weights, "torch", precision="int8", fp16=True)


def test_onnxruntime_path_never_imports_torch(peaky_weights, tmp_path):
    import subprocess

    path = export_onnx(load_weights(peaky_weights), tmp_path / "m.onnx", FrontendConfig())
    code = (
        "import sys, numpy as np\n"
        "from superpoint_ros.loader import load_frontend\n"
        f"fe = load_frontend({str(path)!r}, 'auto')\n"
        "out = fe(np.random.default_rng(0).integers(0, 255, (120, 160), dtype=np.uint8))\n"
        "assert fe.backend_name == 'onnxruntime'\n"
        "print('torch' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


@pytest.mark.gpu
def test_torch_cuda_matches_cpu(peaky_weights):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    image = photos()["camera_512"]
    ref = load_frontend(peaky_weights, "torch", device="cpu")(image)
    out = load_frontend(peaky_weights, "torch", device="cuda")(image)
    frac, min_cos = compare(ref, out)
    assert frac >= 0.99 and min_cos >= 0.99
