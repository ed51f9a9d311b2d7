"""Open a front-end: a model source, a backend name and options -> a :class:`Frontend`.

The model source is a weights file (any known layout), an exported ``.onnx`` (FP32, or INT8
from ``superpoint quantize``), a TensorRT ``.engine`` built by ``superpoint build-engine``, or
``None`` for the packaged demo model. The backend is resolved through the registry
(:mod:`superpoint_ros.backends.registry`); a weights file given to a backend that runs ONNX is
exported once (:func:`superpoint_ros.onnx_export.cached_export`) and the export is reused.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from .backends import BackendOptions, resolve_backend, source_kind
from .errors import ConfigError, SuperPointError
from .frontend import Frontend, default_weights
from .frontend.config import FrontendConfig, parse_size
from .frontend.conventions import sampling_rule


def load_frontend(
    weights: str | os.PathLike | None = None,
    backend: str = "auto",
    config: FrontendConfig | dict[str, Any] | None = None,
    *,
    precision: str = "fp32",
    fp16: bool = False,
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    threads: int = 0,
    rebuild_engine: bool = False,
) -> Frontend:
    """Build a front-end.

    ``weights``: a weights file, an ``.onnx``, a TensorRT ``.engine`` or ``None`` (the
    packaged demo model). ``backend``: ``auto`` or a name of
    :func:`superpoint_ros.backends.backend_names`. ``config``: a full ``FrontendConfig``, or a
    dict of settings to change (for ``.onnx``/``.engine`` files the settings baked into the file
    are the base, and changing a baked one is an error: re-export instead). ``precision``:
    fp32, fp16 or int8, each backend's rules in its docstring (``fp16=True`` is the older
    spelling of ``precision="fp16"``). ``rebuild_engine``: TensorRT rebuilds an engine whose
    record does not match this machine instead of refusing it.
    """
    if fp16:
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"fp16=True contradicts precision={precision!r}; pass one")
        precision = "fp16"
    path = Path(weights) if weights else default_weights()
    if not path.is_file():
        raise SuperPointError(f"weights file not found: {path}")
    kind = source_kind(path)
    cls = resolve_backend(backend, kind)
    overrides = _overrides(config)
    resize = parse_size(overrides.pop("resize", None))
    options = BackendOptions(
        precision=precision,
        device=device,
        threads=threads,
        cache_dir=cache_dir,
        rebuild_engine=rebuild_engine,
        config=FrontendConfig().replace(**overrides) if kind == "torch" else FrontendConfig(),
    )
    if kind == "torch" and "torch" not in cls.sources:
        from .onnx_export import cached_export  # torch: only for weights on an ONNX backend

        impl = cls.open(cached_export(path, options.config, options.cache), options)
    else:
        impl = cls.open(path, options)
    if kind != "torch":
        _check_baked(impl.info.config, impl.info.conventions, overrides, path)
    return Frontend(impl, resize=resize)


def _check_baked(baked: FrontendConfig, conventions: dict, overrides: dict, path: Path) -> None:
    """Refuse a setting that differs from the one baked into an exported graph."""
    if baked.descriptor_sampling is None:  # files exported before the option existed
        rule = conventions.get("descriptor_sampling")
        baked = baked.replace(descriptor_sampling=rule and sampling_rule(rule).name)
    if overrides.get("descriptor_sampling") is not None:  # a legacy name -> its rule
        overrides["descriptor_sampling"] = sampling_rule(overrides["descriptor_sampling"]).name
    changed = {k: v for k, v in overrides.items() if getattr(baked, k) != v}
    if changed:
        raise ConfigError(
            f"{path.name} was exported with "
            + ", ".join(f"{k}={getattr(baked, k)}" for k in changed)
            + "; re-export it (superpoint export-onnx) to use "
            + ", ".join(f"{k}={v}" for k, v in changed.items())
        )


def _overrides(config) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, FrontendConfig):
        return {f.name: getattr(config, f.name) for f in fields(FrontendConfig)}
    known = {f.name for f in fields(FrontendConfig)}
    unknown = set(config) - known
    if unknown:
        raise ConfigError(f"unknown front-end settings {sorted(unknown)}; valid: {sorted(known)}")
    return {k: v for k, v in config.items() if v is not None or k == "resize"}


__all__ = ["load_frontend"]
