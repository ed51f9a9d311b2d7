"""What an exported file says about itself (``superpoint_ros.*`` ONNX metadata, engine
sidecars) and file hashing. No torch: the ONNX Runtime path reads these."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

META_PREFIX = "superpoint_ros."


def build_metadata(
    model_config: dict[str, Any],
    conventions: dict[str, Any],
    frontend_config: dict[str, Any],
    layout: str,
    bare_network: bool,
) -> dict[str, str]:
    """The metadata entries (strings, without prefix) written into an exported file."""
    return {
        "kind": "network" if bare_network else "frontend",
        "frontend_config": json.dumps(frontend_config),
        "model_config": json.dumps(model_config),
        "conventions": json.dumps(conventions),
        "layout": layout,
        "descriptor_dim": str(model_config.get("descriptor_dim", 0)),
    }


def read_metadata(meta: dict[str, str]) -> dict[str, Any]:
    """Parse the ``superpoint_ros.*`` entries of an ONNX metadata map."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if key.startswith(META_PREFIX):
            name = key[len(META_PREFIX) :]
            out[name] = json.loads(value) if name.endswith(("config", "conventions")) else value
    return out


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
