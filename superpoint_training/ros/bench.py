"""The pure core of ``bench_node``: what to publish, how to score what comes back, the report.

No ``rclpy`` here (the node in :mod:`superpoint_training.ros.bench_node` only wires topics to
these functions), so everything below is tested without ROS.

What the bench does, in the offline evaluation's terms (``superpoint_training.evaluation``):

* Frames. For every sequence of an HPatches bag and every image the protocol uses (the
  reference and the targets), the image is made single-channel (``protocol.grayscale``) and
  stretched to each protocol size with the evaluation's own ``stretch``: one frame at
  ``rep_size`` (detector pass, ``rep_max_keypoints``) and one at ``hom_size`` (descriptor pass,
  ``hom_max_keypoints``). These are the arrays ``evaluate.extract_sequence`` hands a method, so
  the node sees exactly what the offline front-end sees.
* Predictions. The features the node answers are cut to the pass's point budget with
  ``methods.keep_best``, as ``SuperPointMethod.extract`` does offline.
* Metrics and report. The offline evaluation's public steps, on the node's predictions:
  ``evaluation.pair_metrics.sequence_records`` (``pair_metrics`` per pair) with a
  :class:`NodeMethod` whose matchers are the base ``Method``'s (the ones SuperPoint uses
  offline), ``evaluation.figures.match_figure``, ``evaluation.results.method_timing``/
  ``method_result``, ``evaluation.report.build_report`` and
  ``write_report``: the same ``metrics.json`` and ``report.md`` format, plus the node's latency,
  drops and throughput (:func:`ros_summary`, :func:`render_bench_section`).

A frame the node never answered within the timeout counts as dropped and gets an empty
prediction (no keypoints): what a consumer on the robot would have had.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from superpoint_ros.frontend.metadata import file_sha256
from superpoint_ros.image_encodings import convert_8bit
from superpoint_training.data.sequences import homography_from_reference, normalise_homography
from superpoint_training.evaluation import figures as eval_figures
from superpoint_training.evaluation import pair_metrics
from superpoint_training.evaluation import report as eval_report
from superpoint_training.evaluation.datasets import sequence_kind, stretch
from superpoint_training.evaluation.methods import (
    Method,
    empty_prediction,
    frontend_settings,
    keep_best,
    method_name,
)
from superpoint_training.evaluation.protocol import PASSES, Protocol

# --------------------------------------------------------------------------------------------
# Frames


def protocol_image(image: np.ndarray, encoding: str, grayscale: bool) -> np.ndarray:
    """A bag image (``[H, W]`` or ``[H, W, C]`` in ``encoding``) as the methods see it: uint8
    gray ``[H, W]`` when ``grayscale``, else uint8 BGR ``[H, W, 3]``.

    Colour becomes gray with ``cv2.cvtColor``, as the node's front-end and the offline reader
    (``evaluation.datasets.read_image``) make it, so the node sees the pixels ``superpoint
    evaluate`` sees. ``mono16`` keeps the high byte, the node's default ``mono16_shift``.
    """
    if encoding == "mono16":
        image = (np.asarray(image, np.uint16) >> 8).astype(np.uint8)
        encoding = "mono8"
    return np.ascontiguousarray(convert_8bit(image, encoding, "mono8" if grayscale else "bgr8"))


@dataclass
class Frame:
    """One image message to publish: ``image`` of ``sequence``'s image ``index`` at the size of
    ``pass_`` (``rep`` or ``hom``), whose answer keeps the best ``max_keypoints``."""

    sequence: str
    index: int
    pass_: str
    image: np.ndarray
    max_keypoints: int

    @property
    def frame_id(self) -> str:
        """The bag's frame id of the image (``"v_graffiti/3"``): names the frame in logs."""
        return f"{self.sequence}/{self.index}"


@dataclass
class SequenceRun:
    """One sequence in flight: what was published, what came back, until it is scored."""

    name: str
    kind: str
    sizes: dict[int, tuple[int, int]]  # original (h, w) per image index
    H_1: dict[int, np.ndarray]  # index -> H_1_index (normalised, H[2,2] = 1); 1 -> identity
    frames: list[Frame]
    predictions: dict[tuple[str, int], dict[str, np.ndarray] | None] = field(default_factory=dict)

    def expected(self) -> set[tuple[str, int]]:
        return {(f.pass_, f.index) for f in self.frames}

    def complete(self) -> bool:
        """Every frame answered or dropped."""
        return set(self.predictions) >= self.expected()

    def homography(self, index: int, reference: int) -> np.ndarray:
        """H mapping image ``reference`` to image ``index``, as
        ``HomographySequence.homography`` computes it from the files."""
        return homography_from_reference(self.H_1.__getitem__, index, reference)

    def image(self, pass_: str, index: int) -> np.ndarray | None:
        return next((f.image for f in self.frames if (f.pass_, f.index) == (pass_, index)), None)


