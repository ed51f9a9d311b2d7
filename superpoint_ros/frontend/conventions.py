"""The front-end's conventions, each in one function with a test that pins it.

* Detector channel ``k`` of a cell (0..63) is the pixel at row ``k // 8``, column ``k % 8`` of that
  8x8 cell; channel 64 is the "no keypoint" dustbin (``depth_to_space``).
* Heatmap pixel ``(row, col)`` is the keypoint ``(x=col, y=row)``; pixel centres sit at integer
  coordinates (see ``superpoint_ros.geometry``).
* Descriptor sampling maps a keypoint's pixel ``x`` to a (fractional) column ``u`` of the
  ``W/8``-wide descriptor map (``descriptor_cell_coords``):
  - ``center`` (ours; rpautrat's TensorFlow port): cell ``c`` covers pixels ``8c .. 8c+7`` and its
    descriptor sits at the cell's centre ``8c + 3.5``: ``u = (x + 0.5) / 8 - 0.5``;
  - ``magicleap`` (Magic Leap's and eric-yyjau's code): ``u = (x - 3.5) / (8 Wc - 4.5) (Wc - 1)``.
  The convention a model was trained with is stored with its weights.

Nothing here imports torch at module level: the ONNX Runtime path must not load it.
"""

from __future__ import annotations

from typing import Any

DESCRIPTOR_SAMPLINGS = ("center", "magicleap")
DEFAULT_CONVENTIONS: dict[str, Any] = {"descriptor_sampling": "center"}


def validate_conventions(conventions: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults into a conventions dict and reject unknown keys or values."""
    out = dict(DEFAULT_CONVENTIONS)
    unknown = set(conventions) - set(DEFAULT_CONVENTIONS)
    if unknown:
        raise ValueError(f"unknown convention keys {sorted(unknown)}; known: {sorted(out)}")
    out.update(conventions)
    if out["descriptor_sampling"] not in DESCRIPTOR_SAMPLINGS:
        raise ValueError(
            f"unknown descriptor_sampling {out['descriptor_sampling']!r}; "
            f"valid: {', '.join(DESCRIPTOR_SAMPLINGS)}"
        )
    return out


def descriptor_cell_coords(points, cells_hw, sampling: str = "center", cell: int = 8):
    """Map keypoints (x, y) in input pixels to fractional (u, v) coordinates of the descriptor map.

    ``points``: torch tensor ``[..., 2]``; ``cells_hw``: (Hc, Wc), ints or 0-d tensors (dynamic
    in an exported graph). Returns ``[..., 2]`` where integer ``(u, v)`` is the centre of cell
    ``(v, u)`` of the map.
    """
    if sampling == "center":
        return (points + 0.5) / cell - 0.5
    if sampling == "magicleap":
        hc, wc = cells_hw
        x = (points[..., 0] - (cell / 2 - 0.5)) / (wc * cell - cell / 2 - 0.5) * (wc - 1)
        y = (points[..., 1] - (cell / 2 - 0.5)) / (hc * cell - cell / 2 - 0.5) * (hc - 1)
        return _stack_last(x, y)
    raise ValueError(f"unknown descriptor_sampling {sampling!r}; valid: {DESCRIPTOR_SAMPLINGS}")


def _stack_last(x, y):
    import torch

    return torch.stack([x, y], dim=-1)
