"""Torch device names to devices: the one place a ``device`` setting (``auto``, ``cpu``,
``cuda``, ``cuda:N``) is resolved, for the torch backend, the training loop and the label
export. torch is imported when a device is resolved, not when this module is (importing
``superpoint_ros`` never imports torch)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from superpoint_ros.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_NAMES = "auto, cpu, cuda, cuda:N"


def resolve_device(name: str | None = "auto") -> torch.device:
    """``auto`` (or ``None``): ``cuda`` if torch sees a GPU, else ``cpu``; a requested CUDA
    device must exist. Raises :class:`ConfigError` in one line otherwise."""
    import torch  # optional dependency: only who resolves a device needs it

    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise ConfigError(f"unknown device {name!r}; valid: {DEVICE_NAMES}")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA device here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} asked for, but only {torch.cuda.device_count()} CUDA "
                "device(s) exist"
            )
    return device
