"""``superpoint_ros.ros.tracks``: track ids, discontinuities and the node's frame-to-frame
matching (:class:`FrameTracker`), without rclpy. Hand-computed cases: descriptors are unit
vectors at chosen angles, so which pairs are (mutual) nearest neighbours is known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from superpoint_ros.matching import MatchConfig
from superpoint_ros.ros.tracks import (
    FrameTracker,
    TrackIds,
    frame_key,
    one_to_one,
    track_break_reason,
)


def test_track_ids_hand_computed():
    t = TrackIds()
    assert t.update(3, np.zeros((0, 2))).tolist() == []  # first frame: nothing to match
    # frame 2 (4 keypoints): prev 0 -> 1, prev 2 -> 3 start tracks 0 and 1
    assert t.update(4, [[0, 1], [2, 3]]).tolist() == [0, 1]
    # frame 3: prev 3 continues track 1, prev 1 continues track 0, prev 0 (no track) starts 2
    assert t.update(3, [[3, 0], [1, 1], [0, 2]]).tolist() == [1, 0, 2]
    # frame 4: only current keypoint 0 of frame 3 (track 1) continues; tracks 0 and 2 break
    assert t.update(5, [[0, 4]]).tolist() == [1]
    # frame 5: keypoint 4 continues track 1; keypoint 0 had no track: a new one, 3 (0 and 2
    # are never reused)
    assert t.update(2, [[4, 0], [0, 1]]).tolist() == [1, 3]
    assert t.next_id == 4
    t.reset()
    assert t.update(2, np.zeros((0, 2))).tolist() == []
    assert t.update(1, [[1, 0]]).tolist() == [4]  # ids keep counting after a reset


def test_track_ids_reject_inconsistent_matches_and_wrap():
    t = TrackIds()
    t.update(3, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="i0 outside"):
        t.update(3, [[3, 0]])
    with pytest.raises(ValueError, match="i1 outside"):
        t.update(3, [[0, 3]])
    with pytest.raises(ValueError, match="several matches"):
        t.update(3, [[0, 1], [2, 1]])
    t._next_id = 2**32 - 1  # near the uint32 end: ids wrap to 0
    assert t.update(3, [[0, 0], [1, 1]]).tolist() == [2**32 - 1, 0]


def test_track_break_reasons_hand_computed():
    a = ("cam", 480, 640, 5_000_000_000)
    assert track_break_reason(a, ("cam", 480, 640, 5_000_000_000)) is None  # same stamp: fine
    assert track_break_reason(a, ("cam", 480, 640, 6_000_000_000)) is None
    assert track_break_reason(a, ("cam2", 480, 640, 6_000_000_000)) == (
        "frame_id",
        "frame_id changed from 'cam' to 'cam2'",
    )
    assert track_break_reason(a, ("cam", 240, 320, 6_000_000_000)) == (
        "size",
        "image size changed from 480x640 to 240x320",
    )
    kind, text = track_break_reason(a, ("cam", 480, 640, 3_500_000_000))
    assert kind == "stamp" and text.startswith("stamp went back by 1.500 s, from 5.000 to 3.500")


def test_one_to_one_keeps_the_closest_match_per_current_keypoint():
    matches = np.array([[0, 5], [1, 5], [2, 7], [3, 5], [4, 7]])
    distances = np.array([0.9, 0.2, 0.4, 0.2, 0.1], np.float32)
    kept, d = one_to_one(matches, distances)
    assert kept.tolist() == [[1, 5], [4, 7]]  # tie 0.2 for 5: the first listed wins
    assert d.tolist() == pytest.approx([0.2, 0.1])


def _unit(*degrees: float) -> np.ndarray:
    """2-D unit descriptors ``[N, 2]`` at the given angles."""
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


def _kpts(n: int, offset: float = 0.0) -> np.ndarray:
    return np.array([[10.0 * i + offset, 5.0 * i] for i in range(n)], np.float32)


def test_frame_key_from_header_parts():
    assert frame_key("cam", (480, 640, 3), 7) == ("cam", 480, 640, 7)
    assert frame_key("cam", (480, 640), 7) == ("cam", 480, 640, 7)


def test_frame_tracker_mutual_and_one_way_by_hand():
    # previous 0 at 0 deg, 1 at 60; current 0 at 40, 1 at 65. prev 0 -> cur 0 (40 vs 65 deg
    # away), prev 1 -> cur 1 (5 deg); cur 0 -> prev 1 (20 vs 40): so (0, 0) is one-way only.
    prev, cur = _unit(0, 60), _unit(40, 65)
    for mutual, want in ((True, [[1, 1]]), (False, [[0, 0], [1, 1]])):
        tracker = FrameTracker(MatchConfig(mutual=mutual))
        first = tracker.step(("cam", 48, 64, 1), _kpts(2), prev)
        assert first.matches.shape == (0, 2) and first.track_ids.shape == (0,)
        assert first.reset is None and first.kpts0.shape == (0, 2)
        step = tracker.step(("cam", 48, 64, 2), _kpts(2, 1.0), cur)
        assert step.matches.tolist() == want and step.reset is None
        assert step.track_ids.tolist() == list(range(len(want)))
        assert step.track_ids.dtype == np.uint32
        np.testing.assert_array_equal(step.kpts0, _kpts(2)[[m[0] for m in want]])
        np.testing.assert_array_equal(step.kpts1, _kpts(2, 1.0)[[m[1] for m in want]])
        # distance of unit vectors 5 deg apart: 2 sin(2.5 deg); similarity = cos(5 deg)
        assert step.distances[-1] == pytest.approx(2 * math.sin(math.radians(2.5)), abs=1e-6)
        assert step.similarity[-1] == pytest.approx(math.cos(math.radians(5)), abs=1e-6)


def test_frame_tracker_one_way_keeps_one_predecessor_per_current_keypoint():
    # previous at 0 and 12 deg both have current 0 (5 deg) as nearest neighbour; one-way
    # matching keeps only the closer one, previous 0 (5 deg away, not 7).
    tracker = FrameTracker(MatchConfig(mutual=False))
    tracker.step(("cam", 8, 8, 0), _kpts(2), _unit(0, 12))
    step = tracker.step(("cam", 8, 8, 1), _kpts(2), _unit(5, 90))
    assert step.matches.tolist() == [[0, 0]]


def test_frame_tracker_ids_persist_and_break_on_a_discontinuity():
    tracker = FrameTracker(MatchConfig())
    d = _unit(0, 90, 180)  # three well separated points, seen again and again
    assert tracker.step(("cam", 8, 8, 0), _kpts(3), d).track_ids.tolist() == []
    assert tracker.step(("cam", 8, 8, 1), _kpts(3), d).track_ids.tolist() == [0, 1, 2]
    # frame 3 sees them in another order: each keeps its id
    step = tracker.step(("cam", 8, 8, 2), _kpts(3), d[[2, 0, 1]])
    assert step.matches.tolist() == [[0, 1], [1, 2], [2, 0]]
    assert step.track_ids.tolist() == [0, 1, 2]
    # another camera: no matches, the reason, and new ids afterwards (never reused)
    step = tracker.step(("cam2", 8, 8, 3), _kpts(3), d)
    assert step.reset == ("frame_id", "frame_id changed from 'cam' to 'cam2'")
    assert step.matches.shape == (0, 2) and step.track_ids.tolist() == []
    assert tracker.step(("cam2", 8, 8, 4), _kpts(3), d).track_ids.tolist() == [3, 4, 5]
    # the stamp going back breaks them too; the same stamp does not
    assert tracker.step(("cam2", 8, 8, 4), _kpts(3), d).reset is None
    assert tracker.step(("cam2", 8, 8, 1), _kpts(3), d).reset[0] == "stamp"
    assert tracker.step(("cam2", 16, 8, 2), _kpts(3), d).reset[0] == "size"


def test_frame_tracker_without_matching_or_descriptors():
    off = FrameTracker(None)  # match_mode off: no matches, discontinuities still reported
    off.step(("cam", 8, 8, 0), _kpts(2), _unit(0, 90))
    step = off.step(("cam", 8, 8, 1), _kpts(2), _unit(0, 90))
    assert step.matches.shape == (0, 2) and step.track_ids.shape == (0,)
    assert off.step(("other", 8, 8, 2), _kpts(2), _unit(0, 90)).reset[0] == "frame_id"
    magicpoint = FrameTracker(MatchConfig())  # D = 0: nothing to match
    magicpoint.step(("cam", 8, 8, 0), _kpts(2), np.zeros((2, 0), np.float32))
    step = magicpoint.step(("cam", 8, 8, 1), _kpts(2), np.zeros((2, 0), np.float32))
    assert step.matches.shape == (0, 2) and step.similarity.shape == (0,)
    empty = FrameTracker(MatchConfig())  # zero keypoints on either side
    empty.step(("cam", 8, 8, 0), np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32))
    step = empty.step(("cam", 8, 8, 1), _kpts(2), _unit(0, 90))
    assert step.matches.shape == (0, 2) and step.kpts0.shape == (0, 2)
