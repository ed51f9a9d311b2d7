"""NMS modes (``postprocess.nms``): max-pool (strict local maxima) and the re-expansion rounds
that recover what greedy NMS keeps, checked on hand-built heatmaps and against the greedy
reference (``postprocess_greedy``), which is itself pinned by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from superpoint_ros.errors import ConfigError
from superpoint_ros.frontend import FrontendConfig
from superpoint_ros.frontend.config import NMS_MODES
from superpoint_ros.frontend.postprocess import nms
from superpoint_ros.frontend.postprocess_greedy import greedy_nms


def _points(kept: torch.Tensor) -> set[tuple[int, int]]:
    ys, xs = torch.nonzero(kept[0], as_tuple=True)
    return {(int(x), int(y)) for x, y in zip(xs, ys)}


def _chain() -> torch.Tensor:
    # Three points on a row, 4 px apart, falling scores; radius 4. Greedy keeps x=4 (it
    # suppresses x=8), then x=12 (8 px from x=4: outside its window). Max-pool drops x=12: its
    # window holds x=8, stronger, though x=8 is itself suppressed.
    s = torch.zeros(1, 9, 21)
    s[0, 4, 4], s[0, 4, 8], s[0, 4, 12] = 0.9, 0.8, 0.7
    return s


def test_greedy_reference_by_hand():
    kept = greedy_nms(_chain()[0].numpy(), 4)
    assert kept.tolist() == [[4, 4], [12, 4]]
    assert greedy_nms(_chain()[0].numpy(), 4, threshold=0.75).tolist() == [[4, 4]]
    assert greedy_nms(np.zeros((5, 5)), 2).shape == (0, 2)
    # The window is a square (infinity norm): (3, 3) away is suppressed with r = 3.
    s = np.zeros((10, 10))
    s[2, 2], s[5, 5], s[2, 6] = 0.9, 0.5, 0.4
    assert greedy_nms(s, 3).tolist() == [[2, 2], [6, 2]]


def test_maxpool_drops_what_greedy_keeps_and_one_round_recovers_it():
    s = _chain()
    assert _points(nms(s, 4)) == {(4, 4)}
    assert _points(nms(s, 4, rounds=1)) == {(4, 4), (12, 4)}
    assert torch.equal(nms(s, 4, rounds=1)[0, 4, 12], torch.tensor(0.7))


def test_a_longer_chain_needs_a_round_per_two_links():
    s = torch.zeros(1, 5, 45)
    xs = list(range(2, 43, 4))  # 11 points 4 px apart, falling
    for i, x in enumerate(xs):
        s[0, 2, x] = 1.0 - 0.05 * i
    greedy = {(int(x), int(y)) for x, y in greedy_nms(s[0].numpy(), 4)}
    assert greedy == {(x, 2) for x in xs[::2]}  # every other point
    for rounds in range(6):
        got = _points(nms(s, 4, rounds=rounds))
        assert got <= greedy and len(got) == 1 + rounds
    assert _points(nms(s, 4, rounds=5)) == greedy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rounds_stay_inside_greedy_and_reach_it(seed):
    g = torch.Generator().manual_seed(seed)
    # A blurred random field: clusters of near-equal peaks, as a detector heatmap has.
    s = torch.rand(1, 1, 64, 80, generator=g)
    s = torch.nn.functional.avg_pool2d(s, 3, stride=1, padding=1)[:, 0]
    s = torch.where(s > 0.55, s, torch.zeros_like(s))
    greedy = {(int(x), int(y)) for x, y in greedy_nms(s[0].numpy(), 3)}
    previous: set = set()
    for rounds in range(12):
        got = _points(nms(s, 3, rounds=rounds))
        assert previous <= got <= greedy
        previous = got
    assert previous == greedy


def test_nms_modes_and_config():
    assert NMS_MODES["maxpool"] == 0 and NMS_MODES["superglue"] == 2
    assert NMS_MODES["greedy"] > NMS_MODES["superglue"]
    assert FrontendConfig().nms == "maxpool"
    with pytest.raises(ConfigError, match="unknown nms mode 'fast'; valid: maxpool"):
        FrontendConfig(nms="fast")
    assert torch.equal(nms(_chain(), 0, rounds=3), _chain())  # radius 0: no suppression


def test_greedy_mode_exports_to_onnx_and_matches_torch(tmp_path, random_superpoint):
    pytest.importorskip("onnxruntime")
    from superpoint_ros.loader import load_frontend
    from superpoint_ros.model.weights import load_weights
    from superpoint_ros.onnx_export import export_onnx

    pt = random_superpoint(tmp_path, peaky=True)
    config = FrontendConfig(nms="greedy", max_keypoints=500)
    path = export_onnx(load_weights(pt), tmp_path / "greedy.onnx", config)
    rng = np.random.default_rng(1)
    image = (rng.random((60, 84)) * 255).astype(np.uint8)
    ort = load_frontend(path, backend="onnxruntime")(image)
    ref = load_frontend(pt, backend="torch", config={"nms": "greedy", "max_keypoints": 500})(image)
    maxpool = load_frontend(pt, backend="torch", config={"max_keypoints": 500})(image)
    assert np.array_equal(ort["keypoints"], ref["keypoints"])
    assert len(ref["keypoints"]) >= len(maxpool["keypoints"])
    with pytest.raises(ConfigError, match="nms=greedy; re-export"):
        load_frontend(path, backend="onnxruntime", config={"nms": "maxpool"})
