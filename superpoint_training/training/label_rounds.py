"""Repeated homographic adaptation (``rounds.*`` of the export config): export the labels,
train the detector on them, export again with the retrained detector.

``export_labels(conf, weights, images_dir, output) -> summary`` is what ``superpoint
export-labels`` runs: with ``rounds.num_rounds = 1`` (the default) it is one export
(``labels.label_export.export_round``); with more, as the paper suggests and rpautrat's COCO
recipe does, each round but the last is followed by a detector training (the step-4 stage with
``model.descriptor_dim = 0``, starting from the current weights, ``rounds.steps`` steps). The
intermediate stores and runs sit beside the output (``<output stem>.round<k>.h5``,
``<output stem>.round<k>_detector/``); a killed run resumes where it stopped, round by round.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from superpoint_ros.errors import InputError

from ..config import load_config
from ..labels.label_export import (
    ExportConfig,
    check_config,
    export_round,
    is_main,
    save_preview,
)
from .checkpoints import LAST_CHECKPOINT
from .superpoint import DEFAULT_CONFIG, SuperPointTrainConfig, train_superpoint

log = logging.getLogger(__name__)

Images = str | os.PathLike | Sequence[str | os.PathLike]


def export_labels(
    conf: ExportConfig,
    weights: str | os.PathLike,
    images_dir: Images,
    output: str | os.PathLike,
    preview: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Run step 3, all rounds (module doc); returns the final store's summary.
    ``images_dir``: one folder, several, or ``.txt`` lists (``data.images.ImageSet``)."""
    check_config(conf)
    weights, output = Path(weights), Path(output)
    if not weights.is_file():
        raise InputError(f"weights file not found: {weights}")
    rounds = conf.rounds.num_rounds
    summary: dict[str, Any] = {}
    for r in range(1, rounds + 1):
        out_r = output if r == rounds else output.with_name(f"{output.stem}.round{r}.h5")
        summary = export_round(conf, weights, images_dir, out_r)
        summary["round"] = r
        if r < rounds:
            weights = retrain_detector(conf, weights, images_dir, out_r, r)
    if preview is not None:
        if is_main():
            save_preview(output, images_dir, preview, conf.preview_images)
        summary["preview"] = str(preview)
    return summary


def retrain_detector(
    conf: ExportConfig, weights: Path, images_dir: Images, labels: Path, round_index: int
) -> Path:
    """Train the detector (step-4 stage, ``model.descriptor_dim=0``) on ``labels``, starting
    from ``weights``, for ``rounds.steps`` steps; returns the new checkpoint. Resumes a run
    that was cut short."""
    run_dir = labels.with_name(f"{labels.stem}_detector")
    tconf = retrain_config(conf, weights, images_dir, labels)
    resume = (run_dir / LAST_CHECKPOINT).is_file()
    log.info("round %d: training the detector on %s into %s", round_index, labels, run_dir)
    return train_superpoint(tconf, run_dir, resume=resume)


def retrain_config(
    conf: ExportConfig,
    weights: str | os.PathLike,
    images_dir: Images,
    labels: str | os.PathLike,
) -> SuperPointTrainConfig:
    """The step-4 config of the detector training between two rounds (``rounds.*``)."""
    r = conf.rounds
    overrides = [
        *r.overrides,
        ("model.descriptor_dim", 0),
        ("train.steps", r.steps),
        ("data.images", _images_value(images_dir)),
        ("data.labels", str(labels)),
        ("init_weights", str(weights)),
        ("train.device", conf.device),
    ]
    return load_config(SuperPointTrainConfig, r.config or DEFAULT_CONFIG, overrides)


def _images_value(images_dir: Images) -> str | list[str]:
    """``data.images`` of a training config: one source as a string, several as a list."""
    if isinstance(images_dir, (str, os.PathLike)):
        return str(images_dir)
    sources = [str(s) for s in images_dir]
    return sources[0] if len(sources) == 1 else sources
