"""Matching on hand-built descriptors."""

import numpy as np
import pytest

from superpoint_ros.errors import ConfigError
from superpoint_ros.matching import MatchConfig, descriptor_distances, match_descriptors


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_distances_of_unit_vectors():
    d = descriptor_distances(unit([[1, 0]]), unit([[1, 0], [0, 1], [-1, 0]]))
    assert np.allclose(d, [[0, 2**0.5, 2]], atol=1e-6)


def test_mutual_nearest_neighbours():
    d0 = unit([[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0]])
    d1 = unit([[0, 1, 0], [1, 0, 0]])
    matches, dist = match_descriptors(d0, d1)
    # d0[2] also prefers d1[1], but d1[1]'s nearest is d0[0]: not mutual.
    assert matches.tolist() == [[0, 1], [1, 0]]
    assert np.allclose(dist, 0, atol=1e-3)
    loose, _ = match_descriptors(d0, d1, MatchConfig(mutual=False))
    assert loose.tolist() == [[0, 1], [1, 0], [2, 1]]


def test_ratio_and_distance_threshold():
    d0 = unit([[1, 0], [0.70, 0.71]])
    d1 = unit([[1, 0], [0, 1]])
    # d0[1] is almost equally far from both: the ratio test removes it.
    m, _ = match_descriptors(d0, d1, MatchConfig(mutual=False, ratio=0.8))
    assert m.tolist() == [[0, 0]]
    m, _ = match_descriptors(d0, d1, MatchConfig(mutual=False, max_distance=0.5))
    assert m.tolist() == [[0, 0]]


def test_empty_inputs():
    m, d = match_descriptors(np.zeros((0, 8), np.float32), unit(np.ones((3, 8))))
    assert m.shape == (0, 2) and d.shape == (0,)


def test_bad_config():
    with pytest.raises(ConfigError):
        MatchConfig(ratio=1.5)
