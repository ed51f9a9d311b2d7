"""Front-end settings, shared by every backend, the CLI and the node (no heavy imports)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import ConfigError
from .conventions import sampling_rule

MAX_TOPK = 3840  # TensorRT's top-k layer accepts K <= 3840
# Non-maximum suppression modes -> re-expansion rounds after the max-pool pass
# (``postprocess.nms``): 0 keeps strict local maxima only; each round adds back the points
# whose only stronger neighbours were themselves suppressed, as greedy NMS keeps them.
NMS_MODES = {"maxpool": 0, "superglue": 2, "greedy": 8}


@dataclass(frozen=True)
class FrontendConfig:
    """How keypoints are selected from the network's outputs."""

    max_keypoints: int = 1000  # K: fixed number of output slots (zero-score padding)
    nms_radius: int = 4  # non-maximum suppression radius in pixels (window 2r+1)
    detection_threshold: float = 0.005  # minimum keypoint probability
    border: int = 4  # drop keypoints closer than this to the image edge (pixels)
    resize: tuple[int, int] | None = None  # (h, w) to stretch to; None pads to a multiple of 8
    subpixel: bool = False  # refine positions by a soft-argmax over a 3x3 window
    nms: str = "maxpool"  # NMS mode, a name in NMS_MODES (see the README's "NMS modes")
    descriptor_sampling: str | None = None  # a rule of conventions.DESCRIPTOR_SAMPLINGS;
    # None = the rule stored with the weights (a third-party layout: its origin's rule)

    def __post_init__(self):
        if not 1 <= self.max_keypoints <= MAX_TOPK:
            raise ConfigError(f"max_keypoints must be in [1, {MAX_TOPK}] (TensorRT top-k limit)")
        if self.nms_radius < 0:
            raise ConfigError("nms_radius must be >= 0")
        if not 0.0 <= self.detection_threshold < 1.0:
            raise ConfigError("detection_threshold must be in [0, 1)")
        if self.border < 0:
            raise ConfigError("border must be >= 0")
        if self.resize is not None:
            object.__setattr__(self, "resize", parse_size(self.resize))
        if self.nms not in NMS_MODES:
            raise ConfigError(f"unknown nms mode {self.nms!r}; valid: {', '.join(NMS_MODES)}")
        if self.descriptor_sampling is not None:
            try:
                rule = sampling_rule(self.descriptor_sampling)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            object.__setattr__(self, "descriptor_sampling", rule.name)

    def replace(self, **changes: Any) -> FrontendConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["resize"] = list(self.resize) if self.resize else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrontendConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown front-end keys {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**d)

    # Settings fixed inside an exported graph (the rest is applied on the host).
    def graph_key(self) -> dict[str, Any]:
        return {
            "max_keypoints": self.max_keypoints,
            "nms_radius": self.nms_radius,
            "detection_threshold": self.detection_threshold,
            "border": self.border,
            "subpixel": self.subpixel,
            "nms": self.nms,
            "descriptor_sampling": self.descriptor_sampling,
        }


def parse_size(value: Any) -> tuple[int, int] | None:
    """``"480x640"``, ``"480,640"``, ``[480, 640]`` -> ``(480, 640)`` (height, width);
    ``""``/``None`` -> ``None``. Both sides must be positive multiples of 8."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", value)
        if not m:
            raise ConfigError(f"bad size {value!r}: expected HEIGHTxWIDTH, e.g. 480x640")
        h, w = int(m.group(1)), int(m.group(2))
    else:
        try:
            h, w = (int(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"bad size {value!r}: expected (height, width)") from None
    if h <= 0 or w <= 0 or h % 8 or w % 8:
        raise ConfigError(f"bad size {h}x{w}: height and width must be positive multiples of 8")
    return h, w
