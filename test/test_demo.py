"""The demo's pure pieces (``superpoint_training.demo``): the synthetic camera, the metrics on
hand-made node answers, the table, the input folder and its bag, the command that opens the
report. The run through the real node is in ``test_demo_node.py``."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from superpoint_ros.errors import ConfigError, InputError
from superpoint_training.demo.metrics import (
    FrameRecord,
    Track,
    build_tracks,
    correct_matches,
    epipolar_inliers,
    frame_rows,
    homography_error,
    pair_homography,
    summarise,
    track_drift,
)
from superpoint_training.demo.report import free_port, open_command
from superpoint_training.demo.sequence import (
    SequenceConfig,
    camera_to_photo,
    cover,
    smooth_curve,
    synthesise_sequence,
)
from superpoint_training.demo.table import frames_markdown, render_summary


def _texture(size=(200, 260), seed=1) -> np.ndarray:
    """A blurred random texture (uint8 BGR): structure at every position, no photo needed."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


# ------------------------------------------------------------------------ the synthetic camera


def test_camera_to_photo_hand_computed():
    size, photo = (41, 61), (81, 121)  # centres: frame (30, 20), photo (60, 40)
    M = camera_to_photo(size, photo, 0.0, 0.0, np.array([5.0, -3.0]), np.zeros(2))
    np.testing.assert_allclose(M @ [30, 20, 1], [65, 37, 1])  # centre -> photo centre + shift
    # a quarter turn with zoom 2: one pixel right of the centre -> two pixels down
    M = camera_to_photo(size, photo, np.pi / 2, np.log(2.0), np.zeros(2), np.zeros(2))
    np.testing.assert_allclose(M @ [31, 20, 1], [60, 42, 1], atol=1e-9)
    # a tilt divides by 1 + t . (x - centre): 10 px right with t_x = 0.01 -> w = 1.1
    M = camera_to_photo(size, photo, 0.0, 0.0, np.zeros(2), np.array([0.01, 0.0]))
    p = M @ [40, 20, 1]
    np.testing.assert_allclose(p[:2] / p[2], [60 + 10 / 1.1, 40])


def test_smooth_curve_peaks_at_one_and_is_seeded():
    a = smooth_curve(np.random.default_rng(3), 50)
    b = smooth_curve(np.random.default_rng(3), 50)
    np.testing.assert_array_equal(a, b)
    assert np.isclose(np.abs(a).max(), 1.0)
    assert np.abs(np.diff(a)).max() < 0.3  # smooth: small steps between frames


def test_cover_keeps_the_aspect_and_crops_the_centre():
    photo = np.zeros((100, 200), np.uint8)
    photo[:, 95:105] = 255  # a bar in the middle
    out = cover(photo, (100, 100))
    assert out.shape == (100, 100)
    assert out[:, 45:55].min() == 255 and out[:, :40].max() == 0


def test_synthesised_frames_follow_their_ground_truth():
    config = SequenceConfig(frames=6, size=(96, 128), noise=0.0, seed=2)
    seq = synthesise_sequence(_texture(), config)
    assert len(seq.frames) == 6 and seq.frames[0].shape == (96, 128, 3)
    np.testing.assert_allclose(seq.H_0to[0], np.eye(3), atol=1e-12)
    gray = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.float32) for f in seq.frames]
    for k in (2, 5):
        H = seq.H_0to[k]
        assert not np.allclose(H, np.eye(3), atol=1e-3)  # the camera moved
        warped = cv2.warpPerspective(gray[0], H, (128, 96))
        valid = cv2.warpPerspective(np.ones_like(gray[0]), H, (128, 96)) > 0.999
        valid = cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert valid.mean() > 0.5
        # frame k is frame 0 moved by H (up to the lighting: correlation, not equality) ...
        assert np.corrcoef(warped[valid], gray[k][valid])[0, 1] > 0.98
        # ... and not frame 0 moved by H and 2 more pixels
        shifted = np.roll(warped, 2, axis=1)
        assert np.corrcoef(shifted[valid], gray[k][valid])[0, 1] < 0.9
    again = synthesise_sequence(_texture(), config)
    np.testing.assert_array_equal(again.frames[3], seq.frames[3])


def test_sequence_config_rejects_nonsense():
    for bad in ({"frames": 1}, {"size": (16, 640)}, {"margin": 1.0}, {"noise": -1.0}):
        with pytest.raises(ConfigError):
            SequenceConfig(**bad)


# ------------------------------------------------------------------------------- metrics


