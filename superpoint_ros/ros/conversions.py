"""Conversions between ROS 2 messages and the numpy arrays of the front-end's data contract.

Pure functions: they import numpy, OpenCV and the message packages (``sensor_msgs``,
``std_msgs``), never the ``rclpy`` node machinery, so they are tested without a node.

Images (``sensor_msgs/Image`` -> ``uint8`` gray ``[H, W]`` or BGR ``[H, W, 3]``):

=========== ================ ===========================================================
encoding    bytes per pixel  conversion
=========== ================ ===========================================================
``mono8``   1                view of ``msg.data`` (no copy)
``8UC1``    1                same as ``mono8``
``bgr8``    3                view of ``msg.data`` (no copy)
``8UC3``    3                same as ``bgr8`` (OpenCV's channel order)
``rgb8``    3                one pass ``cv2.cvtColor(RGB2BGR)`` -> new BGR array
``rgba8``   4                one pass ``cv2.cvtColor(RGBA2BGR)``: alpha dropped
``bgra8``   4                one pass ``cv2.cvtColor(BGRA2BGR)``: alpha dropped
``mono16``  2                ``min(v >> mono16_shift, 255)`` (default shift 8, i.e. the high
                             byte: full 16-bit range maps onto 0..255); ``mono16_shift=None``
                             stretches each frame's min..max onto 0..255 instead
``16UC1``   2                same as ``mono16`` (OpenCV's name for it: infrared cameras,
                             depth published as intensity)
=========== ================ ===========================================================

``step`` row padding is honoured with strided views (``np.ndarray(buffer=..., strides=...)``);
``is_bigendian`` is honoured for ``mono16``/``16UC1``. The returned array may share memory with
``msg.data`` (like ``cv_bridge``'s ``passthrough``): copy it before changing the message.

Feature and match messages (``sensor_msgs/PointCloud2``, height 1, width N, little-endian,
``is_dense`` true; the schemas are documented in ``docs/ros_topics.md``):

* features: ``x``, ``y``, ``score`` float32 and ``descriptor`` float32 with ``count`` D
  (absent when D == 0, i.e. MagicPoint); ``point_step = 4 * (3 + D)``.
* matches: ``x0``, ``y0``, ``x1``, ``y1``, ``score`` float32, ``idx0``, ``idx1``, ``track_id``
  uint32; ``point_step = 32``.

Errors caused by what arrives on a topic raise :class:`ImageConversionError` or
:class:`PointCloudSchemaError` (both :class:`~superpoint_ros.errors.InputError`); wrong arrays
handed to the ``*_to_msg`` builders are bugs of the caller and raise ``ValueError``.

The encoding table, the header checks, the raw pixel view and the colour conversion table
(``convert_8bit``) live in the ROS-free :mod:`superpoint_ros.image_encodings` (shared with the
bag code and the bench, which must not need ``sensor_msgs``); the first three are re-exported
here; the error classes live in :mod:`superpoint_ros.errors`.
"""

from __future__ import annotations

import array
from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from superpoint_ros.errors import (
    ConfigError,
    ImageConversionError,
    ImageReadError,
    PointCloudSchemaError,
)
from superpoint_ros.image_encodings import (
    ENCODINGS,
    SIXTEEN_BIT,
    check_image_header,
    convert_8bit,
    mono16_to_8,
    raw_image_view,
)
from superpoint_ros.image_io import decode_image, to_frontend

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ENCODINGS",
    "FEATURE_FIELDS",
    "MATCH_FIELDS",
    "ImageConversionError",
    "PointCloudSchemaError",
    "check_image_header",
    "compressed_to_numpy",
    "copy_header",
    "cv_bridge_available",
    "features_dtype",
    "features_from_msg",
    "features_to_msg",
    "header_at",
    "image_to_numpy",
    "matches_dtype",
    "matches_from_msg",
    "matches_to_msg",
    "numpy_to_image",
    "raw_image_view",
    "stamp_ns",
]

# Largest image accepted by default (pixels): 3840 x 2160 (4K UHD). Guards the node against a
# header that announces an absurd size, and bounds the memory one frame takes (README, "Memory");
# the node exposes it as the max_image_pixels parameter.
DEFAULT_MAX_PIXELS = 3840 * 2160


# --------------------------------------------------------------------------------------------
# Headers