def plan_sequence(
    name: str,
    images: Sequence[np.ndarray],
    encodings: Sequence[str],
    homographies: Mapping[int, np.ndarray],
    protocol: Protocol,
) -> SequenceRun:
    """The frames of one bag sequence (``images[0]`` is image 1, ``homographies[n]`` is
    ``H_1_n``): for the reference and every target present, one frame per pass, in the order
    reference rep, reference hom, target rep, target hom..."""
    # Normalised as the offline reader (``read_homography``) returns the files.
    H_1 = {1: np.eye(3)} | {
        n: normalise_homography(H, f"{name}: H_1_{n}") for n, H in homographies.items()
    }
    sizes: dict[int, tuple[int, int]] = {}
    frames: list[Frame] = []
    for i in protocol.image_indices(range(1, len(images) + 1)):
        full = protocol_image(images[i - 1], encodings[i - 1], protocol.grayscale)
        sizes[i] = (int(full.shape[0]), int(full.shape[1]))
        for p, (size, budget) in protocol.passes().items():
            image = np.ascontiguousarray(stretch(full, size, protocol.interpolation))
            frames.append(Frame(name, i, p, image, budget))
    return SequenceRun(name, sequence_kind(name), sizes, H_1, frames)


def warmup_frames(first: Frame | None, protocol: Protocol, count: int) -> list[Frame]:
    """``count`` frames per protocol size made from ``first``'s image (not scored)."""
    if first is None or count == 0:
        return []
    out = []
    for p, (size, _) in protocol.passes().items():
        image = np.ascontiguousarray(stretch(first.image, size, protocol.interpolation))
        out += [Frame("bench_warmup", k + 1, p, image, first.max_keypoints) for k in range(count)]
    return out


def prediction(features: Mapping[str, np.ndarray], max_keypoints: int) -> dict[str, np.ndarray]:
    """The node's answer (``features_from_msg``) cut to the pass's budget, as
    ``SuperPointMethod.extract`` cuts the front-end's output offline."""
    pred = {k: np.asarray(features[k], np.float32) for k in ("keypoints", "scores", "descriptors")}
    return keep_best(pred, max_keypoints)


# --------------------------------------------------------------------------------------------
# Metrics: the offline code on the node's predictions


