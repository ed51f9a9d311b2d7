"""Training configuration: dataclass defaults next to the code, one YAML per stage, overrides.

A stage's configuration is a tree of dataclasses (``MagicPointConfig`` holds a ``ModelConfig``,
a ``SyntheticShapesConfig``, a ``TrainerConfig``...). Each class keeps its defaults, one comment
per key, beside the code that reads them. Values are resolved in layers, later wins:

1. the dataclass defaults;
2. the stage YAML (``config/train/<stage>.yaml``), a nested mapping of the same keys;
3. ``key=value`` overrides (dotted keys, e.g. ``train.lr=5e-4``; values parsed as YAML, so
   ``model.backbone_args={channels: [8, 8, 16, 16]}`` and ``train.steps=10`` work);
4. the command line's shortcut flags (``--steps`` is ``train.steps=...``).

An unknown key anywhere is a ``ConfigError`` listing the valid keys at that level, so a typo never
silently trains with a default. Keys typed ``dict`` (``model.backbone_args``) accept any sub-key;
the class receiving them checks them. A string given for a tuple of numbers is a comma-separated
list (``eps=1,3,5``; sizes also ``480x640``), and a single number a list of one.

A renamed key keeps loading: its class lists ``renamed_keys = {"old": "new"}`` (a ``ClassVar``),
and every layer (YAML, a checkpoint's saved config, overrides) is migrated on load, with one
warning line per old key (:func:`migrate_keys`), so committed YAMLs and old checkpoints load
and resume.

The same mechanism reads other strict configurations: the evaluation ``Protocol`` is built with
:func:`from_dict` and takes ``--set key=value`` overrides as :func:`parse_override` reads them.

The resolved configuration, the seed and the git revision are written into the run directory as
``config.yaml`` (``save_run_config``) and into every checkpoint. A run's ``config.yaml`` is itself
a valid ``--config``: its ``run:`` section (stage, git revision, seed, time) is metadata that
``load_config`` ignores.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import subprocess
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from superpoint_ros.errors import ConfigError

T = TypeVar("T")
META_KEY = "run"  # reserved top-level section of a run's config.yaml: metadata, not config
RENAMED_KEYS = "renamed_keys"  # ClassVar of a config class: {old key: new key} still accepted

log = logging.getLogger(__name__)
_warned: set[str] = set()  # old keys already reported in this process (one line each)


# ---------------------------------------------------------------------------------------------
# dotted keys and overrides


def parse_override(text: str, example: str = "train.steps=100") -> tuple[str, Any]:
    """``"train.lr=5e-4"`` -> ``("train.lr", 0.0005)``. The value is parsed as YAML (so lists,
    mappings, booleans and ``null`` work); a number in exponent form without a dot, which YAML 1.1
    reads as a string, becomes a float when the key is typed float (see ``from_dict``).
    ``example``: a valid override, shown in the errors."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. {example})")
    if any(not part.isidentifier() for part in key.split(".")):
        name = example.partition("=")[0]
        raise ConfigError(f"override key {key!r} is not a dotted name (e.g. {name})")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse the value of override {text!r}: {exc}") from None
    return key, value


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set ``tree["a"]["b"] = value`` for ``key == "a.b"``, creating mappings on the way."""
    parts = key.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(
                f"cannot set {key!r}: {'.'.join(parts[: i + 1])!r} is a value, not a section"
            )
        node = child
    node[parts[-1]] = value


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in ``update`` replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def overrides_to_tree(
    overrides: Iterable[str | tuple[str, Any]], example: str = "train.steps=100"
) -> dict[str, Any]:
    """``["train.steps=10", ("seed", 3)]`` -> ``{"train": {"steps": 10}, "seed": 3}``."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, value = parse_override(item, example) if isinstance(item, str) else item
        set_dotted(tree, key, value)
    return tree


# ---------------------------------------------------------------------------------------------
# renamed keys


