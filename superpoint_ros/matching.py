"""Descriptor matching (numpy): mutual nearest neighbours, optional ratio test and distance
threshold. Descriptors are L2-normalised, so distance = sqrt(2 - 2 cos)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class MatchConfig:
    mutual: bool = True  # keep a match only if each point is the other's nearest neighbour
    ratio: float | None = None  # Lowe's ratio test on distances (e.g. 0.8); None disables
    max_distance: float | None = None  # reject matches farther than this; None disables

    def __post_init__(self):
        if self.ratio is not None and not 0 < self.ratio <= 1:
            raise ConfigError("match ratio must be in (0, 1]")
        if self.max_distance is not None and not 0 < self.max_distance <= 2:
            raise ConfigError("match max_distance must be in (0, 2] (unit descriptors)")


def descriptor_distances(desc0: np.ndarray, desc1: np.ndarray) -> np.ndarray:
    """Distances ``[N0, N1]`` between L2-normalised descriptors ``[N0, D]`` and ``[N1, D]``."""
    sim = np.asarray(desc0, np.float32) @ np.asarray(desc1, np.float32).T
    return np.sqrt(np.clip(2.0 - 2.0 * sim, 0.0, None))


def match_descriptors(
    desc0: np.ndarray, desc1: np.ndarray, config: MatchConfig = MatchConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Match descriptors ``[N0, D]`` to ``[N1, D]``.

    Returns ``matches [M, 2]`` int64 index pairs ``(i0, i1)`` sorted by ``i0`` and their
    ``distances [M]`` float32.
    """
    n0, n1 = len(desc0), len(desc1)
    if n0 == 0 or n1 == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    dist = descriptor_distances(desc0, desc1)
    nn01 = np.argmin(dist, axis=1)
    best = dist[np.arange(n0), nn01]
    keep = np.ones(n0, bool)
    if config.mutual:
        nn10 = np.argmin(dist, axis=0)
        keep &= nn10[nn01] == np.arange(n0)
    if config.ratio is not None and n1 > 1:
        second = np.partition(dist, 1, axis=1)[:, 1]
        keep &= best < config.ratio * second
    if config.max_distance is not None:
        keep &= best <= config.max_distance
    i0 = np.nonzero(keep)[0]
    matches = np.stack([i0, nn01[i0]], axis=1).astype(np.int64)
    return matches, best[i0].astype(np.float32)
