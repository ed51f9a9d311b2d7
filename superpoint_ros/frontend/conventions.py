"""The front-end's conventions, each in one function with a test that pins it.

* Detector channel ``k`` of a cell (0..63) is the pixel at row ``k // 8``, column ``k % 8`` of that
  8x8 cell; channel 64 is the "no keypoint" dustbin (``depth_to_space``).
* Heatmap pixel ``(row, col)`` is the keypoint ``(x=col, y=row)``; pixel centres sit at integer
  coordinates (see ``superpoint_ros.geometry``).
* Descriptor sampling maps a keypoint's pixel ``x`` to a (fractional) column ``u`` of the
  ``Wc = W/8``-wide descriptor map (rows alike with ``y``, ``Hc``), then interpolates bilinearly
  between the four nearest cells and L2-normalises. Each code base that trained SuperPoint
  weights did this its own way; :data:`DESCRIPTOR_SAMPLINGS` names each rule after its origin
  (``descriptor_cell_coords`` is the formula, ``normalize_first`` the order):

  ==========================  ==========================================  =====================
  rule                        ``u`` (column of the descriptor map)        map normalised first
  ==========================  ==========================================  =====================
  ``center``                  ``(x + 0.5) / 8 - 0.5``                     yes
  ``magicleap_demo``          ``x (Wc - 1) / (8 Wc)``                     yes
  ``magicleap_demo_torch13``  ``x / 8 - 0.5``                             yes
  ``superglue``               ``(x - 3.5) (Wc - 1) / (8 Wc - 4.5)``       yes
  ``eric_yyjau``              ``x (Wc - 1) / (8 Wc)``                     yes
  ``rpautrat_tf``             ``x / 8``                                   no (raw map)
  ==========================  ==========================================  =====================

  ``u`` is clamped to ``[0, Wc - 1]``. The origins that call ``grid_sample`` with zero padding
  instead get the same unit descriptor: past the last cell centre only the edge cells carry
  weight, and the final normalisation removes the scale.

The rule a model was trained with is stored with its weights (``Weights.conventions``); a
third-party layout gets its origin's rule (``LAYOUT_SAMPLING``), and ``FrontendConfig``'s
``descriptor_sampling`` overrides either.

Nothing here imports torch at module level: the ONNX Runtime path must not load it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CELL = 8  # pixels per descriptor cell


@dataclass(frozen=True)
class DescriptorSampling:
    """One origin's way of reading a keypoint's descriptor off the coarse map."""

    name: str
    origin: str  # whose code samples this way (see the README's "Descriptor sampling")
    formula: str  # u as a function of x (v of y alike), for people
    normalize_first: bool  # L2-normalise the dense map before interpolating (else after only)


DESCRIPTOR_SAMPLINGS: dict[str, DescriptorSampling] = {
    s.name: s
    for s in (
        DescriptorSampling(
            "center",
            "this project's training (descriptor of cell c at pixel 8c + 3.5); rpautrat's "
            "PyTorch port superpoint_pytorch.py (grid_sample, align_corners=False)",
            "u = (x + 0.5) / 8 - 0.5",
            True,
        ),
        DescriptorSampling(
            "magicleap_demo",
            "Magic Leap's demo_superpoint.py as written (grid_sample with the align-corners "
            "semantics of the PyTorch it was released for, < 1.3)",
            "u = x (Wc - 1) / (8 Wc)",
            True,
        ),
        DescriptorSampling(
            "magicleap_demo_torch13",
            "Magic Leap's demo_superpoint.py run on PyTorch >= 1.3 (grid_sample's default "
            "became align_corners=False)",
            "u = x / 8 - 0.5",
            True,
        ),
        DescriptorSampling(
            "superglue",
            "Magic Leap's SuperGlue and cvg's LightGlue sample_descriptors (grid_sample, "
            "align_corners=True)",
            "u = (x - 3.5) (Wc - 1) / (8 Wc - 4.5)",
            True,
        ),
        DescriptorSampling(
            "eric_yyjau",
            "eric-yyjau/pytorch-superpoint sample_desc_from_points (grid_sample, "
            "align_corners=True), used by its export and evaluation",
            "u = x (Wc - 1) / (8 Wc)",
            True,
        ),
        DescriptorSampling(
            "rpautrat_tf",
            "rpautrat/SuperPoint TensorFlow descriptor head (tf.image.resize_bilinear x8 of "
            "the raw map, no half-pixel centres, then l2_normalize)",
            "u = x / 8",
            False,
        ),
    )
}
# Names that files written before the rules were split may hold, and the rule each meant.
LEGACY_SAMPLINGS = {"magicleap": "superglue"}
# The rule each third-party layout's own code samples with (its default).
LAYOUT_SAMPLING = {"magicleap": "magicleap_demo", "eric_yyjau": "eric_yyjau",
                   "rpautrat": "rpautrat_tf"}  # fmt: skip
DEFAULT_CONVENTIONS: dict[str, Any] = {"descriptor_sampling": "center"}


def sampling_rule(name: str) -> DescriptorSampling:
    """The rule called ``name`` (legacy names accepted); ``ValueError`` listing the valid ones."""
    rule = DESCRIPTOR_SAMPLINGS.get(LEGACY_SAMPLINGS.get(name, name))
    if rule is None:
        raise ValueError(
            f"unknown descriptor_sampling {name!r}; valid: {', '.join(DESCRIPTOR_SAMPLINGS)}"
        )
    return rule


def validate_conventions(conventions: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults into a conventions dict, reject unknown keys or values, and spell the
    sampling rule by its current name."""
    out = dict(DEFAULT_CONVENTIONS)
    unknown = set(conventions) - set(DEFAULT_CONVENTIONS)
    if unknown:
        raise ValueError(f"unknown convention keys {sorted(unknown)}; known: {sorted(out)}")
    out.update(conventions)
    out["descriptor_sampling"] = sampling_rule(out["descriptor_sampling"]).name
    return out


