"""The variant table of the benchmark matrix: a name on the command line (``onnxruntime-int8``)
-> the inference backend it runs on (a name of ``superpoint_ros.backends.BACKENDS``) and the
precision of the graph it runs. A backend's variants exist where the backend is registered
(installed or not: an uninstalled one's rows are skipped with its own reason).

No heavy import: the table, the parsers of ``--backends`` and ``--sizes``, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from superpoint_ros.backends import BACKENDS
from superpoint_ros.errors import ConfigError
from superpoint_ros.frontend.config import parse_size
from superpoint_ros.registry import Registry

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Variant:
    """One column of the matrix: ``backend`` (a registered backend's name) at ``precision``."""

    name: str
    backend: str
    precision: str  # fp32 | fp16 | int8
    note: str  # what runs, for the report

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {PRECISIONS}")

    @property
    def quantized(self) -> bool:
        """Whether this variant runs a quantised (Q/DQ) ONNX made by ``superpoint quantize``."""
        return self.precision == "int8"


VARIANTS: Registry[Variant] = Registry("benchmark variant")
TABLE = (
    Variant("torch", "torch", "fp32", "PyTorch front-end module (CUDA when present, else CPU)"),
    Variant("torch-fp16", "torch", "fp16", "PyTorch front-end module in half precision (CUDA)"),
    Variant("onnxruntime", "onnxruntime", "fp32", "exported front-end ONNX in ONNX Runtime"),
    Variant(
        "onnxruntime-int8", "onnxruntime", "int8",
        "ONNX Runtime on the static INT8 model of superpoint quantize --target cpu",
    ),
    Variant("openvino", "openvino", "fp32", "exported front-end ONNX in OpenVINO (CPU)"),
    Variant(
        "openvino-int8", "openvino", "int8",
        "OpenVINO on the static INT8 model of superpoint quantize --target cpu",
    ),
    Variant("tensorrt", "tensorrt", "fp32", "TensorRT engine built from the exported ONNX"),
    Variant("tensorrt-fp16", "tensorrt", "fp16", "TensorRT engine in FP16"),
    Variant(
        "tensorrt-int8", "tensorrt", "int8",
        "TensorRT engine from the Q/DQ model of superpoint quantize --target tensorrt",
    ),
)  # fmt: skip
for _v in TABLE:  # the variants of the backends this build registers
    if _v.backend in BACKENDS:
        VARIANTS.add(_v.name, _v)

DEFAULT_VARIANTS = ("torch", "onnxruntime", "onnxruntime-int8", "tensorrt-fp16", "tensorrt-int8")
DEFAULT_SIZES = "240x320,480x640"


def _items(text: str, option: str) -> list[str]:
    items = [t.strip() for t in str(text).split(",")]
    if not text or any(not t for t in items):
        raise ConfigError(f"{option} {text!r}: give a comma-separated list without empty items")
    twice = sorted({t for t in items if items.count(t) > 1})
    if twice:
        raise ConfigError(f"{option}: {', '.join(twice)} given twice")
    return items


def parse_variants(text: str) -> list[Variant]:
    """``"torch,onnxruntime-int8"`` -> their :class:`Variant` rows, in the order given;
    ``ConfigError`` naming the unknown one and listing the valid names."""
    out = []
    for name in _items(text, "--backends"):
        if name not in VARIANTS:
            raise ConfigError(
                f"--backends: unknown variant {name!r}; valid: {', '.join(VARIANTS.names())}"
            )
        out.append(VARIANTS.get(name))
    return out


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"240x320,480x640"`` -> ``[(240, 320), (480, 640)]`` (height, width; multiples of 8);
    ``ConfigError`` naming the bad item."""
    out = []
    for item in _items(text, "--sizes"):
        try:
            out.append(parse_size(item))
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"--sizes: {item!r} is not a size HxW ({exc})") from None
    return out
