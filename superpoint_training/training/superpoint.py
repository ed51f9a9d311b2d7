"""Training step 4: SuperPoint (detector + descriptor) on real images and their pseudo labels.

``train_superpoint(conf, output_dir, resume=False) -> Path`` (the last checkpoint), also
``superpoint train superpoint --images DIR --labels LABELS.h5 [--loss NAME] [--backbone NAME]``.

Each step takes pairs from ``data.pairs.PairDataset`` (an image, a random homography of it,
labels warped with it) and minimises, as the paper does (eq. 1),

    L = L_det(X, Y) + L_det(X', Y') + lambda * L_desc(D, D', H)

with the detector loss of ``losses.detector`` on both images (``loss.detector``) and the
descriptor loss named ``loss.descriptor`` (a name in ``losses.DESCRIPTOR_LOSSES``: ``dense`` |
``dense_normalized`` | ``sparse`` | ``triplet`` | ``infonce``), whose positive and negative
terms are logged separately. ``lambda`` (``loss.lambda_descriptor``) defaults per loss (its
``default_lambda``): the paper's 1e-4 for ``dense`` (its ``lambda_d = 250`` inside), 1 for the
others (their terms are means of order one). Adam being
invariant to the scale of a parameter's gradient, ``lambda`` only weighs the two losses' pull on
the shared encoder. The backbone is ``model.backbone`` (``vgg`` | ``vgg_bn`` | ``mobile``...),
``model.descriptor_dim = 0`` trains the detector alone (MagicPoint on real images: what
``export-labels`` rounds use). ``init_weights`` starts from a checkpoint (e.g. MagicPoint: every
tensor whose name and shape match is copied: encoder and detector head).

Validation (every ``train.val_every`` steps and at the end, ``SuperPointValidation``) on held-out
images (``data.val_fraction``) warped by fixed homographies, and on the real sequences of
``eval.sequences`` (HPatches/Oxford layouts): detector precision/recall/mAP against the warped
pseudo labels (``evaluation.detection``), descriptor matching accuracy (mutual nearest
neighbours correct within ``eval.correct_distance`` px), and homography accuracy (OpenCV RANSAC,
mean corner error <= ``eval.eps``), both per pair by the offline evaluation's
``evaluation.pair_metrics.matching_metrics``. Scalars go to TensorBoard and
``metrics.jsonl``; the PR curve to ``<run>/eval/pr_step_<step>.png`` and TensorBoard.

Checkpoints use the trainer's format, with the ``center`` descriptor-sampling convention the
descriptor losses assume (cell ``(v, u)`` at pixel ``(8u + 3.5, 8v + 3.5)``), so ``superpoint
extract`` and every backend read the trained model as it was trained.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from superpoint_ros.devices import resolve_device
from superpoint_ros.errors import ConfigError
from superpoint_ros.frontend.config import FrontendConfig
from superpoint_ros.frontend.conventions import DEFAULT_CONVENTIONS
from superpoint_ros.frontend.postprocess import SuperPointFrontendModule
from superpoint_ros.matching import MatchConfig, match_descriptors
from superpoint_ros.model.backbones import BACKBONES
from superpoint_ros.model.superpoint import CELL, ModelConfig, SuperPointNet
from superpoint_ros.model.weights import build_model, load_weights

from ..config import to_dict
from ..data.pairs import PairDataset, PairsConfig, split_names
from ..data.synthetic.dataset import collate, worker_init
from ..evaluation.datasets import find_sequences, iter_pairs
from ..evaluation.detection import (
    DetectionEvalConfig,
    log_to_tensorboard,
    pr_curve,
    predict_model,
    save_pr_plot,
)
from ..evaluation.metrics import eps_key
from ..evaluation.pair_metrics import matching_metrics
from ..labels.store import LabelStore
from ..losses import default_lambda, get_descriptor_loss, get_detector_loss, loss_names
from .loop import StepContext, Trainer
from .loop_config import TrainerConfig
from .runs import begin_run, record_run
from .stages import STAGES, Stage

log = logging.getLogger(__name__)

STAGE = "superpoint"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = str(REPO / "config" / "train" / "superpoint.yaml")
CONVENTIONS = {**DEFAULT_CONVENTIONS, "descriptor_sampling": "center"}


@dataclass
class SuperPointLossConfig:
    """The step-4 loss (``loss.*``)."""

    detector: str = "detector"  # a name in superpoint_training.losses.DETECTOR_LOSSES
    tie_break: str = "random"  # several labels in one cell: random | first
    descriptor: str = "dense"  # a name in superpoint_training.losses.DESCRIPTOR_LOSSES (--loss)
    descriptor_args: dict[str, Any] = field(default_factory=dict)  # that loss's keyword args
    lambda_descriptor: float | None = None  # weight of the descriptor loss (None: per loss)

    def weight(self) -> float:
        """``lambda_descriptor``, or the descriptor loss's own ``default_lambda``."""
        if self.lambda_descriptor is not None:
            return self.lambda_descriptor
        return default_lambda(self.descriptor)


