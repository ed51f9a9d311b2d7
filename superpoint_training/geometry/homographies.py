"""The paper's random homography sampler (pure numpy; no I/O, no torch).

Training steps 1 (homographic augmentation of synthetic shapes), 3 (homographic adaptation) and 4
(SuperPoint image pairs) all draw their warps here.

How a homography is drawn (the recipe of DeTone et al. 2018, as rpautrat/SuperPoint implements
it): a *patch* of the original image, a centred rectangle ``patch_ratio`` times the image's size,
is perturbed in turn by

1. perspective: its left and right sides move vertically by opposite amounts (a tilt about the
   horizontal axis) and horizontally (a tilt about the vertical axis);
2. scaling about its centre, by ``1 + s`` with ``s`` a normal of std ``scaling_amplitude / 2``
   truncated at two std;
3. translation, uniform within the room left to the image borders;
4. rotation about its centre, one of ``n_angles`` angles in ``[-max_angle, max_angle]``;

and the homography maps that patch onto the whole output image. Without ``allow_artifacts``
every candidate scale and angle that would push a patch corner outside the original image is
discarded, so the warped image shows no pixel from outside the original (no black borders).
With it, any candidate is taken and the translation may overflow by ``translation_overflow``
(a fraction of the image size); the output then has invalid regions (see
``superpoint_training.data.augment.warp_valid_mask``).

One deliberate difference with rpautrat's TensorFlow code: all four steps work in pixels, not in
coordinates normalised per axis, so a "rotation" is a rotation for non-square images too (the
normalised version shears a 120x160 image).

Conventions (``superpoint_ros.geometry``): points are (x, y), pixel centres at integer coordinates,
an image of size (H, W) spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``; the returned ``H`` maps
original-image pixels to warped-image pixels: ``warp_points(p, H)``, and
``cv2.warpPerspective(image, H, (W, H))`` renders the warped image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from superpoint_training.config import from_dict

Size = tuple[int, int]  # (height, width)


@dataclass(frozen=True)
class HomographyConfig:
    """Parameters of ``sample_homography`` (defaults: rpautrat's ``sample_homography``)."""

    translation: bool = True  # random translation of the patch
    rotation: bool = True  # random rotation of the patch about its centre
    scaling: bool = True  # random scaling of the patch about its centre
    perspective: bool = True  # random perspective (tilts) of the patch
    scaling_amplitude: float = 0.1  # scale = 1 + N(0, amplitude/2) truncated at +-amplitude
    perspective_amplitude_x: float = 0.1  # horizontal corner shift, fraction of W (2 std, clip)
    perspective_amplitude_y: float = 0.1  # vertical corner shift, fraction of H (2 std, clip)
    patch_ratio: float = 0.5  # side of the sampled patch as a fraction of the image's side
    max_angle: float = math.pi / 2  # rotations drawn from [-max_angle, max_angle] (radians)
    n_scales: int = 5  # candidate scales drawn per homography (one valid one is picked)
    n_angles: int = 25  # candidate angles, evenly spaced (one valid one is picked)
    allow_artifacts: bool = False  # let the patch leave the image (warped image gets borders)
    translation_overflow: float = 0.0  # with artifacts: extra translation, fraction of size

    def __post_init__(self) -> None:
        if not 0.0 < self.patch_ratio <= 1.0:
            raise ValueError(f"patch_ratio must be in (0, 1], got {self.patch_ratio}")
        for name in ("scaling_amplitude", "perspective_amplitude_x", "perspective_amplitude_y"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.scaling_amplitude >= 1.0:
            raise ValueError("scaling_amplitude must be < 1 (a scale must stay positive)")
        if self.n_scales < 1 or self.n_angles < 1:
            raise ValueError("n_scales and n_angles must be >= 1")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> HomographyConfig:
        """Defaults overridden by ``data``; unknown keys raise ``ConfigError``."""

        return from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def coco_homography_config() -> HomographyConfig:
    """The stronger warps rpautrat/SuperPoint uses on real images (COCO label export and
    SuperPoint pairs): borders allowed, since validity masks take care of them."""
    return HomographyConfig(
        scaling_amplitude=0.2,
        perspective_amplitude_x=0.2,
        perspective_amplitude_y=0.2,
        patch_ratio=0.85,
        max_angle=math.pi / 2,
        allow_artifacts=True,
    )


def truncated_normal(
    rng: np.random.Generator, std: float, size: int | tuple[int, ...], bound: float = 2.0
) -> np.ndarray:
    """Zero-mean normal samples of standard deviation ``std``, redrawn until within
    ``bound * std`` (the truncation of ``tf.truncated_normal``)."""
    out = rng.normal(0.0, 1.0, size)
    bad = np.abs(out) > bound
    while np.any(bad):
        out[bad] = rng.normal(0.0, 1.0, int(bad.sum()))
        bad = np.abs(out) > bound
    return out * std


def _inside(corners: np.ndarray, width: float, height: float, eps: float = 1e-9) -> np.ndarray:
    """``corners [..., 4, 2]`` in the continuous frame ``[0, W] x [0, H]``: all inside?"""
    x, y = corners[..., 0], corners[..., 1]
    ok = (x >= -eps) & (x <= width + eps) & (y >= -eps) & (y <= height + eps)
    return ok.all(axis=-1)


def sample_patch(rng: np.random.Generator, size_hw: Size, config: HomographyConfig) -> np.ndarray:
    """The four corners ``[4, 2]`` (x, y) of the patch of the original image that becomes the
    whole warped image, in the continuous frame ``[0, W] x [0, H]`` (a pixel-centre coordinate
    plus 0.5), ordered top-left, bottom-left, bottom-right, top-right."""
    h, w = float(size_hw[0]), float(size_hw[1])
    c = config
    size = np.array([w, h])
    unit = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    margin = (1.0 - c.patch_ratio) / 2.0
    patch = (margin + c.patch_ratio * unit) * size

    if c.perspective:
        amp_x, amp_y = c.perspective_amplitude_x, c.perspective_amplitude_y
        if not c.allow_artifacts:
            amp_x, amp_y = min(amp_x, margin), min(amp_y, margin)
        tilt_y = truncated_normal(rng, amp_y / 2.0, 1)[0] * h
        left_x, right_x = truncated_normal(rng, amp_x / 2.0, 2) * w
        patch = patch + np.array(
            [[left_x, tilt_y], [left_x, -tilt_y], [right_x, tilt_y], [right_x, -tilt_y]]
        )

    if c.scaling:
        scales = np.concatenate(
            [[1.0], 1.0 + truncated_normal(rng, c.scaling_amplitude / 2, c.n_scales)]
        )
        center = patch.mean(axis=0)
        candidates = (patch - center)[None] * scales[:, None, None] + center
        if c.allow_artifacts:
            valid = np.arange(1, len(scales))  # any drawn scale (not the identity)
        else:
            valid = np.flatnonzero(_inside(candidates, w, h))
            if len(valid) == 0:  # only reachable through float noise: keep the patch
                valid = np.array([0])
        patch = candidates[rng.choice(valid)]

    if c.translation:
        t_min = patch.min(axis=0)  # room to the left / top
        t_max = size - patch.max(axis=0)  # room to the right / bottom
        if c.allow_artifacts:
            t_min = t_min + c.translation_overflow * size
            t_max = t_max + c.translation_overflow * size
        t_min, t_max = np.maximum(t_min, 0.0), np.maximum(t_max, 0.0)
        patch = patch + rng.uniform(-t_min, t_max)

    if c.rotation:
        angles = np.concatenate([[0.0], np.linspace(-c.max_angle, c.max_angle, c.n_angles)])
        center = patch.mean(axis=0)
        cos, sin = np.cos(angles), np.sin(angles)
        rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # [A, 2, 2]
        candidates = np.einsum("aij,kj->aki", rot, patch - center) + center
        if c.allow_artifacts:
            valid = np.arange(1, len(angles))
        else:
            valid = np.flatnonzero(_inside(candidates, w, h))
            if len(valid) == 0:
                valid = np.array([0])
        patch = candidates[rng.choice(valid)]
    return patch


def patch_to_homography(patch: np.ndarray, size_hw: Size) -> np.ndarray:
    """The homography (pixel-centre convention) mapping the original image onto the warped one,
    given the patch corners ``[4, 2]`` (continuous frame, order of ``sample_patch``) that must
    land on the warped image's corners."""
    h, w = size_hw
    corners = np.array([[0.0, 0.0], [0.0, h], [w, h], [w, 0.0]])  # continuous frame
    # Shift both frames by -0.5: continuous corner coordinates -> pixel-centre coordinates.
    return homography_from_points(np.asarray(patch, np.float64) - 0.5, corners - 0.5)


def homography_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The homography ``[3, 3]`` (float64, ``H[2, 2] == 1``) mapping the four points ``src
    [4, 2]`` onto ``dst [4, 2]`` (an exact 8x8 solve in float64; ``cv2.getPerspectiveTransform``
    works in float32 inputs)."""
    src = np.asarray(src, np.float64).reshape(4, 2)
    dst = np.asarray(dst, np.float64).reshape(4, 2)
    a = np.zeros((8, 8))
    b = dst.reshape(8)
    for i, ((x, y), (u, v)) in enumerate(zip(src, dst)):
        a[2 * i] = [x, y, 1, 0, 0, 0, -u * x, -u * y]
        a[2 * i + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y]
    H = np.append(np.linalg.solve(a, b), 1.0).reshape(3, 3)
    return H


def sample_homography(
    rng: np.random.Generator, size_hw: Size, config: HomographyConfig | None = None
) -> np.ndarray:
    """A random homography ``[3, 3]`` float64 mapping original-image pixels to warped-image
    pixels of an image of ``size_hw`` (H, W), drawn as the module docstring says.

    ``rng`` is the only source of randomness: the same generator state gives the same matrix.
    """
    config = config or HomographyConfig()
    return patch_to_homography(sample_patch(rng, size_hw, config), size_hw)


def sample_homographies(
    rng: np.random.Generator, n: int, size_hw: Size, config: HomographyConfig | None = None
) -> np.ndarray:
    """``n`` homographies ``[n, 3, 3]`` float64; the same as ``n`` successive calls of
    ``sample_homography`` with ``rng``."""
    config = config or HomographyConfig()
    out = np.empty((n, 3, 3), np.float64)
    for i in range(n):
        out[i] = sample_homography(rng, size_hw, config)
    return out
