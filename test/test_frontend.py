"""Front-end conventions and edge cases, on hand-built tensors and images."""

import sys

import numpy as np
import pytest
import torch

from superpoint_ros.errors import ConfigError, InputError
from superpoint_ros.frontend import FrontendConfig, finalize, prepare
from superpoint_ros.frontend.conventions import descriptor_cell_coords
from superpoint_ros.frontend.postprocess import (
    depth_to_space,
    detector_scores,
    nms,
    refine_subpixel,
    remove_border,
    sample_descriptors,
    top_k,
)


def test_depth_to_space_channel_is_row_major_in_cell():
    cells = torch.zeros(1, 64, 2, 3)
    cells[0, 8 * 3 + 5, 1, 2] = 1.0  # row 3, column 5 of cell (1, 2)
    full = depth_to_space(cells)
    assert full.shape == (1, 16, 24)
    ys, xs = torch.nonzero(full[0], as_tuple=True)
    assert (ys.item(), xs.item()) == (8 + 3, 16 + 5)


def test_detector_scores_softmax_drops_dustbin():
    logits = torch.zeros(1, 65, 1, 1)
    logits[0, 64] = 10.0  # almost surely "no keypoint"
    logits[0, 9] = 10.0  # pixel (row 1, col 1) as likely as the dustbin
    prob = detector_scores(logits)
    assert prob.shape == (1, 8, 8)
    assert prob[0, 1, 1] == pytest.approx(0.5, abs=1e-3)
    assert float(prob.sum()) == pytest.approx(0.5, abs=1e-3)


def test_nms_keeps_local_maxima_only():
    s = torch.zeros(1, 9, 9)
    s[0, 4, 4] = 0.9
    s[0, 4, 6] = 0.5  # 2 px away: suppressed with r=2, kept with r=1
    s[0, 0, 0] = 0.3
    out2 = nms(s, 2)
    assert torch.nonzero(out2[0]).tolist() == [[0, 0], [4, 4]]
    out1 = nms(s, 1)
    assert torch.nonzero(out1[0]).tolist() == [[0, 0], [4, 4], [4, 6]]
    assert torch.equal(nms(s, 0), s)


def test_remove_border():
    s = torch.ones(1, 6, 7)
    out = remove_border(s, 2)
    assert out.shape == s.shape
    assert out[0].sum() == 2 * 3  # rows 2..3, cols 2..4
    assert out[0, 2:4, 2:5].min() == 1


def test_top_k_pads_with_empty_slots():
    s = torch.zeros(1, 2, 3)
    s[0, 1, 2] = 0.7  # x=2, y=1
    s[0, 0, 1] = 0.4  # x=1, y=0
    values, kpts = top_k(s, 10)  # more slots than pixels
    assert values.shape == (1, 10) and kpts.shape == (1, 10, 2)
    assert values[0, :2].tolist() == pytest.approx([0.7, 0.4])
    assert kpts[0, :2].tolist() == [[2, 1], [1, 0]]
    assert values[0, 2:].abs().sum() == 0 and kpts[0, 2:].abs().sum() == 0


def test_subpixel_moves_towards_heavier_neighbour():
    prob = torch.zeros(1, 5, 5)
    prob[0, 2, 2] = 0.6
    prob[0, 2, 3] = 0.2  # right neighbour: x offset = 0.2 / 0.8 = 0.25
    out = refine_subpixel(prob, torch.tensor([[[2.0, 2.0]]]))
    assert out[0, 0].tolist() == pytest.approx([2.25, 2.0])


def test_descriptor_cell_coords_center_convention():
    # Cell c covers pixels 8c..8c+7; its descriptor sits at pixel 8c + 3.5.
    pts = torch.tensor([[3.5, 3.5], [11.5, 3.5], [0.0, 0.0]])
    uv = descriptor_cell_coords(pts, (4, 4), "center")
    assert np.allclose(uv.numpy(), [[0, 0], [1, 0], [-0.4375, -0.4375]])


