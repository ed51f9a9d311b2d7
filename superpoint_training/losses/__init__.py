"""Training losses behind a registry: ``get_loss("detector")`` -> a configured loss module.

Every loss is an ``nn.Module`` registered in ``LOSSES`` by name; its constructor takes keyword
arguments (its config) and ``forward`` returns ``(loss, scalars)``, ``scalars`` being a dict of
detached 0-d tensors to log (e.g. the positive and negative terms of a descriptor loss).
Descriptor losses (step 4) register beside the detector loss the same way.
"""

from __future__ import annotations

from superpoint_ros.registry import Registry

LOSSES: Registry = Registry("loss")


def get_loss(name: str, **kwargs):
    """Instantiate the loss registered as ``name`` with ``kwargs`` (its config keys)."""
    _import_builtin()
    return LOSSES.get(name)(**kwargs)


def _import_builtin() -> None:
    # Importing a module of this package registers its losses (a new loss module needs no edit
    # here). Done lazily so that importing this package does not import torch.
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


__all__ = ["LOSSES", "get_loss"]
