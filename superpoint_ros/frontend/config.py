"""Front-end settings, shared by every backend, the CLI and the node (no heavy imports)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigError
from .conventions import sampling_rule

MAX_TOPK = 3840  # TensorRT's top-k layer accepts K <= 3840
# Non-maximum suppression modes -> re-expansion rounds after the max-pool pass
# (``postprocess.nms``): 0 keeps strict local maxima only; each round adds back the points
# whose only stronger neighbours were themselves suppressed, as greedy NMS keeps them.
NMS_MODES = {"maxpool": 0, "superglue": 2, "greedy": 8}


def _setting(default: Any, doc: str) -> Any:
    """A field of :class:`FrontendConfig`: its default and its one-sentence meaning, which the
    CLI help, the node's parameter table, its YAML and the README all read from here."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class FrontendConfig:
    """How keypoints are selected from the network's outputs.

    The one home of the front-end's defaults and their meanings (:func:`setting_doc`).
    """

    max_keypoints: int = _setting(
        1000, "Most keypoints per image, best scores first (fixed output slots, zero-padded)."
    )
    nms_radius: int = _setting(4, "Non-maximum suppression radius in pixels.")
    detection_threshold: float = _setting(0.005, "Minimum keypoint probability.")
    border: int = _setting(4, "Drop keypoints closer than this to the image edge (pixels).")
    resize: tuple[int, int] | None = _setting(
        None,
        "Stretch every image to HEIGHTxWIDTH (multiples of 8, e.g. 480x640) before inference; "
        "keypoints are mapped back to input pixels. Empty = keep the input size (padded to a "
        "multiple of 8).",
    )
    subpixel: bool = _setting(False, "Refine keypoint positions by a 3x3 soft-argmax.")
    nms: str = _setting(
        "maxpool", "Non-maximum suppression mode, one of NMS_MODES (README, NMS modes)."
    )
    descriptor_sampling: str | None = _setting(
        None,
        "Descriptor sampling rule of conventions.DESCRIPTOR_SAMPLINGS; empty = the rule "
        "stored with the weights (a third-party layout: its origin's rule).",
    )

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


def setting_doc(name: str) -> str:
    """The meaning of the front-end setting ``name`` (written once, in :class:`FrontendConfig`)."""
    for f in fields(FrontendConfig):
        if f.name == name:
            return f.metadata["doc"]
    raise KeyError(f"no front-end setting {name!r}")


def format_size(size: tuple[int, int] | None) -> str:
    """``(480, 640)`` -> ``"480x640"``; ``None`` -> ``""`` (the inverse of :func:`parse_size`)."""
    return f"{size[0]}x{size[1]}" if size else ""


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
