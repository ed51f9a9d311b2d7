"""Pass 1 of the sequence evaluation: extraction, cached per method and sequence.

For every image of a sequence, a method's points at the detector size (``rep_size``,
``rep_max_keypoints``) and its points with descriptors at the descriptor size (``hom_size``,
``hom_max_keypoints``). A cache file is keyed by the method's identity (name, file hash,
backend, OpenCV version), the protocol key and the sequence's files; a file made with anything
else is ignored and re-extracted, so results never mix configurations.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import HomographySequence, read_image, stretch
from .methods import Method
from .protocol import Protocol

log = logging.getLogger(__name__)

# Bump when what a method is given changes for the same files and protocol. v2: colour
# images made grey with cv2.cvtColor instead of cv2.imread(IMREAD_GRAYSCALE).
CACHE_FORMAT = "superpoint_ros.eval_cache.v2"


def slug(text: str) -> str:
    """``text`` as a file name: runs of other characters than ``[A-Za-z0-9_.-]`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "method"


def method_key(method: Method, protocol: Protocol) -> str:
    """Hash of the method's identity and the protocol: one cache folder per value."""
    text = json.dumps([method.identity(), protocol.key()], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _cache_meta(method: Method, protocol: Protocol, seq: HomographySequence) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "method": method.identity(),
        "protocol_key": protocol.key(),
        "sequence": seq.name,
        "data": seq.fingerprint(),
    }


def extract_passes(
    method: Method, image: np.ndarray, protocol: Protocol
) -> dict[str, dict[str, np.ndarray]]:
    """``method`` on one image (original size, as read) in every pass of the protocol: the image
    stretched to the pass's size, at most the pass's point budget. Returns ``{"rep": pred,
    "hom": pred}``, each pred ``keypoints [N, 2]``, ``scores [N]`` float32, and for ``hom``
    ``descriptors [N, D]`` float32 (the detector pass keeps no descriptors)."""
    out = {}
    for name, (size, k) in protocol.passes().items():
        pred = method.extract(stretch(image, size, protocol.interpolation), k)
        out[name] = {
            "keypoints": np.asarray(pred["keypoints"], np.float32),
            "scores": np.asarray(pred["scores"], np.float32),
        }
        if name == "hom":
            out[name]["descriptors"] = np.asarray(pred["descriptors"], np.float32)
    return out


def extract_sequence(
    method: Method, seq: HomographySequence, protocol: Protocol
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run ``method`` on every image of ``seq`` at both protocol sizes.

    Returns ``(arrays, info)``: arrays named ``{pass}_{index}_{keypoints|scores|descriptors}``
    (``pass`` = ``rep`` or ``hom``; ``rep`` keeps no descriptors), and ``info`` with the
    original image sizes and the extraction time.
    """
    arrays: dict[str, np.ndarray] = {}
    sizes: dict[str, list[int]] = {}
    t0 = time.perf_counter()
    for i in protocol.image_indices(seq.images):
        full = read_image(seq.image(i), protocol.grayscale)
        sizes[str(i)] = list(full.shape[:2])
        for name, pred in extract_passes(method, full, protocol).items():
            arrays.update({f"{name}_{i}_{key}": value for key, value in pred.items()})
    info = {"sizes": sizes, "seconds": time.perf_counter() - t0, "images": len(sizes)}
    return arrays, info


def save_npz(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write ``arrays`` and the JSON ``meta`` to ``path`` (compressed ``.npz``, atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


def load_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """``(arrays, meta)`` of a :func:`save_npz` file; None when it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            arrays = {k: data[k] for k in data.files if k != "__meta__"}
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    return arrays, meta


def cached_extraction(
    method: Method, seq: HomographySequence, protocol: Protocol, cache_dir: Path | None
) -> tuple[dict[str, np.ndarray], dict[str, Any], bool]:
    """Extraction of one sequence, from the cache when a matching one exists.

    Returns ``(arrays, meta, hit)``. A cache file whose method identity, protocol key or data
    fingerprint differs is ignored (and overwritten): results never mix configurations.
    """
    expected = _cache_meta(method, protocol, seq)
    path = None
    if cache_dir is not None:
        folder = cache_dir / f"{slug(method.name)}-{method_key(method, protocol)}"
        path = folder / f"{slug(seq.name)}.npz"
        if path.is_file():
            loaded = load_npz(path)
            if loaded is not None:
                arrays, meta = loaded
                if all(meta.get(k) == v for k, v in expected.items()):
                    return arrays, meta, True
            log.warning("ignoring cache %s: made with another configuration or unreadable", path)
    arrays, info = extract_sequence(method, seq, protocol)
    meta = {**expected, **info}
    if path is not None:
        save_npz(path, arrays, meta)
    return arrays, meta, False


def prediction(arrays: dict[str, np.ndarray], pass_: str, index: int) -> dict[str, np.ndarray]:
    """The prediction of image ``index`` in pass ``pass_`` (``rep`` or ``hom``) from the arrays
    of :func:`extract_sequence`: ``keypoints``, ``scores`` (and ``descriptors`` for ``hom``)."""
    prefix = f"{pass_}_{index}_"
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
