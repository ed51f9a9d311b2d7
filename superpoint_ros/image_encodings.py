"""The image encodings the project accepts, and the checks and raw views every reader shares.

ROS-free on purpose: these functions only read message attributes (``encoding``, ``height``,
``width``, ``step``, ``is_bigendian``, ``data``), so they serve ``rclpy``'s
``sensor_msgs.msg.Image`` (:mod:`superpoint_ros.ros.conversions`) and the plain dataclasses of
``rosbags`` (``superpoint_training.bags``) alike, without importing any ROS message package.
One home for every encoding rule, including the one table of 8-bit colour conversions
(:func:`convert_8bit`) that the node's conversions, the bag writer and the bench node use.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from superpoint_ros.errors import ImageConversionError, InputError

__all__ = [
    "COLOR_CONVERSIONS",
    "ENCODINGS",
    "check_image_header",
    "check_pixel_limit",
    "convert_8bit",
    "mono16_to_8",
    "raw_image_view",
]

# encoding -> (element dtype, channels). Element byte order is fixed per message by is_bigendian.
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),  # OpenCV's name for the same layout (IR, depth cameras)
    "bgr8": (np.dtype(np.uint8), 3),
    "8UC3": (np.dtype(np.uint8), 3),
    "rgb8": (np.dtype(np.uint8), 3),
    "bgra8": (np.dtype(np.uint8), 4),
    "rgba8": (np.dtype(np.uint8), 4),
}


def check_image_header(msg: Any, max_pixels: int | None) -> tuple[np.dtype, int, int]:
    """Validate an image message's encoding, size, step and data length.

    ``msg``: anything with the attributes of ``sensor_msgs/Image``. Returns
    ``(element dtype, channels, bytes per pixel)``. Raises :class:`ImageConversionError` for
    an unknown encoding, zero width or height, more than ``max_pixels`` pixels (``None``: no
    limit), ``step`` smaller than a row, ``len(data) != step * height``.
    """
    if msg.encoding not in ENCODINGS:
        raise ImageConversionError(
            f"unsupported image encoding {msg.encoding!r}; accepted: {', '.join(ENCODINGS)}"
        )
    dtype, channels = ENCODINGS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageConversionError(f"zero-size image ({height}x{width}, {msg.encoding})")
    check_pixel_limit(height, width, max_pixels)
    bpp = dtype.itemsize * channels
    if step < width * bpp:
        raise ImageConversionError(
            f"step {step} is smaller than width*bytes_per_pixel = {width}*{bpp} = {width * bpp} "
            f"({msg.encoding})"
        )
    if len(msg.data) != step * height:
        raise ImageConversionError(
            f"data length {len(msg.data)} != step*height = {step}*{height} = {step * height} "
            f"({height}x{width} {msg.encoding})"
        )
    return dtype, channels, bpp


def check_pixel_limit(height: int, width: int, max_pixels: int | None) -> None:
    """Raise :class:`ImageConversionError` when ``height * width`` exceeds ``max_pixels``
    (``None``: no limit): the guard against a header or file announcing an absurd size, for raw
    and compressed images alike."""
    if max_pixels is not None and height * width > max_pixels:
        raise ImageConversionError(
            f"image {height}x{width} has {height * width} pixels, more than the limit "
            f"max_pixels={max_pixels}"
        )


def raw_image_view(msg: Any, dtype: np.dtype, channels: int) -> np.ndarray:
    """``msg.data`` seen as ``[H, W]`` or ``[H, W, C]`` elements in the message's byte order.

    No copy: rows are ``step`` bytes apart, so padding is skipped by the strides. The header
    must have been validated with :func:`check_image_header` (numpy checks the view stays
    inside the buffer anyway).
    """
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    height, width = int(msg.height), int(msg.width)
    shape: tuple[int, ...] = (height, width)
    strides: tuple[int, ...] = (int(msg.step), dtype.itemsize * channels)
    if channels > 1:
        shape += (channels,)
        strides += (dtype.itemsize,)
    return np.ndarray(shape=shape, dtype=dtype, buffer=msg.data, strides=strides)


# The encodings whose layout is another's: OpenCV's type names for gray and BGR.
_SAME_LAYOUT = {"8UC1": "mono8", "8UC3": "bgr8", "16UC1": "mono16"}
SIXTEEN_BIT = ("mono16", "16UC1")


def mono16_to_8(values: np.ndarray, mono16_shift: int | None) -> np.ndarray:
    """uint16 ``[H, W]`` or ``[H, W, C]`` (any byte order, any strides) -> new uint8 array:
    ``min(v >> mono16_shift, 255)``; ``None`` stretches the frame's min..max onto 0..255 (a
    constant frame gives 0). One scale for all channels, so colours keep their balance."""
    if mono16_shift is None:
        lo, hi = int(values.min()), int(values.max())
        if hi == lo:
            return np.zeros(values.shape, np.uint8)
        scaled = (values.astype(np.float32) - lo) * np.float32(255.0 / (hi - lo))
        return (scaled + np.float32(0.5)).astype(np.uint8)  # round half up; stays in 0..255
    shifted = values >> mono16_shift  # native uint16 result
    if mono16_shift < 8:
        np.minimum(shifted, 255, out=shifted)
    return shifted.astype(np.uint8)


# (source layout, target) -> the one cv2.cvtColor code; gray is BT.601 as OpenCV computes it,
# which is what the front-end's own BGR -> gray gives, and alpha is dropped.
COLOR_CONVERSIONS: dict[tuple[str, str], int] = {
    ("bgr8", "mono8"): cv2.COLOR_BGR2GRAY,
    ("rgb8", "mono8"): cv2.COLOR_RGB2GRAY,
    ("bgra8", "mono8"): cv2.COLOR_BGRA2GRAY,
    ("rgba8", "mono8"): cv2.COLOR_RGBA2GRAY,
    ("mono8", "bgr8"): cv2.COLOR_GRAY2BGR,
    ("rgb8", "bgr8"): cv2.COLOR_RGB2BGR,
    ("bgra8", "bgr8"): cv2.COLOR_BGRA2BGR,
    ("rgba8", "bgr8"): cv2.COLOR_RGBA2BGR,
}


def convert_8bit(image: np.ndarray, encoding: str, target: str) -> np.ndarray:
    """An 8-bit image in ``encoding`` (``mono8``/``8UC1`` ``[H, W]``, ``bgr8``/``8UC3``/``rgb8``
    ``[H, W, 3]``, ``bgra8``/``rgba8`` ``[H, W, 4]``) as ``target`` (``mono8`` or ``bgr8``).

    Already in ``target``'s layout (``mono8``/``8UC1`` to ``mono8``, ``bgr8``/``8UC3`` to
    ``bgr8``): ``image`` itself, no copy (a view of a message's buffer stays a view). Otherwise
    one new array from one ``cv2.cvtColor`` (:data:`COLOR_CONVERSIONS`). Raises
    :class:`InputError` for a non-uint8 image or a pair not in the table (``mono16`` needs a
    scale first).
    """
    if image.dtype != np.uint8:
        raise InputError(f"cannot convert a {image.dtype} image ({encoding}) to {target}")
    layout = _SAME_LAYOUT.get(encoding, encoding)
    if layout == target:
        return image
    code = COLOR_CONVERSIONS.get((layout, target))
    if code is None:
        raise InputError(f"cannot convert {encoding} images to {target} (choose mono8 or bgr8)")
    return cv2.cvtColor(image, code)
