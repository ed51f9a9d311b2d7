"""Training step 2: MagicPoint, the detector half of SuperPoint, trained on synthetic shapes.

``train_magicpoint(conf, output_dir, resume=False) -> Path`` (the last checkpoint), also
``superpoint train magicpoint``. The network is ``SuperPointNet(ModelConfig(descriptor_dim=0))``
(encoder + 65-channel detector head), the loss the paper's 65-class cell cross-entropy
(``superpoint_training.losses.detector``), the data ``SyntheticShapesDataset`` with photometric
and homographic augmentation, generated on the fly: sample ``i`` of the training set is a pure
function of ``(seed, i)`` and step ``s`` reads samples ``s*B .. s*B+B-1``, so every sample is new
and a resumed run sees the batches the killed one would have seen.

Validation (every ``train.val_every`` steps and at the end) evaluates MagicPoint and OpenCV's
Harris, Shi-Tomasi and FAST on one fixed synthetic test set (``eval.*``,
``superpoint_training.evaluation.detection``): mAP and PR curves to TensorBoard; at the end a
report in ``<run>/eval/`` (``detection.md`` table, ``detection.json``, ``detection_pr.png``).

Paper defaults (``config/train/magicpoint.yaml``): Adam, lr 1e-3, batch 32, 120x160, 200k steps.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from superpoint_ros.devices import resolve_device
from superpoint_ros.errors import ConfigError
from superpoint_ros.model.superpoint import CELL, ModelConfig, SuperPointNet
from superpoint_ros.model.weights import build_model, load_weights
from superpoint_training.data.synthetic.config import SyntheticShapesConfig
from superpoint_training.data.synthetic.dataset import SyntheticShapesDataset, collate, worker_init

from ..data.augment import AugmentConfig
from ..evaluation.detection import (
    DetectionEvalConfig,
    DetectionEvaluator,
    DetectionResult,
    log_to_tensorboard,
    report_stem,
    results_table,
    save_report,
)
from ..losses import get_loss
from .loop import StepContext, Trainer
from .loop_config import TrainerConfig
from .runs import begin_run, record_run
from .stages import STAGES, Stage

STAGE = "magicpoint"
REPO = Path(__file__).resolve().parents[2]
WEAK_FRACTION = 0.5  # a MagicPoint under this fraction of the best classical mAP is not usable


@dataclass
class DetectorLossConfig:
    """The detector loss (``loss.*``)."""

    name: str = "detector"  # a name in superpoint_training.losses.LOSSES
    tie_break: str = "random"  # several keypoints in a cell: random (explicit generator) | first


def _magicpoint_model() -> ModelConfig:
    return ModelConfig(descriptor_dim=0)


@dataclass
class MagicPointConfig:
    """Everything a MagicPoint run depends on (``config/train/magicpoint.yaml``)."""

    seed: int = 0  # initial weights, training samples, augmentation, label tie-breaks
    model: ModelConfig = field(default_factory=_magicpoint_model)  # network (descriptor_dim 0)
    data: SyntheticShapesConfig = field(default_factory=SyntheticShapesConfig)  # shapes
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # training augmentation
    loss: DetectorLossConfig = field(default_factory=DetectorLossConfig)  # the detector loss
    train: TrainerConfig = field(default_factory=TrainerConfig)  # the loop (steps, lr, ...)
    eval: DetectionEvalConfig = field(default_factory=DetectionEvalConfig)  # validation


def build_magicpoint(conf: MagicPointConfig) -> SuperPointNet:
    """The network of ``conf.model`` with initial weights drawn from ``conf.seed`` (without
    touching the global torch random state)."""
    if conf.model.descriptor_dim != 0:
        raise ConfigError(
            "MagicPoint trains the detector only: model.descriptor_dim must be 0, got "
            f"{conf.model.descriptor_dim}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(conf.seed)
        return SuperPointNet(conf.model)


def synthetic_test_set(conf: MagicPointConfig) -> SyntheticShapesDataset:
    """The fixed synthetic test set: ``eval.num_images`` clean renders from ``eval.seed`` (not
    warped), with the training's photometric noise when ``eval.photometric``."""
    augment = None
    if conf.eval.photometric:
        augment = AugmentConfig(
            photometric=conf.augment.photometric,
            homographic=replace(conf.augment.homographic, enable=False),
        )
    return SyntheticShapesDataset(
        conf.data, split="test", seed=conf.eval.seed, length=conf.eval.num_images, augment=augment
    )


def train_dataset(conf: MagicPointConfig) -> SyntheticShapesDataset:
    """Training samples: one new sample per position of the run (``steps * batch_size``; item
    ``i`` depends only on ``(seed, i)``, not on the length, so extending a run keeps them)."""
    length = conf.train.steps * conf.train.batch_size
    return SyntheticShapesDataset(
        conf.data, split="train", seed=conf.seed, length=length, augment=conf.augment
    )


def check_config(conf: MagicPointConfig) -> None:
    h, w = conf.data.image_size
    if h % CELL or w % CELL:
        raise ConfigError(f"data.image_size must be multiples of {CELL}, got {h}x{w}")