def copy_header(header: Header | None) -> Header:
    """A new ``Header`` with the same stamp and frame_id (an empty one for ``None``).

    A copy rather than the same object, so a later change of the input message cannot change
    what was published.
    """
    out = Header()
    if header is not None:
        out.stamp.sec = header.stamp.sec
        out.stamp.nanosec = header.stamp.nanosec
        out.frame_id = header.frame_id
    return out


def stamp_ns(header: Header) -> int:
    """The header's stamp in integer nanoseconds (exact: no float on the way)."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def header_at(stamp: int, frame_id: str) -> Header:
    """A ``Header`` stamped ``stamp`` nanoseconds (>= 0) with ``frame_id``."""
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp), 1_000_000_000)
    return header


def _byte_array(buffer: Any) -> array.array:
    """``array.array('B')`` holding a copy of a contiguous buffer: one memcpy.

    Assigning ``bytes`` or a numpy array to a message's ``data`` makes the generated setter check
    every byte in Python (seconds for a large image); an ``array.array('B')`` is stored as is.
    """
    out = array.array("B")
    out.frombytes(memoryview(buffer).cast("B"))
    return out


# --------------------------------------------------------------------------------------------
# sensor_msgs/Image


def cv_bridge_available() -> bool:
    """Whether ``cv_bridge`` can be imported here (a sourced ROS 2; never in the PyPI wheels)."""
    try:
        import cv_bridge  # noqa: F401
    except ImportError:
        return False
    return True


def _cv_bridge_view(msg: Image) -> np.ndarray:
    """``cv_bridge``'s passthrough array of a validated, unpadded message."""
    from cv_bridge import CvBridge

    try:
        return CvBridge().imgmsg_to_cv2(msg, desired_encoding="passthrough")
    except Exception as exc:  # CvBridgeError and whatever OpenCV raises; the header was valid
        raise ImageConversionError(f"cv_bridge could not convert the image: {exc}") from exc


_mono16_to_8 = mono16_to_8  # the one home is superpoint_ros.image_encodings


def _check_mono16_shift(mono16_shift: int | None) -> None:
    if mono16_shift is not None and (
        isinstance(mono16_shift, bool)
        or not isinstance(mono16_shift, (int, np.integer))
        or not 0 <= mono16_shift <= 8
    ):
        raise ConfigError(f"mono16_shift must be an integer 0..8 or None, got {mono16_shift!r}")


def image_to_numpy(
    msg: Image,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    mono16_shift: int | None = 8,
    use_cv_bridge: bool | None = None,
) -> np.ndarray:
    """Convert a ``sensor_msgs/Image`` to what the front-end takes.

    Returns ``uint8`` gray ``[H, W]`` for ``mono8``/``8UC1``/``mono16``/``16UC1`` and ``uint8`` BGR
    ``[H, W, 3]`` for ``bgr8``/``8UC3``/``rgb8``/``rgba8``/``bgra8`` (alpha dropped). For
    ``mono8``, ``8UC1``, ``bgr8`` and ``8UC3`` the result is a view of ``msg.data`` (strided
    when rows are padded), otherwise one new array.

    ``mono16`` becomes ``min(v >> mono16_shift, 255)``: 8 (default) keeps the high byte of a
    full-range 16-bit image; use ``16 - bits`` for a sensor with fewer bits (4 for 12-bit data).
    ``mono16_shift=None`` stretches each frame's min..max onto 0..255 (a constant frame gives 0);
    that follows auto exposure of e.g. thermal cameras but changes from frame to frame.

    ``use_cv_bridge``: ``None`` uses ``cv_bridge`` for unpadded images when it is importable,
    ``False`` always uses the numpy views (what the tests check), ``True`` requires it. Padded
    rows always take the numpy path, which handles them without copies. The header is validated
    first either way, so both paths raise the same :class:`ImageConversionError` for: unknown
    encoding, zero width or height, more than ``max_pixels`` pixels, ``step`` smaller than a row,
    ``len(data) != step * height``.
    """
    _check_mono16_shift(mono16_shift)
    dtype, channels, bpp = check_image_header(msg, max_pixels)
    unpadded = int(msg.step) == int(msg.width) * bpp
    if use_cv_bridge is None:
        use_cv_bridge = unpadded and cv_bridge_available()
    elif use_cv_bridge and not cv_bridge_available():
        raise ConfigError("use_cv_bridge=True but cv_bridge cannot be imported (source ROS 2)")
    if use_cv_bridge and unpadded:
        raw = _cv_bridge_view(msg)
        expected = (int(msg.height), int(msg.width)) + ((channels,) if channels > 1 else ())
        if raw.shape != expected:
            raise ImageConversionError(f"cv_bridge gave shape {raw.shape}, expected {expected}")
    else:
        raw = raw_image_view(msg, dtype, channels)
    if msg.encoding in SIXTEEN_BIT:
        return mono16_to_8(raw, mono16_shift)
    # gray stays gray, colour becomes BGR; mono8/8UC1/bgr8/8UC3 come back as the view itself
    return convert_8bit(raw, msg.encoding, "mono8" if channels == 1 else "bgr8")


