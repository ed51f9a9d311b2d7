"""What shapes a synthetic image: one frozen dataclass per primitive and the whole
``SyntheticShapesConfig`` (``data.*`` of the MagicPoint YAML); the random seed is not part of
it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from superpoint_training.config import from_dict as tree_to_config
from superpoint_training.config import to_dict as config_to_tree

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
        return tree_to_config(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return config_to_tree(self)