def _shift(dx: float) -> np.ndarray:
    return np.array([[1, 0, dx], [0, 1, 0], [0, 0, 1]], np.float64)


def _features(points) -> dict:
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    return {"keypoints": pts, "scores": np.ones(len(pts), np.float32),
            "descriptors": np.zeros((len(pts), 4), np.float32)}  # fmt: skip


def _matches(kpts0, kpts1, idx, track_ids) -> dict:
    idx = np.asarray(idx, np.int64).reshape(-1, 2)
    return {"kpts0": np.asarray(kpts0, np.float32).reshape(-1, 2),
            "kpts1": np.asarray(kpts1, np.float32).reshape(-1, 2),
            "matches": idx, "track_id": np.asarray(track_ids, np.uint32)}  # fmt: skip


@pytest.fixture
def run():
    """Four frames of a camera moving 10 px right per frame (the scene moves left: x - 10k);
    the node dropped frame 1, so frame 2 was matched with frame 0 (20 px apart). Points A, B
    and C are followed; frame 2's match of C is wrong (5 px off), and frame 3 follows A and B.
    Published at 0.0, 0.1, 0.2, 0.3 s; answered after 0.05, -, 0.15, 0.1 s."""
    H_0to = [_shift(-10.0 * k) for k in range(4)]
    a, b, c = (100.0, 50.0), (200.0, 80.0), (300.0, 120.0)
    at = lambda p, k: (p[0] - 10 * k, p[1])  # noqa: E731 - the ground truth of point p in k
    records = [
        FrameRecord(0, 1000, 0.0, 0.05, _features([a, b, c]), _matches([], [], [], [])),
        FrameRecord(1, 1100, 0.1),
        FrameRecord(2, 1200, 0.2, 0.35, _features([at(a, 2), at(b, 2), (285.0, 120.0)]),
                    _matches([a, b, c], [at(a, 2), at(b, 2), (285.0, 120.0)],
                             [[0, 0], [1, 1], [2, 2]], [7, 8, 9])),
        FrameRecord(3, 1300, 0.3, 0.4, _features([at(a, 3), at(b, 3)]),
                    _matches([at(a, 2), at(b, 2)], [at(a, 3), at(b, 3)], [[0, 0], [1, 1]],
                             [7, 8])),
    ]  # fmt: skip
    return records, H_0to


def test_pair_homography_and_correct_matches_hand_computed():
    H_0to = [_shift(0), _shift(-10), _shift(-25)]
    np.testing.assert_allclose(pair_homography(H_0to, 1, 2), _shift(-15))
    ok = correct_matches(np.array([[50, 5], [60, 5]], np.float32),
                         np.array([[35, 5], [40, 5]], np.float32), _shift(-15))  # fmt: skip
    assert ok.tolist() == [True, False]
    assert correct_matches(np.zeros((0, 2)), np.zeros((0, 2)), _shift(0)).shape == (0,)


def test_homography_error_is_zero_for_exact_matches_and_nan_for_too_few():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 100, (30, 2)).astype(np.float32)
    H = _shift(7.0)
    assert homography_error(pts, pts + [7, 0], H, (100, 100)) < 1e-3
    # the estimate is a 7 px shift, the truth 0: every corner is 7 px off
    assert homography_error(pts, pts + [7, 0], _shift(0), (100, 100)) == pytest.approx(7, 1e-3)
    assert np.isnan(homography_error(pts[:3], pts[:3], H, (100, 100)))


def test_epipolar_inliers_of_a_rectified_stereo_pair():
    rng = np.random.default_rng(1)
    kpts0 = rng.uniform(10, 300, (40, 2)).astype(np.float32)
    disparity = rng.uniform(2, 30, 40).astype(np.float32)  # depth varies: a 3D scene
    kpts1 = kpts0 - np.stack([disparity, np.zeros(40, np.float32)], axis=1)  # same rows
    kpts1[5, 1] += 10.0  # a match 10 px off its epipolar line (the same row)
    ok = epipolar_inliers(kpts0, kpts1)
    assert not ok[5] and ok.sum() == 39
    assert epipolar_inliers(kpts0[:7], kpts1[:7]).tolist() == [False] * 7  # too few for RANSAC