def numpy_to_image(
    array_: np.ndarray,
    encoding: str,
    header: Header | None = None,
    *,
    step: int | None = None,
    is_bigendian: bool = False,
) -> Image:
    """Build a ``sensor_msgs/Image`` whose pixels are ``array_`` as given (no channel reordering).

    ``array_`` holds the encoding's own layout: ``uint8 [H, W]`` (or ``[H, W, 1]``) for
    ``mono8``/``8UC1``, ``uint16 [H, W]`` for ``mono16``, ``uint8 [H, W, 3]`` in RGB order for
    ``rgb8`` and BGR order for ``bgr8``/``8UC3``, ``uint8 [H, W, 4]`` for ``rgba8``/``bgra8``.
    So ``image_to_numpy(numpy_to_image(a, "rgb8"))`` is ``a[..., ::-1]``.

    ``step``: bytes per row, default the packed row; a larger value pads each row with zeros (to
    test consumers). ``is_bigendian`` writes ``mono16`` most significant byte first. The header
    is copied (stamp and frame_id). One copy of the pixels.
    """
    if encoding not in ENCODINGS:
        raise ValueError(
            f"unsupported image encoding {encoding!r}; accepted: {', '.join(ENCODINGS)}"
        )
    dtype, channels = ENCODINGS[encoding]
    a = np.asarray(array_)
    if a.dtype != dtype:
        raise ValueError(f"{encoding} needs a {dtype} array, got {a.dtype}")
    if channels == 1 and a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    expected_ndim = 2 if channels == 1 else 3
    if a.ndim != expected_ndim or (channels > 1 and a.shape[2] != channels):
        want = "[H, W]" if channels == 1 else f"[H, W, {channels}]"
        raise ValueError(f"{encoding} needs an array of shape {want}, got {a.shape}")
    height, width = a.shape[:2]
    row = width * channels * dtype.itemsize
    step = row if step is None else int(step)
    if step < row:
        raise ValueError(f"step {step} is smaller than a packed row of {row} bytes")
    if dtype.itemsize > 1:
        a = a.astype(dtype.newbyteorder(">" if is_bigendian else "<"), copy=False)
    msg = Image()
    msg.header = copy_header(header)
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.is_bigendian = bool(is_bigendian)
    msg.step = step
    if step == row:
        msg.data = _byte_array(np.ascontiguousarray(a))
    else:
        padded = np.zeros((height, step), np.uint8)
        padded[:, :row] = np.ascontiguousarray(a).view(np.uint8).reshape(height, row)
        msg.data = _byte_array(padded)
    return msg