class NodeMethod(Method):
    """SuperPoint as answered by ``superpoint_node``. ``extract`` is the node (not called
    here); ``match``/``nearest`` are the base class's, the matchers SuperPoint uses offline."""

    kind = "superpoint_node"

    def __init__(self, name: str, protocol: Protocol, node: Mapping[str, Any] | None = None):
        super().__init__(name, protocol)
        self.node = dict(node or {})  # the node's parameters (weights, backend, ...)
        self.sha256: str | None = None
        self.deviations = protocol_deviations(self.node, protocol) if self.node else {}
        weights = self.node.get("weights")
        if weights and Path(weights).is_file():
            self.sha256 = file_sha256(weights)

    def identity(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.node:
            out["file"] = Path(self.node["weights"]).name if self.node.get("weights") else ""
            out["sha256"] = self.sha256
            out["backend"] = self.node.get("backend")
        return out

    def describe(self) -> dict[str, Any]:
        out = self.identity()
        if self.node:
            out["path"] = self.node.get("weights") or "default model"
            out["frontend_config"] = {
                k: self.node[k]
                for k in ("max_keypoints", "nms_radius", "detection_threshold", "border",
                          "subpixel", "resize")
                if k in self.node
            }  # fmt: skip
        if self.deviations:
            out["protocol_deviations"] = self.deviations
        return out

    def extract(self, image: np.ndarray, max_keypoints: int) -> dict[str, np.ndarray]:
        raise NotImplementedError("the bench node's predictions come from superpoint_node")


def protocol_deviations(node: Mapping[str, Any], protocol: Protocol) -> dict[str, Any]:
    """Node settings that make its answers differ from the protocol's offline extraction
    (:func:`~superpoint_training.evaluation.methods.frontend_settings`); a larger point budget
    is not one (the answers are cut to the pass's budget)."""
    out: dict[str, Any] = {}
    wanted = frontend_settings(protocol)
    budget = wanted["max_keypoints"]
    if "max_keypoints" in node and node["max_keypoints"] < budget:
        out["max_keypoints"] = {"protocol": budget, "node": node["max_keypoints"]}
    for key in ("nms_radius", "detection_threshold", "border"):
        if key in node and node[key] != wanted[key]:
            out[key] = {"protocol": wanted[key], "node": node[key]}
    if node.get("resize"):
        out["resize"] = {"protocol": "", "node": node["resize"]}
    if node.get("subpixel"):
        out["subpixel"] = {"protocol": False, "node": True}
    return out


def default_method_name(node: Mapping[str, Any] | None) -> str:
    """``<weights stem>@superpoint_node`` (``default@...`` for the packaged model)."""
    weights = (node or {}).get("weights") or ""
    return f"{method_name(weights) if weights else 'default'}@superpoint_node"


def sequence_records(
    method: Method,
    run: SequenceRun,
    protocol: Protocol,
    descriptor_dim: int,
) -> list[dict[str, Any]]:
    """Per-pair records of one finished sequence: ``evaluate.sequence_records`` on the node's
    predictions, plus ``frames_dropped`` (how many of the pair's four frames the node never
    answered). A dropped frame counts as ``methods.empty_prediction`` (no keypoints, with
    ``descriptor_dim`` columns, so the pair is scored as a failed homography rather than as a
    detector without descriptors). Records keep the private ``_matches``/``_correct`` keys for
    the match images."""

    def pred(pass_: str, index: int) -> dict[str, np.ndarray]:
        got = run.predictions.get((pass_, index))
        return empty_prediction(descriptor_dim) if got is None else got

    records = pair_metrics.sequence_records(
        method, run.name, run.kind, pred, run.homography, run.sizes, protocol
    )
    for rec in records:
        ref, t = (int(v) for v in rec["pair"].split("-"))
        rec["frames_dropped"] = sum(
            run.predictions.get((p, i)) is None for p in PASSES for i in (ref, t)
        )
    return records


def draw_sequence_matches(
    method: Method, run: SequenceRun, record: dict[str, Any], protocol: Protocol, out_dir: Path
) -> str | None:
    """The match image of one pair (``evaluate.match_figure``); relative path or None."""
    ref, t = (int(v) for v in record["pair"].split("-"))
    image0, image1 = run.image("hom", ref), run.image("hom", t)
    p0, p1 = run.predictions.get(("hom", ref)), run.predictions.get(("hom", t))
    if image0 is None or image1 is None or p0 is None or p1 is None:
        return None
    return eval_figures.match_figure(
        method.name,
        run.name,
        record,
        (image0, image1),
        (p0["keypoints"], p1["keypoints"]),
        protocol,
        out_dir,
    )


# --------------------------------------------------------------------------------------------
# Latency, drops, throughput


def latency_summary(seconds: Iterable[float]) -> dict[str, Any]:
    """``count``, ``p50_ms``, ``p95_ms``, ``max_ms``, ``mean_ms`` of latencies in seconds
    (numpy's linear-interpolated percentiles; ``None`` without samples)."""
    ms = np.asarray(list(seconds), np.float64) * 1e3
    if len(ms) == 0:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "max_ms": None, "mean_ms": None}
    return {
        "count": int(len(ms)),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "max_ms": float(ms.max()),
        "mean_ms": float(ms.mean()),
    }


@dataclass
class FrameLog:
    """Outcome of one scored frame: latency in seconds, or None when dropped."""

    sequence: str
    index: int
    pass_: str
    latency: float | None
    late: bool = False  # answered, but after the timeout (counted as dropped)


def ros_summary(
    logs: Sequence[FrameLog],
    first_publish: float | None,
    last_event: float | None,
    protocol: Protocol,
) -> dict[str, Any]:
    """The ``ros`` block of the method entry: latency per pass and overall, drops, throughput.

    Throughput: answered frames (and bag images, two frames each) per second of wall time
    from the first scored publish to the last answer or timeout.
    """
    answered = [g for g in logs if g.latency is not None]
    wall = (last_event - first_publish) if first_publish is not None and last_event else None
    wall = wall if wall and wall > 0 else None
    return {
        "frames": len(logs),
        "frames_answered": len(answered),
        "frames_dropped": len(logs) - len(answered),
        "frames_late": sum(g.late for g in logs),
        "drop_rate": (len(logs) - len(answered)) / len(logs) if logs else None,
        "latency": latency_summary(g.latency for g in answered),
        "latency_per_pass": {
            p: {"size": list(size), **latency_summary(g.latency for g in answered if g.pass_ == p)}
            for p, (size, _) in protocol.passes().items()
        },
        "wall_seconds": wall,
        "frames_per_second": len(answered) / wall if wall else None,
        "images_per_second": len(answered) / len(PASSES) / wall if wall else None,
    }


