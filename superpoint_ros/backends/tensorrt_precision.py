"""How a precision is asked of the TensorRT release that is running: a pure function of the
``tensorrt`` module's API surface (tested against stand-ins for each release's surface).

What the releases our users have offer (checked in NVIDIA's Python API docs and migration
guide; README "TensorRT"):

* 8.5 / 8.6 (JetPack 5): ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` must be set (creating
  a network without it is deprecated); ``BuilderFlag.FP16`` and ``BuilderFlag.INT8``; a network
  holding Q/DQ nodes is quantised explicitly, with the INT8 flag set and no calibrator.
* 10.x (JetPack 6 ships 10.3): ``EXPLICIT_BATCH`` deprecated and ignored (networks are always
  explicit batch); ``BuilderFlag.FP16``/``INT8`` still there; calibrators deprecated since 10.1.
* 11.x: strong typing always on (``STRONGLY_TYPED`` kept only for compatibility, ignored);
  ``BuilderFlag.FP16``/``INT8``, ``int8_calibrator`` and ``platform_has_fast_fp16`` removed.
  FP16 comes from the graph's own types (an FP16 ONNX), INT8 from Q/DQ nodes.

So: FP16 is the builder flag where the release has it, else the ONNX's network part is cast to
FP16 (:func:`superpoint_ros.backends.tensorrt_fp16.fp16_network_graph`, post-processing kept
in FP32); INT8 is always an explicit Q/DQ model (``superpoint quantize --target tensorrt``),
never a calibrator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import BackendUnavailable, ConfigError
from .base import check_precision

MIN_VERSION = (8, 5)  # the named-tensor runtime API (set_tensor_address, execute_async_v3)


@dataclass(frozen=True)
class PrecisionPlan:
    """What the engine builder does for one precision on one TensorRT release."""

    precision: str  # fp32 | fp16 | int8
    network_flags: tuple[str, ...]  # NetworkDefinitionCreationFlag members to set
    builder_flags: tuple[str, ...]  # BuilderFlag members to set
    fp16_graph: bool  # cast the ONNX network part to FP16 before parsing
    mechanism: str  # one line for logs and the engine record


def trt_version(trt: Any) -> tuple[int, int]:
    parts = str(getattr(trt, "__version__", "0.0")).split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def _has(namespace: Any, member: str) -> bool:
    return namespace is not None and hasattr(namespace, member)


def model_precision(requested: str | None, qdq: bool) -> str:
    """The precision to build: ``requested``, where None (and, for a Q/DQ model, the default
    fp32) means the model's own: int8 for a Q/DQ model, else fp32."""
    if requested is None or (qdq and requested == "fp32"):
        return "int8" if qdq else "fp32"
    return check_precision(requested)


def check_qdq(precision: str, qdq: bool, name: str = "this ONNX") -> None:
    """INT8 exactly when the model is explicitly quantised (holds Q/DQ nodes); one line else."""
    if qdq and precision != "int8":
        raise ConfigError(
            f"{name} holds Q/DQ (quantise/dequantise) nodes: it is an INT8 model; build it with "
            "--int8 (or pass the FP32 export for fp32/fp16)"
        )
    if precision == "int8" and not qdq:
        stem = name[: -len(".onnx")] if name.endswith(".onnx") else "MODEL"
        source = name if name.endswith(".onnx") else "MODEL.onnx"
        raise ConfigError(
            f"INT8 on TensorRT needs an explicitly quantised (Q/DQ) model, {name} has none (no "
            "calibrator: deprecated since TensorRT 10.1, removed in 11); make one with: "
            f"superpoint quantize --onnx {source} --calib DIR --target tensorrt "
            f"-o {stem}.int8.onnx"
        )


def precision_plan(trt: Any, precision: str, qdq: bool) -> PrecisionPlan:
    """The plan for ``precision`` on the release ``trt`` (the ``tensorrt`` module, or a
    stand-in with the same attributes), for an ONNX that holds Q/DQ nodes (``qdq``) or not.

    Raises ``ConfigError`` for a request no release can honour here (int8 without Q/DQ, a Q/DQ
    model at another precision) and ``BackendUnavailable`` for a release older than 8.5.
    """
    check_precision(precision)
    version = trt_version(trt)
    if version < MIN_VERSION:
        raise BackendUnavailable(
            f"TensorRT {trt.__version__} is older than 8.5, the first with the named-tensor "
            "API this backend uses; install TensorRT >= 8.5 (JetPack 5 or later)"
        )
    builder_flag = getattr(trt, "BuilderFlag", None)
    creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
    network_flags: tuple[str, ...] = ()
    if version[0] < 10 and _has(creation, "EXPLICIT_BATCH"):
        network_flags = ("EXPLICIT_BATCH",)
    strongly_typed = not _has(builder_flag, "FP16")  # 11.x: no precision flags at all
    if strongly_typed and _has(creation, "STRONGLY_TYPED"):
        network_flags += ("STRONGLY_TYPED",)
    check_qdq(precision, qdq)
    if precision == "int8":
        if _has(builder_flag, "INT8"):
            return PrecisionPlan(
                "int8", network_flags, ("INT8",), False,
                f"Q/DQ model with BuilderFlag.INT8 (TensorRT {version[0]}.{version[1]})",
            )  # fmt: skip
        return PrecisionPlan(
            "int8", network_flags, (), False,
            f"Q/DQ model, strongly typed (TensorRT {version[0]}.{version[1]})",
        )  # fmt: skip
    if precision == "fp16":
        if _has(builder_flag, "FP16"):
            return PrecisionPlan(
                "fp16", network_flags, ("FP16",), False,
                f"BuilderFlag.FP16 (TensorRT {version[0]}.{version[1]})",
            )  # fmt: skip
        return PrecisionPlan(
            "fp16", network_flags, (), True,
            f"FP16 network graph, post-processing FP32, strongly typed "
            f"(TensorRT {version[0]}.{version[1]} has no BuilderFlag.FP16)",
        )  # fmt: skip
    return PrecisionPlan(
        "fp32", network_flags, (), False, f"FP32 (TensorRT {version[0]}.{version[1]})"
    )


LAST_DLA_VERSION = (10, 7)  # NVIDIA's 11.3 docs: "TensorRT 10.7 was the last release that
# supported DLA"; 11.0 to 11.3 have none, 11.4 none on JetPack


def check_dla(trt: Any, dla_core: int | None) -> None:
    """Refuse a DLA build on a release without DLA support, in one line."""
    if dla_core is not None and trt_version(trt) > LAST_DLA_VERSION:
        raise BackendUnavailable(
            f"TensorRT {trt.__version__} does not build for DLA (10.7 was the last release with "
            "DLA support; JetPack 6 ships 10.3): leave --dla out to build for the GPU"
        )


def network_creation_bits(trt: Any, plan: PrecisionPlan) -> int:
    """The integer ``builder.create_network()`` takes for the plan's creation flags."""
    bits = 0
    for name in plan.network_flags:
        bits |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    return bits
