"""A synthetic moving-camera sequence with exact ground truth (pure numpy/OpenCV, no I/O).

A virtual camera of ``size`` pixels looks at a flat photo (a planar scene, so every pair of
frames is related by a homography) and moves along a smooth random path: rotation, zoom,
translation and a little perspective tilt, each a sum of three low-frequency sines. The
lighting changes smoothly (gain and offset) and every frame gets Gaussian sensor noise.

Geometry (conventions of :mod:`superpoint_ros.geometry`): ``M_i`` maps frame-``i`` pixels to
photo pixels, so frame ``i`` is ``photo(M_i x)`` and ``H_0to_i = inv(M_i) @ M_0`` maps frame-0
pixels to frame-``i`` pixels. The photo is stretched to ``margin`` times the frame size, and
the path is shrunk until every frame's corners stay inside it (no black borders, which would
make keypoints that belong to no scene).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from superpoint_ros.errors import ConfigError
from superpoint_ros.geometry import Size, image_corners, inside_image, warp_points

# Motion amplitudes at full strength (shrunk by SHRINK until the frames fit in the photo).
ROTATION_DEG = 8.0  # roll
LOG_ZOOM = float(np.log(1.12))  # zoom in and out by up to 12%
TRANSLATION = 0.08  # of the frame's width / height
TILT = 1.2e-4  # perspective terms (1/px): about 4% foreshortening across a 640 px frame
GAIN = 0.3  # lighting: gain 1 +- 0.3
OFFSET = 12.0  # lighting: offset +- 12 grey levels
SHRINK = 0.85  # factor applied to the motion while a frame would leave the photo
MAX_TRIES = 30


@dataclass(frozen=True)
class SequenceConfig:
    """What :func:`synthesise_sequence` makes; the defaults are ``make demo``'s."""

    frames: int = 60  # number of frames
    size: Size = (480, 640)  # (height, width) of a frame
    margin: float = 1.4  # the photo is stretched to cover margin * size
    noise: float = 3.0  # standard deviation of the sensor noise, grey levels
    seed: int = 0  # the camera path, the lighting and the noise

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ConfigError(f"a sequence needs at least 2 frames, got {self.frames}")
        if min(self.size) < 32:
            raise ConfigError(f"frame size {self.size} is too small (at least 32x32)")
        if self.margin < 1.1:
            raise ConfigError(
                f"margin must be >= 1.1 (room for the camera to move), got {self.margin}"
            )
        if self.noise < 0:
            raise ConfigError(f"noise must be >= 0, got {self.noise}")


@dataclass
class Sequence:
    """``frames[i]`` is uint8 ``[H, W, 3]`` (BGR, or ``[H, W]`` from a gray photo);
    ``H_0to[i]`` the 3x3 float64 homography from frame 0 to frame i (``H_0to[0]`` = I)."""

    frames: list[np.ndarray]
    H_0to: list[np.ndarray]


def smooth_curve(rng: np.random.Generator, count: int) -> np.ndarray:
    """``[count]`` values of a random smooth curve scaled to peak at exactly 1 in magnitude:
    three sines of 1/2, 1 and 3/2 periods over the sequence, with random weights and phases."""
    t = np.linspace(0.0, 1.0, count)
    weights = rng.normal(size=3) / np.arange(1, 4)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=3)
    curve = sum(w * np.sin(np.pi * (k + 1) * t + p)
                for k, (w, p) in enumerate(zip(weights, phases)))  # fmt: skip
    peak = np.abs(curve).max()
    return curve / peak if peak > 0 else curve


