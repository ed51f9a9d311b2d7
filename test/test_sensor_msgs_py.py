"""``~/features`` and ``~/matches`` read as ROS users read PointCloud2 in Python: with the real
``sensor_msgs_py.point_cloud2`` (a sourced ROS 2, or the upstream sources in
``../shared/ros_python/site`` that test/conftest.py puts on ``sys.path``; skipped otherwise).

Each recipe of docs/ros_topics.md ("Reading them with sensor_msgs_py") is run here on messages
built by ``superpoint_ros.ros.conversions`` (what the node publishes), with hand-made values;
so are the calls that do not work on these layouts, so the docs stay right about them.
"""

from __future__ import annotations

import numpy as np
import pytest

pc2 = pytest.importorskip(
    "sensor_msgs_py.point_cloud2",
    reason="sensor_msgs_py is not importable: no sourced ROS 2 and no ../shared/ros_python/site",
)
pytest.importorskip(
    "sensor_msgs.msg", reason="sensor_msgs is not installed (pip install '.[ros]')"
)

from numpy.lib import recfunctions as rfn  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from superpoint_ros.ros.conversions import (  # noqa: E402
    features_from_msg,
    features_to_msg,
    matches_to_msg,
)

N, D = 4, 256


def _features(d: int = D):
    keypoints = np.array([[10.0, 20.0], [30.5, 40.25], [0.0, 0.0], [639.0, 479.0]], np.float32)
    scores = np.array([0.9, 0.5, 0.25, 0.125], np.float32)
    descriptors = np.eye(N, d, dtype=np.float32)  # keypoint i's descriptor: the unit vector e_i
    msg = features_to_msg(Header(frame_id="cam"), keypoints, scores, descriptors if d else None)
    return msg, keypoints, scores, descriptors


def _matches():
    kpts0 = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    kpts1 = np.array([[5.0, 6.0], [7.0, 8.0]], np.float32)
    scores = np.array([0.75, 0.5], np.float32)
    idx0, idx1 = np.array([3, 0]), np.array([1, 2])
    track = np.array([4_000_000_000, 17])  # uint32: ids beyond float32's exact integers
    return matches_to_msg(Header(), kpts0, kpts1, scores, idx0, idx1, track)


def test_features_read_points_numpy_is_n_by_3_plus_d():
    msg, keypoints, scores, descriptors = _features()
    points = pc2.read_points_numpy(msg)
    assert points.shape == (N, 3 + D) and points.dtype == np.float32
    assert np.array_equal(points[:, :2], keypoints)
    assert np.array_equal(points[:, 2], scores)
    assert np.array_equal(points[:, 3:], descriptors)
    # x, y (and score) alone:
    assert np.array_equal(pc2.read_points_numpy(msg, field_names=["x", "y"]), keypoints)


def test_features_read_points_names_the_descriptor_columns():
    msg, keypoints, scores, descriptors = _features()
    points = pc2.read_points(msg)  # a structured array, one record of 1036 bytes per keypoint
    assert points.dtype.names[:4] == ("x", "y", "score", "descriptor_0")
    assert points.dtype.names[-1] == f"descriptor_{D - 1}" and len(points.dtype.names) == 3 + D
    assert np.array_equal(points["score"], scores)
    columns = [f"descriptor_{i}" for i in range(D)]
    assert np.array_equal(rfn.structured_to_unstructured(points[columns]), descriptors)


def test_features_descriptor_columns_by_their_generated_names():
    msg, keypoints, _, descriptors = _features()
    columns = [f"descriptor_{i}" for i in range(D)]
    assert np.array_equal(pc2.read_points_numpy(msg, field_names=columns), descriptors)
    picked = pc2.read_points(msg, field_names=["x", "descriptor_1"])
    assert picked["x"].tolist() == keypoints[:, 0].tolist()
    assert picked["descriptor_1"].tolist() == [0, 1, 0, 0]


def test_features_calls_that_do_not_work_with_a_count_d_field():
    msg, *_ = _features()
    # The field is one PointField named "descriptor" with count D, which sensor_msgs_py
    # unfolds into columns descriptor_0 .. descriptor_{D-1}: the PointField's own name is not
    # a column, and read_points_list builds its tuples from the PointField names.
    with pytest.raises(AssertionError, match="not in the fields"):
        pc2.read_points(msg, field_names=["descriptor"])
    with pytest.raises(AssertionError, match="not in the fields"):
        pc2.read_points_list(msg)


def test_magicpoint_and_empty_features():
    msg, keypoints, scores, _ = _features(d=0)
    assert pc2.read_points_numpy(msg).shape == (N, 3)
    first = pc2.read_points_list(msg)[0]  # no count-D field: lists work
    assert (first.x, first.y, first.score) == (10.0, 20.0, pytest.approx(0.9))
    empty = features_to_msg(
        Header(),
        np.zeros((0, 2), np.float32),
        np.zeros(0, np.float32),
        np.zeros((0, D), np.float32),
    )
    assert pc2.read_points_numpy(empty).shape == (0, 3 + D)


def test_matches_read_points_keeps_the_uint32_fields():
    msg = _matches()
    points = pc2.read_points(msg)
    assert points.dtype.names == ("x0", "y0", "x1", "y1", "score", "idx0", "idx1", "track_id")
    assert points["idx0"].tolist() == [3, 0] and points["idx1"].tolist() == [1, 2]
    assert points["track_id"].dtype == np.uint32
    assert points["track_id"].tolist() == [4_000_000_000, 17]
    pairs = rfn.structured_to_unstructured(points[["idx0", "idx1"]])
    assert pairs.dtype == np.uint32 and pairs.tolist() == [[3, 1], [0, 2]]
    xy = rfn.structured_to_unstructured(points[["x0", "y0", "x1", "y1"]])
    assert xy.tolist() == [[1, 2, 5, 6], [3, 4, 7, 8]]
    row = pc2.read_points_list(msg)[1]
    assert (row.idx0, row.idx1, row.track_id, row.score) == (0, 2, 17, 0.5)


def test_matches_read_points_numpy_takes_the_float_fields_only():
    with pytest.raises(AssertionError, match="same datatype"):
        pc2.read_points_numpy(_matches())
    floats = pc2.read_points_numpy(_matches(), field_names=["x0", "y0", "x1", "y1", "score"])
    assert floats.tolist() == [[1, 2, 5, 6, 0.75], [3, 4, 7, 8, 0.5]]
    # Its check compares each requested field's type with the cloud's first field (x0, float32),
    # so the uint32 fields alone are refused too: read them with read_points.
    with pytest.raises(AssertionError, match="same datatype"):
        pc2.read_points_numpy(_matches(), field_names=["idx0", "idx1"])


def test_a_cloud_built_by_sensor_msgs_py_is_byte_identical_and_reads_back():
    msg, keypoints, scores, descriptors = _features()
    rows = [tuple(r) for r in pc2.read_points_numpy(msg)]
    built = pc2.create_cloud(Header(frame_id="cam"), msg.fields, rows)
    assert built.point_step == msg.point_step == 4 * (3 + D)
    assert bytes(built.data) == bytes(msg.data)
    back = features_from_msg(built)
    assert np.array_equal(back["keypoints"], keypoints)
    assert np.array_equal(back["descriptors"], descriptors)
