"""``superpoint_ros.ros.node_stats``: counters, windows, the diagnostics level and the log line,
without rclpy. Time is stepped by hand through the injectable clock."""

from __future__ import annotations

import pytest

from superpoint_ros.ros.node_stats import COUNTERS, Stats, health, log_line


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_window_rates_timings_and_counters_by_hand():
    clock = Clock()
    stats = Stats(clock=clock)
    w = stats.window(10.0)
    assert w["input_rate_hz"] == 0 and "processing_ms_mean" not in w
    assert all(w[name] == 0 for name in COUNTERS)
    clock.now = 102.0  # 2 s after start: the window is the 2 s since start
    for _ in range(4):
        stats.frame_received()
    stats.frame_processed(0.010, 0.006, 100, 40)
    stats.frame_processed(0.030, 0.010, 300, 60)
    stats.count("dropped", 2)
    w = stats.window(10.0)
    assert w["input_rate_hz"] == pytest.approx(4 / 2.0)
    assert w["output_rate_hz"] == pytest.approx(2 / 2.0)
    assert w["processing_ms_mean"] == pytest.approx(20.0)
    assert w["processing_ms_max"] == pytest.approx(30.0)
    assert w["processing_ms_p95"] == pytest.approx(29.0)  # numpy's linear interpolation
    assert w["frontend_ms_mean"] == pytest.approx(8.0)
    assert w["keypoints_mean"] == 200 and w["matches_mean"] == 50
    assert (w["received"], w["processed"], w["dropped"]) == (4, 2, 2)
    clock.now = 200.0  # long after: the window holds nothing, the counters stay
    w = stats.window(10.0)
    assert w["input_rate_hz"] == 0 and "processing_ms_mean" not in w and w["received"] == 4


def test_each_reader_sees_what_is_new_since_its_last_look():
    stats = Stats(clock=Clock())
    stats.count("errors", 3)
    w = stats.window(1.0)
    assert stats.new_since_last_look("diagnostics", w, ("errors",)) == {"errors": 3}
    assert stats.new_since_last_look("diagnostics", w, ("errors",)) == {"errors": 0}
    assert stats.new_since_last_look("log", w, ("errors",)) == {"errors": 3}  # its own look
    stats.count("errors")
    w = stats.window(1.0)
    assert stats.new_since_last_look("diagnostics", w, ("errors",)) == {"errors": 1}


def test_health_levels_in_order_of_severity():
    quiet = {"errors": 0, "bad_inputs": 0, "track_resets": 0}
    seen = {"received": 5}
    assert health({"received": 0}, quiet, 1, "") == ("ok", "waiting for images")
    assert health(seen, quiet, 1, "") == ("ok", "ok")
    assert health(seen, {**quiet, "track_resets": 2}, 1, "frame_id changed") == (
        "ok",
        "ok; 2 track resets (frame_id changed)",
    )
    assert health(seen, quiet, 2, "") == ("warn", "2 publishers on the image topic")
    assert health(seen, {**quiet, "bad_inputs": 1}, 2, "") == ("warn", "1 bad input frames")
    both = {"errors": 1, "bad_inputs": 4, "track_resets": 1}
    assert health(seen, both, 2, "x") == ("error", "1 frames failed")  # resets not appended


def test_log_line_with_and_without_processed_frames():
    w = {"input_rate_hz": 30.0, "output_rate_hz": 0.0, "dropped": 7, "bad_inputs": 1,
         "errors": 0, "track_resets": 2}  # fmt: skip
    assert log_line(w, 3) == (
        "in 30.0 Hz, out 0.0 Hz, nothing processed; dropped 3 (total 7), bad inputs 1, "
        "errors 0, track resets 2"
    )
    w.update(processing_ms_mean=12.34, processing_ms_p95=20.0, frontend_ms_mean=10.0,
             keypoints_mean=512.4, matches_mean=99.6, output_rate_hz=25.0)  # fmt: skip
    assert log_line(w, 0) == (
        "in 30.0 Hz, out 25.0 Hz, processing 12.3 ms mean / 20.0 p95 (front-end 10.0), 512 "
        "keypoints, 100 matches; dropped 0 (total 7), bad inputs 1, errors 0, track resets 2"
    )