def seconds_per_image(logs: Sequence[FrameLog]) -> float | None:
    """Mean, over bag images with both passes answered, of the summed pass latencies (the
    offline report's "extraction s per image, both sizes")."""
    per: dict[tuple[str, int], list[float]] = {}
    for g in logs:
        if g.latency is not None:
            per.setdefault((g.sequence, g.index), []).append(g.latency)
    both = [sum(v) for v in per.values() if len(v) == len(PASSES)]
    return float(np.mean(both)) if both else None


# --------------------------------------------------------------------------------------------
# Report


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}"


def render_bench_section(report: Mapping[str, Any]) -> str:
    """The ``report.md`` section with what only the node replay measures."""
    b = report["bench"]
    out = [
        "## ROS node replay",
        "",
        f"Bag `{b['bag']}` replayed through `{b['node_name'] or 'the SuperPoint node'}` "
        f"({b['mode']}"
        + (f", {b['rate']:g} frames/s" if b["mode"] == "rate" else ": next frame when the "
           "previous one is answered")
        + f", timeout {b['timeout']:g} s, {b['warmup']} warm-up frames per size not scored). "
        "Each image is published at both protocol sizes; latency is from publish to "
        "`~/features` received by the bench node.",
        "",
        "| method | frames | dropped | late | p50 ms | p95 ms | max ms | frames/s | images/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, res in report["methods"].items():
        r = res["ros"]
        lat = r["latency"]
        fps, ips = r["frames_per_second"], r["images_per_second"]
        out.append(
            f"| {name} | {r['frames']} | {r['frames_dropped']} | {r['frames_late']} | "
            f"{_ms(lat['p50_ms'])} | {_ms(lat['p95_ms'])} | {_ms(lat['max_ms'])} | "
            f"{'-' if fps is None else f'{fps:.2f}'} | {'-' if ips is None else f'{ips:.2f}'} |"
        )
    out += ["", "| method | pass | size | frames | p50 ms | p95 ms | max ms | mean ms |"]
    out += ["|---|---|---|---|---|---|---|---|"]
    for name, res in report["methods"].items():
        for p, s in res["ros"]["latency_per_pass"].items():
            out.append(
                f"| {name} | {p} | {s['size'][0]}x{s['size'][1]} | {s['count']} | "
                f"{_ms(s['p50_ms'])} | {_ms(s['p95_ms'])} | {_ms(s['max_ms'])} | "
                f"{_ms(s['mean_ms'])} |"
            )
    dropped_pairs = {
        n: sum(1 for r in res["pair_results"] if r.get("frames_dropped")) for n, res in
        report["methods"].items()
    }  # fmt: skip
    out += [
        "",
        "A dropped frame (no answer within the timeout) is scored as an empty prediction: its "
        "pairs count as failed homographies. Pairs with a dropped frame: "
        + ", ".join(f"{n} {k}" for n, k in dropped_pairs.items())
        + ".",
        "",
    ]
    node = b.get("node_parameters")
    if node:
        out += ["Node parameters: `" + json.dumps(node, sort_keys=True) + "`", ""]
    return "\n".join(out)


def write_report(
    out_dir: Path, report: dict[str, Any], match_figures: Mapping[str, list[str]], plots: bool
) -> None:
    """``metrics.json``, plots and ``report.md`` (the offline report plus the replay section)."""
    eval_report.write_report(
        out_dir,
        report,
        match_figures,
        plots,
        title=f"{eval_report.REPORT_TITLE} (ROS node replay)",
        sections=[render_bench_section(report)],
    )


def summary_line(report: Mapping[str, Any]) -> str:
    """The one log line the node ends with."""
    parts = []
    for name, res in report["methods"].items():
        r = res["ros"]
        lat = r["latency"]
        acc = res["homography_accuracy"]
        accs = "/".join("-" if v is None else f"{v:.3f}" for v in acc.values())
        ips = r["images_per_second"]
        parts.append(
            f"{name}: {res['pairs']} pairs, homography accuracy eps {'/'.join(acc)} = {accs}, "
            f"repeatability {eval_report.fmt(res['repeatability'])}; {r['frames']} frames, "
            f"{r['frames_dropped']} dropped, latency p50/p95/max {_ms(lat['p50_ms'])}/"
            f"{_ms(lat['p95_ms'])}/{_ms(lat['max_ms'])} ms, "
            f"{'-' if ips is None else f'{ips:.2f}'} images/s"
        )
    return "; ".join(parts)


def iter_limited(items: Iterable[Any], limit: int) -> Iterator[Any]:
    """The first ``limit`` items (all for 0)."""
    for k, item in enumerate(items):
        if limit and k >= limit:
            return
        yield item
