"""Every random state a run depends on (torch, the explicit generators handed to ``step_fn``,
numpy's and Python's global ones, CUDA's), saved in checkpoints as data ``weights_only`` loads,
and restored on resume."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def rng_state(
    generator: torch.Generator,
    np_rng: np.random.Generator,
    cuda_device: torch.device | None = None,
) -> dict[str, Any]:
    """Every random state a run depends on, as checkpoint-safe data (``weights_only`` loads).
    ``cuda_device`` (DDP): save only that GPU's state (``cuda_device``), not every GPU's."""
    state = {
        "torch": torch.get_rng_state(),
        "torch_generator": generator.get_state(),
        "numpy_generator": np_rng.bit_generator.state,
        "numpy_global": _np_global_state(),
        "python": _python_state(),
    }
    if cuda_device is not None and cuda_device.type == "cuda":
        state["cuda_device"] = torch.cuda.get_rng_state(cuda_device)
    elif torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _np_global_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}  # fmt: skip


def _python_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, torch.tensor(internal, dtype=torch.int64), gauss]


def set_rng_state(
    state: Mapping[str, Any],
    generator: torch.Generator,
    np_rng: np.random.Generator,
    cuda_device: torch.device | None = None,
) -> None:
    """Restore ``rng_state``'s output. ``cuda_device`` (DDP): set only that GPU's state."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["torch_generator"])
    np_rng.bit_generator.state = state["numpy_generator"]
    g = state["numpy_global"]
    np.random.set_state(
        (g["name"], g["keys"].numpy().astype(np.uint32), g["pos"], g["has_gauss"],
         g["cached_gaussian"])
    )  # fmt: skip
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss))
    if cuda_device is not None and cuda_device.type == "cuda":
        if "cuda_device" in state:
            torch.cuda.set_rng_state(state["cuda_device"], cuda_device)
        elif "cuda" in state and cuda_device.index < len(state["cuda"]):
            torch.cuda.set_rng_state(state["cuda"][cuda_device.index], cuda_device)
    elif "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    elif "cuda_device" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda_device"])