@dataclass
class SuperPointEvalConfig:
    """Validation (``eval.*``; changing it never changes training, so resuming allows it)."""

    # the evaluation protocol's names (superpoint_training.evaluation.protocol); the old ones
    # still load from YAMLs and checkpoints (superpoint_training.config.migrate_keys)
    renamed_keys: ClassVar[dict[str, str]] = {
        "distance_thresh": "correct_distance",
        "homography_eps": "eps",
    }

    pairs_per_image: int = 2  # warped pairs per held-out image
    max_pairs: int = 64  # at most this many held-out pairs
    seed: int = 20180331  # homographies of the held-out pairs (fixed across runs)
    correct_distance: float = 3.0  # a detection or a match is correct within this (px)
    nms_radius: int = 4  # NMS radius of the detections (px)
    detection_threshold: float = 0.015  # probability above which a point counts as detected
    min_score: float = 0.001  # lowest probability on the PR curve
    max_keypoints: int = 1000  # points per image for matching and homographies
    border: int = 4  # drop detections this close to the edge (px)
    ransac_threshold: float = 3.0  # OpenCV RANSAC reprojection threshold (px)
    eps: tuple[float, ...] = (1.0, 3.0, 5.0)  # px: homography correct at mean corner error <= eps
    sequences: tuple[str, ...] = ()  # HPatches/Oxford sequence folders (or folders of them)
    sequence_size: tuple[int, int] = (480, 640)  # (h, w) sequence images are stretched to


def _superpoint_model() -> ModelConfig:
    return ModelConfig()


@dataclass
class SuperPointTrainConfig:
    """Everything a step-4 run depends on (``config/train/superpoint.yaml``)."""

    seed: int = 0  # initial weights, pair order, warps, augmentation, label tie-breaks
    init_weights: str = ""  # start from these weights (matching tensors copied; "": random)
    model: ModelConfig = field(default_factory=_superpoint_model)  # network (--backbone)
    data: PairsConfig = field(default_factory=PairsConfig)  # images, labels, warps
    loss: SuperPointLossConfig = field(default_factory=SuperPointLossConfig)  # (--loss)
    train: TrainerConfig = field(default_factory=TrainerConfig)  # the loop
    eval: SuperPointEvalConfig = field(default_factory=SuperPointEvalConfig)  # validation


def check_config(conf: SuperPointTrainConfig) -> None:
    """The names in ``conf`` are registered (losses, backbone), ``descriptor_dim >= 0``."""
    if conf.loss.detector not in loss_names("detector"):
        raise ConfigError(
            f"unknown detector loss {conf.loss.detector!r} (loss.detector); valid: "
            + ", ".join(loss_names("detector"))
        )
    if conf.model.descriptor_dim > 0 and conf.loss.descriptor not in loss_names("descriptor"):
        raise ConfigError(
            f"unknown descriptor loss {conf.loss.descriptor!r} (loss.descriptor, --loss); "
            "valid: " + ", ".join(loss_names("descriptor"))
        )
    if conf.model.backbone not in BACKBONES:
        raise ConfigError(
            f"unknown model.backbone {conf.model.backbone!r}; valid: "
            + ", ".join(BACKBONES.names())
        )
    if conf.model.descriptor_dim < 0:
        raise ConfigError("model.descriptor_dim must be >= 0")


# ---------------------------------------------------------------------------------------------
# model


