"""Offline HPatches-style evaluation in two passes, over methods and sequences.

1. Extraction, cached per method and sequence (:mod:`.extraction`).
2. Metrics from the cache, per pair (:mod:`.pair_metrics`, :mod:`.metrics`), then per sequence
   and per group of sequences (illumination, viewpoint, all: :mod:`.results`).

Outputs in the report folder (:mod:`.report`): ``metrics.json``, ``report.md`` and PNG plots
(accuracy vs threshold, per-sequence bars: :mod:`.plots`; one match image per sequence and
method: :mod:`.figures`).

:func:`evaluate` is ``superpoint evaluate``; :func:`evaluate_method` scores one method on
sequences (its ``metrics.json`` entry), :func:`evaluate_frontend` a front-end already loaded
(any backend, any precision) with the same code. Features extracted elsewhere (the ROS bench
node's answers) go through the same public steps: :func:`pair_metrics.sequence_records`,
:func:`figures.match_figure`, :func:`results.method_timing`, :func:`results.method_result`,
:func:`report.build_report` and :func:`report.write_report`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from superpoint_ros.errors import ConfigError

from .datasets import HomographySequence, find_sequences
from .extraction import cached_extraction, prediction
from .figures import sequence_match_figure
from .methods import FrontendMethod, Method, get_method, method_name
from .pair_metrics import public_record, sequence_records
from .protocol import Protocol
from .report import build_report, write_report
from .results import method_result, method_timing


def evaluate_method(
    method: Method,
    sequences: Sequence[HomographySequence],
    protocol: Protocol,
    cache_dir: str | Path | None = None,
    figures_dir: str | Path | None = None,
    plot_target: int | None = None,
    progress: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """``method`` on every pair of ``sequences`` (``datasets.find_sequences``): extraction
    (from ``cache_dir`` where it holds a matching one; None: no cache), metrics per pair.

    Returns ``(entry, figures)``: the method's ``metrics.json`` entry
    (:func:`results.method_result`: summaries overall, per group, per sequence, the pair
    records, the timing) and the match figures written into ``figures_dir`` (paths relative to
    it; none without ``figures_dir``), one per sequence for the pair (reference,
    ``plot_target``; default: the middle target).
    """
    from tqdm import tqdm

    cache = Path(cache_dir) if cache_dir is not None else None
    if plot_target is None:
        plot_target = protocol.targets[len(protocol.targets) // 2]
    records: list[dict] = []
    figures: list[str] = []
    timings: list[float] = []
    hits, metric_seconds = 0, 0.0
    bar = tqdm(sequences, desc=f"{method.name}", unit="seq", disable=not progress)
    for seq in bar:
        bar.set_postfix_str(seq.name)
        arrays, meta, hit = cached_extraction(method, seq, protocol, cache)
        hits += hit
        # Measured when the sequence was extracted (also for cache hits).
        timings.append(meta["seconds"] / max(meta["images"], 1))
        t_metrics = time.perf_counter()
        recs = sequence_records(
            method,
            seq.name,
            seq.kind,
            functools.partial(prediction, arrays),
            seq.homography,
            {int(k): tuple(v) for k, v in meta["sizes"].items()},
            protocol,
        )
        for rec in recs:
            if figures_dir is not None and rec["pair"] == f"{protocol.reference}-{plot_target}":
                fig = sequence_match_figure(
                    method.name, seq, rec, arrays, protocol, Path(figures_dir)
                )
                if fig:
                    figures.append(fig)
        records += [public_record(r) for r in recs]
        metric_seconds += time.perf_counter() - t_metrics
    bar.close()
    timing = method_timing(
        protocol,
        len(sequences),
        hits,
        float(np.mean(timings)) if timings else None,
        metric_seconds,
    )
    entry = method_result(method, records, [s.name for s in sequences], protocol, timing)
    return entry, figures


def evaluate_frontend(
    frontend: Any,
    datasets: str | Path | Sequence[str | Path],
    protocol: Protocol | None = None,
    name: str = "frontend",
    progress: bool = False,
) -> dict[str, Any]:
    """A loaded front-end (``superpoint_ros.loader.load_frontend(...)``, any backend and
    precision; build it with ``config=methods.frontend_settings(protocol)`` to follow the
    protocol) on the sequences in ``datasets``, with the code of ``superpoint evaluate``.
    Returns its ``metrics.json`` entry: e.g. ``entry["homography_accuracy"]["3"]``,
    ``entry["nn_map"]``, ``entry["repeatability"]``, ``entry["splits"]["viewpoint"]``. No cache,
    no files written."""
    protocol = protocol or Protocol()
    method = FrontendMethod(name, protocol, frontend)
    entry, _ = evaluate_method(method, find_sequences(datasets), protocol, progress=progress)
    return entry


def resolve_methods(
    methods: Sequence[str | Method],
    protocol: Protocol,
    backend: str = "auto",
    names: Sequence[str | None] | None = None,
) -> list[Method]:
    """``sift``, ``orb``, weights files, ``.onnx`` files (or ``Method`` objects) as methods with
    distinct names (``names``: the report's name of each; ``None`` items: the file's stem;
    a name taken twice gets ``-2``, ``-3``...)."""
    if not methods:
        raise ConfigError("no method to evaluate (pass --method sift, orb, a weights file...)")
    resolved: list[Method] = []
    used: set[str] = set()
    for i, spec in enumerate(methods):
        if isinstance(spec, Method):
            m = spec
        else:
            base = (names[i] if names else None) or method_name(str(spec))
            name, n = base, 2
            while name in used:
                name, n = f"{base}-{n}", n + 1
            m = get_method(str(spec), protocol, name=name, backend=backend)
        used.add(m.name)
        resolved.append(m)
    return resolved


def evaluate(
    datasets: str | Path | Sequence[str | Path],
    methods: Sequence[str | Method],
    out_dir: str | Path,
    protocol: Protocol | None = None,
    cache_dir: str | Path | None = "default",
    backend: str = "auto",
    plot_target: int | None = None,
    plots: bool = True,
    progress: bool = True,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Evaluate ``methods`` on the sequences in ``datasets`` and write the report.

    ``methods``: ``sift``, ``orb``, weights files, ``.onnx`` files (or ``Method`` objects).
    ``names``: the report's name of each method (``None`` items: the file's stem).
    ``cache_dir``: ``"default"`` = ``out_dir/cache``; ``None`` disables the cache.
    ``plot_target``: which image the match figure pairs with the reference (default: the
    middle target). Returns the ``metrics.json`` dict.
    """
    protocol = protocol or Protocol()
    out_dir = Path(out_dir)
    cache = (
        out_dir / "cache" if cache_dir == "default" else (Path(cache_dir) if cache_dir else None)
    )
    sequences = find_sequences(datasets)
    resolved = resolve_methods(methods, protocol, backend, names)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"cannot write the report into {out_dir}: it is a file, not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)  # only once the inputs are known to be usable

    results: dict[str, Any] = {}
    match_figures: dict[str, list[str]] = {}
    for method in resolved:
        results[method.name], figures = evaluate_method(
            method,
            sequences,
            protocol,
            cache,
            out_dir if plots else None,
            plot_target,
            progress,
        )
        if figures:
            match_figures[method.name] = figures

    report = build_report(
        [str(d) for d in ([datasets] if isinstance(datasets, (str, Path)) else datasets)],
        {s.name: s.kind for s in sequences},
        protocol,
        results,
    )
    write_report(out_dir, report, match_figures, plots)
    return report