def migrate_keys(cls: type, data: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """``data`` (a nested mapping for config class ``cls``) with every old key of the classes'
    ``renamed_keys`` replaced by its new name, in every section; one warning line per old key
    and process. Both names in one mapping is a ``ConfigError``. Unknown keys are left for
    :func:`from_dict` to report."""
    out = dict(data or {})
    for old, new in getattr(cls, RENAMED_KEYS, {}).items():
        if old not in out:
            continue
        if new in out:
            raise ConfigError(
                f"config keys {prefix + old!r} and {prefix + new!r} are the same key (the first "
                f"is its old name): give only {prefix + new!r}"
            )
        if prefix + old not in _warned:
            _warned.add(prefix + old)
            log.warning(
                "config key %r is deprecated, read as %r (rename it)", prefix + old, prefix + new
            )
        out = {(new if k == old else k): v for k, v in out.items()}  # keeps the key order
    if not dataclasses.is_dataclass(cls):
        return out
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = _strip_optional(hints.get(f.name))
        if f.name in out and dataclasses.is_dataclass(tp) and isinstance(out[f.name], Mapping):
            out[f.name] = migrate_keys(tp, out[f.name], prefix + f.name + ".")
    return out


# ---------------------------------------------------------------------------------------------
# dataclass <-> dict, strictly typed


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def valid_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of config class ``cls`` (leaves and sections), sorted."""
    keys = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = prefix + f.name
        keys.append(key)
        tp = _strip_optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            keys.extend(valid_keys(tp, key + "."))
    return sorted(keys)


def _strip_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if _is_union(tp) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def _is_union(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin is typing.Union or origin is types.UnionType


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against type ``tp`` (converting lists to tuples, ints to floats, YAML's
    exponent strings to floats); raise ``ConfigError`` naming ``key`` on a mismatch."""

    def fail() -> ConfigError:
        return ConfigError(
            f"config key {key!r} expects {_type_name(tp)}, got {value!r} ({type(value).__name__})"
        )

    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise fail()
        return from_dict(tp, value, prefix=key + ".")
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise fail()
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(repr(a) for a in typing.get_args(tp))
            raise ConfigError(f"config key {key!r} must be one of {choices}, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise fail()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail()
        return value
    if tp is float:
        if isinstance(value, bool):
            raise fail()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise fail() from None
        raise fail()
    if tp is str:
        if not isinstance(value, str):
            raise fail()
        return value
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if _numeric_items(args) and not isinstance(value, (list, tuple)):
            value = _number_list(value)
        if not isinstance(value, (list, tuple)):
            raise fail()
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(
                    f"config key {key!r} expects {len(args)} values, got {len(value)}: {value!r}"
                )
            items = [_coerce(v, a, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            elem = args[0] if args else Any
            items = [_coerce(v, elem, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise fail()
        return dict(value)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise fail()


def _numeric_items(args: tuple) -> bool:
    """Whether a tuple/list type's items (``args``) are all numbers (int or float)."""
    items = [a for a in args if a is not Ellipsis]
    return bool(items) and all(a in (int, float) for a in items)


def _number_list(value: Any) -> Any:
    """A string of numbers separated by commas (or ``x``: ``480x640``) as a list of YAML
    scalars; a single number as a list of one; anything else unchanged (then rejected)."""
    if isinstance(value, str) and value.strip():
        return [yaml.safe_load(v) if v else v for v in re.split(r"\s*[,x]\s*", value.strip())]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
    """Build config class ``cls`` from a nested mapping: missing keys keep their defaults,
    unknown keys raise ``ConfigError`` listing the valid ones, values are type-checked, old
    names of renamed keys are read as the new ones (:func:`migrate_keys`)."""
    data = migrate_keys(cls, data, prefix)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        lines = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
            lines.append(f"{prefix + name!r}{hint}")
        section = f" under {prefix[:-1]!r}" if prefix else ""
        raise ConfigError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(lines)}; "
            f"valid keys{section}: {', '.join(prefix + k for k in sorted(fields))}"
        )
    hints = _hints(cls)
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        field_default = fields[name]
        if dataclasses.is_dataclass(_strip_optional(tp)) and isinstance(value, Mapping):
            # merge a partial section over the field's own defaults (not the class defaults)
            default = _field_default(field_default)
            base = to_dict(default) if default is not None else {}
            value = merge(base, value)
        kwargs[name] = _coerce(value, tp, prefix + name)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise  # the class's own check: its message says what is wrong
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid config{' ' + prefix[:-1] if prefix else ''}: {exc}") from None


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def to_dict(conf: Any) -> Any:
    """A config dataclass (or tree of them) as plain YAML-safe data (tuples become lists)."""
    if dataclasses.is_dataclass(conf) and not isinstance(conf, type):
        return {f.name: to_dict(getattr(conf, f.name)) for f in dataclasses.fields(conf)}
    if isinstance(conf, Mapping):
        return {str(k): to_dict(v) for k, v in conf.items()}
    if isinstance(conf, (list, tuple)):
        return [to_dict(v) for v in conf]
    if isinstance(conf, (str, Path)):
        return str(conf)  # also str subclasses (torch.__version__) that YAML cannot write
    if hasattr(conf, "item") and callable(conf.item):  # numpy / torch scalars
        return conf.item()
    return conf


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (leaves only)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


# ---------------------------------------------------------------------------------------------
# files


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML mapping from ``path`` (empty file -> ``{}``); errors are ``ConfigError``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse {path}: {exc}".splitlines()[0]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, not {type(data).__name__}")
    return data


def load_config(
    cls: type[T],
    path: str | os.PathLike | None = None,
    overrides: Iterable[str | tuple[str, Any]] = (),
    base: Mapping[str, Any] | None = None,
) -> T:
    """Resolve config class ``cls``: defaults <- YAML file ``path`` (or the mapping ``base``,
    e.g. the resolved config saved in a checkpoint) <- ``overrides`` (``"a.b=value"`` strings
    or ``(key, value)`` pairs)."""
    if path is not None and base is not None:
        raise ConfigError("load_config: give a YAML path or a base mapping, not both")
    tree: dict[str, Any] = dict(base or {})
    tree.pop(META_KEY, None)
    if path is not None:
        tree = read_yaml(path)
        tree.pop(META_KEY, None)  # a run's config.yaml: metadata section
    # each layer migrated on its own: an old key in the YAML and its new name in an override
    # is an override, not a conflict
    layers = [migrate_keys(cls, tree), migrate_keys(cls, overrides_to_tree(overrides))]
    return from_dict(cls, merge(*layers))


def git_revision(cwd: str | os.PathLike | None = None) -> str:
    """``git rev-parse HEAD`` of the source tree (with ``-dirty`` if it has uncommitted
    changes to tracked files), or ``"unknown"`` outside a git checkout / without git."""
    cwd = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        suffix = "-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else ""
        return rev.stdout.strip() + suffix
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_run_config(
    run_dir: str | os.PathLike, conf: Any, meta: Mapping[str, Any] | None = None
) -> Path:
    """Write ``run_dir/config.yaml``: the resolved config plus a ``run:`` metadata section
    (``meta``: stage, seed, git revision...). Written atomically."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tree = to_dict(conf)
    if META_KEY in tree:
        raise ConfigError(f"config key {META_KEY!r} is reserved for run metadata")
    text = yaml.safe_dump({**tree, META_KEY: to_dict(dict(meta or {}))}, sort_keys=False)
    path = run_dir / "config.yaml"
    tmp = path.with_name(f".config.yaml.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
