"""The nine primitives' samplers (``SAMPLERS``, by name: random parameters -> a scene
builder of ``scenes.py``) and :func:`render_sample`, one image and its keypoints. A new primitive
is one ``@SAMPLERS.register("name")`` function here, its builder, and its name in
``config.PRIMITIVES``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from superpoint_ros.registry import Registry
from superpoint_training.data.augment import keypoints_inside
from superpoint_training.geometry.homographies import homography_from_points

from .colors import different_color, generate_background, random_color
from .config import PolygonConfig, Size, SyntheticShapesConfig
from .geometry2d import (
    apply_homography,
    polygon_edges,
    segment_distance,
    segment_intersections,
)
from .raster import Scene, Texture, render_scene
from .scenes import (
    checkerboard_scene,
    cube_scene,
    cube_visible_faces,
    ellipses_scene,
    lines_scene,
    noise_scene,
    polygons_scene,
    star_scene,
    stripes_scene,
)

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
            segment_distance(seg[:2], seg[2:], s[:2], s[2:]) > (t + t2) / 2 + 2.0
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
            ends = np.concatenate([polygon_edges(polys[k])[1] for k in near])
            if segment_intersections(*polygon_edges(points), others, ends)[0].any():
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
