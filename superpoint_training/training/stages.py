"""The training stages by name: ``superpoint train <stage>`` looks them up here. A stage module
(``training/magicpoint.py``, ``training/superpoint.py``) registers its :class:`Stage` when it is
imported; :func:`get_stage` imports the module of a name on demand."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from superpoint_ros.errors import ConfigError
from superpoint_ros.registry import Registry


@dataclass
class Stage:
    """A training stage as the command line sees it.

    ``run(conf, output_dir, resume=False) -> Path`` trains (or resumes) and returns the last
    checkpoint; ``config_cls`` is its config dataclass; ``default_config`` the YAML used without
    ``--config``; ``flags`` maps extra command-line flags to config keys, e.g.
    ``{"--labels": ("data.labels", "pseudo-label store")}`` (the common flags --steps,
    --batch-size, --device, --overfit-batch exist for every stage); ``evaluate(weights, conf,
    output_dir, device) -> str`` (writes a report, returns a summary to print), if given,
    backs ``--eval-only``. A flag in ``repeatable`` may be given several times; its key then
    gets the list of values (one value stays a plain value).
    """

    name: str
    run: Callable[..., Path]
    config_cls: type
    default_config: str
    flags: dict[str, tuple[str, str]] = field(default_factory=dict)
    repeatable: tuple[str, ...] = ()  # flags that may be given several times (a list value)
    description: str = ""
    evaluate: Callable[..., str] | None = None


STAGES: Registry[Stage] = Registry("training stage")
PACKAGE = __name__.rpartition(".")[0]  # superpoint_training.training: where stage modules live


def get_stage(name: str) -> Stage:
    """The stage registered as ``name``. A stage module ``superpoint_training.training.<name>``
    registers itself when imported, so it is imported on demand; on an unknown name every
    module of the package is imported so the error lists all valid stages."""
    if name not in STAGES:
        try:
            importlib.import_module(f"{PACKAGE}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{PACKAGE}.{name}":
                raise
    if name not in STAGES:
        for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if not info.name.startswith("_"):
                try:  # only to list the valid names: a module that fails is not one
                    importlib.import_module(f"{PACKAGE}.{info.name}")
                except Exception:  # noqa: BLE001
                    continue
    try:
        return STAGES.get(name)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
