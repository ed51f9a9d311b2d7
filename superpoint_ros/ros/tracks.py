"""Frame-to-frame matching and persistent track ids (pure numpy, no rclpy).

:class:`FrameTracker` is what the node runs per frame: discontinuity check
(:func:`track_break_reason`), matching (``superpoint_ros.matching``), one match per current
keypoint (:func:`one_to_one`) and track ids (:class:`TrackIds`).

A track is born when a keypoint of the previous frame is matched to one of the current frame
and it had no track yet: both get a new id. A keypoint matched to a previous keypoint that
has a track inherits its id. Unmatched keypoints have no track (the chain breaks: if the point
is matched again later, it starts a new track). Ids count up from 0 and wrap at 2**32 (the
``uint32`` of the ``~/matches`` message); only matches that start a track use up ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..matching import MatchConfig, match_descriptors

NO_TRACK = -1
ID_MODULO = 2**32


def one_to_one(matches: np.ndarray, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep, for each current keypoint (column 1), only its closest match.

    ``matches [M, 2]`` int64 ``(i0, i1)`` and ``distances [M]``; returns the kept rows in their
    original order. One-way nearest-neighbour matching can send several previous keypoints to
    one current keypoint; a track needs one predecessor. Ties keep the first listed.
    """
    matches = np.asarray(matches, np.int64).reshape(-1, 2)
    distances = np.asarray(distances, np.float32).reshape(-1)
    if len(matches) != len(distances):
        raise ValueError(f"{len(matches)} matches but {len(distances)} distances")
    order = np.lexsort((np.arange(len(matches)), distances))  # by distance, then position
    _, first = np.unique(matches[order, 1], return_index=True)
    keep = np.sort(order[first])
    return matches[keep], distances[keep]


def track_break_reason(
    previous: tuple[str, int, int, int], current: tuple[str, int, int, int]
) -> tuple[str, str] | None:
    """Why the current frame cannot be matched against the previous one: ``(kind, text)`` with
    kind ``frame_id``, ``size`` or ``stamp``, or ``None`` when it can.

    Each frame is ``(frame_id, height, width, stamp in nanoseconds)``. Tracks break when the
    ``frame_id`` changes (another camera), the image size changes (another stream or a
    reconfigured driver) or the stamp goes backwards (a bag restarted, a clock reset).
    """
    (frame0, h0, w0, t0), (frame1, h1, w1, t1) = previous, current
    if frame0 != frame1:
        return "frame_id", f"frame_id changed from {frame0!r} to {frame1!r}"
    if (h0, w0) != (h1, w1):
        return "size", f"image size changed from {h0}x{w0} to {h1}x{w1}"
    if t1 < t0:
        return "stamp", (
            f"stamp went back by {(t0 - t1) / 1e9:.3f} s, from {t0 / 1e9:.3f} to {t1 / 1e9:.3f} "
            "(a bag restarted or a clock was reset)"
        )
    return None


class TrackIds:
    """Track ids of the previous frame's keypoints, advanced one frame per :meth:`update`."""

    def __init__(self) -> None:
        self._previous = np.zeros(0, np.int64)  # id per previous keypoint, NO_TRACK if none
        self._next_id = 0

    @property
    def next_id(self) -> int:
        """The id the next new track will get."""
        return self._next_id

    def reset(self) -> None:
        """Forget the previous frame (after a camera, size or time discontinuity). Ids keep
        counting, so an old id is never reused for a new track (until the uint32 wraps)."""
        self._previous = np.zeros(0, np.int64)

    def update(self, num_current: int, matches: np.ndarray) -> np.ndarray:
        """Advance to the current frame of ``num_current`` keypoints.

        ``matches [M, 2]`` ``(i0, i1)``: index into the previous frame (the one given to the
        last ``update``) and into the current one; each ``i1`` at most once. Returns the
        track id (uint32) of each match, ``[M]``. The first frame after construction or
        :meth:`reset` must come with no matches.
        """
        matches = np.asarray(matches, np.int64).reshape(-1, 2)
        n_prev = len(self._previous)
        if len(matches):
            i0, i1 = matches[:, 0], matches[:, 1]
            if i0.min() < 0 or i0.max() >= n_prev:
                raise ValueError(f"match index i0 outside the previous {n_prev} keypoints")
            if i1.min() < 0 or i1.max() >= num_current:
                raise ValueError(f"match index i1 outside the current {num_current} keypoints")
            if len(np.unique(i1)) != len(i1):
                raise ValueError("a current keypoint has several matches (use one_to_one)")
            if len(np.unique(i0)) != len(i0):
                raise ValueError("a previous keypoint has several matches")
        ids = self._previous[matches[:, 0]].copy()
        new = ids == NO_TRACK
        count = int(new.sum())
        ids[new] = (self._next_id + np.arange(count, dtype=np.int64)) % ID_MODULO
        self._next_id = (self._next_id + count) % ID_MODULO
        current = np.full(num_current, NO_TRACK, np.int64)
        current[matches[:, 1]] = ids
        self._previous = current
        return ids.astype(np.uint32)


