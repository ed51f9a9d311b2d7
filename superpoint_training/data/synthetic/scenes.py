"""Deterministic builders, one per primitive: geometry in, drawing operations and exact
keypoints out (``lines_scene``, ``polygons_scene``...). Tests call them with hand-chosen
geometry; the random samplers (``primitives.py``) call them with drawn parameters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .geometry2d import apply_homography, inside_polygon, polygon_edges, segment_intersections
from .raster import Fill, FillEllipse, Noise, Op, Scene, Stroke, Texture


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
                visible &= ~inside_polygon(poly, polys[j])
        keypoints.append(poly[visible])
    for a in range(len(polys)):
        for b in range(a + 1, len(polys)):
            if not overlap[a, b]:
                continue
            hit, point = segment_intersections(*polygon_edges(polys[a]), *polygon_edges(polys[b]))
            junctions = point[hit]
            if not len(junctions):
                continue
            keep = np.ones(len(junctions), bool)
            for c in range(a + 1, len(polys)):
                if c != b and overlap[a, c] and overlap[b, c]:
                    keep &= ~inside_polygon(junctions, polys[c])
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
