"""Training losses behind two registries, one per role, like the backbones.

* ``DETECTOR_LOSSES``: ``forward(logits, keypoint_map, valid_mask, generator) -> (loss,
  scalars)`` (``losses.detector``); ``get_detector_loss("detector", tie_break=...)``.
* ``DESCRIPTOR_LOSSES``: ``forward(desc0, desc1, H_0to1, valid0, valid1, generator) -> (loss,
  scalars)`` (the interface in ``losses.descriptor``'s docstring); ``get_descriptor_loss("dense",
  **args)``. A class attribute ``default_lambda`` is its weight against the detector loss when
  ``loss.lambda_descriptor`` is not set (1.0 unless the class says otherwise).

Every loss is an ``nn.Module`` whose constructor takes keyword arguments (its config) and whose
``scalars`` are detached 0-d tensors to log. Adding one is one new module in this package with
``@DESCRIPTOR_LOSSES.register("name")`` (or ``DETECTOR_LOSSES``) on its class: the lookups import
every module of the package, and ``loss.descriptor``'s check, the ``--loss`` help and the error
for an unknown name list the registry's names.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from superpoint_ros.errors import ConfigError
from superpoint_ros.registry import Registry

DETECTOR_LOSSES: Registry = Registry("detector loss")
DESCRIPTOR_LOSSES: Registry = Registry("descriptor loss")
_ROLES = {"detector": DETECTOR_LOSSES, "descriptor": DESCRIPTOR_LOSSES}


def _import_builtin() -> None:
    # Importing a module of this package registers its losses (a new loss module needs no edit
    # here). Done on the first lookup so that importing this package does not import torch.
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def loss_names(role: str) -> list[str]:
    """The registered names of ``role`` (``detector`` | ``descriptor``), sorted."""
    _import_builtin()
    return _ROLES[role].names()


def loss_class(role: str, name: str) -> Any:
    """The class registered as ``name`` for ``role``; ``ConfigError`` listing the valid ones."""
    _import_builtin()
    registry = _ROLES[role]
    if name not in registry:
        raise ConfigError(
            f"unknown {registry.kind} {name!r}; valid: {', '.join(registry.names())}"
        )
    return registry.get(name)


def get_detector_loss(name: str, **kwargs: Any) -> Any:
    """Instantiate detector loss ``name`` with ``kwargs`` (its config keys)."""
    return loss_class("detector", name)(**kwargs)


def get_descriptor_loss(name: str, **kwargs: Any) -> Any:
    """Instantiate descriptor loss ``name`` with ``kwargs`` (its config keys)."""
    return loss_class("descriptor", name)(**kwargs)


def default_lambda(name: str) -> float:
    """The weight of descriptor loss ``name`` against the detector loss by default."""
    return float(getattr(loss_class("descriptor", name), "default_lambda", 1.0))


def get_loss(name: str, **kwargs: Any) -> Any:
    """Instantiate the loss registered as ``name`` in either registry (names are unique)."""
    _import_builtin()
    for role, registry in _ROLES.items():
        if name in registry:
            return loss_class(role, name)(**kwargs)
    valid = ", ".join(sorted(DETECTOR_LOSSES.names() + DESCRIPTOR_LOSSES.names()))
    raise ConfigError(f"unknown loss {name!r}; valid: {valid}")


__all__ = [
    "DESCRIPTOR_LOSSES",
    "DETECTOR_LOSSES",
    "default_lambda",
    "get_descriptor_loss",
    "get_detector_loss",
    "get_loss",
    "loss_class",
    "loss_names",
]
