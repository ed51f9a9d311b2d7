"""The image encodings the project accepts, and the checks and raw views every reader shares.

ROS-free on purpose: these functions only read message attributes (``encoding``, ``height``,
``width``, ``step``, ``is_bigendian``, ``data``), so they serve ``rclpy``'s
``sensor_msgs.msg.Image`` (:mod:`superpoint_ros.ros.conversions`) and the plain dataclasses of
``rosbags`` (``superpoint_training.bags``) alike, without importing any ROS message package.
One home for every encoding rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from superpoint_ros.errors import ImageConversionError

__all__ = ["ENCODINGS", "check_image_header", "raw_image_view"]

# encoding -> (element dtype, channels). Element byte order is fixed per message by is_bigendian.
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
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
    if max_pixels is not None and height * width > max_pixels:
        raise ImageConversionError(
            f"image {height}x{width} has {height * width} pixels, more than the limit "
            f"max_pixels={max_pixels}"
        )
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
