"""The renderer: drawing operations (:class:`Fill`, :class:`Stroke`, :class:`FillEllipse`,
:class:`Noise`) gathered in a :class:`Scene` with its exact keypoints, rasterised at
``supersample`` times the output size with OpenCV's sub-pixel fixed-point drawing, box-averaged
down and blurred (the package doc says why each step keeps the ground truth exact)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .config import Size

_SHIFT = 8  # fractional bits of OpenCV's fixed-point drawing coordinates
_ONE = 1 << _SHIFT


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
