"""What the demo measures from a recording of ``superpoint_node`` (pure numpy/OpenCV, no I/O).

Input: one :class:`FrameRecord` per frame published to the node (in camera order) holding what
came back on ``~/features`` and ``~/matches`` for it (``None`` for a frame the node dropped)
and when, plus the ground truth ``H_0to[i]`` (frame 0 -> frame i) when the sequence has one.

The node matches each frame it processes with the previous frame it processed, so the matches
of frame ``b`` relate ``b`` to the last answered frame ``a`` before it, and the ground truth of
that pair is ``H_0to[b] @ inv(H_0to[a])``. A match is correct when the ground truth puts its
frame-``a`` point within ``threshold`` pixels of its frame-``b`` point; the homography error of a
pair is the mean distance between the image corners mapped by the RANSAC homography of its
matches and by the ground truth (HPatches' homography-estimation measure).

Tracks come from the ``track_id`` of the matches: a track is seen in the frame where it starts
(the previous frame of its first match) and in every frame where one of its matches lands; its
length is the number of camera frames from the first to the last (:attr:`Track.span`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from superpoint_ros.geometry import Size, image_corners, warp_points

CORRECT_PX = 3.0  # a match, a homography or a track within this many pixels is correct
EPIPOLAR_PX = 1.0  # RANSAC threshold of the epipolar check (distance to the epipolar line)
TRACK_LENGTHS = (5, 10, 30)  # the table counts tracks followed over at least this many frames


@dataclass
class FrameRecord:
    """One published frame and the node's answer. ``features``: ``features_from_msg`` dict;
    ``matches``: ``matches_from_msg`` dict; times in seconds of one monotonic clock."""

    index: int
    stamp_ns: int
    published_s: float
    features_s: float | None = None
    features: dict[str, np.ndarray] | None = None
    matches: dict[str, np.ndarray] | None = None

    @property
    def answered(self) -> bool:
        return self.features is not None


@dataclass
class Track:
    """One track: ``frames[k]`` is a frame index, ``points[k]`` its (x, y) there."""

    track_id: int
    frames: list[int] = field(default_factory=list)
    points: list[tuple[float, float]] = field(default_factory=list)
    inliers: list[bool] = field(default_factory=list)  # per step: epipolar inlier of its pair

    @property
    def span(self) -> int:
        """Camera frames the point was followed over, first to last, counting the frames the
        node dropped in between (they passed while it was followed)."""
        return self.frames[-1] - self.frames[0] + 1


def pair_homography(H_0to: list[np.ndarray], a: int, b: int) -> np.ndarray:
    """Ground truth from frame ``a`` to frame ``b``: ``H_0to[b] @ inv(H_0to[a])``, H[2,2] = 1."""
    H = np.asarray(H_0to[b], np.float64) @ np.linalg.inv(np.asarray(H_0to[a], np.float64))
    return H / H[2, 2]


def correct_matches(
    kpts0: np.ndarray, kpts1: np.ndarray, H: np.ndarray, threshold: float = CORRECT_PX
) -> np.ndarray:
    """``[M]`` bool: ``H`` maps ``kpts0[m]`` within ``threshold`` px of ``kpts1[m]``."""
    if len(kpts0) == 0:
        return np.zeros(0, bool)
    return np.linalg.norm(warp_points(kpts0, H) - kpts1, axis=1) <= threshold


def homography_error(
    kpts0: np.ndarray, kpts1: np.ndarray, H_true: np.ndarray, size: Size
) -> float:
    """Mean corner distance (px) between the RANSAC homography of the matched points
    (``cv2.findHomography``, 3 px reprojection threshold) and ``H_true`` on an image of
    ``size``; ``nan`` when fewer than 4 matches or RANSAC finds none."""
    if len(kpts0) < 4:
        return float("nan")
    H, _ = cv2.findHomography(
        np.asarray(kpts0, np.float32), np.asarray(kpts1, np.float32), cv2.RANSAC, CORRECT_PX
    )
    if H is None:
        return float("nan")
    corners = image_corners(size)
    return float(np.linalg.norm(warp_points(corners, H) - warp_points(corners, H_true),
                                axis=1).mean())  # fmt: skip


def epipolar_inliers(
    kpts0: np.ndarray, kpts1: np.ndarray, threshold: float = EPIPOLAR_PX
) -> np.ndarray:
    """``[M]`` bool: the match agrees with the fundamental matrix RANSAC fits to all of them
    (``cv2.findFundamentalMat``, ``threshold`` px from the epipolar line): a check that needs
    no ground truth and holds for any rigid scene. All False with fewer than 8 matches."""
    if len(kpts0) < 8:
        return np.zeros(len(kpts0), bool)
    _, mask = cv2.findFundamentalMat(
        np.asarray(kpts0, np.float32), np.asarray(kpts1, np.float32), cv2.FM_RANSAC, threshold,
        0.999,
    )  # fmt: skip
    return np.zeros(len(kpts0), bool) if mask is None else mask.reshape(-1).astype(bool)


def frame_rows(
    records: list[FrameRecord], H_0to: list[np.ndarray] | None, size: Size
) -> list[dict[str, Any]]:
    """One row per published frame: ``frame``, ``answered``, ``keypoints``, ``matches``,
    ``previous`` (the frame matched against), ``inliers`` (:func:`epipolar_inliers`),
    ``correct`` and ``correct_ratio`` of the matches, ``homography_error_px``, ``latency_ms``
    (publish -> ``~/features``). Ground-truth fields are None without ``H_0to``; match fields
    None for frames without a previous answered frame."""
    rows, previous = [], None
    for rec in records:
        row: dict[str, Any] = {
            "frame": rec.index, "answered": rec.answered, "keypoints": None, "matches": None,
            "previous": None, "inliers": None, "correct": None, "correct_ratio": None,
            "homography_error_px": None, "latency_ms": None,
        }  # fmt: skip
        if rec.answered:
            row["keypoints"] = len(rec.features["keypoints"])
            row["latency_ms"] = 1e3 * (rec.features_s - rec.published_s)
            if previous is not None and rec.matches is not None:
                m = rec.matches
                row["matches"], row["previous"] = len(m["matches"]), previous
                row["inliers"] = int(epipolar_inliers(m["kpts0"], m["kpts1"]).sum())
                if H_0to is not None:
                    H = pair_homography(H_0to, previous, rec.index)
                    ok = correct_matches(m["kpts0"], m["kpts1"], H)
                    row["correct"] = int(ok.sum())
                    row["correct_ratio"] = float(ok.mean()) if len(ok) else 0.0
                    row["homography_error_px"] = homography_error(m["kpts0"], m["kpts1"], H, size)
            previous = rec.index
        rows.append(row)
    return rows


def build_tracks(records: list[FrameRecord]) -> dict[int, Track]:
    """Every track of the recording, by id, with the frames and points where it was seen."""
    tracks: dict[int, Track] = {}
    previous = None
    for rec in records:
        if not rec.answered:
            continue
        m = rec.matches
        if previous is not None and m is not None:
            inliers = epipolar_inliers(m["kpts0"], m["kpts1"]).tolist()
            for tid, p0, p1, ok in zip(m["track_id"].tolist(), m["kpts0"], m["kpts1"], inliers):
                track = tracks.get(tid)
                if track is None:
                    track = tracks[tid] = Track(tid, [previous], [(float(p0[0]), float(p0[1]))])
                track.frames.append(rec.index)
                track.points.append((float(p1[0]), float(p1[1])))
                track.inliers.append(ok)
        previous = rec.index
    return tracks


def track_drift(track: Track, H_0to: list[np.ndarray]) -> float:
    """Distance (px) between a track's last point and where the ground truth takes its first
    point: small when the track followed one physical point all along."""
    H = pair_homography(H_0to, track.frames[0], track.frames[-1])
    start = np.array([track.points[0]], np.float32)
    return float(np.linalg.norm(warp_points(start, H)[0] - np.array(track.points[-1])))


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile of the finite ``values``; None when there are none."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    return float(np.percentile(v, q)) if len(v) else None


def summarise(
    records: list[FrameRecord],
    rows: list[dict[str, Any]],
    tracks: dict[int, Track],
    H_0to: list[np.ndarray] | None,
) -> dict[str, Any]:
    """The figures of the demo's table (see ``table.render_summary``)."""
    answered = [r for r in records if r.answered]
    pairs = [r for r in rows if r["matches"] is not None]
    out: dict[str, Any] = {
        "frames_published": len(records),
        "frames_processed": len(answered),
        "frames_dropped": len(records) - len(answered),
        "keypoints_mean": _mean([r["keypoints"] for r in rows]),
        "keypoints_min": _min([r["keypoints"] for r in rows]),
        "matches_mean": _mean([r["matches"] for r in pairs]),
        "matches_min": _min([r["matches"] for r in pairs]),
        "epipolar_inlier_ratio": _ratio(
            [r["inliers"] for r in pairs], [r["matches"] for r in pairs]
        ),
        "latency_ms_p50": percentile([r["latency_ms"] for r in rows], 50),
        "latency_ms_p95": percentile([r["latency_ms"] for r in rows], 95),
        "processed_fps": None,
        "tracks": len(tracks),
        "track_length_max": max((t.span for t in tracks.values()), default=0),
    }
    for n in TRACK_LENGTHS:
        out[f"tracks_ge_{n}"] = sum(t.span >= n for t in tracks.values())
    if len(answered) >= 2:
        span = answered[-1].features_s - records[0].published_s
        out["processed_fps"] = len(answered) / span if span > 0 else None
    if H_0to is not None:
        out["correct_ratio"] = _ratio([r["correct"] for r in pairs], [r["matches"] for r in pairs])
        errors = [r["homography_error_px"] for r in pairs]
        finite = [e for e in errors if np.isfinite(e)]
        out["homography_error_px_median"] = percentile(finite, 50)
        out["homography_correct_ratio"] = (
            sum(e <= CORRECT_PX for e in finite) / len(errors) if errors else None
        )  # a failed estimate (nan) counts as wrong
        long = [t for t in tracks.values() if t.span >= TRACK_LENGTHS[0]]
        out["long_tracks_consistent_ratio"] = (
            sum(track_drift(t, H_0to) <= CORRECT_PX for t in long) / len(long) if long else None
        )
    return out


def _mean(values: list[int | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def _min(values: list[int | None]) -> int | None:
    v = [x for x in values if x is not None]
    return int(min(v)) if v else None


def _ratio(parts: list[int], wholes: list[int]) -> float | None:
    total = sum(wholes)
    return sum(parts) / total if total else None
