"""Which combinations of the matrix run here, and why the others cannot: pure rules over a
model's kind, a variant and what this machine has (:class:`Environment`).

A combination is skipped, never silently dropped: its row says why (the backend's own
"not installed" line, a weights-only backend given an .onnx, FP16 torch without CUDA, INT8
without calibration photos...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from superpoint_ros.backends import source_kind
from superpoint_ros.errors import ConfigError

from .variants import Variant


@dataclass(frozen=True)
class Model:
    """A model of the matrix: its label in the report, its file, its kind (``torch`` for a
    weights file, ``onnx``, ``engine``) and the precision the file carries (an ``.onnx``
    already quantised: ``int8``; an engine: its recorded one; else ``fp32``)."""

    label: str
    path: Path
    kind: str
    precision: str = "fp32"

    @classmethod
    def from_path(cls, label: str, path: str | Path, precision: str = "fp32") -> Model:
        return cls(label, Path(path), source_kind(path), precision)


_LABEL = re.compile(r"[A-Za-z0-9_.+-]+")
_MODEL_SUFFIX = re.compile(r"\.(pt|pth|tar|ckpt|onnx|engine|plan|trt)$", re.IGNORECASE)


def parse_models(text: str) -> list[tuple[str, Path]]:
    """``--models "A.pt,fast=B.onnx"`` -> ``[("A", A.pt), ("fast", B.onnx)]``: each item a
    file, optionally labelled ``NAME=PATH`` (default: the file name without its extensions;
    repeated labels get ``-2``, ``-3``...). ``ConfigError`` for a missing file or a bad label."""
    out: list[tuple[str, Path]] = []
    for item in (t.strip() for t in str(text).split(",")):
        if not item:
            raise ConfigError(f"--models {text!r}: give a comma-separated list of model files")
        label, sep, path = item.partition("=")
        if not sep or Path(item).exists():
            label, path = "", item
        elif not _LABEL.fullmatch(label):
            raise ConfigError(
                f"--models {item!r}: a label is letters, digits, '_', '-', '.', '+' (LABEL=PATH)"
            )
        if not Path(path).is_file():
            raise ConfigError(f"--models: model file not found: {path}")
        if not label:
            label = Path(path).name
            while _MODEL_SUFFIX.search(label):
                label = _MODEL_SUFFIX.sub("", label)
        base, n = label, 2
        while label in {lab for lab, _ in out}:
            label, n = f"{base}-{n}", n + 1
        out.append((label, Path(path)))
    return out


@dataclass(frozen=True)
class Environment:
    """What this machine offers: ``backends`` maps each backend name to None (usable) or the
    reason it is not; ``cuda`` whether PyTorch sees a CUDA GPU; ``int8`` None when INT8 models
    can be made (quantiser and calibration photos present) or the reason they cannot."""

    backends: dict[str, str | None] = field(default_factory=dict)
    cuda: bool = False
    int8: str | None = None


def skip_reason(model: Model, variant: Variant, env: Environment) -> str | None:
    """None when ``model`` can run as ``variant`` here, else the one-line reason for its row."""
    if variant.backend not in env.backends:
        return f"{variant.backend}: not a registered backend here"
    reason = env.backends[variant.backend]
    if reason:
        return f"{variant.backend}: {reason}"
    if model.kind == "engine":
        if variant.backend != "tensorrt":
            return "a TensorRT .engine runs only on the tensorrt variants"
        if variant.precision != model.precision:
            row = "tensorrt" + ("" if model.precision == "fp32" else f"-{model.precision}")
            return (
                f"{model.path.name} was built {model.precision}: its row is {row} (pass the "
                ".onnx to build each precision)"
            )
        return None
    if variant.backend == "torch":
        if model.kind != "torch":
            return "torch runs a weights file (.pt/.pth/.tar), not an .onnx"
        if variant.precision == "fp16" and not env.cuda:
            return "torch-fp16: half precision needs a CUDA GPU (none here)"
        if variant.precision == "int8":
            return "torch: no INT8 path (use onnxruntime-int8 or tensorrt-int8)"
        return None
    if model.precision == "int8" and not variant.quantized:
        return f"{model.path.name} is already INT8: see its {variant.backend}-int8 row"
    if variant.quantized and model.precision != "int8" and env.int8:
        return f"int8: {env.int8}"
    return None