def build_superpoint(conf: SuperPointTrainConfig) -> tuple[SuperPointNet, dict[str, Any]]:
    """The network of ``conf.model``, initial weights from ``conf.seed`` (global random state
    untouched), then the tensors of ``conf.init_weights`` whose names and shapes match.
    Returns ``(model, info)`` with what was copied."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(conf.seed)
        try:
            model = SuperPointNet(conf.model)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"cannot build model {conf.model}: {exc}") from None
    info: dict[str, Any] = {"init_weights": conf.init_weights or None}
    if conf.init_weights:
        source = load_weights(conf.init_weights).state_dict
        own = model.state_dict()
        copied = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict({**own, **copied})
        info["copied_tensors"] = len(copied)
        info["model_tensors"] = len(own)
        if not copied:
            raise ConfigError(
                f"init_weights {conf.init_weights}: no tensor fits model {conf.model.backbone} "
                "(different backbone or widths?)"
            )
        log.info("init_weights: copied %d of %d tensors", len(copied), len(own))
    return model, info


# ---------------------------------------------------------------------------------------------
# validation


class SuperPointValidation:
    """Validation on held-out warped pairs and on real sequences (module docstring)."""

    def __init__(
        self, conf: SuperPointTrainConfig, run_dir: Path | None, val_names: Sequence[str]
    ):
        self.conf = conf
        self.run_dir = run_dir
        self.val_names = list(val_names)
        self._pairs: list[dict[str, Any]] | None = None
        self._sequences: list[dict[str, Any]] | None = None
        self.last_detection = None

    def pairs(self) -> list[dict[str, Any]]:
        """The held-out pairs (numpy, no photometric change), built once."""
        if self._pairs is None:
            e = self.conf.eval
            self._pairs = []
            if self.val_names:
                n = min(e.max_pairs, len(self.val_names) * e.pairs_per_image)
                ds = PairDataset(
                    self.conf.data, self.val_names, e.seed, n, photometric=False, shuffle=False,
                    crop=False,
                )  # fmt: skip
                self._pairs = [ds.raw(p) for p in range(n)]
        return self._pairs

    def describe(self) -> str:
        """How much the held-out curves rest on (a few images make them jagged): for titles."""
        n, m = len(self.pairs()), len(self.val_names)
        return f"{n} held-out pair{'s' * (n != 1)} of {m} image{'s' * (m != 1)}"

    def sequence_pairs(self) -> list[dict[str, Any]]:
        """The pairs of ``eval.sequences`` at ``eval.sequence_size``, read once."""
        if self._sequences is None:
            self._sequences = []
            if self.conf.eval.sequences:
                for seq in find_sequences(list(self.conf.eval.sequences)):
                    self._sequences += list(iter_pairs(seq, tuple(self.conf.eval.sequence_size)))
        return self._sequences

    def evaluate(self, model: torch.nn.Module, device) -> tuple[dict[str, float], Any]:
        """``(scalars, DetectionResult or None)`` for ``model`` (eval mode, no grad)."""
        e = self.conf.eval
        out: dict[str, float] = {}
        detection = None
        pairs = self.pairs()
        if pairs:
            images = [p[k][None].astype(np.float32) for p in pairs for k in ("image0", "image1")]
            truth = [p[k] for p in pairs for k in ("keypoints0", "keypoints1")]
            det_conf = DetectionEvalConfig(
                correct_distance=e.correct_distance, nms_radius=e.nms_radius, border=e.border,
                min_score=e.min_score, max_keypoints=0, batch_size=8, classical=(),
            )  # fmt: skip
            dets = predict_model(model, images, det_conf, device)
            detection = pr_curve("superpoint", dets, truth, e.correct_distance)
            out["detector_mAP"] = detection.average_precision
            out["detector_best_f1"] = detection.best_f1
            p, r = _precision_recall_at(detection, e.detection_threshold)
            out["detector_precision"], out["detector_recall"] = p, r
        if getattr(model, "descriptor", None) is not None:
            if pairs:
                stats = [
                    self._match_pair(model, device, p["image0"], p["image1"], p["H_0to1"])
                    for p in pairs
                ]
                out.update(_summarise_matches(stats, e.eps, "val"))
            seq = self.sequence_pairs()
            if seq:
                stats = [
                    self._match_pair(
                        model, device, p["image0"] / 255.0, p["image1"] / 255.0, p["H_0to1"]
                    )
                    for p in seq
                ]
                out.update(_summarise_matches(stats, e.eps, "seq"))
        self.last_detection = detection
        return out, detection

    def _match_pair(self, model, device, image0, image1, H) -> dict[str, Any]:
        """One pair's record (``pair_metrics.matching_metrics``) of ``model``'s points and
        mutual-nearest-neighbour matches (``eval.*`` detection settings)."""
        e = self.conf.eval
        fe = SuperPointFrontendModule(
            model,
            FrontendConfig(
                max_keypoints=e.max_keypoints,
                nms_radius=e.nms_radius,
                detection_threshold=e.detection_threshold,
                border=e.border,
            ),  # fmt: skip
            CONVENTIONS["descriptor_sampling"],
        )
        batch = torch.from_numpy(np.stack([image0, image1]).astype(np.float32))[:, None]
        kpts, scores, desc = (t.cpu().numpy() for t in fe(_pad8(batch).to(device)))
        k0, d0 = kpts[0][scores[0] > 0], desc[0][scores[0] > 0]
        k1, d1 = kpts[1][scores[1] > 0], desc[1][scores[1] > 0]
        matches, _ = match_descriptors(d0, d1, MatchConfig(mutual=True))
        return matching_metrics(
            k0,
            k1,
            matches,
            H,
            tuple(np.shape(image0)[:2]),
            e.correct_distance,
            e.eps,
            threshold=e.ransac_threshold,
        )

    def __call__(self, model: torch.nn.Module, ctx: StepContext) -> dict[str, float]:
        scalars, detection = self.evaluate(model, ctx.device)
        if detection is not None and ctx.is_main:
            log_to_tensorboard(ctx.writer, {"superpoint": detection}, ctx.step)
            if self.run_dir is not None:
                save_pr_plot(
                    {"superpoint": detection},
                    self.run_dir / "eval" / f"pr_step_{ctx.step:06d}.png",
                    f"{self.describe()} vs pseudo labels, step {ctx.step}",
                )
        return scalars


def _pad8(batch: torch.Tensor) -> torch.Tensor:
    """Zero-pad ``[B, 1, H, W]`` at the bottom/right to multiples of 8 (points keep their
    coordinates)."""
    h, w = batch.shape[-2:]
    ph, pw = (-h) % CELL, (-w) % CELL
    return torch.nn.functional.pad(batch, (0, pw, 0, ph)) if ph or pw else batch


def _precision_recall_at(result, threshold: float) -> tuple[float, float]:
    """Precision and recall of the detections scoring above ``threshold`` (from the PR curve:
    its thresholds are the detections' distinct scores, high first)."""
    t = np.asarray(result.thresholds)
    if len(t) == 0:
        return 0.0, 0.0
    above = np.nonzero(t > threshold)[0]
    if len(above) == 0:
        return 0.0, 0.0
    k = above[-1]
    return float(result.precision[k]), float(result.recall[k])


def _summarise_matches(stats: list[dict], eps: Sequence[float], prefix: str) -> dict[str, float]:
    """Scalars of pair records (``matching_metrics``): the fraction of correct matches over
    all pairs, matches per pair, and the fraction of pairs whose homography is correct at each
    ``eps``."""
    matches = sum(s["matches"] for s in stats)
    correct = sum(s["correct_matches"] for s in stats)
    out = {
        f"{prefix}_matching_accuracy": correct / matches if matches else 0.0,
        f"{prefix}_matches_per_pair": matches / max(1, len(stats)),
    }
    for e in eps:
        hits = [s["correct"][eps_key(e)] for s in stats]
        out[f"{prefix}_homography_acc_{e:g}"] = float(np.mean(hits)) if hits else 0.0
    return out


# ---------------------------------------------------------------------------------------------
# the stage


def _datasets(conf: SuperPointTrainConfig) -> tuple[PairDataset, list[str]]:
    if not conf.data.labels:
        raise ConfigError("data.labels (--labels) is not set: the label store to train on")
    store = LabelStore(conf.data.labels)
    size = tuple(store.identity["image_size"])
    if size[0] % CELL or size[1] % CELL:
        raise ConfigError(f"labels were made at {size}, not a multiple of {CELL}")
    train_names, val_names = split_names(store.names, conf.data.val_fraction)
    length = conf.train.steps * conf.train.batch_size
    return PairDataset(conf.data, train_names, conf.seed, length), val_names


def make_step_fn(conf: SuperPointTrainConfig) -> Callable:
    """The loss of one batch: ``step_fn(model, batch, ctx) -> (loss, scalars)``."""
    det_loss = get_detector_loss(conf.loss.detector, tie_break=conf.loss.tie_break)
    desc_loss = None
    if conf.model.descriptor_dim > 0:
        try:
            desc_loss = get_descriptor_loss(conf.loss.descriptor, **conf.loss.descriptor_args)
        except TypeError as exc:
            raise ConfigError(f"loss.descriptor_args: {exc}") from None
    weight = conf.loss.weight()

    def step_fn(model, batch: dict[str, Any], ctx: StepContext):
        b = batch["image0"].shape[0]
        with ctx.autocast():  # the network in train.precision, the losses in float32
            out = model(torch.cat([batch["image0"], batch["image1"]]))
        out = {k: v.float() for k, v in out.items() if isinstance(v, torch.Tensor)}
        logits0, logits1 = out["logits"][:b], out["logits"][b:]
        l0, s0 = det_loss(logits0, batch["keypoint_map0"], batch["valid0"], ctx.generator)
        l1, s1 = det_loss(logits1, batch["keypoint_map1"], batch["valid1"], ctx.generator)
        loss = l0 + l1
        scalars = {"detector_loss0": s0["detector_loss"], "detector_loss1": s1["detector_loss"]}
        if desc_loss is not None:
            d = out["descriptors_dense"]
            ld, sd = desc_loss(
                d[:b], d[b:], batch["H_0to1"], batch["valid0"], batch["valid1"], ctx.generator
            )
            loss = loss + weight * ld
            scalars.update(sd)
        return loss, scalars

    return step_fn


def train_superpoint(
    conf: SuperPointTrainConfig,
    output_dir: str | os.PathLike,
    resume: bool = False,
    on_step_end: Sequence[Callable[[int], None]] = (),
) -> Path:
    """Train (or, with ``resume``, continue) SuperPoint into ``output_dir``; returns
    ``checkpoint_last.pt``. A run that already reached ``train.steps`` is left as it is."""
    check_config(conf)
    start = begin_run(conf, output_dir, resume)
    run_dir = start.run_dir
    dataset, val_names = _datasets(conf)
    model, init_info = build_superpoint(conf)
    step_fn = make_step_fn(conf)
    trainer = Trainer(
        model=model,
        dataset=dataset,
        step_fn=step_fn,
        conf=conf.train,
        run_dir=run_dir,
        seed=conf.seed,
        resolved_config=start.resolved,
        stage=STAGE,
        collate_fn=collate,
        worker_init_fn=worker_init,
        shuffle=False,  # the dataset orders images itself: position p is a function of (seed, p)
        validate=SuperPointValidation(conf, run_dir, val_names),
        conventions=CONVENTIONS,
        git_revision=start.revision,
        on_step_end=list(on_step_end),
    )
    record_run(  # every check has passed: the run's record is written now, not before
        run_dir,
        conf,
        STAGE,
        start.revision,
        resume,
        train_images=len(dataset.names),
        val_images=len(val_names),
        lambda_descriptor=conf.loss.weight(),
        **init_info,
    )
    return trainer.fit(resume=resume, resume_from=start.resume_from)


def evaluate_superpoint(
    weights: str | os.PathLike,
    conf: SuperPointTrainConfig,
    output_dir: str | os.PathLike,
    device: str = "auto",
) -> dict[str, Any]:
    """Validate trained ``weights`` on ``conf``'s held-out pairs and sequences; writes
    ``superpoint_eval.json`` and the PR curve into ``output_dir``; returns ``{"metrics":
    {name: value}, "detection": DetectionResult or None}``."""
    dev = resolve_device(device)
    model = build_model(load_weights(weights)).to(dev)
    _, val_names = split_names(_store_names(conf), conf.data.val_fraction)
    validation = SuperPointValidation(conf, None, val_names)
    with torch.no_grad():
        scalars, detection = validation.evaluate(model, dev)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"weights": str(weights), "eval": to_dict(conf.eval), "metrics": scalars}
    (out / "superpoint_eval.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    if detection is not None:
        save_pr_plot({"superpoint": detection}, out / "superpoint_pr.png", validation.describe())
    return {"metrics": scalars, "detection": detection}


def _evaluate_for_cli(weights, conf: SuperPointTrainConfig, output_dir, device: str) -> str:
    """``--eval-only``: the metrics as a Markdown table, and where the report went."""
    result = evaluate_superpoint(weights, conf, output_dir, device)
    lines = ["| metric | value |", "|---|---|"]
    for k, v in result["metrics"].items():
        lines.append(f"| {k} | {v:.4f} |" if math.isfinite(v) else f"| {k} | {v} |")
    return "\n".join(lines) + f"\nreport: {output_dir}/superpoint_eval.json"


def _store_names(conf: SuperPointTrainConfig) -> list[str]:
    if not conf.data.labels:
        raise ConfigError("data.labels (--labels) is not set")
    return LabelStore(conf.data.labels).names


STAGES.add(
    STAGE,
    Stage(
        name=STAGE,
        run=train_superpoint,
        config_cls=SuperPointTrainConfig,
        default_config=DEFAULT_CONFIG,
        flags={
            "--images": (
                "data.images",
                "folder (or .txt list) of the images the labels were made from, as given to "
                "export-labels",
            ),
            "--labels": ("data.labels", "label store of superpoint export-labels"),
            "--loss": (
                "loss.descriptor",
                "descriptor loss: " + "|".join(loss_names("descriptor")),
            ),
            "--backbone": ("model.backbone", "encoder: " + "|".join(BACKBONES.names())),
            "--init-weights": ("init_weights", "start from these weights (e.g. MagicPoint)"),
        },
        repeatable=("--images",),
        description="step 4: SuperPoint on real images with homographic pseudo labels",
        evaluate=_evaluate_for_cli,
    ),
)
