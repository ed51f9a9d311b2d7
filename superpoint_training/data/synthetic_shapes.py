"""Synthetic shapes: training step 1 of SuperPoint (MagicPoint's data), with exact ground truth.

Nine primitives, as in the paper and its public re-implementations (rpautrat/SuperPoint,
eric-yyjau/pytorch-superpoint); ground-truth keypoints are the corners and junctions of the drawn
geometry:

==================  ==============================================================================
``lines``           up to 9 thick segments that neither cross nor touch; keypoints: the endpoints
``polygon``         one filled polygon of 3 to 7 corners (flat corners > 120 deg removed); corners
``multiple_polygons`` up to 30 textured polygons; most are placed without overlap, a few occlude
                    earlier ones: hidden corners are removed, the T-junctions where an occluder's
                    edge crosses a visible edge are added
``ellipses``        up to 20 non-overlapping filled ellipses; no keypoints
``star``            3 to 5 thick branches from a centre; keypoints: the centre and the tips
``checkerboard``    a 3..6 x 3..6 board under a random affine + perspective warp, cells contrasting
                    with their neighbours, a few thick lines along grid lines; every grid point
``stripes``         5 to 12 vertical stripes on a warped board larger than the image, whose top or
                    bottom edge crosses the image; keypoints: the stripes' corners
``cube``            a parallelepiped seen from a random direction, three faces visible; the seven
                    visible vertices (the hidden one is not a keypoint)
``gaussian_noise``  uniform noise; no keypoints
==================  ==============================================================================

Every image starts from a random background (binary noise plus gray blobs, box-blurred: smooth
gray-level variations); shapes get random gray levels that contrast with the background mean
(by >= 30 levels) and with the neighbours they touch.

How exact ground truth is kept:

* Geometry is floating point in pixels of the output image (pixel centres at integer
  coordinates, ``superpoint_ros.geometry``); nothing is rounded to integers.
* Shapes are rasterised at ``supersample`` times the output size with OpenCV's sub-pixel
  (fixed point) drawing, then box-averaged down (``cv2.INTER_AREA``): a pixel's value is the
  fraction of its area each shape covers (to ``1 / supersample``). OpenCV fills the pixels whose
  centres are within half a pixel of a polygon, so polygons are inset by half a supersampled pixel
  before drawing (``_inset_polygon``) and a square with a corner at ``(10, 10)`` covers exactly a
  quarter of pixel ``(10, 10)``.
* Occlusion is resolved geometrically: a keypoint under a later shape is removed; the visible
  crossings of polygon edges are computed exactly (``polygons_scene``); the cube's hidden vertex
  comes from the faces' normals (``cube_scene``).
* A final Gaussian blur of random sigma (``blur_sigma_range``) softens the edges as the originals
  do (they render at 960x1280, blur and shrink).

Randomness comes only from the ``numpy.random.Generator`` passed in: ``render_sample(rng,
config)`` gives the same image for the same generator state. Samplers (``sample_<primitive>``)
draw parameters and call deterministic builders (``lines_scene``, ``polygons_scene``...), which a
test can call with hand-chosen geometry.

``SyntheticShapesDataset`` serves ``(seed, split, index)``-deterministic samples to a torch
``DataLoader`` (so workers are deterministic too), with optional augmentation
(``superpoint_training.data.augment``) and an optional on-disk cache of the fixed val/test
splits (one ``.npz`` per split).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from superpoint_ros.registry import Registry
from superpoint_training.data.augment import (
    AugmentConfig,
    augment,
    keypoint_map,
    keypoints_inside,
)
from superpoint_training.geometry.homographies import homography_from_points

Size = tuple[int, int]  # (height, width)

PRIMITIVES = (
    "lines",
    "polygon",
    "multiple_polygons",
    "ellipses",
    "star",
    "checkerboard",
    "stripes",
    "cube",
    "gaussian_noise",
)

_SHIFT = 8  # fractional bits of OpenCV's fixed-point drawing coordinates
_ONE = 1 << _SHIFT


# ---------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class BackgroundConfig:
    """Random background: binary noise + gray blobs, box-blurred (rpautrat's, in ratios)."""

    num_blobs: int = 100  # gray discs drawn on the binary noise before blurring
    blob_radius_ratio: tuple[float, float] = (0.02, 0.031)  # disc radius / larger image side
    kernel_ratio: tuple[float, float] = (0.117, 0.39)  # box-blur size / larger side


@dataclass(frozen=True)
class LinesConfig:
    max_lines: int = 10  # 1 .. max_lines - 1 attempts (crossing or touching ones are dropped)
    thickness_ratio: tuple[float, float] = (0.01, 0.02)  # line width / smaller image side
    min_length_ratio: float = 0.05  # shortest segment / smaller side


@dataclass(frozen=True)
class PolygonConfig:
    max_sides: int = 8  # 3 .. max_sides - 1 corners drawn before filtering
    min_radius_ratio: float = 0.1  # circumradius >= this * smaller side (at most half of it)
    max_corner_angle: float = 120.0  # corners flatter than this (degrees) are removed
    min_corner_distance_ratio: float = 0.025  # corners closer than this * smaller side merge


@dataclass(frozen=True)
class MultiplePolygonsConfig:
    num_polygons: int = 30  # polygons attempted; most are dropped as overlapping
    occlusion_probability: float = 0.1  # an attempt may overlap (occlude) earlier polygons
    texture_std_range: tuple[float, float] = (0.0, 12.0)  # gray-level std of the fill texture
    texture_kernel_ratio: tuple[float, float] = (0.039, 0.078)  # texture smoothness / larger side
    min_color_distance: int = 50  # gray-level difference between polygons that may touch


@dataclass(frozen=True)
class EllipsesConfig:
    num_ellipses: int = 20  # ellipses attempted; overlapping ones are dropped
    max_axis_ratio: float = 0.25  # semi-axis <= this * smaller side (>= a fifth of that)


@dataclass(frozen=True)
class StarConfig:
    max_branches: int = 6  # 3 .. max_branches - 1 branches
    thickness_ratio: tuple[float, float] = (0.01, 0.02)  # branch width / smaller side
    min_radius_ratio: float = 0.2  # star radius >= this * smaller side (at most half of it)


@dataclass(frozen=True)
class CheckerboardConfig:
    max_rows: int = 7  # 3 .. max_rows - 1 rows of cells
    max_cols: int = 7  # 3 .. max_cols - 1 columns of cells
    transform_params: tuple[float, float] = (0.05, 0.15)  # warp strength a + U(0, b) * larger side
    line_thickness_ratio: tuple[float, float] = (0.01, 0.015)  # grid-line width / smaller side
    min_color_distance: int = 50  # gray-level difference between neighbouring cells


@dataclass(frozen=True)
class StripesConfig:
    max_stripes: int = 13  # 5 .. max_stripes - 1 stripes drawn (before merging thin ones)
    min_width_ratio: float = 0.04  # narrowest stripe / smaller side
    transform_params: tuple[float, float] = (0.1, 0.1)  # warp strength a + U(0, b) * larger side
    line_thickness_ratio: tuple[float, float] = (0.01, 0.015)  # line width / smaller side


@dataclass(frozen=True)
class CubeConfig:
    min_size_ratio: float = 0.2  # shortest side before scaling / smaller image side
    scale_interval: tuple[float, float] = (0.4, 0.6)  # per-axis scale in [a, a + b]
    translation_interval: tuple[float, float] = (0.5, 0.2)  # centre in (a +- b) * image size
    edge_thickness_ratio: tuple[float, float] = (0.003, 0.015)  # edge width / smaller side


def _default_weights() -> dict[str, float]:
    # rpautrat's ``truncate`` for MagicPoint: fewer corner-less and stripe images.
    return {"ellipses": 0.3, "stripes": 0.2, "gaussian_noise": 0.1}


@dataclass(frozen=True)
class SyntheticShapesConfig:
    """Everything that shapes a synthetic image (the random seed is not part of it)."""

    image_size: tuple[int, int] = (120, 160)  # (height, width) of the output images (paper)
    supersample: int = 4  # rasterise at this multiple of the size, then box-average down
    primitives: tuple[str, ...] = PRIMITIVES  # primitives drawn, names from PRIMITIVES
    primitive_weights: dict[str, float] = field(default_factory=_default_weights)  # else 1
    blur_sigma_range: tuple[float, float] = (0.25, 0.6)  # final Gaussian blur, output pixels
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    lines: LinesConfig = field(default_factory=LinesConfig)
    polygon: PolygonConfig = field(default_factory=PolygonConfig)
    multiple_polygons: MultiplePolygonsConfig = field(default_factory=MultiplePolygonsConfig)
    ellipses: EllipsesConfig = field(default_factory=EllipsesConfig)
    star: StarConfig = field(default_factory=StarConfig)
    checkerboard: CheckerboardConfig = field(default_factory=CheckerboardConfig)
    stripes: StripesConfig = field(default_factory=StripesConfig)
    cube: CubeConfig = field(default_factory=CubeConfig)

    def __post_init__(self) -> None:
        h, w = self.image_size
        if h < 16 or w < 16:
            raise ValueError(f"image_size must be at least 16x16, got {self.image_size}")
        if self.supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {self.supersample}")
        if not self.primitives:
            raise ValueError("primitives must name at least one primitive")
        for name in list(self.primitives) + list(self.primitive_weights):
            if name not in PRIMITIVES:
                raise ValueError(f"unknown primitive {name!r}; valid: {', '.join(PRIMITIVES)}")
        if any(v < 0 for v in self.primitive_weights.values()):
            raise ValueError("primitive_weights must be >= 0")
        if sum(self.weights()) <= 0:
            raise ValueError("the selected primitives all have weight 0")

    def weights(self) -> list[float]:
        """Relative frequency of each name in ``primitives``."""
        return [float(self.primitive_weights.get(p, 1.0)) for p in self.primitives]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SyntheticShapesConfig:
        """Defaults overridden by the (nested) mapping ``data``; unknown keys raise
        ``ConfigError`` listing the valid ones."""
        from superpoint_training.config import from_dict

        return from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        from superpoint_training.config import to_dict

        return to_dict(self)


# ---------------------------------------------------------------------------------------------
# drawing operations and the renderer


@dataclass
class Texture:
    """A smooth random gray-level field: ``base`` plus noise of std ``std`` blurred by a box of
    ``kernel`` output pixels, from its own ``seed`` (so rendering stays deterministic)."""

    seed: int
    std: float
    kernel: float


@dataclass
class Fill:
    """A filled polygon ``points [K, 2]`` (output pixels) of gray ``color`` or ``texture``."""

    points: np.ndarray
    color: float
    texture: Texture | None = None


@dataclass
class Stroke:
    """A thick segment from ``p0`` to ``p1`` (output pixels), ``thickness`` output pixels."""

    p0: tuple[float, float]
    p1: tuple[float, float]
    thickness: float
    color: float


@dataclass
class FillEllipse:
    """A filled ellipse: centre, semi-axes (output pixels), rotation in degrees."""

    center: tuple[float, float]
    axes: tuple[float, float]
    angle: float
    color: float


@dataclass
class Noise:
    """Replace the whole image by uniform noise in ``[0, 255]`` drawn from ``seed``."""

    seed: int


Op = Fill | Stroke | FillEllipse | Noise


@dataclass
class Scene:
    """What a primitive draws (``ops``, in order) and its ground truth ``keypoints [N, 2]``
    (output pixels; may include points outside the image, ``render_sample`` drops them)."""

    ops: list[Op]
    keypoints: np.ndarray

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, np.float64).reshape(-1, 2)


