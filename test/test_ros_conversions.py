"""ROS message <-> numpy conversions (superpoint_ros.ros.conversions), with real message classes.

Expectations are hand-written byte buffers and ``struct``-packed points, not re-derived with the
code under test. The numpy path is the one tested (``use_cv_bridge=False``); where cv_bridge is
importable, one test checks that its path gives the same arrays.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 message wheels) not importable")

import cv2  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from superpoint_ros.errors import ConfigError, InputError  # noqa: E402
from superpoint_ros.ros.conversions import (  # noqa: E402
    ENCODINGS,
    ImageConversionError,
    PointCloudSchemaError,
    compressed_to_numpy,
    cv_bridge_available,
    features_from_msg,
    features_to_msg,
    header_at,
    image_to_numpy,
    matches_from_msg,
    matches_to_msg,
    numpy_to_image,
    stamp_ns,
)

F32, U32 = PointField.FLOAT32, PointField.UINT32


def test_stamp_nanoseconds_both_ways_exactly():
    h = header_at(1_712_345_678_123_456_789, "cam")  # past float64's exact integers (2**53)
    assert (h.stamp.sec, h.stamp.nanosec, h.frame_id) == (1_712_345_678, 123_456_789, "cam")
    assert stamp_ns(h) == 1_712_345_678_123_456_789
    assert stamp_ns(header_at(0, "")) == 0 and header_at(999_999_999, "x").stamp.sec == 0


def _header(sec: int = 1712345678, nanosec: int = 123456789, frame: str = "camera_optical"):
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def _image(encoding, height, width, step, data, is_bigendian=False) -> Image:
    msg = Image(encoding=encoding, height=height, width=width, step=step)
    msg.is_bigendian = is_bigendian
    msg.data = bytes(data)
    return msg


def _to_np(msg, **kw):
    return image_to_numpy(msg, use_cv_bridge=False, **kw)


# ---------------------------------------------------------------------------------------------
# Image -> numpy, hand-written buffers


def test_rgb8_2x2_known_bytes_give_bgr():
    msg = _image("rgb8", 2, 2, 6, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120])
    out = _to_np(msg)
    expected = [[[30, 20, 10], [60, 50, 40]], [[90, 80, 70], [120, 110, 100]]]
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out, expected)


def test_bgr8_and_8uc3_known_bytes_are_kept_in_order():
    data = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]
    expected = [[[10, 20, 30], [40, 50, 60]], [[70, 80, 90], [100, 110, 120]]]
    for enc in ("bgr8", "8UC3"):
        np.testing.assert_array_equal(_to_np(_image(enc, 2, 2, 6, data)), expected)


def test_mono8_with_step_padding_is_a_view_of_the_message():
    # 2x3 image, step 4: one padding byte (0xEE) per row
    msg = _image("mono8", 2, 3, 4, [1, 2, 3, 0xEE, 4, 5, 6, 0xEE])
    out = _to_np(msg)
    assert out.shape == (2, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[1, 2, 3], [4, 5, 6]])
    msg.data[4] = 44  # no copy: the array sees the message's bytes
    assert out[1, 0] == 44
    np.testing.assert_array_equal(
        _to_np(_image("8UC1", 2, 3, 4, msg.data)), [[1, 2, 3], [44, 5, 6]]
    )


def test_bgr8_and_8uc3_with_step_padding_are_views_of_the_message():
    # 1x2, step 8: two 3-byte pixels then 2 padding bytes; no colour conversion, no copy
    for enc in ("bgr8", "8UC3"):
        msg = _image(enc, 1, 2, 8, [1, 2, 3, 4, 5, 6, 0xEE, 0xEE])
        out = _to_np(msg)
        np.testing.assert_array_equal(out, [[[1, 2, 3], [4, 5, 6]]])
        msg.data[3] = 44
        assert out[0, 1, 0] == 44


def test_bgra8_and_rgba8_with_padding_drop_alpha():
    # 1x2, step 10: two 4-byte pixels then 2 padding bytes
    data = [1, 2, 3, 4, 5, 6, 7, 8, 9, 9]
    np.testing.assert_array_equal(
        _to_np(_image("bgra8", 1, 2, 10, data)), [[[1, 2, 3], [5, 6, 7]]]
    )
    np.testing.assert_array_equal(
        _to_np(_image("rgba8", 1, 2, 10, data)), [[[3, 2, 1], [7, 6, 5]]]
    )


# 2x2 mono16, step 6 (2 padding bytes per row), bytes in big-endian order:
# values 0x1234=4660, 0xABCD=43981 / 0x00FF=255, 0xFF00=65280
MONO16_BYTES = [0x12, 0x34, 0xAB, 0xCD, 0xEE, 0xEE, 0x00, 0xFF, 0xFF, 0x00, 0xEE, 0xEE]


def test_mono16_big_endian_with_padding_high_byte():
    out = _to_np(_image("mono16", 2, 2, 6, MONO16_BYTES, is_bigendian=True))
    assert out.dtype == np.uint8 and out.shape == (2, 2)
    np.testing.assert_array_equal(out, [[0x12, 0xAB], [0x00, 0xFF]])


def test_mono16_little_endian_reads_the_other_byte():
    # the same bytes read little-endian: 0x3412, 0xCDAB / 0xFF00, 0x00FF -> high bytes
    out = _to_np(_image("mono16", 2, 2, 6, MONO16_BYTES, is_bigendian=False))
    np.testing.assert_array_equal(out, [[0x34, 0xCD], [0xFF, 0x00]])


def test_mono16_shift_and_minmax_scaling():
    msg = _image("mono16", 2, 2, 6, MONO16_BYTES, is_bigendian=True)
    # shift 4 (12-bit data): 4660>>4=291->255, 43981>>4->255, 255>>4=15, 65280>>4->255
    np.testing.assert_array_equal(_to_np(msg, mono16_shift=4), [[255, 255], [15, 255]])
    # shift 0: clip to 255 except values already <= 255
    np.testing.assert_array_equal(_to_np(msg, mono16_shift=0), [[255, 255], [255, 255]])
    # min-max: lo 255, hi 65280, v -> floor((v - 255) * 255 / 65025 + 0.5)
    # 4660 -> 17.27 -> 17, 43981 -> 171.47 -> 171
    np.testing.assert_array_equal(_to_np(msg, mono16_shift=None), [[17, 171], [0, 255]])
    flat = _image("mono16", 1, 2, 4, [1, 0, 1, 0])
    np.testing.assert_array_equal(_to_np(flat, mono16_shift=None), [[0, 0]])


@pytest.mark.parametrize("bad", [-1, 9, 2.5, True, "8"])
def test_bad_mono16_shift_is_a_config_error(bad):
    msg = _image("mono16", 1, 1, 2, [0, 0])
    with pytest.raises(ConfigError, match="mono16_shift"):
        _to_np(msg, mono16_shift=bad)


# ---------------------------------------------------------------------------------------------
# numpy -> Image: hand-checked bytes, round trips for every encoding


def test_numpy_to_image_mono16_bytes_and_header():
    a = np.array([[0x0102, 0x0304]], np.uint16)
    h = _header()
    little = numpy_to_image(a, "mono16", h)
    assert bytes(little.data) == bytes([2, 1, 4, 3]) and not little.is_bigendian
    assert (little.height, little.width, little.step, little.encoding) == (1, 2, 4, "mono16")
    assert little.header == h and little.header is not h
    big = numpy_to_image(a, "mono16", step=6, is_bigendian=True)
    assert bytes(big.data) == bytes([1, 2, 3, 4, 0, 0]) and big.is_bigendian and big.step == 6
    assert big.header == Header()


def test_numpy_to_image_rgb8_bytes_are_not_reordered():
    a = np.array([[[10, 20, 30], [40, 50, 60]]], np.uint8)
    msg = numpy_to_image(a, "rgb8", step=8)
    assert bytes(msg.data) == bytes([10, 20, 30, 40, 50, 60, 0, 0])


def _expected_output(a: np.ndarray, encoding: str) -> np.ndarray:
    if encoding in ("mono16", "16UC1"):
        return (a // 256).astype(np.uint8)
    if encoding == "rgb8":
        return a[..., [2, 1, 0]]
    if encoding == "rgba8":
        return a[..., [2, 1, 0]]
    if encoding == "bgra8":
        return a[..., [0, 1, 2]]
    return a


def _random_array(rng, encoding, height, width):
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("big", [False, True])
def test_round_trip_every_encoding(encoding, pad, big):
    rng = np.random.default_rng(0)
    a = _random_array(rng, encoding, 5, 7)  # odd sizes
    _, channels = ENCODINGS[encoding]
    row = 7 * channels * a.dtype.itemsize
    h = _header(frame=f"f_{encoding}")
    msg = numpy_to_image(a, encoding, h, step=row + pad, is_bigendian=big)
    assert msg.step == row + pad and len(msg.data) == (row + pad) * 5
    assert msg.header == h
    out = _to_np(msg)
    assert out.dtype == np.uint8
    assert out.shape == ((5, 7) if channels in (1,) else (5, 7, 3))
    np.testing.assert_array_equal(out, _expected_output(a, encoding))
    # the default (cv_bridge when importable, numpy here) gives the same array
    np.testing.assert_array_equal(image_to_numpy(msg), out)
    # and the message survives real serialisation
    back = deserialize_message(serialize_message(msg), Image)
    np.testing.assert_array_equal(_to_np(back), out)


def test_single_channel_array_with_trailing_axis_and_large_image():
    a = np.arange(480 * 640, dtype=np.uint32).astype(np.uint8).reshape(480, 640, 1)
    msg = numpy_to_image(a, "mono8")
    out = _to_np(msg)
    np.testing.assert_array_equal(out, a[:, :, 0])
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


@pytest.mark.skipif(not cv_bridge_available(), reason="cv_bridge not importable (PyPI wheels)")
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_cv_bridge_path_matches_numpy_path(encoding):
    a = _random_array(np.random.default_rng(1), encoding, 4, 6)
    for big in (False, True):
        msg = numpy_to_image(a, encoding, is_bigendian=big)
        np.testing.assert_array_equal(
            image_to_numpy(msg, use_cv_bridge=True), image_to_numpy(msg, use_cv_bridge=False)
        )


@pytest.mark.skipif(cv_bridge_available(), reason="cv_bridge is importable here")
def test_requiring_missing_cv_bridge_is_a_config_error():
    with pytest.raises(ConfigError, match="cv_bridge"):
        image_to_numpy(_image("mono8", 1, 1, 1, [0]), use_cv_bridge=True)


# ---------------------------------------------------------------------------------------------
# Image: bad input


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (_image("yuv422", 1, 2, 4, [0] * 4), "unsupported image encoding 'yuv422'"),
        (_image("32FC1", 1, 1, 4, [0] * 4), "unsupported image encoding '32FC1'"),
        (_image("", 1, 1, 1, [0]), "unsupported image encoding ''"),
        (_image("MONO8", 1, 1, 1, [0]), "unsupported image encoding 'MONO8'"),
        (_image("mono8", 0, 4, 4, []), "zero-size image"),
        (_image("bgr8", 2, 0, 0, []), "zero-size image"),
        (_image("bgr8", 2, 2, 5, [0] * 10), "step 5 is smaller than width"),
        (_image("mono16", 1, 3, 5, [0] * 5), "step 5 is smaller than width"),
        (_image("mono8", 2, 3, 3, [0] * 5), r"data length 5 != step\*height = 3\*2 = 6"),
        (_image("mono8", 2, 3, 3, [0] * 7), r"data length 7 != step\*height"),
        (_image("rgba8", 2, 2, 8, []), r"data length 0 != step\*height"),
    ],
)
def test_bad_images_raise_image_conversion_error(msg, match):
    with pytest.raises(ImageConversionError, match=match) as info:
        _to_np(msg)
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)
    with pytest.raises(ImageConversionError, match=match):  # the default path validates too
        image_to_numpy(msg)


def test_image_larger_than_max_pixels():
    msg = _image("mono8", 2, 3, 3, [0] * 6)
    assert _to_np(msg, max_pixels=6).shape == (2, 3)
    with pytest.raises(ImageConversionError, match="6 pixels, more than the limit max_pixels=5"):
        _to_np(msg, max_pixels=5)
    # a header announcing a huge image is refused before its (missing) data is looked at
    huge = _image("mono8", 100_000, 100_000, 100_000, [])
    with pytest.raises(ImageConversionError, match="more than the limit"):
        _to_np(huge)
    assert _to_np(msg, max_pixels=None).shape == (2, 3)


@pytest.mark.parametrize(
    ("array", "encoding", "kw", "match"),
    [
        (np.zeros((2, 2), np.uint8), "yuv422", {}, "unsupported image encoding"),
        (np.zeros((2, 2), np.uint16), "mono8", {}, "needs a uint8 array"),
        (np.zeros((2, 2), np.uint8), "mono16", {}, "needs a uint16 array"),
        (np.zeros((2, 2, 3), np.float32), "bgr8", {}, "needs a uint8 array"),
        (np.zeros((2, 2), np.uint8), "bgr8", {}, r"shape \[H, W, 3\]"),
        (np.zeros((2, 2, 3), np.uint8), "rgba8", {}, r"shape \[H, W, 4\]"),
        (np.zeros((2, 2, 3), np.uint8), "mono8", {}, r"shape \[H, W\]"),
        (np.zeros((2, 2, 3), np.uint8), "rgb8", {"step": 5}, "step 5 is smaller"),
    ],
)
def test_numpy_to_image_rejects_bad_arrays(array, encoding, kw, match):
    with pytest.raises(ValueError, match=match):
        numpy_to_image(array, encoding, **kw)


# ---------------------------------------------------------------------------------------------
# CompressedImage


def _compressed(data: bytes, fmt: str = "png") -> CompressedImage:
    msg = CompressedImage(format=fmt)
    msg.data = data
    return msg


def _encode(ext: str, img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def test_compressed_png_gray_color_alpha_16bit():
    gray = np.array([[0, 50, 100], [150, 200, 250]], np.uint8)
    np.testing.assert_array_equal(compressed_to_numpy(_compressed(_encode(".png", gray))), gray)
    bgr = np.stack([gray, gray + 1, gray + 2], -1)
    np.testing.assert_array_equal(compressed_to_numpy(_compressed(_encode(".png", bgr))), bgr)
    bgra = np.concatenate([bgr, np.full((2, 3, 1), 7, np.uint8)], -1)
    np.testing.assert_array_equal(compressed_to_numpy(_compressed(_encode(".png", bgra))), bgr)
    deep = np.array([[0x1234, 0xABCD]], np.uint16)
    np.testing.assert_array_equal(
        compressed_to_numpy(_compressed(_encode(".png", deep))), [[0x12, 0xAB]]
    )


def test_compressed_jpeg_is_close_to_the_original():
    bgr = np.full((16, 16, 3), (40, 120, 200), np.uint8)
    out = compressed_to_numpy(_compressed(_encode(".jpg", bgr), "jpeg"))
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - bgr).max() <= 3


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty compressed image"),
        (b"this is not an image", "could not decode"),
        # compressedDepth: 12-byte private header in front of a PNG
        (bytes(12) + _encode(".png", np.zeros((2, 2), np.uint16)), "could not decode"),
        (_encode(".png", np.zeros((4, 4), np.uint8))[:30], "could not decode"),
    ],
)
def test_bad_compressed_images(data, match):
    with pytest.raises(ImageConversionError, match=match):
        compressed_to_numpy(_compressed(data))


def test_compressed_larger_than_max_pixels():
    msg = _compressed(_encode(".png", np.zeros((3, 4), np.uint8)))
    with pytest.raises(ImageConversionError, match="12 pixels, more than the limit"):
        compressed_to_numpy(msg, max_pixels=11)


# ---------------------------------------------------------------------------------------------
# ~/features <-> PointCloud2


def _fields(msg):
    return [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]


def test_features_layout_hand_packed():
    kp = np.array([[1.5, 2.25], [3.0, 4.0]], np.float32)
    sc = np.array([0.5, 0.125], np.float32)
    desc = np.array([[0.6, 0.8], [1.0, 0.0]], np.float32)
    h = _header()
    msg = features_to_msg(h, kp, sc, desc)
    assert _fields(msg) == [("x", 0, F32, 1), ("y", 4, F32, 1), ("score", 8, F32, 1)] + [
        ("descriptor", 12, F32, 2)
    ]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 2, 20, 40)
    assert msg.is_dense and not msg.is_bigendian
    expected = struct.pack("<5f", 1.5, 2.25, 0.5, 0.6, 0.8) + struct.pack(
        "<5f", 3.0, 4.0, 0.125, 1.0, 0.0
    )
    assert bytes(msg.data) == expected
    assert msg.header == h and msg.header is not h
    h.frame_id = "changed later"
    assert msg.header.frame_id == "camera_optical"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1712345678, 123456789)


@pytest.mark.parametrize(("n", "d"), [(0, 256), (0, 128), (1, 256), (37, 256), (50, 128), (4, 0)])
def test_features_round_trip(n, d):
    rng = np.random.default_rng(n + d)
    kp = rng.uniform(0, 640, (n, 2)).astype(np.float32)
    sc = rng.uniform(0, 1, n).astype(np.float32)
    desc = rng.normal(size=(n, d)).astype(np.float32)
    msg = features_to_msg(_header(), kp, sc, desc)
    assert msg.width == n and msg.height == 1
    assert msg.point_step == 4 * (3 + d) and msg.row_step == msg.point_step * n
    assert len(msg.data) == msg.row_step
    names = [f.name for f in msg.fields]
    assert names == (["x", "y", "score", "descriptor"] if d else ["x", "y", "score"])
    if d:
        assert _fields(msg)[3] == ("descriptor", 12, F32, d)
    msg = deserialize_message(serialize_message(msg), PointCloud2)
    out = features_from_msg(msg)
    assert set(out) == {"keypoints", "scores", "descriptors"}
    assert out["keypoints"].shape == (n, 2) and out["keypoints"].dtype == np.float32
    assert out["scores"].shape == (n,) and out["scores"].dtype == np.float32
    assert out["descriptors"].shape == (n, d) and out["descriptors"].dtype == np.float32
    np.testing.assert_array_equal(out["keypoints"], kp)
    np.testing.assert_array_equal(out["scores"], sc)
    np.testing.assert_array_equal(out["descriptors"], desc)
    assert out["descriptors"].flags.c_contiguous and out["descriptors"].flags.writeable


def test_features_none_descriptors_and_float64_input():
    msg = features_to_msg(None, np.array([[1.0, 2.0]]), np.array([0.5]), None)
    assert _fields(msg) == [("x", 0, F32, 1), ("y", 4, F32, 1), ("score", 8, F32, 1)]
    assert msg.header == Header() and bytes(msg.data) == struct.pack("<3f", 1.0, 2.0, 0.5)
    assert features_from_msg(msg)["descriptors"].shape == (1, 0)


def _cloud(fields, point_step, points_bytes, width, is_bigendian=False, row_step=None):
    msg = PointCloud2(height=1, width=width, point_step=point_step, is_dense=True)
    msg.is_bigendian = is_bigendian
    msg.fields = [PointField(name=n, offset=o, datatype=t, count=c) for n, o, t, c in fields]
    msg.row_step = point_step * width if row_step is None else row_step
    msg.data = points_bytes
    return msg


def test_features_from_foreign_layout_big_endian_extra_fields():
    # another producer: descriptor first, an extra field, 4 padding bytes, big-endian
    fields = [
        ("descriptor", 0, F32, 2),
        ("intensity", 8, PointField.UINT8, 1),
        ("score", 12, F32, 1),
        ("y", 16, F32, 1),
        ("x", 20, F32, 1),
    ]
    p0 = struct.pack(">2f4Bfff4x", 0.6, 0.8, 9, 0, 0, 0, 0.5, 20.0, 10.0)
    p1 = struct.pack(">2f4Bfff4x", 1.0, 0.0, 9, 0, 0, 0, 0.25, 40.0, 30.0)
    msg = _cloud(fields, 28, p0 + p1, 2, is_bigendian=True)
    out = features_from_msg(msg)
    np.testing.assert_array_equal(out["keypoints"], [[10.0, 20.0], [30.0, 40.0]])
    np.testing.assert_array_equal(out["scores"], [0.5, 0.25])
    np.testing.assert_allclose(out["descriptors"], [[0.6, 0.8], [1.0, 0.0]], rtol=1e-7)
    assert out["keypoints"].dtype.byteorder in ("=", "<")


def test_features_from_cloud_with_padded_rows():
    fields = [("x", 0, F32, 1), ("y", 4, F32, 1), ("score", 8, F32, 1)]
    rows = struct.pack("<3f", 1, 2, 3) + b"\xee" * 4 + struct.pack("<3f", 4, 5, 6) + b"\xee" * 4
    msg = _cloud(fields, 12, rows, 1, row_step=16)
    msg.height = 2
    np.testing.assert_array_equal(features_from_msg(msg)["keypoints"], [[1, 2], [4, 5]])


GOOD_FEATURE_FIELDS = [("x", 0, F32, 1), ("y", 4, F32, 1), ("score", 8, F32, 1)]


@pytest.mark.parametrize(
    ("fields", "point_step", "nbytes", "row_step", "match"),
    [
        ([("x", 0, F32, 1), ("score", 8, F32, 1)], 12, 12, None, "missing field 'y'"),
        (
            [("x", 0, PointField.FLOAT64, 1), ("y", 8, F32, 1), ("score", 12, F32, 1)],
            16,
            16,
            None,
            "field 'x' has datatype FLOAT64, schema needs FLOAT32",
        ),
        (
            [("x", 0, F32, 1), ("y", 4, F32, 1), ("score", 8, F32, 2)],
            16,
            16,
            None,
            "field 'score' has count 2",
        ),
        (GOOD_FEATURE_FIELDS + [("descriptor", 12, U32, 4)], 28, 28, None, "'descriptor'.*UINT32"),
        (GOOD_FEATURE_FIELDS + [("descriptor", 12, F32, 0)], 12, 12, None, "count 0"),
        (GOOD_FEATURE_FIELDS + [("descriptor", 12, F32, 4)], 20, 20, None, "does not fit"),
        (GOOD_FEATURE_FIELDS, 12, 11, None, r"data length 11 != row_step\*height"),
        (GOOD_FEATURE_FIELDS, 12, 8, 8, r"row_step 8 < point_step\*width"),
        (GOOD_FEATURE_FIELDS + [("x", 0, F32, 1)], 12, 12, None, "duplicate field names"),
    ],
)
def test_features_from_bad_clouds(fields, point_step, nbytes, row_step, match):
    msg = _cloud(fields, point_step, bytes(nbytes), 1, row_step=row_step)
    with pytest.raises(PointCloudSchemaError, match=match) as info:
        features_from_msg(msg)
    assert isinstance(info.value, InputError)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros((3, 3)), np.zeros(3), np.zeros((3, 8))), r"keypoints must have shape \[N, 2\]"),
        ((np.zeros((3, 2)), np.zeros(2), np.zeros((3, 8))), r"scores must have shape \[3\]"),
        (
            (np.zeros((3, 2)), np.zeros(3), np.zeros((2, 8))),
            r"descriptors must have shape \[3, D\]",
        ),
        ((np.zeros((3, 2)), np.zeros(3), np.zeros(3)), "descriptors must have shape"),
    ],
)
def test_features_to_msg_rejects_wrong_shapes(args, match):
    with pytest.raises(ValueError, match=match):
        features_to_msg(_header(), *args)


# ---------------------------------------------------------------------------------------------
# ~/matches <-> PointCloud2


MATCH_LAYOUT = [
    ("x0", 0, F32, 1),
    ("y0", 4, F32, 1),
    ("x1", 8, F32, 1),
    ("y1", 12, F32, 1),
    ("score", 16, F32, 1),
    ("idx0", 20, U32, 1),
    ("idx1", 24, U32, 1),
    ("track_id", 28, U32, 1),
]


def test_matches_layout_hand_packed_and_round_trip():
    h = _header(frame="left")
    msg = matches_to_msg(
        h,
        np.array([[1.0, 2.0], [3.0, 4.0]]),
        np.array([[1.5, 2.5], [3.5, 4.5]]),
        np.array([0.25, 0.75]),
        np.array([0, 7]),
        np.array([2, 5]),
        np.array([100, 4_000_000_000], np.int64),
    )
    assert _fields(msg) == MATCH_LAYOUT
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 2, 32, 64)
    assert msg.is_dense and not msg.is_bigendian and msg.header == h
    expected = struct.pack("<5f3I", 1, 2, 1.5, 2.5, 0.25, 0, 2, 100) + struct.pack(
        "<5f3I", 3, 4, 3.5, 4.5, 0.75, 7, 5, 4_000_000_000
    )
    assert bytes(msg.data) == expected
    out = matches_from_msg(deserialize_message(serialize_message(msg), PointCloud2))
    np.testing.assert_array_equal(out["kpts0"], [[1, 2], [3, 4]])
    np.testing.assert_array_equal(out["kpts1"], [[1.5, 2.5], [3.5, 4.5]])
    np.testing.assert_array_equal(out["scores"], [0.25, 0.75])
    np.testing.assert_array_equal(out["idx0"], [0, 7])
    np.testing.assert_array_equal(out["idx1"], [2, 5])
    np.testing.assert_array_equal(out["track_id"], [100, 4_000_000_000])
    np.testing.assert_array_equal(out["matches"], [[0, 2], [7, 5]])
    assert out["idx0"].dtype == np.uint32 and out["track_id"].dtype == np.uint32
    assert out["matches"].dtype == np.int64 and out["kpts0"].dtype == np.float32


def test_matches_empty():
    e2, e1 = np.zeros((0, 2)), np.zeros(0)
    msg = matches_to_msg(_header(), e2, e2, e1, e1, e1, e1)
    assert _fields(msg) == MATCH_LAYOUT
    assert (msg.width, msg.point_step, msg.row_step, len(msg.data)) == (0, 32, 0, 0)
    out = matches_from_msg(msg)
    assert out["kpts0"].shape == (0, 2) and out["matches"].shape == (0, 2)
    assert out["track_id"].shape == (0,) and out["track_id"].dtype == np.uint32


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"idx0": np.array([-1])}, r"idx0 must be within 0..2\*\*32-1"),
        ({"track_id": np.array([2**32])}, "track_id must be within"),
        ({"idx1": np.array([0.5])}, "idx1 must hold integers"),
        ({"kpts1": np.zeros((2, 2))}, r"kpts1 must have shape \[1, 2\]"),
        ({"scores": np.zeros(2)}, r"scores must have shape \[1\]"),
    ],
)
def test_matches_to_msg_rejects_bad_arrays(change, match):
    args = {
        "kpts0": np.zeros((1, 2)),
        "kpts1": np.zeros((1, 2)),
        "scores": np.zeros(1),
        "idx0": np.zeros(1, int),
        "idx1": np.zeros(1, int),
        "track_id": np.zeros(1, int),
    }
    args.update(change)
    with pytest.raises(ValueError, match=match):
        matches_to_msg(_header(), **args)


def test_matches_from_msg_rejects_wrong_fields():
    wrong_type = [f if f[0] != "idx0" else ("idx0", 20, F32, 1) for f in MATCH_LAYOUT]
    with pytest.raises(PointCloudSchemaError, match="'idx0' has datatype FLOAT32.*UINT32"):
        matches_from_msg(_cloud(wrong_type, 32, bytes(32), 1))
    missing = [f for f in MATCH_LAYOUT if f[0] != "track_id"]
    with pytest.raises(PointCloudSchemaError, match="missing field 'track_id'"):
        matches_from_msg(_cloud(missing, 32, bytes(32), 1))
    features = features_to_msg(_header(), np.zeros((1, 2)), np.zeros(1), np.zeros((1, 4)))
    with pytest.raises(PointCloudSchemaError, match="matches: missing field 'x0'"):
        matches_from_msg(features)
