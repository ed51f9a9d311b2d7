"""How each TensorRT release is asked for a precision, against FAKE ``tensorrt`` modules.

No TensorRT runs here. Each ``Fake...`` class below is a stand-in carrying only the API surface
the precision choice reads, as NVIDIA's Python API documentation lists it for that release:

* 8.5 / 8.6 (JetPack 5): ``NetworkDefinitionCreationFlag`` EXPLICIT_BATCH (0),
  EXPLICIT_PRECISION (1, deprecated); ``BuilderFlag`` FP16, INT8, GPU_FALLBACK...;
* 10.3 (JetPack 6): EXPLICIT_BATCH (0, deprecated, ignored), STRONGLY_TYPED (1); FP16, INT8 and
  BF16 builder flags still there;
* 11.0 (desktop): STRONGLY_TYPED (0, deprecated: strong typing always on); BuilderFlag without
  FP16, INT8, BF16, FP8 (removed; Q/DQ and typed graphs replace them).

They are fakes: a test passing here says the choice of mechanism follows the documented
surfaces, not that an engine was built.
"""

from __future__ import annotations

import importlib.util

import pytest

from superpoint_ros.backends.tensorrt_precision import (
    check_dla,
    model_precision,
    network_creation_bits,
    precision_plan,
)
from superpoint_ros.errors import BackendUnavailable, ConfigError


def _enum(**members: int) -> type:
    return type("FakeEnum", (), members)


def _fake(version: str, creation: dict[str, int], builder_flags: tuple[str, ...]) -> type:
    """A fake ``tensorrt`` module: a class holding the release's version and enums."""
    name = "FakeTensorRT_" + "_".join(version.split(".")[:2])
    return type(
        name,
        (),
        {
            "__version__": version,
            "NetworkDefinitionCreationFlag": _enum(**creation),
            "BuilderFlag": _enum(**{flag: i for i, flag in enumerate(builder_flags)}),
        },
    )


FLAGS_8 = ("FP16", "INT8", "DEBUG", "GPU_FALLBACK", "REFIT", "TF32", "OBEY_PRECISION_CONSTRAINTS")
FLAGS_10 = (*FLAGS_8, "BF16", "FP8", "STRIP_PLAN", "WEIGHT_STREAMING")
FLAGS_11 = ("DEBUG", "GPU_FALLBACK", "REFIT", "TF32", "STRIP_PLAN", "WEIGHT_STREAMING")

FakeTensorRT_8_5 = _fake("8.5.2.2", {"EXPLICIT_BATCH": 0, "EXPLICIT_PRECISION": 1}, FLAGS_8)
FakeTensorRT_8_6 = _fake("8.6.2.3", {"EXPLICIT_BATCH": 0, "EXPLICIT_PRECISION": 1}, FLAGS_8)
FakeTensorRT_10_3 = _fake("10.3.0.30", {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}, FLAGS_10)
FakeTensorRT_11_0 = _fake("11.0.0.5", {"STRONGLY_TYPED": 0, "PREFER_AOT_PYTHON_PLUGINS": 1},
                          FLAGS_11)  # fmt: skip
FakeTensorRT_8_4 = _fake("8.4.3.1", {"EXPLICIT_BATCH": 0, "EXPLICIT_PRECISION": 1}, FLAGS_8)

# (fake, precision, qdq) -> (network flags, builder flags, fp16 graph), written out by hand
EXPECTED = {
    (FakeTensorRT_8_5, "fp32", False): (("EXPLICIT_BATCH",), (), False),
    (FakeTensorRT_8_5, "fp16", False): (("EXPLICIT_BATCH",), ("FP16",), False),
    (FakeTensorRT_8_5, "int8", True): (("EXPLICIT_BATCH",), ("INT8",), False),
    (FakeTensorRT_8_6, "fp32", False): (("EXPLICIT_BATCH",), (), False),
    (FakeTensorRT_8_6, "fp16", False): (("EXPLICIT_BATCH",), ("FP16",), False),
    (FakeTensorRT_8_6, "int8", True): (("EXPLICIT_BATCH",), ("INT8",), False),
    (FakeTensorRT_10_3, "fp32", False): ((), (), False),
    (FakeTensorRT_10_3, "fp16", False): ((), ("FP16",), False),
    (FakeTensorRT_10_3, "int8", True): ((), ("INT8",), False),
    (FakeTensorRT_11_0, "fp32", False): (("STRONGLY_TYPED",), (), False),
    (FakeTensorRT_11_0, "fp16", False): (("STRONGLY_TYPED",), (), True),
    (FakeTensorRT_11_0, "int8", True): (("STRONGLY_TYPED",), (), False),
}


