"""Detector evaluation on a synthetic test set: precision/recall of corners and mAP (Table 2).

Protocol (every field is in ``DetectionEvalConfig`` and written into every report):

* each detector turns an image into a dense score map ``[H, W]``: MagicPoint its keypoint
  probability (softmax over 65, dustbin dropped, cells unfolded; ``detector_scores``), OpenCV's
  Harris (``cornerHarris``), Shi-Tomasi (``cornerMinEigenVal``) and FAST (the score of each
  FAST-9 corner, after FAST's own 3x3 suppression) their corner responses;
* the same selection for all: non-maximum suppression (max-pooling, radius ``nms_radius``),
  ``border`` pixels dropped, scores above ``min_score`` (MagicPoint) or above 0 (classical, whose
  responses have no absolute scale), at most ``max_keypoints`` per image (0: all);
* a detection is correct when it lies within ``correct_distance`` px of a ground-truth corner
  not yet taken by a better-scored detection of that image (greedy in score order, nearest
  ground-truth corner first), so each corner is found at most once;
* all detections of the test set are ranked by score together: precision and recall at every
  distinct score threshold give the PR curve (recall over all ground-truth corners), and the
  average precision is ``sum_k (R_k - R_{k-1}) P_k`` over those thresholds (no interpolation).

Two passes, as the project's evaluations do: ``predict`` turns a detector and a test set into
per-image detections (cached in memory for the classical detectors, which never change during a
training run), ``pr_curve`` computes the metrics from them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch

# The selection (probability map, NMS, border) is the front-end's, so evaluation and deployment
# select keypoints the same way.
from superpoint_ros.frontend.postprocess import detector_scores, nms, remove_border
from superpoint_ros.registry import Registry


@dataclass
class DetectionEvalConfig:
    """Detector evaluation on the synthetic test set (``eval.*`` in a stage's YAML)."""

    # old key names still read (YAMLs, checkpoints): superpoint_training.config.migrate_keys
    renamed_keys: ClassVar[dict[str, str]] = {"distance_thresh": "correct_distance"}

    num_images: int = 500  # size of the fixed synthetic test set
    seed: int = 20180331  # seed of the test set (fixed: every run evaluates the same images)
    photometric: bool = False  # add photometric noise to the test images (the paper's "noisy")
    correct_distance: float = 3.0  # a detection is correct within this many pixels
    nms_radius: int = 4  # non-maximum suppression radius (px), same for every detector
    border: int = 0  # ignore detections this close to the image edge (px)
    min_score: float = 0.001  # MagicPoint: lowest probability kept (the PR curve's end)
    max_keypoints: int = 0  # per image, best first (0: all above the score floor)
    batch_size: int = 16  # images per forward pass
    classical: tuple[str, ...] = ("harris", "shi_tomasi", "fast")  # OpenCV baselines to add
    harris_block_size: int = 2  # cornerHarris neighbourhood
    harris_ksize: int = 3  # cornerHarris Sobel aperture
    harris_k: float = 0.04  # cornerHarris free parameter
    shi_block_size: int = 3  # cornerMinEigenVal neighbourhood
    shi_ksize: int = 3  # cornerMinEigenVal Sobel aperture
    fast_threshold: int = 10  # FAST intensity threshold (lower: more, weaker corners)


@dataclass
class Detections:
    """Detections of one detector on one image: ``points [N, 2]`` (x, y), ``scores [N]``."""

    points: np.ndarray
    scores: np.ndarray


@dataclass
class DetectionResult:
    """PR curve and summary of one detector over a test set."""

    name: str
    average_precision: float  # the table's mAP
    precision: np.ndarray = field(repr=False)  # [T] at each distinct score threshold, high first
    recall: np.ndarray = field(repr=False)  # [T]
    thresholds: np.ndarray = field(repr=False)  # [T] score thresholds
    num_ground_truth: int = 0
    num_detections: int = 0
    num_images: int = 0
    best_f1: float = 0.0  # max over thresholds of 2PR/(P+R)
    localization_error: float = math.nan  # mean distance (px) of the correct detections

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "average_precision": self.average_precision,
            "best_f1": self.best_f1,
            "max_recall": float(self.recall[-1]) if len(self.recall) else 0.0,
            "localization_error": self.localization_error,
            "num_ground_truth": self.num_ground_truth,
            "num_detections": self.num_detections,
            "num_images": self.num_images,
        }


# ---------------------------------------------------------------------------------------------
# score maps -> detections