def resolve_conventions(conventions: dict[str, Any], sampling: str | None) -> dict[str, Any]:
    """The conventions a front-end runs with: the weights' ``conventions`` with the descriptor
    sampling rule ``sampling`` in place of theirs when one is given (``None`` keeps theirs)."""
    out = validate_conventions(conventions)
    if sampling is not None:
        out["descriptor_sampling"] = sampling_rule(sampling).name
    return out


def descriptor_cell_coords(points, cells_hw, sampling: str = "center", cell: int = CELL):
    """Map keypoints (x, y) in input pixels to fractional (u, v) coordinates of the descriptor map
    by the rule ``sampling`` (before clamping to the map).

    ``points``: torch tensor ``[..., 2]``; ``cells_hw``: (Hc, Wc), ints or 0-d tensors (dynamic
    in an exported graph). Returns ``[..., 2]`` where integer ``(u, v)`` is the centre of cell
    ``(v, u)`` of the map.
    """
    name = sampling_rule(sampling).name
    if name == "center":
        return (points + 0.5) / cell - 0.5
    if name == "magicleap_demo_torch13":
        return points / cell - 0.5
    if name == "rpautrat_tf":
        return points / cell
    hc, wc = cells_hw
    x, y = points[..., 0], points[..., 1]
    if name in ("magicleap_demo", "eric_yyjau"):
        u = x * (wc - 1) / (wc * cell)
        v = y * (hc - 1) / (hc * cell)
    else:  # superglue
        u = (x - (cell / 2 - 0.5)) * (wc - 1) / (wc * cell - cell / 2 - 0.5)
        v = (y - (cell / 2 - 0.5)) * (hc - 1) / (hc * cell - cell / 2 - 0.5)
    return _stack_last(u, v)


def _stack_last(x, y):
    import torch

    return torch.stack([x, y], dim=-1)
