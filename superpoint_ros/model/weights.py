"""Weight files: recognise third-party layouts by their keys and convert them to ours.

Known layouts (see the README's "Weight formats"):

* ``superpoint_ros``: this project's checkpoint, a dict with ``format``, ``model_config``,
  ``conventions`` and ``model`` (plus training state for resumable runs);
* ``magicleap``: Magic Leap's ``superpoint_v1.pth``, a plain state dict (``conv1a.weight``...);
* ``rpautrat``: ``superpoint_v6_from_tf.pth`` (``backbone.0.0.conv.weight``...);
* ``eric_yyjau``: ``superPointNet_*_checkpoint.pth.tar`` (``model_state_dict`` with
  ``inc.conv.conv.0.weight``...).

Files are always read with ``torch.load(..., weights_only=True)``: a weight file never runs code.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import SuperPointError
from ..frontend.conventions import DEFAULT_CONVENTIONS, LAYOUT_SAMPLING, validate_conventions
from .superpoint import ModelConfig, SuperPointNet

CHECKPOINT_FORMAT = "superpoint_ros.checkpoint.v1"
KNOWN_LAYOUTS = ("superpoint_ros", "magicleap", "rpautrat", "eric_yyjau")


class WeightsError(SuperPointError, ValueError):
    """A weight file that cannot be used: unreadable, or of a layout we do not know."""


@dataclass
class Weights:
    """Weights converted to this project's layout."""

    state_dict: dict[str, torch.Tensor]
    model_config: ModelConfig
    conventions: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_CONVENTIONS))
    layout: str = "superpoint_ros"


def _origin_conventions(layout: str) -> dict[str, Any]:
    """A third-party layout's conventions: the descriptor sampling of the code that trained and
    evaluated it (``frontend.conventions.LAYOUT_SAMPLING``)."""
    return {"descriptor_sampling": LAYOUT_SAMPLING[layout]}


def _stage_key(i: int, j: int) -> str:
    return f"backbone.stages.{i}.{j}"