def select_points(
    scores: torch.Tensor, nms_radius: int, border: int, min_score: float, max_keypoints: int = 0
) -> list[Detections]:
    """Keypoints of score maps ``[B, H, W]``: NMS, border, scores strictly above
    ``min_score``, best first, at most ``max_keypoints`` (0: all)."""
    kept = remove_border(nms(scores.float(), nms_radius), border)
    out = []
    for s in kept.cpu():
        ys, xs = torch.nonzero(s > min_score, as_tuple=True)
        vals = s[ys, xs]
        order = torch.argsort(vals, descending=True, stable=True)
        if max_keypoints > 0:
            order = order[:max_keypoints]
        pts = torch.stack([xs[order], ys[order]], dim=-1).float().numpy().reshape(-1, 2)
        out.append(Detections(pts, vals[order].numpy().astype(np.float64)))
    return out


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """``[H, W]`` or ``[1, H, W]`` float in [0, 1] (or uint8) -> ``[H, W]`` uint8."""
    image = np.asarray(image).squeeze()
    if image.dtype == np.uint8:
        return image
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


CLASSICAL: Registry[Callable[[np.ndarray, DetectionEvalConfig], np.ndarray]] = Registry(
    "classical detector"
)


@CLASSICAL.register("harris")
def harris_scores(image: np.ndarray, conf: DetectionEvalConfig) -> np.ndarray:
    """OpenCV Harris response ``[H, W]`` float32 (negative on edges)."""
    img = _to_uint8(image).astype(np.float32)
    return cv2.cornerHarris(img, conf.harris_block_size, conf.harris_ksize, conf.harris_k)


@CLASSICAL.register("shi_tomasi")
def shi_tomasi_scores(image: np.ndarray, conf: DetectionEvalConfig) -> np.ndarray:
    """Shi-Tomasi "good features" response: the smaller eigenvalue ``[H, W]`` float32."""
    img = _to_uint8(image).astype(np.float32)
    return cv2.cornerMinEigenVal(img, conf.shi_block_size, conf.shi_ksize)


@CLASSICAL.register("fast")
def fast_scores(image: np.ndarray, conf: DetectionEvalConfig) -> np.ndarray:
    """FAST-9 score of each FAST corner, 0 elsewhere. OpenCV computes the score only with its
    own 3x3 non-max suppression on, so that runs first (ours follows, as for every detector)."""
    img = _to_uint8(image)
    detector = cv2.FastFeatureDetector_create(
        threshold=conf.fast_threshold, nonmaxSuppression=True
    )
    out = np.zeros(img.shape, np.float32)
    for kp in detector.detect(img, None):
        x, y = int(round(kp.pt[0])), int(round(kp.pt[1]))
        out[y, x] = max(out[y, x], kp.response)
    return out


def _images_and_points(dataset: Sequence[Mapping[str, Any]]) -> tuple[list, list]:
    images, points = [], []
    for i in range(len(dataset)):
        item = dataset[i]
        images.append(np.asarray(item["image"], dtype=np.float32))
        points.append(np.asarray(item["keypoints"], dtype=np.float32).reshape(-1, 2))
    return images, points


def predict_model(
    model: torch.nn.Module,
    images: Sequence[np.ndarray],
    conf: DetectionEvalConfig,
    device: torch.device | str = "cpu",
) -> list[Detections]:
    """MagicPoint detections on ``images`` (each ``[1, H, W]`` float in [0, 1], one size)."""
    out: list[Detections] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(images), conf.batch_size):
                batch = torch.as_tensor(np.stack(images[i : i + conf.batch_size]))
                if batch.dim() == 3:
                    batch = batch[:, None]
                logits = model(batch.to(device))["logits"]
                out += select_points(
                    detector_scores(logits), conf.nms_radius, conf.border, conf.min_score,
                    conf.max_keypoints,
                )  # fmt: skip
    finally:
        model.train(was_training)
    return out


def predict_classical(
    name: str, images: Sequence[np.ndarray], conf: DetectionEvalConfig
) -> list[Detections]:
    """Detections of the OpenCV detector ``name`` (see ``CLASSICAL``) on ``images``."""
    fn = CLASSICAL.get(name)
    out = []
    for image in images:
        scores = torch.from_numpy(np.ascontiguousarray(fn(image, conf)))[None]
        out += select_points(scores, conf.nms_radius, conf.border, 0.0, conf.max_keypoints)
    return out