@pytest.mark.parametrize("key", list(EXPECTED), ids=lambda k: f"{k[0].__version__}-{k[1]}")
def test_plan_per_release(key):
    fake, precision, qdq = key
    plan = precision_plan(fake, precision, qdq)
    assert (plan.network_flags, plan.builder_flags, plan.fp16_graph) == EXPECTED[key]
    assert plan.precision == precision
    for flag in plan.builder_flags:  # only members the release has
        assert hasattr(fake.BuilderFlag, flag)


def test_mechanism_lines_name_what_was_used():
    assert precision_plan(FakeTensorRT_8_6, "fp16", False).mechanism == (
        "BuilderFlag.FP16 (TensorRT 8.6)"
    )
    assert precision_plan(FakeTensorRT_11_0, "fp16", False).mechanism.startswith(
        "FP16 network graph, post-processing FP32, strongly typed (TensorRT 11.0 has no "
        "BuilderFlag.FP16)"
    )
    assert precision_plan(FakeTensorRT_11_0, "int8", True).mechanism == (
        "Q/DQ model, strongly typed (TensorRT 11.0)"
    )


def test_network_creation_bits_use_each_release_enum_values():
    assert (
        network_creation_bits(FakeTensorRT_8_6, precision_plan(FakeTensorRT_8_6, "fp32", 0)) == 1
    )
    assert (
        network_creation_bits(FakeTensorRT_10_3, precision_plan(FakeTensorRT_10_3, "fp16", 0)) == 0
    )
    assert (
        network_creation_bits(FakeTensorRT_11_0, precision_plan(FakeTensorRT_11_0, "fp32", 0)) == 1
    )


@pytest.mark.parametrize("fake", [FakeTensorRT_8_5, FakeTensorRT_10_3, FakeTensorRT_11_0])
def test_int8_is_only_explicit_quantisation(fake):
    with pytest.raises(
        ConfigError, match="needs an explicitly quantised .Q/DQ. model.*no calibrator"
    ):
        precision_plan(fake, "int8", qdq=False)
    with pytest.raises(ConfigError, match="holds Q/DQ .* it is an INT8 model"):
        precision_plan(fake, "fp16", qdq=True)


def test_release_older_than_8_5_is_refused():
    with pytest.raises(BackendUnavailable, match="TensorRT 8.4.3.1 is older than 8.5"):
        precision_plan(FakeTensorRT_8_4, "fp32", False)


def test_unknown_precision():
    with pytest.raises(ConfigError, match="unknown precision 'bf16'"):
        precision_plan(FakeTensorRT_10_3, "bf16", False)


def test_model_precision_defaults_to_the_models_own():
    assert model_precision(None, qdq=False) == "fp32"
    assert model_precision(None, qdq=True) == "int8"
    assert model_precision("fp32", qdq=True) == "int8"  # the default on a Q/DQ model
    assert model_precision("fp16", qdq=False) == "fp16"


def test_real_tensorrt_gets_a_plan():
    """Where TensorRT is installed, the real module is one of the surfaces above."""
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("TensorRT is not installed here (no NVIDIA GPU machine with TensorRT)")
    import tensorrt

    for precision in ("fp32", "fp16"):
        assert precision_plan(tensorrt, precision, False).precision == precision


def test_dla_only_where_the_release_has_it():
    for fake in (FakeTensorRT_8_5, FakeTensorRT_8_6, FakeTensorRT_10_3):
        check_dla(fake, 0)  # JetPack 5 and 6: DLA cores of Xavier/Orin
    check_dla(FakeTensorRT_11_0, None)  # no DLA asked: nothing to check
    with pytest.raises(BackendUnavailable, match="TensorRT 11.0.0.5 does not build for DLA"):
        check_dla(FakeTensorRT_11_0, 0)