def test_descriptor_cell_coords_superglue_convention():
    # SuperGlue: pixel 3.5 is cell 0, pixel 8*Wc - 4.5 + 3.5 = 8*Wc - 1 is the last cell.
    pts = torch.tensor([[3.5, 3.5], [31.0, 31.0]])
    uv = descriptor_cell_coords(pts, (4, 4), "superglue")
    assert np.allclose(uv.numpy(), [[0, 0], [3, 3]], atol=1e-6)


def test_sample_descriptors_interpolates_between_cells():
    dense = torch.zeros(1, 2, 1, 2)
    dense[0, 0, 0, 0] = 1.0  # cell 0 points along axis 0
    dense[0, 1, 0, 1] = 1.0  # cell 1 along axis 1
    kpts = torch.tensor([[[3.5, 3.5], [7.5, 3.5], [11.5, 3.5], [100.0, 3.5]]])
    d = sample_descriptors(dense, kpts, "center")
    h = 2**-0.5
    assert np.allclose(d[0].numpy(), [[1, 0], [h, h], [0, 1], [0, 1]], atol=1e-6)


def test_prepare_pads_to_multiple_of_8_and_keeps_size():
    img = np.full((13, 21), 200, np.uint8)
    p = prepare(img, None)
    assert p.tensor.shape == (1, 1, 16, 24) and p.tensor.dtype == np.float32
    assert p.original_size == p.processed_size == (13, 21)
    assert np.allclose(p.tensor, 200 / 255)  # replicated edges


def test_prepare_tiny_and_colour_images():
    assert prepare(np.zeros((1, 1), np.uint8), None).tensor.shape == (1, 1, 8, 8)
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in BGR -> gray 76 (0.299 * 255)
    assert prepare(bgr, None).tensor[0, 0, 0, 0] * 255 == pytest.approx(76, abs=1)


def test_prepare_resize_maps_keypoints_back():
    p = prepare(np.zeros((100, 200), np.uint8), (48, 96))
    assert p.tensor.shape == (1, 1, 48, 96)
    out = finalize(
        {
            "keypoints": np.array([[47.5, 23.5]], np.float32),
            "scores": np.array([0.5], np.float32),
            "descriptors": np.ones((1, 4), np.float32) / 2,
        },
        p,
        FrontendConfig(border=0),
    )
    # Centre of the resized image maps to the centre of the original one: (99.5, 49.5).
    assert out["keypoints"].tolist() == [[99.5, 49.5]]


def test_finalize_drops_empty_slots_and_padding_border():
    p = prepare(np.zeros((20, 20), np.uint8), None)  # padded to 24x24
    kpts = np.array([[10, 10], [18, 10], [21, 21], [0, 0]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.0], np.float32)
    out = finalize({"keypoints": kpts, "scores": scores}, p, FrontendConfig(border=2))
    # (18, 10) is 1 px from the original right edge (x = 19); (21, 21) is in the padding.
    assert out["keypoints"].tolist() == [[10, 10]]
    assert out["descriptors"].shape == (1, 0)


@pytest.mark.parametrize(
    "image",
    [np.zeros((0, 5), np.uint8), np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8)],
)
def test_bad_images_raise_input_error(image):
    with pytest.raises(InputError):
        prepare(image, None)


def test_config_validation():
    with pytest.raises(ConfigError):
        FrontendConfig(max_keypoints=5000)  # beyond TensorRT's top-k limit
    with pytest.raises(ConfigError):
        FrontendConfig(resize="480x641")
    assert FrontendConfig(resize="480x640").resize == (480, 640)


def test_preprocess_imports_no_torch():
    import subprocess

    code = (
        "import sys, numpy as np; from superpoint_ros.frontend import prepare;"
        "import superpoint_ros.backends, superpoint_ros.matching, superpoint_ros.geometry;"
        "prepare(np.zeros((9, 9), np.uint8), None);"
        "bad = [m for m in ('torch', 'onnxruntime', 'tensorrt') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