def compressed_to_numpy(
    msg: CompressedImage,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    mono16_shift: int | None = 8,
) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG, PNG... see
    :mod:`superpoint_ros.image_io`, the project's one image reader).

    Returns uint8 gray ``[H, W]`` or BGR ``[H, W, 3]`` like :func:`image_to_numpy`: the
    decoded file's own channels are kept (a gray JPEG stays gray), alpha is dropped, 16-bit PNGs
    are scaled with ``mono16_shift`` as ``mono16``. ``max_pixels`` is checked on the header,
    before decoding; a truncated or corrupt JPEG (what libjpeg would only warn about on stderr)
    is refused. ``format`` is not needed; ``compressedDepth`` messages (a private header before
    the PNG) are rejected. Every refusal is an :class:`ImageConversionError`.
    """
    _check_mono16_shift(mono16_shift)
    if len(msg.data) == 0:
        raise ImageConversionError(f"empty compressed image (format {msg.format!r})")
    try:
        img = decode_image(memoryview(msg.data).cast("B"), max_pixels=max_pixels)
    except ImageReadError as exc:
        raise ImageConversionError(
            f"could not decode compressed image (format {msg.format!r}, {len(msg.data)} bytes): "
            f"{exc}"
        ) from None
    return to_frontend(img, mono16_shift)


# --------------------------------------------------------------------------------------------
# sensor_msgs/PointCloud2: ~/features and ~/matches

# name -> numpy scalar type for the PointField datatypes this module writes or reads.
_POINTFIELD_TYPES = {
    PointField.INT8: np.int8,
    PointField.UINT8: np.uint8,
    PointField.INT16: np.int16,
    PointField.UINT16: np.uint16,
    PointField.INT32: np.int32,
    PointField.UINT32: np.uint32,
    PointField.FLOAT32: np.float32,
    PointField.FLOAT64: np.float64,
}
_POINTFIELD_NAMES = {
    PointField.INT8: "INT8",
    PointField.UINT8: "UINT8",
    PointField.INT16: "INT16",
    PointField.UINT16: "UINT16",
    PointField.INT32: "INT32",
    PointField.UINT32: "UINT32",
    PointField.FLOAT32: "FLOAT32",
    PointField.FLOAT64: "FLOAT64",
}

# (name, datatype) in the order and at the offsets they are written (4 bytes each).
FEATURE_FIELDS = (
    ("x", PointField.FLOAT32),
    ("y", PointField.FLOAT32),
    ("score", PointField.FLOAT32),
)
FEATURE_DESCRIPTOR_FIELD = "descriptor"  # FLOAT32, count D, offset 12
MATCH_FIELDS = (
    ("x0", PointField.FLOAT32),
    ("y0", PointField.FLOAT32),
    ("x1", PointField.FLOAT32),
    ("y1", PointField.FLOAT32),
    ("score", PointField.FLOAT32),
    ("idx0", PointField.UINT32),
    ("idx1", PointField.UINT32),
    ("track_id", PointField.UINT32),
)


def features_dtype(descriptor_dim: int) -> np.dtype:
    """Little-endian structured dtype of one ``~/features`` point (itemsize ``4 * (3 + D)``)."""
    names = ["x", "y", "score"]
    formats: list[Any] = ["<f4", "<f4", "<f4"]
    if descriptor_dim > 0:
        names.append(FEATURE_DESCRIPTOR_FIELD)
        formats.append(("<f4", (descriptor_dim,)))
    return np.dtype({"names": names, "formats": formats})


def matches_dtype() -> np.dtype:
    """Little-endian structured dtype of one ``~/matches`` point (itemsize 32)."""
    return np.dtype({"names": [n for n, _ in MATCH_FIELDS], "formats": ["<f4"] * 5 + ["<u4"] * 3})


def _fields_of(dtype: np.dtype) -> list[PointField]:
    """PointFields describing a packed structured dtype made of float32/uint32 (sub)arrays."""
    out = []
    for name in dtype.names:
        sub, offset = dtype.fields[name][:2]
        base, shape = sub.subdtype if sub.subdtype is not None else (sub, ())
        datatype = PointField.FLOAT32 if base.kind == "f" else PointField.UINT32
        count = int(np.prod(shape)) if shape else 1
        out.append(PointField(name=name, offset=offset, datatype=datatype, count=count))
    return out


def _cloud_msg(header: Header | None, points: np.ndarray) -> PointCloud2:
    msg = PointCloud2()
    msg.header = copy_header(header)
    msg.height = 1
    msg.width = len(points)
    msg.fields = _fields_of(points.dtype)
    msg.is_bigendian = False
    msg.point_step = points.dtype.itemsize
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = True
    msg.data = _byte_array(points.view(np.uint8))
    return msg


def _as_2d(name: str, value: Any, n: int | None, cols: int | None) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != 2 or (cols is not None and a.shape[1] != cols) or (n is not None and len(a) != n):
        want = f"[{'N' if n is None else n}, {'D' if cols is None else cols}]"
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    return a


def _as_1d(name: str, value: Any, n: int) -> np.ndarray:
    a = np.asarray(value)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape [{n}], got {a.shape}")
    return a


def _as_uint32(name: str, value: Any, n: int) -> np.ndarray:
    a = _as_1d(name, value, n)
    if n and a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got {a.dtype}")
    if n and (a.min() < 0 or a.max() > np.iinfo(np.uint32).max):
        raise ValueError(f"{name} must be within 0..2**32-1, got {a.min()}..{a.max()}")
    return a


def features_to_msg(
    header: Header | None,
    keypoints: np.ndarray,
    scores: np.ndarray,
    descriptors: np.ndarray | None,
) -> PointCloud2:
    """Pack ``keypoints [N,2] (x, y)``, ``scores [N]``, ``descriptors [N,D]`` into ``~/features``.

    ``PointCloud2``: height 1, width N, fields ``x``@0, ``y``@4, ``score``@8 (FLOAT32, count 1)
    and ``descriptor``@12 (FLOAT32, count D; left out when D == 0 or ``descriptors`` is None),
    little-endian, ``is_dense`` true, ``point_step = 4 * (3 + D)``, ``row_step = point_step * N``.
    ``header`` is copied exactly. Values are cast to float32. N == 0 gives an empty cloud that
    still carries the fields (and D).
    """
    kp = _as_2d("keypoints", keypoints, None, 2)
    n = len(kp)
    sc = _as_1d("scores", scores, n)
    desc = np.zeros((n, 0), np.float32) if descriptors is None else descriptors
    desc = _as_2d("descriptors", desc, n, None)
    points = np.empty(n, features_dtype(desc.shape[1]))
    points["x"] = kp[:, 0]
    points["y"] = kp[:, 1]
    points["score"] = sc
    if desc.shape[1]:
        points[FEATURE_DESCRIPTOR_FIELD] = desc
    return _cloud_msg(header, points)


def matches_to_msg(
    header: Header | None,
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    scores: np.ndarray,
    idx0: np.ndarray,
    idx1: np.ndarray,
    track_id: np.ndarray,
) -> PointCloud2:
    """Pack M matches between the previous frame (0) and this one (1) into ``~/matches``.

    ``kpts0``/``kpts1`` ``[M,2]`` (x, y) pixels, ``scores [M]``, ``idx0``/``idx1`` ``[M]``
    indices into the previous/current ``~/features`` message, ``track_id [M]``. Fields
    ``x0``@0, ``y0``@4, ``x1``@8, ``y1``@12, ``score``@16 (FLOAT32), ``idx0``@20, ``idx1``@24,
    ``track_id``@28 (UINT32); ``point_step`` 32, little-endian, height 1, width M. Indices must
    be integers in 0..2**32-1 (checked, never wrapped).
    """
    k0 = _as_2d("kpts0", kpts0, None, 2)
    m = len(k0)
    k1 = _as_2d("kpts1", kpts1, m, 2)
    sc = _as_1d("scores", scores, m)
    i0, i1 = _as_uint32("idx0", idx0, m), _as_uint32("idx1", idx1, m)
    tid = _as_uint32("track_id", track_id, m)
    points = np.empty(m, matches_dtype())
    points["x0"], points["y0"] = k0[:, 0], k0[:, 1]
    points["x1"], points["y1"] = k1[:, 0], k1[:, 1]
    points["score"] = sc
    points["idx0"], points["idx1"], points["track_id"] = i0, i1, tid
    return _cloud_msg(header, points)


def _read_cloud(
    msg: PointCloud2, what: str, required: dict[str, tuple[int, int | None]]
) -> np.ndarray:
    """View the points of ``msg`` as a structured array of the ``required`` fields.

    ``required``: name -> (PointField datatype, count or None for any count >= 1). Other fields
    are ignored (forward compatible). Offsets, ``point_step``, ``row_step`` and
    ``is_bigendian`` come from the message. Raises :class:`PointCloudSchemaError`.
    """
    fields = {f.name: f for f in msg.fields}
    if len(fields) != len(msg.fields):
        raise PointCloudSchemaError(
            f"{what}: duplicate field names {[f.name for f in msg.fields]}"
        )
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    height, width = int(msg.height), int(msg.width)
    names, formats, offsets = [], [], []
    order = ">" if msg.is_bigendian else "<"
    for name, (datatype, count) in required.items():
        f = fields.get(name)
        if f is None:
            raise PointCloudSchemaError(
                f"{what}: missing field {name!r}; message has {sorted(fields)}, "
                f"schema needs {list(required)}"
            )
        if f.datatype != datatype:
            got = _POINTFIELD_NAMES.get(f.datatype, str(f.datatype))
            raise PointCloudSchemaError(
                f"{what}: field {name!r} has datatype {got}, schema needs "
                f"{_POINTFIELD_NAMES[datatype]}"
            )
        if (count is not None and f.count != count) or f.count < 1:
            raise PointCloudSchemaError(
                f"{what}: field {name!r} has count {f.count}, schema needs "
                f"{count if count is not None else '>= 1'}"
            )
        scalar = np.dtype(_POINTFIELD_TYPES[datatype]).newbyteorder(order)
        if f.offset + scalar.itemsize * f.count > point_step:
            raise PointCloudSchemaError(
                f"{what}: field {name!r} (offset {f.offset}, {f.count} x {scalar.itemsize} bytes) "
                f"does not fit in point_step {point_step}"
            )
        names.append(name)
        formats.append(scalar if f.count == 1 else (scalar, (f.count,)))
        offsets.append(f.offset)
    if row_step < point_step * width:
        raise PointCloudSchemaError(
            f"{what}: row_step {row_step} < point_step*width = {point_step}*{width}"
        )
    if len(msg.data) != row_step * height:
        raise PointCloudSchemaError(
            f"{what}: data length {len(msg.data)} != row_step*height = {row_step}*{height}"
        )
    dtype = np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step}
    )
    if height * width == 0:
        return np.zeros(0, dtype)
    rows = np.ndarray(
        shape=(height, width), dtype=dtype, buffer=msg.data, strides=(row_step, point_step)
    )
    return rows.reshape(-1)  # a view when rows are packed (always, for our messages)


def features_from_msg(msg: PointCloud2) -> dict[str, np.ndarray]:
    """Read ``~/features`` back: ``{"keypoints" [N,2], "scores" [N], "descriptors" [N,D]}``.

    All float32, native byte order, contiguous copies (independent of ``msg``). Reads any cloud
    with fields ``x``, ``y``, ``score`` (FLOAT32) and optionally ``descriptor`` (FLOAT32, count
    D >= 1; absent means D = 0) at any offsets; other fields are ignored. N = height * width.
    Raises :class:`PointCloudSchemaError` for missing/mistyped fields or inconsistent sizes.
    """
    required: dict[str, tuple[int, int | None]] = {n: (t, 1) for n, t in FEATURE_FIELDS}
    has_desc = any(f.name == FEATURE_DESCRIPTOR_FIELD for f in msg.fields)
    if has_desc:
        required[FEATURE_DESCRIPTOR_FIELD] = (PointField.FLOAT32, None)
    pts = _read_cloud(msg, "features", required)
    n = len(pts)
    keypoints = np.empty((n, 2), np.float32)
    keypoints[:, 0] = pts["x"]
    keypoints[:, 1] = pts["y"]
    if has_desc:
        count = next(f.count for f in msg.fields if f.name == FEATURE_DESCRIPTOR_FIELD)
        descriptors = np.empty((n, count), np.float32)
        descriptors[...] = pts[FEATURE_DESCRIPTOR_FIELD].reshape(n, count)
    else:
        descriptors = np.zeros((n, 0), np.float32)
    return {
        "keypoints": keypoints,
        "scores": pts["score"].astype(np.float32),
        "descriptors": descriptors,
    }


def matches_from_msg(msg: PointCloud2) -> dict[str, np.ndarray]:
    """Read a ``~/matches`` cloud back.

    Returns ``kpts0``/``kpts1`` float32 ``[M,2]``, ``scores`` float32 ``[M]``, ``idx0``,
    ``idx1``, ``track_id`` uint32 ``[M]`` and, for the data contract, ``matches`` int64
    ``[M,2]`` = ``(idx0, idx1)`` pairs. Native byte order, contiguous copies. Raises
    :class:`PointCloudSchemaError` for missing/mistyped fields or inconsistent sizes.
    """
    pts = _read_cloud(msg, "matches", {n: (t, 1) for n, t in MATCH_FIELDS})
    m = len(pts)
    kpts0 = np.empty((m, 2), np.float32)
    kpts0[:, 0], kpts0[:, 1] = pts["x0"], pts["y0"]
    kpts1 = np.empty((m, 2), np.float32)
    kpts1[:, 0], kpts1[:, 1] = pts["x1"], pts["y1"]
    idx0 = pts["idx0"].astype(np.uint32)
    idx1 = pts["idx1"].astype(np.uint32)
    return {
        "kpts0": kpts0,
        "kpts1": kpts1,
        "scores": pts["score"].astype(np.float32),
        "idx0": idx0,
        "idx1": idx1,
        "track_id": pts["track_id"].astype(np.uint32),
        "matches": np.stack([idx0, idx1], axis=1).astype(np.int64),
    }