def camera_to_photo(
    size: Size, photo_size: Size, angle: float, log_zoom: float, shift: np.ndarray,
    tilt: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """``M`` (3x3): frame pixels -> photo pixels for one camera pose. The frame's centre goes
    to the photo's centre plus ``shift`` (x, y pixels), after a tilt (perspective terms
    ``tilt`` (x, y), 1/px), a zoom ``exp(log_zoom)`` (> 1 sees more of the photo) and a roll
    ``angle`` (radians), all about the frame's centre."""
    h, w = size
    ph, pw = photo_size
    to_centre = np.array([[1, 0, -(w - 1) / 2], [0, 1, -(h - 1) / 2], [0, 0, 1]], np.float64)
    tilt_m = np.array([[1, 0, 0], [0, 1, 0], [tilt[0], tilt[1], 1]], np.float64)
    c, s, z = np.cos(angle), np.sin(angle), np.exp(log_zoom)
    rot_zoom = np.array([[z * c, -z * s, 0], [z * s, z * c, 0], [0, 0, 1]], np.float64)
    to_photo = np.array(
        [[1, 0, (pw - 1) / 2 + shift[0]], [0, 1, (ph - 1) / 2 + shift[1]], [0, 0, 1]], np.float64
    )
    return to_photo @ rot_zoom @ tilt_m @ to_centre


def camera_path(config: SequenceConfig, photo_size: Size, rng: np.random.Generator):
    """The ``M_i`` of every frame (list of 3x3), shrunk until every frame lies in the photo.

    Raises ``ConfigError`` when even a nearly still camera would leave the photo."""
    n = config.frames
    h, w = config.size
    curves = np.stack([smooth_curve(rng, n) for _ in range(6)])  # angle, zoom, sx, sy, tx, ty
    corners = image_corners(config.size)
    strength = 1.0
    for _ in range(MAX_TRIES):
        a = strength * curves
        path = [
            camera_to_photo(
                config.size, photo_size, np.deg2rad(ROTATION_DEG) * a[0, i], LOG_ZOOM * a[1, i],
                np.array([TRANSLATION * w * a[2, i], TRANSLATION * h * a[3, i]]),
                TILT * a[4:6, i],
            )
            for i in range(n)
        ]  # fmt: skip
        if all(inside_image(warp_points(corners, M), photo_size, 1.0).all() for M in path):
            return path
        strength *= SHRINK
    raise ConfigError(
        f"the camera cannot move inside a photo of {photo_size} for frames of "
        f"{config.size}; use a larger margin"
    )


def cover(photo: np.ndarray, size: Size) -> np.ndarray:
    """``photo`` stretched (aspect kept) and centre-cropped to exactly ``size``."""
    h, w = size
    ph, pw = photo.shape[:2]
    scale = max(h / ph, w / pw)
    new = (max(w, round(pw * scale)), max(h, round(ph * scale)))  # (width, height)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    big = cv2.resize(photo, new, interpolation=interp)
    top, left = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[top : top + h, left : left + w])


def synthesise_sequence(photo: np.ndarray, config: SequenceConfig | None = None) -> Sequence:
    """Frames and ground truth of a camera moving over ``photo`` (uint8 ``[H, W]`` or
    ``[H, W, 3]``). Deterministic for a given ``config.seed``."""
    config = config or SequenceConfig()
    if photo.dtype != np.uint8 or photo.ndim not in (2, 3):
        raise ConfigError(
            f"the photo must be uint8 [H, W] or [H, W, 3], got {photo.dtype} {photo.shape}"
        )
    rng = np.random.default_rng(config.seed)
    h, w = config.size
    photo_size = (round(h * config.margin), round(w * config.margin))
    source = cover(photo, photo_size).astype(np.float32)
    path = camera_path(config, photo_size, rng)
    gain = 1.0 + GAIN * smooth_curve(rng, config.frames)
    offset = OFFSET * smooth_curve(rng, config.frames)
    frames, H_0to = [], []
    for i, M in enumerate(path):
        view = cv2.warpPerspective(
            source, M, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )  # fmt: skip
        view = view * gain[i] + offset[i] + rng.normal(0.0, config.noise, view.shape)
        frames.append(np.clip(np.round(view), 0, 255).astype(np.uint8))
        H = np.linalg.inv(M) @ path[0]
        H_0to.append(H / H[2, 2])
    return Sequence(frames, H_0to)