def weak_detector_warning(results: Mapping[str, DetectionResult], step: int | None) -> str | None:
    """A warning when MagicPoint's mAP is far below (under ``WEAK_FRACTION`` of) the best
    classical detector's on the same test set: such a model is not usable yet, and labels
    exported with it are sparse (a 3-minute CPU run: mAP 0.000, 5 points per image)."""
    ours = results.get(STAGE)
    classical = {k: r.average_precision for k, r in results.items() if k != STAGE}
    if ours is None or not classical:
        return None
    best = max(classical, key=classical.get)
    if ours.average_precision >= WEAK_FRACTION * classical[best]:
        return None
    at = f" at step {step}" if step is not None else ""
    return (
        f"warning: MagicPoint's mAP{at} is {ours.average_precision:.3f}, far below {best}'s "
        f"{classical[best]:.3f}: this detector is not usable yet (labels exported with it will "
        "be sparse); train it further with --resume (the CPU recipe passes Harris after about "
        "3000 steps, docs/training.md)"
    )


class MagicPointValidation:
    """The validation callback: MagicPoint vs Harris/Shi-Tomasi/FAST on the test set."""

    def __init__(self, conf: MagicPointConfig, run_dir: Path):
        self.conf = conf
        self.run_dir = run_dir
        self._evaluator: DetectionEvaluator | None = None
        self.last_results: dict[str, DetectionResult] = {}

    @property
    def evaluator(self) -> DetectionEvaluator:
        if self._evaluator is None:  # built on first use: the test set takes a moment
            self._evaluator = DetectionEvaluator(synthetic_test_set(self.conf), self.conf.eval)
        return self._evaluator

    def __call__(self, model: torch.nn.Module, ctx: StepContext) -> dict[str, float]:
        results = self.evaluator.evaluate(model, ctx.device)
        self.last_results = results
        log_to_tensorboard(ctx.writer, results, ctx.step)
        if ctx.final and ctx.is_main:
            save_report(
                results, self.run_dir / "eval", self.conf.eval,
                {"step": ctx.step, "seed": self.conf.seed},
            )  # fmt: skip
            warning = weak_detector_warning(results, ctx.step)
            if warning:
                print(warning, file=sys.stderr, flush=True)
        return {f"{name}_mAP": r.average_precision for name, r in results.items()}


def train_magicpoint(
    conf: MagicPointConfig,
    output_dir: str | os.PathLike,
    resume: bool = False,
    on_step_end: Sequence[Callable[[int], None]] = (),
) -> Path:
    """Train (or, with ``resume``, continue) MagicPoint into ``output_dir``; returns the path of
    ``checkpoint_last.pt``. A run that already reached ``train.steps`` is left as it is.
    ``on_step_end``: callables given the step count after each step (tests, time limits)."""
    check_config(conf)
    start = begin_run(conf, output_dir, resume)
    run_dir = start.run_dir
    model = build_magicpoint(conf)
    loss_fn = get_loss(conf.loss.name, tie_break=conf.loss.tie_break)

    def step_fn(model, batch: dict[str, Any], ctx: StepContext):
        with ctx.autocast():
            logits = model(batch["image"])["logits"]
        logits = logits.float()
        return loss_fn(logits, batch["keypoint_map"], batch.get("valid_mask"), ctx.generator)

    trainer = Trainer(
        model=model,
        dataset=train_dataset(conf),
        step_fn=step_fn,
        conf=conf.train,
        run_dir=run_dir,
        seed=conf.seed,
        resolved_config=start.resolved,
        stage=STAGE,
        collate_fn=collate,
        worker_init_fn=worker_init,
        shuffle=False,  # every sample is a new random image: order by index
        validate=MagicPointValidation(conf, run_dir),
        git_revision=start.revision,
        on_step_end=list(on_step_end),
    )
    record_run(run_dir, conf, STAGE, start.revision, resume)  # every check has passed
    return trainer.fit(resume=resume, resume_from=start.resume_from)


def evaluate_magicpoint(
    weights: str | os.PathLike,
    conf: MagicPointConfig,
    output_dir: str | os.PathLike,
    device: str = "auto",
) -> dict[str, DetectionResult]:
    """Evaluate a trained checkpoint (any weights file ``load_weights`` reads) against the
    classical detectors on the test set of ``conf``; writes the report into ``output_dir``."""
    dev = resolve_device(device)
    model = build_model(load_weights(weights)).to(dev)
    evaluator = DetectionEvaluator(synthetic_test_set(conf), conf.eval)
    results = evaluator.evaluate(model, dev)
    save_report(results, output_dir, conf.eval, {"weights": str(weights), "seed": conf.seed})
    return results


def _evaluate_for_cli(weights, conf: MagicPointConfig, output_dir, device: str) -> str:
    """``superpoint train magicpoint --eval-only``: the report, and its table to print."""
    results = evaluate_magicpoint(weights, conf, output_dir, device)
    warning = weak_detector_warning(results, None)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return results_table(results) + f"\nreport: {output_dir}/{report_stem(conf.eval)}.*"


STAGES.add(
    STAGE,
    Stage(
        name=STAGE,
        run=train_magicpoint,
        config_cls=MagicPointConfig,
        default_config=str(REPO / "config" / "train" / "magicpoint.yaml"),
        description="step 2: MagicPoint (detector only) on synthetic shapes",
        evaluate=_evaluate_for_cli,
    ),
)
