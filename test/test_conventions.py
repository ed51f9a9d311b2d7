"""Descriptor-sampling rules (``frontend/conventions.py``), one per origin, pinned two ways:

* ``descriptor_cell_coords`` against numbers worked out by hand from each origin's formula;
* ``sample_descriptors`` against the origin's own sampling call rebuilt independently here:
  ``torch.nn.functional.grid_sample`` with the grid and ``align_corners`` the origin passes
  (Magic Leap's demo, SuperGlue/LightGlue, eric-yyjau), and a NumPy version of TensorFlow 1's
  ``resize_bilinear`` (no half-pixel centres) for rpautrat's TF head.

Then: each layout defaults to its origin's rule, a front-end option overrides it, and an
exported ONNX graph carries (and records) the rule it was exported with.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from superpoint_ros.errors import ConfigError
from superpoint_ros.frontend import FrontendConfig
from superpoint_ros.frontend.conventions import (
    DESCRIPTOR_SAMPLINGS,
    LAYOUT_SAMPLING,
    descriptor_cell_coords,
    resolve_conventions,
    sampling_rule,
    validate_conventions,
)
from superpoint_ros.frontend.postprocess import sample_descriptors
from superpoint_ros.loader import load_frontend

# Wc = Hc = 4 cells (a 32 x 32 image). (x, expected u), worked out by hand per rule.
HAND = {
    # (x + 0.5) / 8 - 0.5
    "center": [(3.5, 0.0), (11.5, 1.0), (0.0, -0.4375), (31.0, 3.4375)],
    # x (Wc - 1) / (8 Wc) = 3x / 32
    "magicleap_demo": [(0.0, 0.0), (8.0, 0.75), (16.0, 1.5), (32.0, 3.0)],
    "eric_yyjau": [(0.0, 0.0), (8.0, 0.75), (16.0, 1.5), (32.0, 3.0)],
    # x / 8 - 0.5
    "magicleap_demo_torch13": [(0.0, -0.5), (4.0, 0.0), (8.0, 0.5), (28.0, 3.0)],
    # (x - 3.5)(Wc - 1) / (8 Wc - 4.5) = 3 (x - 3.5) / 27.5
    "superglue": [(3.5, 0.0), (31.0, 3.0), (17.25, 1.5), (0.0, -21 / 55)],
    # x / 8
    "rpautrat_tf": [(0.0, 0.0), (12.0, 1.5), (24.0, 3.0), (31.0, 3.875)],
}


def test_every_rule_is_pinned_by_hand():
    assert set(HAND) == set(DESCRIPTOR_SAMPLINGS)


@pytest.mark.parametrize("name", sorted(HAND))
def test_cell_coords_match_the_hand_derived_formula(name):
    xs = torch.tensor([x for x, _ in HAND[name]])
    expected = np.array([u for _, u in HAND[name]])
    pts = torch.stack([xs, xs], dim=-1)  # square map: v follows the same formula
    uv = descriptor_cell_coords(pts, (4, 4), name).numpy()
    assert np.allclose(uv[:, 0], expected, atol=1e-6)
    assert np.allclose(uv[:, 1], expected, atol=1e-6)


def test_rows_use_the_map_height():
    # A 2 x 4 map (16 x 32 image): v of y = 8 is 8 * (2 - 1) / 16 = 0.5 for Magic Leap's demo,
    # (8 - 3.5) / (16 - 4.5) = 0.3913 for SuperGlue.
    pts = torch.tensor([[8.0, 8.0]])
    assert descriptor_cell_coords(pts, (2, 4), "magicleap_demo")[0, 1] == pytest.approx(0.5)
    assert descriptor_cell_coords(pts, (2, 4), "superglue")[0, 1] == pytest.approx(4.5 / 11.5)


def _grid(points: torch.Tensor, w: int, h: int, name: str) -> torch.Tensor:
    """The normalised grid each origin hands to grid_sample (from its documented formula)."""
    x, y = points[:, 0], points[:, 1]
    if name in ("magicleap_demo", "magicleap_demo_torch13", "eric_yyjau"):
        gx, gy = x / (w / 2) - 1, y / (h / 2) - 1
    elif name == "superglue":
        gx = (x - 3.5) / (w - 4.5) * 2 - 1
        gy = (y - 3.5) / (h - 4.5) * 2 - 1
    else:  # center: rpautrat's PyTorch port
        gx, gy = (x + 0.5) / w * 2 - 1, (y + 0.5) / h * 2 - 1
    return torch.stack([gx, gy], dim=-1).view(1, 1, -1, 2)


ALIGN_CORNERS = {"magicleap_demo": True, "eric_yyjau": True, "superglue": True,
                 "magicleap_demo_torch13": False, "center": False}  # fmt: skip


def _tf1_resize_bilinear_at(desc: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """TensorFlow 1 ``resize_bilinear`` (align_corners=False, half_pixel_centers=False) of
    ``desc [D, Hc, Wc]`` by 8, read at integer pixels: source = dst / 8, upper neighbour
    clamped to the last row/column."""
    d, hc, wc = desc.shape
    out = []
    for px, py in zip(x, y):
        sx, sy = px / 8.0, py / 8.0
        x0, y0 = int(np.floor(sx)), int(np.floor(sy))
        x1, y1 = min(x0 + 1, wc - 1), min(y0 + 1, hc - 1)
        fx, fy = sx - x0, sy - y0
        top = desc[:, y0, x0] * (1 - fx) + desc[:, y0, x1] * fx
        bottom = desc[:, y1, x0] * (1 - fx) + desc[:, y1, x1] * fx
        out.append(top * (1 - fy) + bottom * fy)
    return np.stack(out)


@pytest.mark.parametrize("name", sorted(DESCRIPTOR_SAMPLINGS))
def test_sample_descriptors_equals_the_origins_own_sampling(name):
    g = torch.Generator().manual_seed(5)
    hc, wc, d = 6, 10, 16
    raw = torch.randn(1, d, hc, wc, generator=g)
    # Keypoints as the origins produce them: integer pixels 4 px or more from the edge.
    xs = torch.randint(4, 8 * wc - 4, (300,), generator=g).float()
    ys = torch.randint(4, 8 * hc - 4, (300,), generator=g).float()
    pts = torch.stack([xs, ys], dim=-1)
    ours = sample_descriptors(raw, pts[None], name)[0].numpy()
    if name == "rpautrat_tf":
        ref = _tf1_resize_bilinear_at(raw[0].numpy(), xs.numpy(), ys.numpy())
    else:
        unit = F.normalize(raw, dim=1)
        grid = _grid(pts, 8 * wc, 8 * hc, name)
        ref = F.grid_sample(unit, grid, mode="bilinear", align_corners=ALIGN_CORNERS[name])
        ref = ref.reshape(d, -1).T.numpy()
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    assert np.abs(ours - ref).max() < 1e-5


def test_rpautrat_tf_interpolates_the_raw_map_then_normalises():
    # Two cells: (3, 0) with norm 3 and (0, 1) with norm 1. Halfway (x = 4, u = 0.5): the raw
    # mean (1.5, 0.5) normalised, not the mean of the unit vectors (1, 1) / sqrt(2).
    dense = torch.tensor([[[[3.0, 0.0]], [[0.0, 1.0]]]])  # [1, 2, 1, 2]
    d = sample_descriptors(dense, torch.tensor([[[4.0, 0.0]]]), "rpautrat_tf")[0, 0]
    assert d.tolist() == pytest.approx([1.5 / 2.5**0.5, 0.5 / 2.5**0.5])
    # Magic Leap's demo (torch >= 1.3) reads the same halfway point at x = 8 from unit vectors.
    d = sample_descriptors(dense, torch.tensor([[[8.0, 0.0]]]), "magicleap_demo_torch13")[0, 0]
    assert d.tolist() == pytest.approx([2**-0.5, 2**-0.5])


def test_layout_defaults_and_legacy_names():
    assert LAYOUT_SAMPLING == {
        "magicleap": "magicleap_demo",
        "eric_yyjau": "eric_yyjau",
        "rpautrat": "rpautrat_tf",
    }
    # Files written before the split said "magicleap" for the SuperGlue formula.
    assert validate_conventions({"descriptor_sampling": "magicleap"}) == {
        "descriptor_sampling": "superglue"
    }
    assert resolve_conventions({"descriptor_sampling": "center"}, None)["descriptor_sampling"] == (
        "center"
    )
    assert resolve_conventions({}, "superglue")["descriptor_sampling"] == "superglue"
    with pytest.raises(ValueError, match="valid: center, magicleap_demo"):
        sampling_rule("bicubic")
    with pytest.raises(ConfigError, match="unknown descriptor_sampling 'bicubic'"):
        FrontendConfig(descriptor_sampling="bicubic")
    assert FrontendConfig(descriptor_sampling="magicleap").descriptor_sampling == "superglue"


def _photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = (rng.random((48, 64)) * 255).astype(np.uint8)
    img[10:30, 20:40] = 255
    return img


def test_option_overrides_the_rule_and_export_carries_it(tmp_path, random_superpoint):
    pytest.importorskip("onnxruntime")
    from superpoint_ros.model.weights import load_weights
    from superpoint_ros.onnx_export import export_onnx

    pt = random_superpoint(tmp_path, peaky=True)
    image = _photo()
    default = load_frontend(pt, backend="torch")
    assert default.backend.info.conventions["descriptor_sampling"] == "center"
    ml = load_frontend(pt, backend="torch", config={"descriptor_sampling": "magicleap_demo"})
    assert ml.config.descriptor_sampling == "magicleap_demo"
    a, b = default(image), ml(image)
    assert np.array_equal(a["keypoints"], b["keypoints"])
    assert not np.allclose(a["descriptors"], b["descriptors"], atol=1e-3)

    config = FrontendConfig(descriptor_sampling="magicleap_demo")
    onnx_path = export_onnx(load_weights(pt), tmp_path / "ml.onnx", config)
    exported = load_frontend(onnx_path, backend="onnxruntime")
    assert exported.backend.info.conventions["descriptor_sampling"] == "magicleap_demo"
    assert exported.config.descriptor_sampling == "magicleap_demo"
    c = exported(image)
    assert np.array_equal(c["keypoints"], b["keypoints"])
    assert np.abs(c["descriptors"] - b["descriptors"]).max() < 1e-4
    # Same rule asked again: fine; another rule: re-export, said in one line.
    load_frontend(
        onnx_path, backend="onnxruntime", config={"descriptor_sampling": "magicleap_demo"}
    )
    with pytest.raises(ConfigError, match="descriptor_sampling=magicleap_demo; re-export"):
        load_frontend(onnx_path, backend="onnxruntime", config={"descriptor_sampling": "center"})