def test_frame_rows_hand_computed(run):
    records, H_0to = run
    rows = frame_rows(records, H_0to, (240, 320))
    assert [r["answered"] for r in rows] == [True, False, True, True]
    assert [r["keypoints"] for r in rows] == [3, None, 3, 2]
    assert [r["matches"] for r in rows] == [None, None, 3, 2]  # frame 0 has no previous frame
    assert [r["previous"] for r in rows] == [None, None, 0, 2]
    assert [r["correct"] for r in rows] == [None, None, 2, 2]
    assert [r["inliers"] for r in rows] == [None, None, 0, 0]  # under 8 matches: no check
    assert rows[2]["correct_ratio"] == pytest.approx(2 / 3)
    assert [r["latency_ms"] for r in rows] == pytest.approx([50, None, 150, 100])
    assert rows[3]["homography_error_px"] is not None  # 2 matches: too few for RANSAC -> nan
    assert np.isnan(rows[3]["homography_error_px"])
    without = frame_rows(records, None, (240, 320))
    assert without[2]["matches"] == 3 and without[2]["correct"] is None


def test_tracks_spans_and_drift_hand_computed(run):
    records, H_0to = run
    tracks = build_tracks(records)
    assert sorted(tracks) == [7, 8, 9]
    assert tracks[7].frames == [0, 2, 3] and tracks[7].span == 4  # dropped frame 1 counts
    assert tracks[9].frames == [0, 2] and tracks[9].span == 3
    assert tracks[7].points[0] == (100.0, 50.0) and tracks[7].points[-1] == (70.0, 50.0)
    assert track_drift(tracks[7], H_0to) == pytest.approx(0.0)
    assert track_drift(tracks[9], H_0to) == pytest.approx(5.0)  # 285 where 280 was right
    # (40, 0) in frame 0 is at (10, 0) in frame 3; the track ended at (10, 4)
    assert track_drift(Track(1, [0, 3], [(40.0, 0.0), (10.0, 4.0)]), H_0to) == pytest.approx(4.0)


def test_summary_hand_computed(run):
    records, H_0to = run
    rows = frame_rows(records, H_0to, (240, 320))
    s = summarise(records, rows, build_tracks(records), H_0to)
    assert (s["frames_published"], s["frames_processed"], s["frames_dropped"]) == (4, 3, 1)
    assert s["keypoints_mean"] == pytest.approx(8 / 3) and s["keypoints_min"] == 2
    assert s["matches_mean"] == pytest.approx(2.5) and s["matches_min"] == 2
    assert s["correct_ratio"] == pytest.approx(4 / 5)
    assert s["latency_ms_p50"] == pytest.approx(100)
    assert s["latency_ms_p95"] == pytest.approx(145)  # numpy's linear interpolation
    assert s["processed_fps"] == pytest.approx(3 / 0.4)  # first publish to last answer
    assert (s["tracks"], s["track_length_max"]) == (3, 4)
    assert (s["tracks_ge_5"], s["tracks_ge_10"], s["tracks_ge_30"]) == (0, 0, 0)
    assert s["long_tracks_consistent_ratio"] is None  # no track over >= 5 frames
    # both pairs have fewer than the 4 matches RANSAC needs: no estimate counts as wrong
    assert s["homography_correct_ratio"] == 0.0 and s["homography_error_px_median"] is None
    assert "correct_ratio" not in summarise(records, frame_rows(records, None, (9, 9)),
                                            build_tracks(records), None)  # fmt: skip


def test_table_with_and_without_ground_truth(run):
    records, H_0to = run
    rows = frame_rows(records, H_0to, (240, 320))
    s = summarise(records, rows, build_tracks(records), H_0to)
    text = render_summary(s, "title")
    assert text.splitlines()[0] == "title"
    assert "80.0% within 3 px" in text
    assert "1 of 4 frames" in text  # dropped
    assert "p50 100 ms, p95 145 ms" in text
    s_none = summarise(records, frame_rows(records, None, (9, 9)), build_tracks(records), None)
    assert "n/a (no ground truth" in render_summary(s_none, "t")
    md = frames_markdown(rows).splitlines()
    assert len(md) == 2 + 4 and "| 1 | dropped |" in md[3]


# ----------------------------------------------------------------------------- the input folder


def _write_hpatches(folder, sizes, shifts) -> None:
    folder.mkdir(parents=True)
    for n, (size, dx) in enumerate(zip(sizes, shifts), start=1):
        cv2.imwrite(str(folder / f"{n}.ppm"), _texture(size, seed=n))
        if n > 1:
            np.savetxt(folder / f"H_1_{n}", _shift(dx))