def _from_magicleap(sd: Mapping[str, torch.Tensor]) -> Weights:
    names = ["conv1a", "conv1b", "conv2a", "conv2b", "conv3a", "conv3b", "conv4a", "conv4b"]
    rename = {n: _stage_key(k // 2, k % 2) + ".conv" for k, n in enumerate(names)}
    rename.update(
        convPa="detector.0.conv",
        convPb="detector.1.conv",
        convDa="descriptor.0.conv",
        convDb="descriptor.1.conv",
    )
    out = {}
    for key, value in sd.items():
        module, _, param = key.partition(".")
        if module not in rename:
            raise WeightsError(f"unexpected key {key!r} in a Magic Leap state dict")
        out[f"{rename[module]}.{param}"] = value
    config = ModelConfig(backbone="vgg", descriptor_dim=sd["convDb.weight"].shape[0])
    return Weights(out, config, _origin_conventions("magicleap"), "magicleap")


def _from_rpautrat(sd: Mapping[str, torch.Tensor]) -> Weights:
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "backbone":  # backbone.<stage>.<block>.<conv|bn>.<param>
            out[f"{_stage_key(int(parts[1]), int(parts[2]))}.{'.'.join(parts[3:])}"] = value
        elif parts[0] in ("detector", "descriptor"):
            out[key] = value
        else:
            raise WeightsError(f"unexpected key {key!r} in an rpautrat state dict")
    config = ModelConfig(
        backbone="vgg",
        backbone_args={"norm": "bn_after_relu", "bn_eps": 1e-3},
        head_norm="bn_after_relu",
        head_bn_eps=1e-3,
        descriptor_dim=sd["descriptor.1.conv.weight"].shape[0],
    )
    return Weights(out, config, _origin_conventions("rpautrat"), "rpautrat")


def _from_eric_yyjau(sd: Mapping[str, torch.Tensor]) -> Weights:
    # double_conv = (conv, BN, ReLU, conv, BN, ReLU): sequential indices 0, 1, 3, 4.
    inner = {"0": "0.conv", "1": "0.bn", "3": "1.conv", "4": "1.bn"}
    heads = {
        "convPa": "detector.0.conv", "bnPa": "detector.0.bn",
        "convPb": "detector.1.conv", "bnPb": "detector.1.bn",
        "convDa": "descriptor.0.conv", "bnDa": "descriptor.0.bn",
        "convDb": "descriptor.1.conv", "bnDb": "descriptor.1.bn",
    }  # fmt: skip
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "inc" and parts[1:3] == ["conv", "conv"]:
            stage, idx, rest = 0, parts[3], parts[4:]
        elif parts[0].startswith("down") and parts[1:4] == ["mpconv", "1", "conv"]:
            stage, idx, rest = int(parts[0][4:]), parts[4], parts[5:]
        elif parts[0] in heads:
            out[f"{heads[parts[0]]}.{'.'.join(parts[1:])}"] = value
            continue
        else:
            raise WeightsError(f"unexpected key {key!r} in an eric-yyjau state dict")
        if idx not in inner:
            raise WeightsError(f"unexpected key {key!r} in an eric-yyjau state dict")
        block, sub = inner[idx].split(".")
        out[f"{_stage_key(stage, int(block))}.{sub}.{'.'.join(rest)}"] = value
    config = ModelConfig(
        backbone="vgg_bn", head_norm="bn", descriptor_dim=sd["convDb.weight"].shape[0]
    )
    return Weights(out, config, _origin_conventions("eric_yyjau"), "eric_yyjau")


def detect_layout(obj: Any) -> str:
    """Name the layout of a loaded weight object; raise ``WeightsError`` naming those known."""
    if isinstance(obj, Mapping):
        if obj.get("format") == CHECKPOINT_FORMAT:
            return "superpoint_ros"
        if "model_state_dict" in obj and isinstance(obj["model_state_dict"], Mapping):
            if any(k.startswith("inc.conv.conv.") for k in obj["model_state_dict"]):
                return "eric_yyjau"
        if "conv1a.weight" in obj and "convPb.weight" in obj:
            return "magicleap"
        if "backbone.0.0.conv.weight" in obj and "detector.1.conv.weight" in obj:
            return "rpautrat"
    raise WeightsError(
        "unknown weight layout; known layouts: " + ", ".join(KNOWN_LAYOUTS)
        + " (see README, 'Weight formats')"
    )


def convert(obj: Any) -> Weights:
    """Convert a loaded weight object of any known layout to ``Weights``."""
    layout = detect_layout(obj)
    if layout == "superpoint_ros":
        conventions = validate_conventions(obj.get("conventions", {}))
        return Weights(
            dict(obj["model"]), ModelConfig.from_dict(obj["model_config"]), conventions, layout
        )
    if layout == "eric_yyjau":
        weights = _from_eric_yyjau(obj["model_state_dict"])
    elif layout == "magicleap":
        weights = _from_magicleap(obj)
    else:
        weights = _from_rpautrat(obj)
    weights.conventions = validate_conventions(weights.conventions)
    return weights


def load_weights(path: str | os.PathLike) -> Weights:
    """Read a weight file of any known layout (safely) and convert it to ``Weights``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, code that asks to run
        raise WeightsError(_load_failure(path, exc)) from exc
    return convert(obj)


def _load_failure(path: Path, exc: Exception) -> str:
    """One line for a file ``torch.load(weights_only=True)`` refused. torch's own text advises
    ``weights_only=False``, which would let the file run code: never pass that on."""
    text = str(exc)
    if "weights_only" in text or "Weights only load failed" in text:
        named = re.search(r"GLOBAL ([\w.]+)", text)
        return (
            f"cannot read weights {path}: it holds Python objects besides tensors"
            + (f" ({named.group(1)})" if named else "")
            + "; such a file could run code when loaded, so it is refused (do not load it with "
            "weights_only=False unless you trust where it came from); save plain tensors "
            "instead: torch.save(model.state_dict(), path)"
        )
    return f"cannot read weights {path}: {' '.join(text.split())[:300]}"


def build_model(weights: Weights, strict: bool = True) -> SuperPointNet:
    """A ``SuperPointNet`` in eval mode holding ``weights``."""
    model = SuperPointNet(weights.model_config)
    try:
        missing, unexpected = model.load_state_dict(weights.state_dict, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape (a layout's keys, another size)
        mismatches = [" ".join(line.split()) for line in str(exc).splitlines() if "size" in line]
        raise WeightsError(
            f"weights do not fit the {weights.model_config.backbone} model: "
            + "; ".join(mismatches[:3] or [" ".join(str(exc).split())[:300]])
        ) from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in unexpected if not k.endswith("num_batches_tracked")]
    if strict and (missing or unexpected):
        raise WeightsError(
            f"weights do not fit the {weights.model_config.backbone} model "
            f"(missing: {missing[:5]}, unexpected: {unexpected[:5]})"
        )
    return model.eval()


def checkpoint_dict(
    model: SuperPointNet, conventions: Mapping[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """This project's checkpoint dict for ``model``; ``extra`` adds training state
    (optimizer, step, RNG, resolved config, git revision...)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model_config": model.config.to_dict(),
        "conventions": validate_conventions(dict(conventions or DEFAULT_CONVENTIONS)),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }


def save_checkpoint(path: str | os.PathLike, checkpoint: Mapping[str, Any]) -> Path:
    """Write atomically: to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(dict(checkpoint), tmp)
    os.replace(tmp, path)
    return path
