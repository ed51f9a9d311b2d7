"""Every graph the project exports stays within TensorRT's ONNX parser list
(``superpoint_ros.backends.tensorrt_ops``), as exported and as the FP16 network graph TensorRT
11 is given; the checker itself is shown to catch each rule on small hand-built graphs.

Variants: SuperPoint and MagicPoint; the three backbones; the three NMS modes; every descriptor
sampling rule; sub-pixel refinement; the largest keypoint budget; the bare network; the INT8
Q/DQ model for TensorRT (when the quantiser is present). No TensorRT runs here.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
helper = onnx.helper

from superpoint_ros.backends.onnxruntime_backend import import_onnxruntime  # noqa: E402
from superpoint_ros.backends.tensorrt_build import check_build, has_qdq  # noqa: E402
from superpoint_ros.backends.tensorrt_fp16 import fp16_network_graph  # noqa: E402
from superpoint_ros.backends.tensorrt_ops import (  # noqa: E402
    TENSORRT_ONNX_OPS,
    TOPK_MAX_K,
    tensorrt_problems,
)
from superpoint_ros.frontend.config import NMS_MODES, FrontendConfig  # noqa: E402
from superpoint_ros.frontend.conventions import DESCRIPTOR_SAMPLINGS  # noqa: E402
from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet  # noqa: E402
from superpoint_ros.model.weights import (  # noqa: E402
    checkpoint_dict,
    load_weights,
    save_checkpoint,
)
from superpoint_ros.onnx_export import export_onnx  # noqa: E402
from superpoint_ros.onnx_graph import network_nodes  # noqa: E402

# name -> (model config, front-end config, bare network)
VARIANTS = {
    "superpoint": (ModelConfig(), FrontendConfig(), False),
    "magicpoint": (ModelConfig(descriptor_dim=0), FrontendConfig(), False),
    "vgg_bn": (ModelConfig(backbone="vgg_bn", head_norm="bn"), FrontendConfig(), False),
    "mobile": (ModelConfig(backbone="mobile"), FrontendConfig(), False),
    "subpixel": (ModelConfig(), FrontendConfig(subpixel=True), False),
    "max_keypoints": (ModelConfig(), FrontendConfig(max_keypoints=TOPK_MAX_K), False),
    "bare_network": (ModelConfig(), FrontendConfig(), True),
    **{
        f"nms_{mode}": (ModelConfig(), FrontendConfig(nms=mode), False)
        for mode in NMS_MODES
        if mode != "maxpool"
    },
    **{
        f"sampling_{rule}": (ModelConfig(), FrontendConfig(descriptor_sampling=rule), False)
        for rule in DESCRIPTOR_SAMPLINGS
        if rule != "center"  # the default, exported by "superpoint"
    },
}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants")
    out = {}
    for name, (model_config, config, bare) in VARIANTS.items():
        torch.manual_seed(0)
        net = SuperPointNet(model_config)
        weights = load_weights(save_checkpoint(folder / f"{name}.pt", checkpoint_dict(net)))
        out[name] = export_onnx(weights, folder / f"{name}.onnx", config, bare_network=bare)
    return out


def test_variants_cover_every_option():
    names = set(VARIANTS)
    assert {f"nms_{m}" for m in NMS_MODES} - names == {"nms_maxpool"}  # the default
    assert {f"sampling_{r}" for r in DESCRIPTOR_SAMPLINGS} - names == {"sampling_center"}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_export_parses_in_tensorrt(exports, name):
    model = onnx.load(str(exports[name]))
    assert tensorrt_problems(model) == []
    used = {n.op_type for n in model.graph.node}
    assert used <= TENSORRT_ONNX_OPS, used - TENSORRT_ONNX_OPS
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[:2]] == [1, 1]
    assert [d.dim_param for d in dims[2:]] == ["height", "width"]  # the profile's dynamic axes


@pytest.mark.parametrize("name", [n for n, v in VARIANTS.items() if not v[2]])
def test_every_fp16_graph_parses_and_keeps_post_processing_fp32(exports, name):
    model = onnx.load(str(exports[name]))
    half = fp16_network_graph(model)
    onnx.checker.check_model(half, full_check=True)
    assert tensorrt_problems(half) == []
    typed = onnx.shape_inference.infer_shapes(half).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*typed.value_info, *typed.input)}
    types.update({t.name: t.data_type for t in typed.initializer})
    net = network_nodes(half)
    net_ids = {id(n) for n in net}
    convs = [n for n in net if n.op_type == "Conv"]
    assert convs and all(types[n.input[1]] == 10 for n in convs)  # FP16 weights
    post = [n for n in half.graph.node if id(n) not in net_ids and n.op_type != "Cast"]
    float_inputs = [types.get(i) for n in post for i in n.input if types.get(i) in (1, 10)]
    assert float_inputs and set(float_inputs) == {1}  # post-processing reads FP32 only
    assert {o.type.tensor_type.elem_type for o in half.graph.output} == {1}
    assert half.graph.input[0].type.tensor_type.elem_type == 1


def test_fp16_graph_finds_the_same_keypoints_in_onnx_runtime(exports):
    """ONNX Runtime runs the FP16 network graph (at two sizes: the axes stay dynamic)."""
    ort = import_onnxruntime()
    skimage_data = pytest.importorskip("skimage.data")
    model = onnx.load(str(exports["superpoint"]))
    fp32 = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    fp16 = ort.InferenceSession(
        fp16_network_graph(model).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    photo = skimage_data.camera().astype(np.float32) / 255.0
    for h, w in ((240, 320), (480, 512)):
        image = np.ascontiguousarray(photo[:h, :w])[None, None]
        ref = dict(zip(["keypoints", "scores", "descriptors"], fp32.run(None, {"image": image})))
        out = dict(zip(["keypoints", "scores", "descriptors"], fp16.run(None, {"image": image})))
        keep_ref, keep_out = ref["scores"] > 0, out["scores"] > 0
        assert keep_ref.sum() > 50
        d = np.linalg.norm(
            ref["keypoints"][keep_ref][:, None] - out["keypoints"][keep_out][None], axis=-1
        )
        assert (d.min(1) <= 0.5).mean() >= 0.95
        nearest = d.argmin(1)
        cos = np.sum(ref["descriptors"][keep_ref] * out["descriptors"][keep_out][nearest], axis=1)[
            d.min(1) <= 0.5
        ]
        assert np.median(cos) >= 0.99


def test_qdq_model_for_tensorrt_parses(exports, tmp_path):
    """The INT8 model ``superpoint quantize --target tensorrt`` writes: within the list, every
    zero point int8 0, and accepted by build-engine's checks as INT8 by default."""
    pipeline = pytest.importorskip(
        "superpoint_training.deploy.pipeline", reason="the INT8 quantiser is not in this tree"
    )
    cv2 = pytest.importorskip("cv2")
    skimage_data = pytest.importorskip("skimage.data")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, image in enumerate((skimage_data.camera(), skimage_data.coins(), skimage_data.moon())):
        cv2.imwrite(str(photos / f"{i}.png"), image)
    out = pipeline.quantize_onnx(
        exports["superpoint"], tmp_path / "sp.int8.onnx", photos, target="tensorrt", count=3,
        size=(120, 160),
    )  # fmt: skip
    model = onnx.load(str(out))
    assert has_qdq(model)
    assert tensorrt_problems(model) == []
    assert check_build(out).precision == "int8"


