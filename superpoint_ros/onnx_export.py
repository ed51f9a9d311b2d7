"""Export the whole front-end (network + post-processing) to ONNX, with dynamic height and
width, so no backend needs post-processing on the CPU.

The graph: input ``image [1, 1, H, W]`` float32 in [0, 1] (H, W multiples of 8); outputs
``keypoints [K, 2]``, ``scores [K]`` and (SuperPoint) ``descriptors [K, D]``; K fixed, empty
slots have score 0. Settings and conventions are stored in the file's metadata
(``superpoint_ros.*`` keys) so a backend reading the ``.onnx`` knows what it holds.
Ops are limited to those TensorRT 8.5 to 10 build (opset 17, top-k with K <= 3840, no
GridSample, no NonZero).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import ConfigError
from .frontend.config import FrontendConfig
from .frontend.conventions import resolve_conventions
from .frontend.metadata import META_PREFIX, build_metadata, file_sha256
from .frontend.postprocess import SuperPointFrontendModule
from .model.weights import Weights, build_model, load_weights

log = logging.getLogger(__name__)

OPSET = 17


class _SingleImage(nn.Module):
    """Batch-1 wrapper that drops the batch axis of the outputs."""

    def __init__(self, frontend: nn.Module):
        super().__init__()
        self.frontend = frontend

    def forward(self, image: torch.Tensor):
        return tuple(o[0] for o in self.frontend(image))


class _BareNetwork(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor):
        return tuple(self.net(image).values())


def export_onnx(
    weights: Weights,
    path: str | os.PathLike,
    config: FrontendConfig,
    opset: int = OPSET,
    bare_network: bool = False,
    sample_size: tuple[int, int] = (240, 320),
) -> Path:
    """Write the front-end (or, with ``bare_network``, the network alone, for benchmarks) of
    ``weights`` to ``path``; returns the path."""
    import onnx

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"cannot write {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"cannot write {path}: a parent of it is a file, not a folder") from None
    # The graph carries one sampling rule: the override's, else the weights'; the metadata
    # records the rule it carries.
    conventions = resolve_conventions(weights.conventions, config.descriptor_sampling)
    sampling = conventions["descriptor_sampling"]
    config = config.replace(descriptor_sampling=sampling)
    net = build_model(weights)
    has_desc = net.descriptor is not None
    if bare_network:
        module = _BareNetwork(net).eval()
        outputs = ["logits", "descriptors_dense"][: 1 + has_desc]
        dynamic = {n: {2: "cells_h", 3: "cells_w"} for n in outputs}
    else:
        module = _SingleImage(SuperPointFrontendModule(net, config, sampling)).eval()
        outputs = ["keypoints", "scores", "descriptors"][: 2 + has_desc]
        dynamic = {}
    dynamic["image"] = {2: "height", 3: "width"}
    sample = torch.zeros(1, 1, *sample_size)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (sample,),
                str(tmp),
                input_names=["image"],
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        model = onnx.load(str(tmp))
        meta = build_metadata(
            weights.model_config.to_dict(),
            conventions,
            config.to_dict(),
            weights.layout,
            bare_network,
        )
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key = META_PREFIX + key
            entry.value = value
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # every failure (and Ctrl-C) leaves nothing behind
    return path


def cached_export(
    weights_path: str | os.PathLike, config: FrontendConfig, cache_dir: Path
) -> Path:
    """The front-end ONNX of a weights file, for a backend that runs ONNX: exported once into
    ``cache_dir`` and reused while the weights file, the graph's settings and the opset are
    unchanged (the file name is a hash of the three)."""
    weights_path = Path(weights_path)
    key = hashlib.sha256(
        json.dumps([file_sha256(weights_path), config.graph_key(), OPSET]).encode()
    ).hexdigest()[:24]
    path = Path(cache_dir) / f"frontend_{key}.onnx"
    if not path.is_file():
        log.info("exporting %s to %s", weights_path.name, path)
        export_onnx(load_weights(weights_path), path, config)
    return path