def _to_hires(points: np.ndarray, s: int) -> np.ndarray:
    """Output-pixel coordinates -> supersampled-pixel coordinates (pixel-centre convention)."""
    return (np.asarray(points, np.float64) + 0.5) * s - 0.5


def _fixed(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates -> OpenCV fixed point with ``_SHIFT`` fractional bits."""
    pts = np.clip(np.asarray(points, np.float64), -1e6, 1e6)
    return np.round(pts * _ONE).astype(np.int32)


def _inset_polygon(points: np.ndarray, d: float, max_move: float = 2.0) -> np.ndarray:
    """Move every edge of the polygon ``[K, 2]`` inwards by ``d`` (mitred corners, each corner
    moving at most ``max_move * d``). OpenCV fills pixels whose centres are within half a pixel
    of the polygon; insetting by half a pixel makes it fill those whose centres are inside."""
    p = np.asarray(points, np.float64)
    k = len(p)
    if k < 3:
        return p
    nxt = np.concatenate([p[1:], p[:1]])
    area2 = np.sum(p[:, 0] * nxt[:, 1] - nxt[:, 0] * p[:, 1])
    if abs(area2) < 1e-9:
        return p
    edge = nxt - p  # edge i: p[i] -> p[i+1]
    length = np.linalg.norm(edge, axis=1)
    if np.any(length < 1e-9):
        return p
    # Inward normal: (-e_y, e_x) when the shoelace sum is positive (clockwise on screen, where
    # y points down), the opposite otherwise.
    normal = np.stack([-edge[:, 1], edge[:, 0]], axis=1) / length[:, None]
    if area2 < 0:
        normal = -normal
    out = p.copy()
    for i in range(k):
        n0, n1 = normal[i - 1], normal[i]  # edges entering and leaving corner i
        denom = 1.0 + float(n0 @ n1)
        if denom < 1e-6:
            continue  # a hairpin corner: leave it
        move = d * (n0 + n1) / denom  # the mitre point of both inset edges
        norm = float(np.linalg.norm(move))
        if norm > max_move * d:
            move *= max_move * d / norm
        out[i] = p[i] + move
    return out


def _texture_field(texture: Texture, base: float, shape_hw: Size, s: int) -> np.ndarray:
    """Texture values (uint8) for a block of ``shape_hw`` supersampled pixels."""
    rng = np.random.default_rng(texture.seed)
    h, w = shape_hw
    lh, lw = max(2, math.ceil(h / s) + 2), max(2, math.ceil(w / s) + 2)
    noise = rng.uniform(-1.0, 1.0, (lh, lw)).astype(np.float32)
    k = max(1, int(round(texture.kernel)))
    if k > 1:
        noise = cv2.blur(noise, (k, k), borderType=cv2.BORDER_REFLECT)
    std = float(noise.std())
    if std > 1e-6:
        noise *= texture.std / std
    field_ = cv2.resize(noise + np.float32(base), (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.round(field_), 0, 255).astype(np.uint8)


def _draw(canvas: np.ndarray, op: Op, s: int) -> None:
    h, w = canvas.shape
    if isinstance(op, Fill):
        pts = _inset_polygon(_to_hires(op.points, s), 0.5)
        if op.texture is None:
            cv2.fillPoly(canvas, [_fixed(pts)], int(op.color), cv2.LINE_8, _SHIFT)
            return
        x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 1
        x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [_fixed(pts - [x0, y0])], 1, cv2.LINE_8, _SHIFT)
        block = canvas[y0:y1, x0:x1]
        tex = _texture_field(op.texture, op.color, block.shape, s)
        np.copyto(block, tex, where=mask.astype(bool))
    elif isinstance(op, Stroke):
        p = _fixed(_to_hires(np.array([op.p0, op.p1]), s))
        thickness = max(1, int(round(op.thickness * s)))
        cv2.line(canvas, tuple(map(int, p[0])), tuple(map(int, p[1])), int(op.color),
                 thickness, cv2.LINE_8, _SHIFT)  # fmt: skip
    elif isinstance(op, FillEllipse):
        c = _fixed(_to_hires(np.array([op.center]), s))[0]
        axes = np.round(np.asarray(op.axes, np.float64) * s * _ONE).astype(int)
        cv2.ellipse(canvas, (int(c[0]), int(c[1])), (int(axes[0]), int(axes[1])), float(op.angle),
                    0.0, 360.0, int(op.color), -1, cv2.LINE_8, _SHIFT)  # fmt: skip
    elif isinstance(op, Noise):
        canvas[:] = np.random.default_rng(op.seed).integers(0, 256, canvas.shape, np.uint8)
    else:  # pragma: no cover - a bug
        raise TypeError(f"unknown drawing op {type(op).__name__}")


def render_scene(
    scene: Scene, background: np.ndarray, supersample: int = 4, blur_sigma: float = 0.0
) -> np.ndarray:
    """Draw ``scene`` over ``background`` (uint8 ``[H, W]``) at ``supersample`` times the size,
    box-average back to ``[H, W]`` and blur by ``blur_sigma`` output pixels; returns uint8."""
    background = np.asarray(background, np.uint8)
    h, w = background.shape
    s = int(supersample)
    canvas = background.copy()
    if s > 1:
        canvas = cv2.resize(background, (w * s, h * s), interpolation=cv2.INTER_LINEAR)
    for op in scene.ops:
        _draw(canvas, op, s)
    image = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA) if s > 1 else canvas
    if blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), float(blur_sigma))
    return image


# ---------------------------------------------------------------------------------------------
# colours and the background


def random_color(rng: np.random.Generator, background: float, min_contrast: int = 30) -> int:
    """A gray level at least ``min_contrast`` from ``background`` (shifted by 128 otherwise)."""
    c = int(rng.integers(256))
    if abs(c - background) < min_contrast:
        c = (c + 128) % 256
    return c


def different_color(
    rng: np.random.Generator, avoid: Sequence[float], min_dist: int = 50, tries: int = 20
) -> int:
    """A gray level at least ``min_dist`` from every value in ``avoid`` (the last try is kept
    when none is found in ``tries``)."""
    avoid = np.asarray(list(avoid), np.float64)
    c = int(rng.integers(256))
    for _ in range(tries):
        if avoid.size == 0 or np.all(np.abs(avoid - c) >= min_dist):
            break
        c = int(rng.integers(256))
    return c


def generate_background(
    rng: np.random.Generator, size_hw: Size, config: BackgroundConfig | None = None
) -> np.ndarray:
    """Random background uint8 ``[H, W]``: binary noise at a random density, gray discs that
    contrast with its mean, box-blurred by a large random kernel (smooth gray variations)."""
    c = config or BackgroundConfig()
    h, w = size_hw
    dim = max(h, w)
    threshold = int(rng.integers(256))
    img = np.where(rng.integers(0, 256, (h, w)) > threshold, 255, 0).astype(np.uint8)
    mean = float(img.mean())
    xs = rng.integers(0, w, c.num_blobs)
    ys = rng.integers(0, h, c.num_blobs)
    r_lo = max(1, int(dim * c.blob_radius_ratio[0]))
    r_hi = max(r_lo + 1, int(dim * c.blob_radius_ratio[1]))
    radii = rng.integers(r_lo, r_hi, c.num_blobs)
    k_lo = max(1, int(dim * c.kernel_ratio[0]))
    k_hi = max(k_lo + 1, int(dim * c.kernel_ratio[1]))
    k = int(rng.integers(k_lo, k_hi))
    # The originals draw at 8x the size, where one box blur turns the noise into a flat mean;
    # at the output size that takes a first blur before the blobs are drawn.
    img = cv2.blur(img, (k, k))
    for x, y, r in zip(xs, ys, radii):
        cv2.circle(img, (int(x), int(y)), int(r), random_color(rng, mean), -1)
    return cv2.blur(img, (k, k))


# ---------------------------------------------------------------------------------------------
# geometry helpers


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def segment_intersections(
    p: np.ndarray, p2: np.ndarray, q: np.ndarray, q2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Proper crossings of segments ``p[i] -> p2[i]`` with ``q[j] -> q2[j]`` (``[N, 2]``,
    ``[M, 2]``): returns ``(hit [N, M] bool, point [N, M, 2])`` (endpoints excluded)."""
    p, p2, q, q2 = (np.asarray(a, np.float64).reshape(-1, 2) for a in (p, p2, q, q2))
    r = (p2 - p)[:, None, :]
    s = (q2 - q)[None, :, :]
    qp = q[None, :, :] - p[:, None, :]
    denom = _cross(r, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = _cross(qp, s) / denom
        u = _cross(qp, r) / denom
    eps = 1e-9
    hit = (np.abs(denom) > 1e-12) & (t > eps) & (t < 1 - eps) & (u > eps) & (u < 1 - eps)
    point = p[:, None, :] + np.where(hit, t, 0.0)[..., None] * r
    return hit, point


def _segment_distance(a0, a1, b0, b1) -> float:
    """Smallest distance between segments ``a0-a1`` and ``b0-b1`` (2-D)."""
    a0, a1, b0, b1 = (np.asarray(v, np.float64) for v in (a0, a1, b0, b1))
    hit, _ = segment_intersections(a0, a1, b0, b1)
    if hit[0, 0]:
        return 0.0

    def point_seg(pt, s0, s1):
        d = s1 - s0
        t = 0.0 if d @ d < 1e-12 else float(np.clip((pt - s0) @ d / (d @ d), 0.0, 1.0))
        return float(np.linalg.norm(pt - (s0 + t * d)))

    return min(point_seg(a0, b0, b1), point_seg(a1, b0, b1),
               point_seg(b0, a0, a1), point_seg(b1, a0, a1))  # fmt: skip


def _inside_polygon(points: np.ndarray, polygon: np.ndarray, margin: float = 1e-6) -> np.ndarray:
    """Boolean ``[N]``: the point lies inside ``polygon [K, 2]`` by more than ``margin``."""
    contour = np.asarray(polygon, np.float32).reshape(-1, 1, 2)
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    dist = [cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in pts]
    return np.asarray(dist, np.float64) > margin


def _edges(polygon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` of the edges of ``polygon [K, 2]``, edge ``k`` ending at ``k + 1``."""
    p = np.asarray(polygon, np.float64)
    return p, np.concatenate([p[1:], p[:1]])


def apply_homography(H: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``[N, 2]`` points mapped by the 3x3 ``H`` (float64, no rounding)."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    q = np.concatenate([p, np.ones((len(p), 1))], axis=1) @ np.asarray(H, np.float64).T
    return q[:, :2] / q[:, 2:3]


# ---------------------------------------------------------------------------------------------
# deterministic builders: geometry in, drawing ops and exact keypoints out


def lines_scene(segments: np.ndarray, thickness: Sequence[float], colors: Sequence[float]):
    """Thick segments ``[K, 4]`` (x0, y0, x1, y1); keypoints: both endpoints of each."""
    seg = np.asarray(segments, np.float64).reshape(-1, 4)
    ops: list[Op] = [
        Stroke((a[0], a[1]), (a[2], a[3]), float(t), float(c))
        for a, t, c in zip(seg, thickness, colors)
    ]
    return Scene(ops, seg.reshape(-1, 2))


def polygons_scene(
    polygons: Sequence[np.ndarray],
    colors: Sequence[float],
    textures: Sequence[Texture | None] | None = None,
) -> Scene:
    """Filled polygons drawn in order (later ones occlude earlier ones).

    Keypoints: every corner not covered by a later polygon, plus every crossing of an edge of
    polygon ``a`` with an edge of a later polygon ``b`` that no other polygon drawn after ``a``
    covers (a T-junction; ``b`` on top). Corners of ``b`` inside ``a`` stay (``b`` is on top).
    """
    polys = [np.asarray(p, np.float64).reshape(-1, 2) for p in polygons]
    textures = list(textures) if textures is not None else [None] * len(polys)
    ops: list[Op] = [Fill(p, float(c), t) for p, c, t in zip(polys, colors, textures)]
    boxes = np.array([[*p.min(axis=0), *p.max(axis=0)] for p in polys]).reshape(-1, 4)
    # overlap[i, j]: the bounding boxes meet (the exact tests below are skipped otherwise)
    overlap = (
        (boxes[:, None, 0] <= boxes[None, :, 2])
        & (boxes[None, :, 0] <= boxes[:, None, 2])
        & (boxes[:, None, 1] <= boxes[None, :, 3])
        & (boxes[None, :, 1] <= boxes[:, None, 3])
    )
    keypoints = []
    for i, poly in enumerate(polys):
        visible = np.ones(len(poly), bool)
        for j in range(i + 1, len(polys)):
            if overlap[i, j]:
                visible &= ~_inside_polygon(poly, polys[j])
        keypoints.append(poly[visible])
    for a in range(len(polys)):
        for b in range(a + 1, len(polys)):
            if not overlap[a, b]:
                continue
            hit, point = segment_intersections(*_edges(polys[a]), *_edges(polys[b]))
            junctions = point[hit]
            if not len(junctions):
                continue
            keep = np.ones(len(junctions), bool)
            for c in range(a + 1, len(polys)):
                if c != b and overlap[a, c] and overlap[b, c]:
                    keep &= ~_inside_polygon(junctions, polys[c])
            keypoints.append(junctions[keep])
    return Scene(ops, np.concatenate(keypoints) if keypoints else np.zeros((0, 2)))


def ellipses_scene(
    centers: np.ndarray, axes: np.ndarray, angles: Sequence[float], colors: Sequence[float]
) -> Scene:
    """Filled ellipses; no keypoints."""
    ops: list[Op] = [
        FillEllipse((float(c[0]), float(c[1])), (float(a[0]), float(a[1])), float(t), float(k))
        for c, a, t, k in zip(np.reshape(centers, (-1, 2)), np.reshape(axes, (-1, 2)), angles,
                              colors)
    ]  # fmt: skip
    return Scene(ops, np.zeros((0, 2)))


def star_scene(
    center: Sequence[float], tips: np.ndarray, thickness: float, colors: Sequence[float]
) -> Scene:
    """Thick branches from ``center`` to each of ``tips [K, 2]``; keypoints: centre and tips."""
    tips = np.asarray(tips, np.float64).reshape(-1, 2)
    c = (float(center[0]), float(center[1]))
    ops: list[Op] = [
        Stroke(c, (float(t[0]), float(t[1])), float(thickness), float(k))
        for t, k in zip(tips, colors)
    ]
    return Scene(ops, np.concatenate([np.array([c]), tips]))


def _grid_lines_ops(points: np.ndarray, lines: Sequence[tuple[int, int, float]], thickness):
    return [
        Stroke(tuple(points[i]), tuple(points[j]), float(thickness), float(c)) for i, j, c in lines
    ]


def checkerboard_scene(
    rows: int,
    cols: int,
    cell: float,
    H: np.ndarray,
    colors: np.ndarray,
    lines: Sequence[tuple[int, int, float]] = (),
    thickness: float = 1.0,
) -> Scene:
    """A ``rows x cols`` board of square cells of side ``cell`` (board frame: grid point
    ``(i, j)`` at ``(j * cell, i * cell)``, index ``i * (cols + 1) + j``) mapped into the image
    by ``H``; ``colors [rows, cols]``; ``lines``: (grid index, grid index, gray) strokes.
    Keypoints: all ``(rows + 1) * (cols + 1)`` grid points."""
    jj, ii = np.meshgrid(np.arange(cols + 1), np.arange(rows + 1))
    board = np.stack([jj.ravel(), ii.ravel()], axis=1) * float(cell)
    points = apply_homography(H, board)
    colors = np.asarray(colors).reshape(rows, cols)
    ops: list[Op] = []
    n = cols + 1
    for i in range(rows):
        for j in range(cols):
            quad = points[[i * n + j, i * n + j + 1, (i + 1) * n + j + 1, (i + 1) * n + j]]
            ops.append(Fill(quad, float(colors[i, j])))
    ops += _grid_lines_ops(points, lines, thickness)
    return Scene(ops, points)


def stripes_scene(
    xs: Sequence[float],
    height: float,
    H: np.ndarray,
    colors: Sequence[float],
    lines: Sequence[tuple[int, int, float]] = (),
    thickness: float = 1.0,
) -> Scene:
    """Vertical stripes between board columns ``xs [K + 1]`` (board frame, from ``y = 0`` to
    ``y = height``), mapped by ``H``; ``colors [K]``. Point ``k`` is ``(xs[k], 0)``, point
    ``K + 1 + k`` is ``(xs[k], height)``; ``lines`` index these. Keypoints: all of them."""
    xs = np.asarray(xs, np.float64)
    top = np.stack([xs, np.zeros_like(xs)], axis=1)
    bottom = np.stack([xs, np.full_like(xs, float(height))], axis=1)
    points = apply_homography(H, np.concatenate([top, bottom]))
    n = len(xs)
    ops: list[Op] = [
        Fill(points[[k, k + 1, n + k + 1, n + k]], float(c)) for k, c in enumerate(colors)
    ]
    ops += _grid_lines_ops(points, lines, thickness)
    return Scene(ops, points)


# Cube vertex ``v`` has coordinates (v & 1, v >> 1 & 1, v >> 2 & 1) in the cube's own frame;
# each face lists its four vertices in cyclic order.
CUBE_FACES = np.array(
    [[0, 2, 6, 4], [1, 3, 7, 5], [0, 1, 5, 4], [2, 3, 7, 6], [0, 1, 3, 2], [4, 5, 7, 6]]
)


def cube_visible_faces(vertices: np.ndarray) -> np.ndarray:
    """Indices (into ``CUBE_FACES``) of the faces of a parallelepiped ``vertices [8, 3]`` seen
    by an orthographic camera looking down the z axis from ``z = +inf``: outward normal z > 0."""
    v = np.asarray(vertices, np.float64).reshape(8, 3)
    center = v.mean(axis=0)
    visible = []
    for f, face in enumerate(CUBE_FACES):
        q = v[face]
        normal = np.cross(q[1] - q[0], q[3] - q[0])
        if normal @ (q.mean(axis=0) - center) < 0:
            normal = -normal
        if normal[2] > 1e-9:
            visible.append(f)
    return np.asarray(visible, int)


def cube_scene(
    vertices: np.ndarray,
    face_colors: Sequence[float],
    edge_color: float = 0.0,
    edge_thickness: float = 0.0,
) -> Scene:
    """A parallelepiped ``vertices [8, 3]`` (x, y in image pixels, z towards the viewer),
    orthographic projection. Visible faces are filled with ``face_colors[face]`` (6 values) and
    outlined with strokes when ``edge_thickness > 0``. Keypoints: the vertices of the visible
    faces (seven of eight for a generic view)."""
    v = np.asarray(vertices, np.float64).reshape(8, 3)
    faces = cube_visible_faces(v)
    xy = v[:, :2]
    ops: list[Op] = [Fill(xy[CUBE_FACES[f]], float(face_colors[f])) for f in faces]
    if edge_thickness > 0:
        edges = set()
        for f in faces:
            q = CUBE_FACES[f]
            edges |= {tuple(sorted((int(q[k]), int(q[(k + 1) % 4])))) for k in range(4)}
        ops += [
            Stroke(tuple(xy[a]), tuple(xy[b]), float(edge_thickness), float(edge_color))
            for a, b in sorted(edges)
        ]
    visible = np.unique(CUBE_FACES[faces].ravel()) if len(faces) else np.zeros(0, int)
    return Scene(ops, xy[visible])


def noise_scene(seed: int) -> Scene:
    """Uniform noise over the whole image; no keypoints."""
    return Scene([Noise(int(seed))], np.zeros((0, 2)))


# ---------------------------------------------------------------------------------------------
# samplers: random parameters -> builders

Sampler = Callable[[np.random.Generator, Size, float, SyntheticShapesConfig], Scene]
SAMPLERS: Registry[Sampler] = Registry("synthetic shapes primitive")


def _uniform_int(rng: np.random.Generator, lo: float, hi: float) -> int:
    """An integer in ``[lo, hi)`` (``lo`` when the range is empty)."""
    lo, hi = int(lo), int(hi)
    return lo if hi <= lo else int(rng.integers(lo, hi))


def _corner_angle(a: tuple, p: tuple, b: tuple) -> float:
    """The angle (degrees, 0..180) at corner ``p`` between its neighbours ``a`` and ``b``."""
    ux, uy, vx, vy = a[0] - p[0], a[1] - p[1], b[0] - p[0], b[1] - p[1]
    norm = math.hypot(ux, uy) * math.hypot(vx, vy)
    return math.degrees(math.acos(max(-1.0, min(1.0, (ux * vx + uy * vy) / max(norm, 1e-12)))))


def _random_polygon(rng: np.random.Generator, size: Size, c: PolygonConfig):
    """A star-shaped random polygon (corners at increasing angles around a centre), with
    too-close corners merged and too-flat ones removed; ``(points, center, radius)`` or None."""
    h, w = size
    min_dim = min(h, w)
    n = _uniform_int(rng, 3, c.max_sides)
    rad = max(rng.random() * min_dim / 2, min_dim * c.min_radius_ratio)
    cx = rng.uniform(rad, w - rad)
    cy = rng.uniform(rad, h - rad)
    u = rng.random(2 * n)  # small-polygon work below is plain Python: numpy is slower here
    p = []
    for k in range(n):
        angle = (k + u[k]) * 2 * math.pi / n  # one corner per angular slice
        r = max(u[n + k], 0.4) * rad
        p.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    min_dist = c.min_corner_distance_ratio * min_dim
    while len(p) >= 3:
        m = len(p)
        gaps = [math.dist(p[k], p[(k + 1) % m]) for k in range(m)]
        k = min(range(m), key=gaps.__getitem__)
        if gaps[k] < min_dist:
            del p[k]
            continue
        angles = [_corner_angle(p[k - 1], p[k], p[(k + 1) % m]) for k in range(m)]
        k = max(range(m), key=angles.__getitem__)
        if angles[k] >= c.max_corner_angle:
            del p[k]
            continue
        break
    if len(p) < 3:
        return None
    return np.array(p), np.array([cx, cy]), rad


@SAMPLERS.register("lines")
def sample_lines(rng, size: Size, bg: float, config: SyntheticShapesConfig) -> Scene:
    c = config.lines
    h, w = size
    min_dim = min(h, w)
    segments, widths, colors = [], [], []
    for _ in range(_uniform_int(rng, 1, c.max_lines)):
        seg = rng.uniform([0, 0, 0, 0], [w - 1, h - 1, w - 1, h - 1])
        t = rng.uniform(*c.thickness_ratio) * min_dim
        if np.hypot(seg[2] - seg[0], seg[3] - seg[1]) < c.min_length_ratio * min_dim:
            continue
        clear = all(
            _segment_distance(seg[:2], seg[2:], s[:2], s[2:]) > (t + t2) / 2 + 2.0
            for s, t2 in zip(segments, widths)
        )
        if not clear:
            continue
        segments.append(seg)
        widths.append(t)
        colors.append(random_color(rng, bg))
    return lines_scene(np.reshape(segments, (-1, 4)), widths, colors)


@SAMPLERS.register("polygon")
def sample_polygon(rng, size: Size, bg: float, config: SyntheticShapesConfig) -> Scene:
    for _ in range(100):
        poly = _random_polygon(rng, size, config.polygon)
        if poly is not None:
            return polygons_scene([poly[0]], [random_color(rng, bg)])
    return Scene([], np.zeros((0, 2)))  # pragma: no cover - practically unreachable


@SAMPLERS.register("multiple_polygons")
def sample_multiple_polygons(rng, size: Size, bg: float, config: SyntheticShapesConfig) -> Scene:
    c = config.multiple_polygons
    dim = max(size)
    polys: list[np.ndarray] = []
    circles: list[tuple[np.ndarray, float]] = []
    colors: list[int] = []
    textures: list[Texture] = []
    for _ in range(c.num_polygons):
        poly = _random_polygon(rng, size, config.polygon)
        if poly is None:
            continue
        points, center, rad = poly
        occluder = rng.random() < c.occlusion_probability
        dists = [math.dist(center, c2) for c2, _ in circles]
        near = [k for k, (d, (_, r2)) in enumerate(zip(dists, circles)) if d < rad + r2]
        if near and not occluder:  # the originals' rule: no crossing edges, no nesting
            if any(dists[k] + min(rad, circles[k][1]) < max(rad, circles[k][1]) for k in near):
                continue
            others = np.concatenate([polys[k] for k in near])
            ends = np.concatenate([_edges(polys[k])[1] for k in near])
            if segment_intersections(*_edges(points), others, ends)[0].any():
                continue
        touching = [colors[k] for k in near]
        if touching:
            color = different_color(rng, [bg, *touching], c.min_color_distance)
        else:
            color = random_color(rng, bg)
        texture = Texture(
            seed=int(rng.integers(2**31)),
            std=float(rng.uniform(*c.texture_std_range)),
            kernel=float(rng.uniform(*c.texture_kernel_ratio) * dim),
        )
        polys.append(points)
        circles.append((center, rad))
        colors.append(color)
        textures.append(texture)
    return polygons_scene(polys, colors, textures)


@SAMPLERS.register("ellipses")
def sample_ellipses(rng, size: Size, bg: float, config: SyntheticShapesConfig) -> Scene:
    c = config.ellipses
    h, w = size
    top = min(h, w) * c.max_axis_ratio
    centers, radii, axes, angles, colors = [], [], [], [], []
    for _ in range(c.num_ellipses):
        ax = max(rng.random() * top, top / 5)
        ay = max(rng.random() * top, top / 5)
        r = max(ax, ay)
        center = np.array([rng.uniform(r, w - r), rng.uniform(r, h - r)])
        if any(np.linalg.norm(center - c2) < r + r2 for c2, r2 in zip(centers, radii)):
            continue  # bounding circles overlap: ellipses must not touch (no junctions)
        centers.append(center)
        radii.append(r)
        axes.append((ax, ay))
        angles.append(rng.random() * 90.0)
        colors.append(random_color(rng, bg))
    return ellipses_scene(np.reshape(centers, (-1, 2)), np.reshape(axes, (-1, 2)), angles, colors)


@SAMPLERS.register("star")
def sample_star(rng, size: Size, bg: float, config: SyntheticShapesConfig) -> Scene:
    c = config.star
    h, w = size
    min_dim = min(h, w)
    n = _uniform_int(rng, 3, c.max_branches)
    thickness = rng.uniform(*c.thickness_ratio) * min_dim
    rad = max(rng.random() * min_dim / 2, min_dim * c.min_radius_ratio)
    center = (rng.uniform(rad, w - rad), rng.uniform(rad, h - rad))
    slices = np.linspace(0, 2 * math.pi, n + 1)
    angles = slices[:-1] + rng.random(n) * (slices[1:] - slices[:-1])
    radii = np.maximum(rng.random(n), 0.3) * rad
    tips = np.stack([center[0] + radii * np.cos(angles), center[1] + radii * np.sin(angles)], 1)
    colors = [random_color(rng, bg) for _ in range(n)]
    return star_scene(center, tips, thickness, colors)


def _box(width: float, height: float) -> np.ndarray:
    """The corners ``[4, 2]`` of the rectangle ``[0, width] x [0, height]``."""
    return np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]])


def _random_warp(
    rng: np.random.Generator,
    size: Size,
    params: tuple[float, float],
    extent: np.ndarray,
    max_depth_ratio: float = 2.0,
    tries: int = 20,
) -> np.ndarray:
    """A random affine then perspective distortion (3x3), its strength ``a + U(0, b)`` times
    the larger image side, defined by moving the corners of a square about the image centre.

    ``extent [K, 2]``: the corners of the (convex) object it will map. A perspective whose
    horizon crosses the object (which would fold its far side back through infinity) or that
    shrinks one side over ``max_depth_ratio`` times more than another is redrawn; after
    ``tries`` the affine part alone is used."""
    h, w = size
    alpha = max(h, w) * (params[0] + rng.random() * params[1])
    half = min(h, w) // 3
    cx, cy = w / 2.0, h / 2.0
    square = np.array(
        [[cx + half, cy + half], [cx + half, cy - half], [cx - half, cy - half],
         [cx - half, cy + half]]
    )  # fmt: skip
    moved = square + rng.uniform(-alpha, alpha, square.shape)
    affine = np.eye(3)
    affine[:2] = cv2.getAffineTransform(
        square[:3].astype(np.float32), moved[:3].astype(np.float32)
    )
    ends = apply_homography(affine, extent)
    for _ in range(tries):
        moved = square + rng.uniform(-alpha / 2, alpha / 2, square.shape)
        P = homography_from_points(square, moved)
        depth = np.concatenate([ends, np.ones((len(ends), 1))], axis=1) @ P[2]  # w per corner
        if depth.min() > 0 and depth.max() < max_depth_ratio * depth.min():
            return P @ affine
    return affine


def _random_grid_lines(rng, rows_of_points: list[list[int]], count: int, bg: float):
    """``count`` strokes along random sub-ranges of the given point rows."""
    lines = []
    for _ in range(count):
        row = rows_of_points[int(rng.integers(len(rows_of_points)))]
        i, j = rng.integers(len(row), size=2)
        lines.append((row[int(i)], row[int(j)], random_color(rng, bg)))
    return lines


@SAMPLERS.register("checkerboard")
def sample_checkerboard(rng, size: Size, bg: float, config: SyntheticShapesConfig) -> Scene:
    c = config.checkerboard
    h, w = size
    rows = _uniform_int(rng, 3, c.max_rows)
    cols = _uniform_int(rng, 3, c.max_cols)
    cell = min((w - 1) / cols, (h - 1) / rows)
    H = _random_warp(rng, size, c.transform_params, _box(cols * cell, rows * cell))
    colors = np.zeros((rows, cols), int)
    for i in range(rows):
        for j in range(cols):
            avoid = []
            if i > 0:
                avoid.append(colors[i - 1, j])
            if j > 0:
                avoid.append(colors[i, j - 1])
            if i in (0, rows - 1) or j in (0, cols - 1):
                avoid.append(bg)  # border cells meet the background at the outer corners
            colors[i, j] = different_color(rng, avoid, c.min_color_distance)
    n = cols + 1
    grid_rows = [[i * n + j for j in range(n)] for i in range(rows + 1)]
    grid_cols = [[i * n + j for i in range(rows + 1)] for j in range(n)]
    lines = _random_grid_lines(rng, grid_rows, _uniform_int(rng, 2, rows + 2), bg)
    lines += _random_grid_lines(rng, grid_cols, _uniform_int(rng, 2, cols + 2), bg)
    thickness = rng.uniform(*c.line_thickness_ratio) * min(h, w)
    return checkerboard_scene(rows, cols, cell, H, colors, lines, thickness)


@SAMPLERS.register("stripes")
def sample_stripes(rng, size: Size, bg: float, config: SyntheticShapesConfig) -> Scene:
    c = config.stripes
    h, w = size
    board_h = h * (1 + rng.random())
    board_w = w * (1 + rng.random())
    n = _uniform_int(rng, 5, c.max_stripes)
    xs = np.unique(np.concatenate([board_w * rng.random(n - 1), [0.0, board_w]]))
    min_width = min(h, w) * c.min_width_ratio
    keep = np.diff(np.append(xs, board_w + min_width)) >= min_width
    keep[-1] = True  # the board's right edge
    xs = xs[keep]
    k = len(xs) - 1
    # The board is larger than the image: place it so that its top or its bottom edge (where
    # the keypoints are) crosses the image.
    if rng.random() < 0.5:
        dy = rng.uniform(0.1, 0.5) * h
    else:
        dy = rng.uniform(0.5, 0.9) * h - board_h
    shift = np.array([[1.0, 0.0, -rng.uniform(0.0, board_w - w)], [0.0, 1.0, dy], [0, 0, 1]])
    H = _random_warp(
        rng, size, c.transform_params, apply_homography(shift, _box(board_w, board_h))
    )
    H = H @ shift
    colors, color = [], random_color(rng, bg)
    for _ in range(k):
        # The originals alternate by ~128 levels; a stripe as gray as the background would
        # hide its corners on the board's edge, so such a stripe gets another gray.
        color = (color + 128 + int(rng.integers(-30, 30))) % 256
        if abs(color - bg) < 30:
            color = different_color(rng, [bg, colors[-1] if colors else bg], 50)
        colors.append(color)
    m = k + 1
    lines = _random_grid_lines(
        rng, [list(range(m)), list(range(m, 2 * m))], _uniform_int(rng, 2, 5), bg
    )
    for _ in range(_uniform_int(rng, 2, k + 2)):
        j = int(rng.integers(m))
        lines.append((j, m + j, random_color(rng, bg)))
    thickness = rng.uniform(*c.line_thickness_ratio) * min(h, w)
    return stripes_scene(xs, board_h, H, colors, lines, thickness)


@SAMPLERS.register("cube")
def sample_cube(rng, size: Size, bg: float, config: SyntheticShapesConfig) -> Scene:
    c = config.cube
    h, w = size
    min_dim = min(h, w)
    sides = min_dim * c.min_size_ratio + rng.random(3) * 2 * min_dim / 3
    bits = np.array([[v & 1, v >> 1 & 1, v >> 2 & 1] for v in range(8)], np.float64)
    cube = (bits - 0.5) * sides
    a = rng.random(3) * 3 * math.pi / 10 + math.pi / 10  # each in [18, 72] degrees
    rz = np.array([[math.cos(a[0]), -math.sin(a[0]), 0], [math.sin(a[0]), math.cos(a[0]), 0],
                   [0, 0, 1]])  # fmt: skip
    rx = np.array([[1, 0, 0], [0, math.cos(a[1]), -math.sin(a[1])],
                   [0, math.sin(a[1]), math.cos(a[1])]])  # fmt: skip
    ry = np.array([[math.cos(a[2]), 0, -math.sin(a[2])], [0, 1, 0],
                   [math.sin(a[2]), 0, math.cos(a[2])]])  # fmt: skip
    scale = np.diag(c.scale_interval[0] + rng.random(3) * c.scale_interval[1])
    t0, t1 = c.translation_interval
    center = np.array([w * (t0 + rng.uniform(-t1, t1)), h * (t0 + rng.uniform(-t1, t1)), 0.0])
    vertices = cube @ (scale @ rz @ rx @ ry).T + center
    faces = cube_visible_faces(vertices)
    face_colors = [0.0] * 6
    used: list[float] = [bg]
    for f in faces:
        face_colors[f] = float(different_color(rng, used, 30))
        used.append(face_colors[f])
    edge_color = (int(face_colors[faces[0]]) + 128 + int(rng.integers(-64, 64))) % 256
    thickness = rng.uniform(*c.edge_thickness_ratio) * min_dim
    return cube_scene(vertices, face_colors, edge_color, thickness)


@SAMPLERS.register("gaussian_noise")
def sample_gaussian_noise(rng, size: Size, bg: float, config: SyntheticShapesConfig) -> Scene:
    return noise_scene(int(rng.integers(2**31)))


# ---------------------------------------------------------------------------------------------
# one sample


def render_sample(
    rng: np.random.Generator,
    config: SyntheticShapesConfig | None = None,
    primitive: str | None = None,
) -> dict[str, Any]:
    """One synthetic image and its ground truth.

    Returns ``{"image": uint8 [H, W], "keypoints": float32 [N, 2] (x, y) pixel-centre
    convention, inside the image, "primitive": str}``. ``primitive`` forces one (default: drawn
    from ``config.primitives`` with ``config.primitive_weights``).
    """
    config = config or SyntheticShapesConfig()
    if primitive is None:
        weights = np.asarray(config.weights(), np.float64)
        primitive = config.primitives[int(rng.choice(len(weights), p=weights / weights.sum()))]
    sampler = SAMPLERS.get(primitive)
    size = (int(config.image_size[0]), int(config.image_size[1]))
    background = generate_background(rng, size, config.background)
    scene = sampler(rng, size, float(background.mean()), config)
    sigma = float(rng.uniform(*config.blur_sigma_range))
    image = render_scene(scene, background, config.supersample, sigma)
    keypoints = scene.keypoints[keypoints_inside(scene.keypoints, size)].astype(np.float32)
    return {"image": image, "keypoints": keypoints, "primitive": primitive}


# ---------------------------------------------------------------------------------------------
# torch dataset

SPLITS = {"train": 0, "val": 1, "test": 2}
CACHE_FORMAT = 1  # bump when the cache layout or the generator's output changes


def _sample_seeds(seed: int, split: str, epoch: int, index: int) -> list[np.random.SeedSequence]:
    entropy = [int(seed), SPLITS[split], int(epoch), int(index)]
    return np.random.SeedSequence(entropy).spawn(2)  # render stream, augmentation stream


class SyntheticShapesDataset(torch.utils.data.Dataset):
    """Synthetic shapes for MagicPoint training, generated on the fly.

    Item ``i`` depends only on ``(seed, split, i)`` (and, for ``train``, the epoch set with
    ``set_epoch``), so it is the same in every process and every ``DataLoader`` worker. Items:

    * ``image``: float32 ``[1, H, W]`` in ``[0, 1]``;
    * ``keypoints``: float32 ``[N, 2]`` (x, y), pixel-centre convention (varies per item: batch
      with ``collate``);
    * ``keypoint_map``: float32 ``[H, W]``, 1 at the pixel of each keypoint;
    * ``valid_mask``: float32 ``[H, W]``, 1 where the (warped) image has content;
    * ``homography``: float64 ``[3, 3]`` applied by the augmentation (identity without);
    * ``primitive``: str.

    ``augment`` (an ``AugmentConfig``) adds photometric and homographic augmentation; ``None``
    gives the clean renders. ``cache_dir`` stores the clean renders of a ``val``/``test`` split
    in one ``.npz`` (written once, reused; the file name holds a digest of the config, seed and
    length, so a changed config never reads a stale cache). ``train`` is never cached.

    Workers: pass ``worker_init_fn=worker_init`` (see there why it does not touch OpenCV).
    """

    def __init__(
        self,
        config: SyntheticShapesConfig | None = None,
        split: str = "train",
        seed: int = 0,
        length: int = 10000,
        augment: AugmentConfig | None = None,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        if seed < 0 or length < 0:
            raise ValueError("seed and length must be >= 0")
        self.config = config or SyntheticShapesConfig()
        self.split = split
        self.seed = int(seed)
        self.length = int(length)
        self.augment = augment
        self.epoch = 0
        self.cache_path: Path | None = None
        self._cache: dict[str, np.ndarray] | None = None
        if cache_dir is not None and split != "train":
            self.cache_path = Path(cache_dir) / self.cache_name()
            self._cache = self._load_or_build_cache(progress)

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Draw new ``train`` images for each epoch (val/test ignore it)."""
        self.epoch = int(epoch)

    def cache_name(self) -> str:
        """``synthetic_shapes_<split>_<digest>.npz``, the digest covering what shapes it."""
        key = {
            "config": self.config.to_dict(),
            "seed": self.seed,
            "split": self.split,
            "length": self.length,
            "format": CACHE_FORMAT,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        return f"synthetic_shapes_{self.split}_{digest}.npz"

    def _load_or_build_cache(self, progress: bool) -> dict[str, np.ndarray]:
        path = self.cache_path
        assert path is not None
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:
                cache = {k: data[k] for k in data.files}
            if len(cache["images"]) == self.length:
                return cache
        from tqdm import tqdm

        images = np.zeros((self.length, *self.config.image_size), np.uint8)
        keypoints, offsets, primitives = [], [0], []
        for i in tqdm(range(self.length), desc=f"synthetic shapes: {self.split} cache",
                      disable=not progress, leave=False):  # fmt: skip
            sample = self.render(i)
            images[i] = sample["image"]
            keypoints.append(sample["keypoints"])
            offsets.append(offsets[-1] + len(sample["keypoints"]))
            primitives.append(sample["primitive"])
        cache = {
            "images": images,
            "keypoints": np.concatenate(keypoints).astype(np.float32)
            if keypoints
            else np.zeros((0, 2), np.float32),
            "offsets": np.asarray(offsets, np.int64),
            "primitives": np.asarray(primitives, dtype=str),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npz")
        np.savez(tmp, **cache)
        os.replace(tmp, path)
        return cache

    def render(self, index: int) -> dict[str, Any]:
        """The clean render of item ``index`` (``render_sample``'s dict)."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        if self._cache is not None:
            c = self._cache
            a, b = c["offsets"][index], c["offsets"][index + 1]
            return {
                "image": c["images"][index],
                "keypoints": c["keypoints"][a:b],
                "primitive": str(c["primitives"][index]),
            }
        epoch = self.epoch if self.split == "train" else 0
        render_seq, _ = _sample_seeds(self.seed, self.split, epoch, index)
        return render_sample(np.random.default_rng(render_seq), self.config)

    def sample(self, index: int) -> dict[str, Any]:
        """Item ``index`` as numpy arrays: image float32 ``[H, W]`` in ``[0, 255]``, keypoints,
        valid_mask, homography, primitive (``__getitem__`` before conversion to torch)."""
        clean = self.render(index)
        size = clean["image"].shape
        if self.augment is None:
            out = {
                "image": clean["image"].astype(np.float32),
                "keypoints": clean["keypoints"],
                "valid_mask": np.ones(size, np.float32),
                "homography": np.eye(3),
            }
        else:
            epoch = self.epoch if self.split == "train" else 0
            _, aug_seq = _sample_seeds(self.seed, self.split, epoch, index)
            out = augment(
                np.random.default_rng(aug_seq), clean["image"], clean["keypoints"], self.augment
            )
        out["primitive"] = clean["primitive"]
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.sample(int(index))
        size = s["image"].shape
        return {
            "image": torch.from_numpy(s["image"] / np.float32(255.0))[None],
            "keypoints": torch.from_numpy(np.asarray(s["keypoints"], np.float32)),
            "keypoint_map": torch.from_numpy(keypoint_map(s["keypoints"], size)),
            "valid_mask": torch.from_numpy(np.asarray(s["valid_mask"], np.float32)),
            "homography": torch.from_numpy(np.asarray(s["homography"], np.float64)),
            "primitive": s["primitive"],
        }


def collate(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch dataset items: tensors of equal shape are stacked (``image [B, 1, H, W]``...),
    ``keypoints`` stays a list of ``[N_i, 2]`` tensors and strings a list of strings."""
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        if key != "keypoints" and torch.is_tensor(values[0]):
            out[key] = torch.stack(values)
        else:
            out[key] = values
    return out


def worker_init(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=worker_init)``: one torch thread per worker.

    It leaves OpenCV alone on purpose: ``cv2.setNumThreads`` in a forked worker deadlocks once
    the parent has used OpenCV's thread pool (measured here), while OpenCV's own parallel
    functions keep working there. The dataset itself needs no per-worker seeding: every item is
    a function of ``(seed, split, epoch, index)``."""
    torch.set_num_threads(1)


__all__ = [
    "PRIMITIVES",
    "SAMPLERS",
    "Scene",
    "SyntheticShapesConfig",
    "SyntheticShapesDataset",
    "checkerboard_scene",
    "collate",
    "cube_scene",
    "ellipses_scene",
    "generate_background",
    "lines_scene",
    "noise_scene",
    "polygons_scene",
    "render_sample",
    "render_scene",
    "star_scene",
    "stripes_scene",
    "worker_init",
]