def test_prepare_input_from_an_hpatches_sequence_scales_frames_and_ground_truth(tmp_path):
    from superpoint_training.bags.reader import read_image_bag
    from superpoint_training.demo.inputs import IMAGE_TOPIC, prepare_input

    seq = tmp_path / "v_test"
    # 1280 wide: stretched to 640 (half), so a 10 px shift becomes 5 px
    _write_hpatches(seq, [(80, 1280)] * 3, [0, 10.0, -20.0])
    got = prepare_input(tmp_path / "work", str(seq), rate=5.0)
    assert not got.reused and got.size == (40, 640) and len(got.frames) == 3
    np.testing.assert_allclose(got.H_0to[1], _shift(5.0), atol=1e-9)
    np.testing.assert_allclose(got.H_0to[2], _shift(-10.0), atol=1e-9)
    frames = list(read_image_bag(got.bag))
    assert [f.topic for f in frames] == [IMAGE_TOPIC] * 3
    assert [f.stamp_ns - frames[0].stamp_ns for f in frames] == [0, 200_000_000, 400_000_000]
    assert frames[0].encoding == "mono8" and frames[0].image.shape == (40, 640)
    assert {f.frame_id for f in frames} == {"camera"}  # one camera: the node keeps its tracks
    again = prepare_input(tmp_path / "work", str(seq), rate=5.0)
    assert again.reused and np.allclose(again.H_0to[2], got.H_0to[2])
    other_rate = prepare_input(tmp_path / "work", str(seq), rate=10.0)
    assert not other_rate.reused  # the bag's stamps depend on the rate


def test_prepare_input_from_a_folder_of_frames_has_no_ground_truth(tmp_path):
    from superpoint_training.demo.inputs import prepare_input

    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(3):
        cv2.imwrite(str(frames / f"{k:03d}.png"), _texture((48, 64), seed=k))
    got = prepare_input(tmp_path / "work", str(frames))
    assert got.H_0to is None and got.size == (48, 64) and len(got.frames) == 3
    manifest = json.loads((tmp_path / "work" / "input_frames" / "manifest.json").read_text())
    assert manifest["ground_truth"] is False and manifest["frames"] == 3
    cv2.imwrite(str(frames / "003.png"), _texture((48, 64), seed=9))  # a new frame: remade
    assert len(prepare_input(tmp_path / "work", str(frames)).frames) == 4


def test_each_source_keeps_its_own_input_folder(tmp_path):
    from superpoint_training.demo.inputs import input_folder_name, load_input, prepare_input

    assert input_folder_name(None) == "input_synthetic"
    assert input_folder_name(str(tmp_path / "my frames")) == "input_my_frames"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for k in range(2):
            cv2.imwrite(str(tmp_path / name / f"{k}.png"), _texture((40, 48), seed=k))
    first = prepare_input(tmp_path / "work", str(tmp_path / "a"))
    prepare_input(tmp_path / "work", str(tmp_path / "b"))
    assert prepare_input(tmp_path / "work", str(tmp_path / "a")).reused  # b did not evict a
    assert load_input(first.bag.parent).frames == first.frames
    with pytest.raises(InputError, match="missing or incomplete"):
        load_input(tmp_path / "work" / "input_nothing")


def test_prepare_input_errors_are_one_line(tmp_path):
    from superpoint_training.demo.inputs import photo, prepare_input

    with pytest.raises(InputError, match="is not a folder"):
        prepare_input(tmp_path / "work", str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        prepare_input(tmp_path / "work", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="choose from"):
        photo("not_a_photo")
    with pytest.raises(ConfigError, match="rate"):
        prepare_input(tmp_path / "work", None, rate=0.0)


def test_synthetic_input_is_made_once(tmp_path):
    pytest.importorskip("skimage")
    from superpoint_training.demo.inputs import prepare_input

    config = SequenceConfig(frames=3, size=(64, 80))
    first = prepare_input(tmp_path, None, config)
    assert not first.reused and len(first.H_0to) == 3 and "synthetic" in first.description
    stamp = first.frames[0].stat().st_mtime_ns
    second = prepare_input(tmp_path, None, config)
    assert second.reused and second.frames[0].stat().st_mtime_ns == stamp
    assert not prepare_input(
        tmp_path, None, SequenceConfig(frames=3, size=(64, 80), seed=1)
    ).reused


# ------------------------------------------------------------------------------ opening it


def test_open_command_depends_on_the_desktop(tmp_path):
    index = tmp_path / "index.html"
    assert open_command(index, {"DISPLAY": ":0"}, "linux") == f"xdg-open {index}"
    assert open_command(index, {}, "darwin") == f"open {index}"
    served = open_command(index, {}, "linux")
    assert served.startswith("python3 -m http.server ") and f"--directory {tmp_path}" in served


def test_free_port_skips_a_port_in_use():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert free_port(port, 1) == 0
        assert free_port(port, 2) != port