# A frame as far as track continuity is concerned: (frame_id, height, width, stamp ns).
FrameKey = tuple[str, int, int, int]


def frame_key(frame_id: str, shape: tuple[int, ...], stamp_ns: int) -> FrameKey:
    """The key :func:`track_break_reason` compares, from an image's header and array shape."""
    return (frame_id, int(shape[0]), int(shape[1]), int(stamp_ns))


@dataclass(frozen=True)
class TrackStep:
    """What matching one frame against the previous processed frame gave (``M`` matches)."""

    matches: np.ndarray  # [M, 2] int64 (index in the previous frame, index in this one)
    distances: np.ndarray  # [M] float32 descriptor distances (unit vectors: 0..2)
    kpts0: np.ndarray  # [M, 2] float32 (x, y) of the matched keypoints of the previous frame
    kpts1: np.ndarray  # [M, 2] float32 (x, y) of the matched keypoints of this frame
    track_ids: np.ndarray  # [M] uint32 persistent track id of each match
    reset: tuple[str, str] | None  # (kind, text) of track_break_reason when tracks broke here

    @property
    def similarity(self) -> np.ndarray:
        """Cosine similarity ``[M]`` of each match, ``1 - d^2 / 2`` for unit descriptors: the
        ``score`` field of ``~/matches``."""
        return 1.0 - 0.5 * self.distances.astype(np.float32) ** 2


@dataclass
class _Previous:
    key: FrameKey
    keypoints: np.ndarray
    descriptors: np.ndarray


class FrameTracker:
    """Frame-to-frame matching with persistent track ids (pure numpy, no rclpy).

    Each :meth:`step` takes one processed frame's key (:func:`frame_key`), keypoints ``[N, 2]``
    and descriptors ``[N, D]``; it breaks the tracks where :func:`track_break_reason` says
    matching makes no sense, matches the previous frame's descriptors to these with ``match``
    (``None``: matching off, no matches but discontinuities are still detected), keeps one
    match per current keypoint for one-way matching (:func:`one_to_one`) and advances the
    :class:`TrackIds`. A model without descriptors (``D = 0``) gives no matches.
    """

    def __init__(self, match: MatchConfig | None) -> None:
        self.match = match
        self.track_ids = TrackIds()
        self._previous: _Previous | None = None

    def step(self, key: FrameKey, keypoints: np.ndarray, descriptors: np.ndarray) -> TrackStep:
        previous = self._previous
        reset = track_break_reason(previous.key, key) if previous is not None else None
        if reset is not None:
            previous = None
            self.track_ids.reset()
        matches = np.zeros((0, 2), np.int64)
        distances = np.zeros(0, np.float32)
        if previous is not None and self.match is not None and descriptors.shape[1]:
            matches, distances = match_descriptors(previous.descriptors, descriptors, self.match)
            if not self.match.mutual:
                matches, distances = one_to_one(matches, distances)
        track_ids = self.track_ids.update(len(keypoints), matches)
        if previous is not None:
            kpts0 = np.asarray(previous.keypoints, np.float32)[matches[:, 0]]
        else:
            kpts0 = np.zeros((0, 2), np.float32)
        kpts1 = np.asarray(keypoints, np.float32)[matches[:, 1]]
        self._previous = _Previous(key, keypoints, descriptors)
        return TrackStep(matches, distances, kpts0, kpts1, track_ids, reset)