# ---------------------------------------------------------------------------------------------
# metrics


def match_detections(
    points: np.ndarray, scores: np.ndarray, ground_truth: np.ndarray, correct_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one image's detections (any order) to its ground-truth corners.

    Detections are visited by decreasing score; each takes the nearest ground-truth corner not
    yet taken, if it lies within ``correct_distance``. Returns ``(correct [N] bool,
    distance [N] float, nan where incorrect)`` in the input order.
    """
    points = np.asarray(points, np.float64).reshape(-1, 2)
    gt = np.asarray(ground_truth, np.float64).reshape(-1, 2)
    correct = np.zeros(len(points), bool)
    dist_out = np.full(len(points), np.nan)
    if len(points) == 0 or len(gt) == 0:
        return correct, dist_out
    dist = np.linalg.norm(points[:, None] - gt[None], axis=-1)  # [N, M]
    taken = np.zeros(len(gt), bool)
    for i in np.argsort(-np.asarray(scores, np.float64), kind="stable"):
        d = np.where(taken, np.inf, dist[i])
        j = int(np.argmin(d))
        if d[j] <= correct_distance:
            taken[j] = True
            correct[i] = True
            dist_out[i] = d[j]
    return correct, dist_out


def pr_curve(
    name: str,
    detections: Sequence[Detections],
    ground_truth: Sequence[np.ndarray],
    correct_distance: float,
) -> DetectionResult:
    """Precision/recall over all distinct score thresholds of the pooled detections, and AP."""
    if len(detections) != len(ground_truth):
        raise ValueError("one Detections per ground-truth image is needed")
    scores, correct, dists = [], [], []
    for det, gt in zip(detections, ground_truth):
        c, d = match_detections(det.points, det.scores, gt, correct_distance)
        scores.append(np.asarray(det.scores, np.float64).reshape(-1))
        correct.append(c)
        dists.append(d)
    num_gt = int(sum(len(np.asarray(g).reshape(-1, 2)) for g in ground_truth))
    s = np.concatenate(scores) if scores else np.zeros(0)
    c = np.concatenate(correct) if correct else np.zeros(0, bool)
    d = np.concatenate(dists) if dists else np.zeros(0)
    empty = np.zeros(0)
    if len(s) == 0 or num_gt == 0:
        return DetectionResult(name, 0.0, empty, empty, empty, num_gt, len(s), len(detections))
    order = np.argsort(-s, kind="stable")
    s, c = s[order], c[order]
    tp = np.cumsum(c)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # one threshold per distinct score
    precision = tp[last] / (last + 1)
    recall = tp[last] / num_gt
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
    return DetectionResult(
        name=name,
        average_precision=ap,
        precision=precision,
        recall=recall,
        thresholds=s[last],
        num_ground_truth=num_gt,
        num_detections=len(s),
        num_images=len(detections),
        best_f1=float(f1.max()),
        localization_error=float(np.nanmean(d)) if np.any(~np.isnan(d)) else math.nan,
    )


# ---------------------------------------------------------------------------------------------
# the evaluator a training run calls


class DetectionEvaluator:
    """MagicPoint vs the classical detectors on one fixed test set (``dataset`` items hold
    ``image [1, H, W]`` float in [0, 1] and ``keypoints [N, 2]``). The test images, their ground
    truth and the classical detectors' results are computed once and reused."""

    def __init__(self, dataset: Sequence[Mapping[str, Any]], conf: DetectionEvalConfig):
        self.conf = conf
        self.images, self.ground_truth = _images_and_points(dataset)
        self._classical: dict[str, DetectionResult] = {}

    def classical_results(self) -> dict[str, DetectionResult]:
        for name in self.conf.classical:
            if name not in self._classical:
                dets = predict_classical(name, self.images, self.conf)
                self._classical[name] = pr_curve(
                    name, dets, self.ground_truth, self.conf.correct_distance
                )
        return {n: self._classical[n] for n in self.conf.classical}

    def model_result(
        self, model: torch.nn.Module, device: torch.device | str = "cpu", name: str = "magicpoint"
    ) -> DetectionResult:
        dets = predict_model(model, self.images, self.conf, device)
        return pr_curve(name, dets, self.ground_truth, self.conf.correct_distance)

    def evaluate(
        self, model: torch.nn.Module | None, device: torch.device | str = "cpu"
    ) -> dict[str, DetectionResult]:
        """``{"magicpoint": ..., "harris": ..., ...}`` (the model first, if given)."""
        results = {}
        if model is not None:
            results["magicpoint"] = self.model_result(model, device)
        results.update(self.classical_results())
        return results


# ---------------------------------------------------------------------------------------------
# reports


def results_table(results: Mapping[str, DetectionResult]) -> str:
    """A Markdown table: detector, mAP, best F1, max recall, localisation error, counts."""
    lines = [
        "| detector | mAP | best F1 | max recall | loc. error (px) | detections | GT corners |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results.values():
        s = r.summary()
        lines.append(
            f"| {r.name} | {s['average_precision']:.3f} | {s['best_f1']:.3f} | "
            f"{s['max_recall']:.3f} | {s['localization_error']:.2f} | {s['num_detections']} | "
            f"{s['num_ground_truth']} |"
        )
    return "\n".join(lines)


def pr_figure(results: Mapping[str, DetectionResult], title: str = "Synthetic shapes"):
    """A matplotlib figure of the PR curves (Agg backend; no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 4.2), dpi=100)
    for r in results.values():
        if len(r.recall):
            ax.plot(r.recall, r.precision, label=f"{r.name} (mAP {r.average_precision:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def save_pr_plot(
    results: Mapping[str, DetectionResult], path: str | os.PathLike, title: str = ""
) -> Path:
    """Write the PR curves as a PNG."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = pr_figure(results, title or "Synthetic shapes: corner detection")
    fig.savefig(path)
    plt.close(fig)
    return path


def report_stem(conf: DetectionEvalConfig) -> str:
    """File-name stem of a report: ``detection`` (clean test images) or ``detection_noisy``."""
    return "detection_noisy" if conf.photometric else "detection"


def save_report(
    results: Mapping[str, DetectionResult],
    out_dir: str | os.PathLike,
    conf: DetectionEvalConfig,
    extra: Mapping[str, Any] | None = None,
    stem: str | None = None,
) -> dict[str, Path]:
    """Write ``<stem>.json`` (protocol + summaries + curves), ``<stem>.md`` (table) and
    ``<stem>_pr.png`` into ``out_dir`` (``stem``: ``report_stem(conf)`` by default)."""
    stem = stem or report_stem(conf)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    protocol = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(conf).items()}
    payload = {
        "protocol": protocol,
        **dict(extra or {}),
        "results": {
            n: {
                **r.summary(),
                "precision": r.precision.tolist(),
                "recall": r.recall.tolist(),
            }
            for n, r in results.items()
        },
    }
    paths = {
        "json": out_dir / f"{stem}.json",
        "table": out_dir / f"{stem}.md",
        "plot": out_dir / f"{stem}_pr.png",
    }
    paths["json"].write_text(json.dumps(_thin(payload)), encoding="utf-8")
    head = (
        f"Synthetic test set: {conf.num_images} images (seed {conf.seed}, photometric noise "
        f"{'on' if conf.photometric else 'off'}); correct within {conf.correct_distance:g} px, "
        f"NMS radius {conf.nms_radius}, border {conf.border}.\n\n"
    )
    paths["table"].write_text(head + results_table(results) + "\n", encoding="utf-8")
    noise = "with photometric noise" if conf.photometric else "clean"
    save_pr_plot(results, paths["plot"], f"Synthetic shapes ({noise}): corners within "
                 f"{conf.correct_distance:g} px")  # fmt: skip
    return paths


def _thin(payload: dict[str, Any], max_points: int = 2000) -> dict[str, Any]:
    """Subsample long PR curves in the JSON (the plot uses the full curves)."""
    for r in payload["results"].values():
        n = len(r["recall"])
        if n > max_points:
            idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
            r["recall"] = [r["recall"][i] for i in idx]
            r["precision"] = [r["precision"][i] for i in idx]
    return payload


def log_to_tensorboard(writer, results: Mapping[str, DetectionResult], step: int) -> None:
    """Scalars ``eval/<detector>/mAP`` etc. and the PR-curve figure."""
    if writer is None:
        return
    for name, r in results.items():
        writer.add_scalar(f"eval/{name}/mAP", r.average_precision, step)
        writer.add_scalar(f"eval/{name}/best_f1", r.best_f1, step)
        if not math.isnan(r.localization_error):
            writer.add_scalar(f"eval/{name}/localization_error", r.localization_error, step)
    import matplotlib.pyplot as plt

    fig = pr_figure(results, f"step {step}")
    writer.add_figure("eval/pr_curve", fig, step)
    plt.close(fig)
