"""Numerical precision of training and inference (``train.precision``, export ``precision``).

``fp32`` runs everything in float32. ``bf16`` and ``fp16`` run the network under
``torch.autocast`` (convolutions and matrix products in the low precision, reductions and
normalisations in float32, weights and optimizer state kept in float32); callers compute losses
and probabilities from the network's outputs cast back to float32, outside the autocast region.
``bf16`` runs on CPUs (fast where the CPU has AVX-512 BF16 or AMX) and on CUDA GPUs that support
it (Ampere and later); ``fp16`` is CUDA only and needs a gradient scaler against underflow
(``grad_scaler``), which ``bf16`` (float32's exponent range) does not.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from superpoint_ros.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(name: str, device: torch.device) -> None:
    """Refuse a precision the device cannot train with, naming the key's valid values."""
    if name not in PRECISIONS:
        raise ConfigError(f"unknown precision {name!r}; valid: {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device (on a CPU use bf16 or fp32)")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU has no bf16 support: use precision fp16 or fp32")


def autocast(name: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context that runs a forward pass in precision ``name`` on ``device``."""
    if name == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[name])


def grad_scaler(name: str, device: torch.device) -> Any:
    """A ``torch.amp.GradScaler`` for ``fp16``; ``None`` otherwise (nothing to scale)."""
    if name != "fp16":
        return None
    return torch.amp.GradScaler(device.type)
