"""The backend registry: names, ``auto``'s order and the checks of a name against a source.

A backend registers itself with :func:`register_backend` (a class decorator) in its own file,
and ``backends/__init__.py`` imports that file: adding a backend is one new file plus one import
line. Everything that lists backends (``auto``, the CLI's choices, the node's parameter check,
the benchmark) asks this module: :func:`backend_names`, :func:`backend_choices`.
"""

from __future__ import annotations

from ..errors import BackendUnavailable, ConfigError
from ..registry import Registry
from .base import SOURCE_KINDS, Backend

BACKENDS: Registry[type[Backend]] = Registry("backend")

KIND_TEXT = {
    "torch": "a weights file (.pt/.pth/.tar)",
    "onnx": "an .onnx",
    "engine": "a TensorRT engine (.engine)",
}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator: add ``cls`` under ``cls.name`` after checking its declarations."""
    unknown = set(cls.sources) - set(SOURCE_KINDS)
    if not cls.sources or unknown:
        raise ValueError(f"backend {cls.name!r}: sources must be among {SOURCE_KINDS}")
    if not isinstance(cls.auto_rank, int):
        raise ValueError(f"backend {cls.name!r}: auto_rank must be an int")
    BACKENDS.add(cls.name, cls)
    return cls


def backend_names() -> list[str]:
    """Registered backend names in ``auto``'s order (the node and the CLI check against it)."""
    classes = [BACKENDS.get(n) for n in BACKENDS.names()]
    return [c.name for c in sorted(classes, key=lambda c: (c.auto_rank, c.name))]


def backend_choices() -> tuple[str, ...]:
    """What ``--backend`` and the node's ``backend`` parameter accept: ``auto`` and the names."""
    return ("auto", *backend_names())


def runs_kind(cls: type[Backend], kind: str) -> bool:
    """Whether ``cls`` can run a source of ``kind``; weights reach ONNX backends exported."""
    return kind in cls.sources or (kind == "torch" and "onnx" in cls.sources)


def get_backend_class(name: str) -> type[Backend]:
    """The backend class registered as ``name``; ``BackendUnavailable`` lists the valid names."""
    try:
        return BACKENDS.get(name)
    except KeyError as exc:
        raise BackendUnavailable(str(exc.args[0])) from None


def resolve_backend(name: str, kind: str) -> type[Backend]:
    """The backend class for a source of ``kind`` (torch/onnx/engine). ``auto``: the first, in
    :func:`backend_names`' order, that runs ``kind`` and is available here."""
    if kind not in SOURCE_KINDS:
        raise ConfigError(f"unknown model source kind {kind!r}; valid: {SOURCE_KINDS}")
    eligible = [n for n in backend_names() if runs_kind(BACKENDS.get(n), kind)]
    if name == "auto":
        reasons = []
        for candidate in eligible:
            cls = BACKENDS.get(candidate)
            reason = cls.unavailable_reason()
            if reason is None:
                return cls
            reasons.append(f"{candidate}: {reason}")
        raise BackendUnavailable(
            f"no backend can run {KIND_TEXT[kind]} here (" + "; ".join(reasons) + ")"
        )
    cls = get_backend_class(name)
    if not runs_kind(cls, kind):
        runs = " or ".join(KIND_TEXT[k] for k in cls.sources)
        raise BackendUnavailable(
            f"the {name} backend runs {runs}, not {KIND_TEXT[kind]}; use --backend "
            + " or ".join(eligible)
        )
    reason = cls.unavailable_reason()
    if reason:
        raise BackendUnavailable(f"backend {name!r} unavailable: {reason}")
    return cls