def _graph(nodes, inputs=None, initializers=(), opset=17, outputs=("y",)):
    inputs = inputs or [
        helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 1, "height", "width"])
    ]
    graph = helper.make_graph(
        nodes, "g", inputs,
        [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs],
        initializer=list(initializers),
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _const(name, value):
    return onnx.numpy_helper.from_array(np.asarray(value), name)


def test_checker_catches_each_rule():
    ok = _graph([helper.make_node("Relu", ["image"], ["y"])])
    assert tensorrt_problems(ok) == []
    assert tensorrt_problems(_graph([helper.make_node("Relu", ["image"], ["y"])], opset=18)) == [
        "opset 18 > 17 (TensorRT 8.5's parser)"
    ]
    nonzero = _graph([helper.make_node("NonZero", ["image"], ["y"], name="nz")])
    assert tensorrt_problems(nonzero) == [
        "NonZero nz: operator not in TensorRT's ONNX parser list"
    ]
    topk = [helper.make_node("TopK", ["image", "k"], ["y", "i"], name="top")]
    assert tensorrt_problems(_graph(topk, initializers=[_const("k", np.array([4000]))])) == [
        f"TopK top: K=4000 > {TOPK_MAX_K}"
    ]
    k_input = [
        helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 1, 8, 8]),
        helper.make_tensor_value_info("k", onnx.TensorProto.INT64, [1]),
    ]
    assert tensorrt_problems(_graph(topk, inputs=k_input))[0] == (
        "TopK top: input 1 must be a constant"
    )
    qdq = [
        helper.make_node("QuantizeLinear", ["image", "s", "z"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq"),
    ]
    asym = _graph(qdq, initializers=[_const("s", np.float32(0.1)), _const("z", np.uint8(128))])
    assert tensorrt_problems(asym) == [
        "QuantizeLinear q: zero point must be int8 zeros (symmetric)",
        "DequantizeLinear dq: zero point must be int8 zeros (symmetric)",
    ]
    sym = _graph(qdq, initializers=[_const("s", np.float32(0.1)), _const("z", np.int8(0))])
    assert tensorrt_problems(sym) == [] and has_qdq(sym)
    pool = [helper.make_node("MaxPool", ["image"], ["y", "idx"], kernel_shape=[2, 2], name="p")]
    assert tensorrt_problems(_graph(pool)) == ["MaxPool p: the Indices output is not supported"]
    custom = helper.make_node("Foo", ["image"], ["y"], domain="com.example", name="f")
    assert tensorrt_problems(_graph([custom]))[-1] == "Foo f: domain 'com.example'"
    batch = [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [2, 1, 8, 8])]
    assert tensorrt_problems(_graph([helper.make_node("Relu", ["image"], ["y"])], batch)) == [
        "input image must be [1, 1, H, W] (batch 1, one channel, static)"
    ]
