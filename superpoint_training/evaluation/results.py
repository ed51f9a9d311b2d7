"""One method's entry of ``metrics.json``: its pair records summarised overall, per group of
sequences (illumination, viewpoint) and per sequence, with its timing."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from superpoint_training.data.sequences import ILLUMINATION, VIEWPOINT

from .methods import Method
from .pair_metrics import public_record, summarise
from .protocol import Protocol

# The groups of pairs a report summarises: every pair, then the pairs of each sequence kind.
# (metrics.json keeps its key "splits" for them: the report format is unchanged; these are
# not the train/val/test splits of a dataset.)
SEQUENCE_GROUPS = ("all", ILLUMINATION, VIEWPOINT)


def in_group(record: Mapping[str, Any], group: str) -> bool:
    """Whether a pair record belongs to ``group`` of :data:`SEQUENCE_GROUPS`."""
    return group == "all" or record["kind"] == group


def json_float(v: Any) -> Any:
    """``v``, or None for an infinite or nan float (JSON has neither)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def method_timing(
    protocol: Protocol,
    sequences: int,
    cached: int,
    extract_seconds_per_image: float | None,
    metric_seconds: float,
) -> dict[str, Any]:
    """The ``timing`` block of a method entry: ``sequences`` scored, ``cached`` of them from
    the cache, mean extraction time per image (both sizes), metric time summed over all."""
    return {
        "extracted_sequences": sequences - cached,
        "cached_sequences": cached,
        "extract_seconds_per_image": extract_seconds_per_image,
        "metric_seconds_per_sequence": metric_seconds / max(sequences, 1),
        "images_per_sequence": 1 + len(protocol.targets),
    }


def method_result(
    method: Method,
    records: Sequence[Mapping[str, Any]],
    sequences: Iterable[str],
    protocol: Protocol,
    timing: Mapping[str, Any],
) -> dict[str, Any]:
    """One method's entry of ``metrics.json``: its description, the summary of all
    ``records``, the summaries per group of :data:`SEQUENCE_GROUPS` (key ``splits``) and per
    sequence (every name of ``sequences``), the pair records (JSON-safe: inf/nan -> null) and
    ``timing``."""
    records = [public_record(r) for r in records]
    splits = {}
    for group in SEQUENCE_GROUPS:
        sel = [r for r in records if in_group(r, group)]
        if sel:
            splits[group] = summarise(sel, protocol.eps)
    per_seq = {
        name: summarise([r for r in records if r["sequence"] == name], protocol.eps)
        for name in sequences
    }
    return {
        "method": method.name,
        **method.describe(),
        **summarise(records, protocol.eps),
        "splits": splits,
        "sequences": per_seq,
        "pair_results": [{k: json_float(v) for k, v in r.items()} for r in records],
        "timing": dict(timing),
    }
