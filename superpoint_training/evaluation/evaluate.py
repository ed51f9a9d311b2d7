"""Offline HPatches-style evaluation in two passes.

1. Extraction, cached per method and sequence: for every image of a sequence, the method's
   points at the detector size (``rep_size``, ``rep_max_keypoints``) and its points with
   descriptors at the descriptor size (``hom_size``, ``hom_max_keypoints``). A cache file is
   keyed by the method's identity (name, file hash, backend, OpenCV version), the protocol key
   and the sequence's files; a file made with anything else is ignored and re-extracted.
2. Metrics from the cache (``metrics.py``), per pair, then per sequence and per split
   (illumination, viewpoint, all).

Outputs in the report folder: ``metrics.json``, ``report.md`` and PNG plots (accuracy vs
threshold, per-sequence bars, one match image per sequence and method).

Features extracted elsewhere (the ROS bench node's answers) are scored and reported with the
same public steps :func:`evaluate` chains: :func:`sequence_records` (per pair, from any source
of predictions), :func:`match_figure`, :func:`method_timing` and :func:`method_result` (one
method's entry), :func:`build_report` and :func:`write_report` (``metrics.json``, plots,
``report.md``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import io
import json
import logging
import math
import os
import platform
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

import numpy as np

from superpoint_ros.errors import ConfigError
from superpoint_ros.geometry import rescale_homography

from . import metrics as M
from .datasets import HomographySequence, find_sequences, iter_pairs, read_image, stretch
from .methods import Method, get_method, method_name
from .protocol import Protocol

log = logging.getLogger(__name__)

# Bump when what a method is given changes for the same files and protocol. v2: colour
# images made grey with cv2.cvtColor instead of cv2.imread(IMREAD_GRAYSCALE).
CACHE_FORMAT = "superpoint_ros.eval_cache.v2"
REPORT_FORMAT = "superpoint_ros.eval_report.v1"
REPORT_TITLE = "Evaluation report"
SPLITS = ("all", "illumination", "viewpoint")
CURVE_THRESHOLDS = np.arange(1, 11, dtype=np.float64)  # px, for the accuracy curves

# Published figures, shown in the report as context only (see the README's protocol section).
REFERENCE_NUMBERS = """\
Published figures, **context only, not comparable**: other code, other protocol details.
DeTone et al. 2018, Table 4 (480x640, 1000 points, eps=3 for matching metrics):

| | eps=1 | eps=3 | eps=5 | Rep. | MLE | NN mAP | M.Score |
|---|---|---|---|---|---|---|---|
| SuperPoint | .310 | .684 | .829 | .581 | 1.158 | .821 | .470 |
| SIFT | .424 | .676 | .759 | .495 | 0.833 | .694 | .313 |
| ORB | .150 | .395 | .538 | .641 | 1.157 | .735 | .266 |

rpautrat/SuperPoint (TensorFlow, its own protocol): repeatability .662 (illumination) / .674
(viewpoint); homography eps 1/3/5 = .483/.836/.910 (its retrained model), .438/.833/.914
(Magic Leap weights). eric-yyjau/pytorch-superpoint: Magic Leap weights .44/.77/.83, Rep .606,
MLE 1.14, NN mAP .81, M.Score .55; its COCO model .46/.75/.81, .63, 1.07, .78, .42.
"""


# --------------------------------------------------------------------------------------------
# Pass 1: extraction with a cache
# --------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "method"


def method_key(method: Method, protocol: Protocol) -> str:
    """Hash of the method's identity and the protocol: one cache folder per value."""
    import hashlib

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
        for name, (size, k) in protocol.passes().items():
            pred = method.extract(stretch(full, size, protocol.interpolation), k)
            arrays[f"{name}_{i}_keypoints"] = np.asarray(pred["keypoints"], np.float32)
            arrays[f"{name}_{i}_scores"] = np.asarray(pred["scores"], np.float32)
            if name == "hom":
                arrays[f"{name}_{i}_descriptors"] = np.asarray(pred["descriptors"], np.float32)
    info = {"sizes": sizes, "seconds": time.perf_counter() - t0, "images": len(sizes)}
    return arrays, info


def _save_npz(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


def _load_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
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
        folder = cache_dir / f"{_slug(method.name)}-{method_key(method, protocol)}"
        path = folder / f"{_slug(seq.name)}.npz"
        if path.is_file():
            loaded = _load_npz(path)
            if loaded is not None:
                arrays, meta = loaded
                if all(meta.get(k) == v for k, v in expected.items()):
                    return arrays, meta, True
            log.warning("ignoring cache %s: made with another configuration or unreadable", path)
    arrays, info = extract_sequence(method, seq, protocol)
    meta = {**expected, **info}
    if path is not None:
        _save_npz(path, arrays, meta)
    return arrays, meta, False


# --------------------------------------------------------------------------------------------
# Pass 2: metrics
# --------------------------------------------------------------------------------------------


def _pred(arrays: dict[str, np.ndarray], pass_: str, index: int) -> dict[str, np.ndarray]:
    prefix = f"{pass_}_{index}_"
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def pair_metrics(
    method: Method,
    rep0: dict[str, np.ndarray],
    rep1: dict[str, np.ndarray],
    hom0: dict[str, np.ndarray],
    hom1: dict[str, np.ndarray],
    H_0to1: np.ndarray,
    size0: tuple[int, int],
    size1: tuple[int, int],
    protocol: Protocol,
) -> dict[str, Any]:
    """All metrics of one pair from cached predictions.

    ``rep*``/``hom*``: predictions (``keypoints [N, 2]``, ``scores [N]``, ``descriptors
    [N, D]`` for ``hom``) at ``protocol.rep_size``/``hom_size``; ``H_0to1`` the GT between the
    *original* images of sizes ``size0``/``size1`` (rescaled here to each protocol size).
    Returns the per-pair record of ``metrics.json`` (plus private ``_matches``/``_inliers``).
    """
    p = protocol
    H_rep = rescale_homography(H_0to1, size0, p.rep_size, size1, p.rep_size)
    H_hom = rescale_homography(H_0to1, size0, p.hom_size, size1, p.hom_size)
    rep = M.repeatability(
        rep0["keypoints"], rep1["keypoints"], H_rep, p.rep_size, p.rep_size, p.correct_distance
    )
    out: dict[str, Any] = {
        "repeatability": rep["repeatability"],
        "mle": rep["mle"],
        "keypoints0": int(len(hom0["keypoints"])),
        "keypoints1": int(len(hom1["keypoints"])),
    }
    k0, k1 = hom0["keypoints"], hom1["keypoints"]
    d0, d1 = hom0.get("descriptors"), hom1.get("descriptors")
    if d0 is None or d1 is None or d0.shape[1] == 0:  # a detector without descriptors
        out.update(nn_map=math.nan, matching_score=math.nan, corner_error=math.nan)
        out.update(correct=None, matches=0, inliers=0, correct_matches=0)
        return out
    matches, _ = method.match(d0, d1)
    nn, nn_dist = method.nearest(d0, d1)
    H_est, inliers = M.estimate_homography(
        k0[matches[:, 0]],
        k1[matches[:, 1]],
        p.ransac_threshold,
        p.ransac_max_iters,
        p.ransac_confidence,
    )
    err = M.corner_error(H_est, H_hom, p.hom_size)
    errors = M.match_errors(k0, k1, matches, H_hom)
    out.update(
        nn_map=M.nn_map(k0, k1, nn, nn_dist, H_hom, p.hom_size, p.correct_distance),
        matching_score=M.matching_score(
            k0, k1, matches, H_hom, p.hom_size, p.hom_size, p.correct_distance
        ),
        corner_error=err,
        correct=M.homography_correct(err, p.eps),
        matches=int(len(matches)),
        inliers=int(inliers.sum()),
        correct_matches=int((errors <= p.correct_distance).sum()),
        _matches=matches,
        _inliers=inliers,
        _correct=errors <= p.correct_distance,
    )
    return out


def summarise(records: Sequence[dict], eps: Sequence[float]) -> dict[str, Any]:
    """Summary of per-pair records (``metrics.aggregate``)."""
    return M.aggregate(records, eps)


Predictions = Callable[[str, int], Mapping[str, np.ndarray]]  # (pass, image index) -> pred


def sequence_records(
    method: Method,
    sequence: str,
    kind: str,
    predictions: Predictions,
    homography: Callable[[int, int], np.ndarray],
    sizes: Mapping[int, tuple[int, int]],
    protocol: Protocol,
) -> list[dict[str, Any]]:
    """Per-pair records of one sequence: :func:`pair_metrics` on (reference, target) for every
    protocol target whose image exists (``sizes``: original (h, w) per image index).

    ``predictions(pass, index)``: the method's prediction for image ``index`` at the pass's
    protocol size (``pass`` = ``rep`` or ``hom``); ``homography(index, reference)``: the GT
    between the original images (``HomographySequence.homography``). Records start with
    ``sequence``, ``kind``, ``pair`` (``"1-4"``) and keep the private ``_matches``,
    ``_inliers``, ``_correct`` keys (for :func:`match_figure`; :func:`public_record` drops them).
    """
    ref = protocol.reference
    records = []
    for t in protocol.targets:
        if t not in sizes or ref not in sizes:
            continue
        rec = pair_metrics(
            method,
            predictions("rep", ref),
            predictions("rep", t),
            predictions("hom", ref),
            predictions("hom", t),
            homography(t, ref),
            sizes[ref],
            sizes[t],
            protocol,
        )
        records.append({"sequence": sequence, "kind": kind, "pair": f"{ref}-{t}", **rec})
    return records


def public_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A pair record without its private ``_*`` keys (what ``metrics.json`` stores)."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _json_float(v: Any) -> Any:
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
    ``records``, the summaries per split and per sequence (every name of ``sequences``), the
    pair records (JSON-safe: inf/nan -> null) and ``timing``."""
    records = [public_record(r) for r in records]
    splits = {}
    for split in SPLITS:
        sel = [r for r in records if split == "all" or r["kind"] == split]
        if sel:
            splits[split] = summarise(sel, protocol.eps)
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
        "pair_results": [{k: _json_float(v) for k, v in r.items()} for r in records],
        "timing": dict(timing),
    }


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    """Versions of Python and the libraries that shape the numbers (without importing torch)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in (
        "numpy",
        "opencv-python-headless",
        "opencv-python",
        "opencv-contrib-python",
        "torch",
        "onnxruntime",
    ):
        try:
            out[dist] = _metadata.version(dist)
        except _metadata.PackageNotFoundError:
            if not dist.startswith("opencv"):  # one of the OpenCV wheels is enough
                out[dist] = None
    import cv2

    out["cv2"] = cv2.__version__
    out["platform"] = platform.platform()
    out["processor"] = _cpu_name() or platform.processor() or platform.machine()
    out["cpu_count"] = str(os.cpu_count())
    out["git_revision"] = _git_revision()
    return out


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _git_revision() -> str | None:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() or None


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
    from tqdm import tqdm

    protocol = protocol or Protocol()
    out_dir = Path(out_dir)
    cache = (
        out_dir / "cache" if cache_dir == "default" else (Path(cache_dir) if cache_dir else None)
    )
    sequences = find_sequences(datasets)
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
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"cannot write the report into {out_dir}: it is a file, not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)  # only once the inputs are known to be usable
    if plot_target is None:
        plot_target = protocol.targets[len(protocol.targets) // 2]

    results: dict[str, Any] = {}
    match_figures: dict[str, list[str]] = {}
    for method in resolved:
        records: list[dict] = []
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
                functools.partial(_pred, arrays),
                seq.homography,
                {int(k): tuple(v) for k, v in meta["sizes"].items()},
                protocol,
            )
            for rec in recs:
                if plots and rec["pair"] == f"{protocol.reference}-{plot_target}":
                    fig = _draw_matches_figure(method, seq, rec, arrays, protocol, out_dir)
                    if fig:
                        match_figures.setdefault(method.name, []).append(fig)
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
        results[method.name] = method_result(
            method, records, [s.name for s in sequences], protocol, timing
        )

    report = build_report(
        [str(d) for d in ([datasets] if isinstance(datasets, (str, Path)) else datasets)],
        {s.name: s.kind for s in sequences},
        protocol,
        results,
    )
    write_report(out_dir, report, match_figures, plots)
    return report


def build_report(
    datasets: Sequence[str],
    sequences: Mapping[str, str],
    protocol: Protocol,
    results: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """The ``metrics.json`` dict: where the data came from (``datasets``; ``sequences`` =
    name -> kind), the protocol and its key, the versions, ``results`` (method name -> its
    :func:`method_result`), and any ``extra`` top-level blocks (the bench adds ``bench``)."""
    return {
        "format": REPORT_FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "datasets": list(datasets),
        "sequences": dict(sequences),
        "protocol": protocol.to_dict(),
        "protocol_key": protocol.key(),
        "versions": versions(),
        "methods": dict(results),
        **extra,
    }


def write_report(
    out_dir: str | Path,
    report: dict[str, Any],
    match_figures: Mapping[str, Sequence[str]] | None = None,
    plots: bool = True,
    title: str = REPORT_TITLE,
    sections: Sequence[str] = (),
) -> None:
    """Write ``metrics.json``, the plots (when ``plots``) and ``report.md`` into ``out_dir``.

    ``match_figures``: method name -> match images already written (paths relative to
    ``out_dir``, from :func:`match_figure`); ``title`` and ``sections`` (Markdown put before the
    per-sequence table) as :func:`render_report`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    (out_dir / "metrics.json").write_text(text)
    figures: dict[str, Any] = {"matches": {k: list(v) for k, v in (match_figures or {}).items()}}
    if plots:
        figures.update(write_plots(report, out_dir))
    (out_dir / "report.md").write_text(render_report(report, figures, title, sections))


# --------------------------------------------------------------------------------------------
# Report and plots
# --------------------------------------------------------------------------------------------


def fmt(v: Any, digits: int = 3) -> str:
    """``v`` with ``digits`` decimals; ``-`` for None, inf and nan (report tables)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


def summary_table(report: dict[str, Any], split: str = "all") -> str:
    """Markdown table of every method's figures on ``split``."""
    eps = [M.eps_key(e) for e in report["protocol"]["eps"]]
    head = ["method", "pairs", "keypoints", *[f"eps={e}" for e in eps], "Rep.", "MLE", "NN mAP",
            "M.Score"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in report["methods"].items():
        s = res["splits"].get(split)
        if not s:
            continue
        row = [name, str(s["pairs"]), fmt(s.get("keypoints"), 0)]
        row += [fmt(s["homography_accuracy"].get(e)) for e in eps]
        row += [fmt(s["repeatability"]), fmt(s["mle"]), fmt(s["nn_map"])]
        row += [fmt(s["matching_score"])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def render_report(
    report: dict[str, Any],
    figures: dict[str, Any] | None = None,
    title: str = REPORT_TITLE,
    sections: Sequence[str] = (),
) -> str:
    """``report.md``: tables per split and per sequence, the protocol, versions, plots.
    ``sections``: more Markdown (each starting with its ``##`` heading), placed after the plots
    and before the per-sequence table."""
    figures = figures or {}
    p = report["protocol"]
    mid = M.eps_key(p["eps"][len(p["eps"]) // 2])
    out = [
        f"# {title}",
        "",
        f"Created {report['created']} from {', '.join(report['datasets'])} "
        f"({len(report['sequences'])} sequences), protocol key `{report['protocol_key']}`.",
        "",
        "Keypoints: mean per image at the descriptor size. "
        "Homography accuracy: fraction of pairs whose mean corner error is <= eps px "
        f"({p['hom_size'][0]}x{p['hom_size'][1]}, <= {p['hom_max_keypoints']} points). "
        f"Rep./MLE at {p['rep_size'][0]}x{p['rep_size'][1]} with {p['rep_max_keypoints']} "
        "points.",
        "",
    ]
    for split in SPLITS:
        if any(split in r["splits"] for r in report["methods"].values()):
            out += [f"## {split.capitalize()}", "", summary_table(report, split), ""]
    for key, caption in (
        ("accuracy_curve", "Accuracy vs threshold"),
        ("per_sequence", "Per sequence"),
    ):
        if figures.get(key):
            out += [f"![{caption}]({figures[key]})", ""]
    for section in sections:
        out += [section.strip("\n"), ""]
    out += ["## Per sequence", ""]
    names = list(report["methods"])
    head = ["sequence", "kind"] + [f"{n}: Rep. / H@{mid}" for n in names]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for seq, kind in report["sequences"].items():
        row = [seq, kind]
        for n in names:
            s = report["methods"][n]["sequences"].get(seq, {})
            acc = (s.get("homography_accuracy") or {}).get(mid)
            row.append(f"{fmt(s.get('repeatability'))} / {fmt(acc)}")
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    if figures.get("matches"):
        out += [
            "## Matches",
            "",
            "One pair per sequence: green = correct under the ground "
            "truth (within correct_distance), red = wrong.",
            "",
        ]
        for n, paths in figures["matches"].items():
            out += [f"- {n}: " + ", ".join(f"[{Path(q).stem}]({q})" for q in paths)]
        out.append("")
    out += ["## Methods", ""]
    for n, r in report["methods"].items():
        details = {
            k: v
            for k, v in r.items()
            if k
            in (
                "kind",
                "file",
                "path",
                "sha256",
                "backend",
                "backend_used",
                "opencv",
                "protocol_deviations",
                "frontend_config",
            )
        }
        t = r["timing"]
        out.append(
            f"- **{n}**: `{json.dumps(details)}`; extraction "
            f"{fmt(t['extract_seconds_per_image'])} s per image (both sizes, as measured "
            f"when extracted), metrics {fmt(t['metric_seconds_per_sequence'])} s per sequence "
            f"({t['extracted_sequences']} sequences extracted, "
            f"{t['cached_sequences']} from cache)"
        )
    out += ["", "## Protocol", "", "| field | value |", "|---|---|"]
    out += [f"| {k} | `{json.dumps(v)}` |" for k, v in p.items()]
    out += ["", "## Versions", "", "| | |", "|---|---|"]
    out += [
        f"| {k} | {v if v is not None else 'not installed'} |"
        for k, v in report["versions"].items()
    ]
    out += ["", "## Reference numbers", "", REFERENCE_NUMBERS]
    return "\n".join(out)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(report: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Accuracy-vs-threshold curves and per-sequence bars as PNGs; returns relative paths."""
    plt = _pyplot()
    eps = report["protocol"]["eps"]
    names = list(report["methods"])
    splits = [s for s in SPLITS if any(s in r["splits"] for r in report["methods"].values())]
    thresholds = np.unique(np.r_[CURVE_THRESHOLDS, eps])
    fig, axes = plt.subplots(1, len(splits), figsize=(4.2 * len(splits), 3.6), squeeze=False)
    for ax, split in zip(axes[0], splits):
        for n in names:
            recs = [
                r
                for r in report["methods"][n]["pair_results"]
                if r.get("correct") is not None and (split == "all" or r["kind"] == split)
            ]
            if not recs:
                continue
            errs = [math.inf if r["corner_error"] is None else r["corner_error"] for r in recs]
            ax.plot(thresholds, M.accuracy_curve(errs, thresholds), marker="o", ms=3, label=n)
        for e in eps:
            ax.axvline(e, color="0.85", lw=0.8, zorder=0)
        pairs = max(
            (report["methods"][n]["splits"].get(split, {}).get("pairs", 0) for n in names),
            default=0,
        )
        ax.set(
            title=f"{split} ({pairs} pairs)",
            xlabel="corner error threshold (px)",
            ylim=(0, 1.02),
            xlim=(thresholds[0] - 0.2, thresholds[-1] + 0.2),
        )
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("homography accuracy")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    curve = "accuracy_vs_threshold.png"
    fig.savefig(out_dir / curve, dpi=110)
    plt.close(fig)

    seqs = list(report["sequences"])
    mid = M.eps_key(eps[len(eps) // 2])
    height = max(2.8, 0.28 * len(seqs) * max(1, len(names)) / 2 + 1.2)
    fig, axes = plt.subplots(1, 2, figsize=(10, height), sharey=True)
    y = np.arange(len(seqs))
    bar_h = 0.8 / max(len(names), 1)
    for j, n in enumerate(names):
        per = report["methods"][n]["sequences"]
        rep = [per.get(s, {}).get("repeatability") or 0.0 for s in seqs]
        acc = [((per.get(s, {}).get("homography_accuracy") or {}).get(mid) or 0.0) for s in seqs]
        offs = y - 0.4 + bar_h * (j + 0.5)
        axes[0].barh(offs, rep, height=bar_h, label=n)
        axes[1].barh(offs, acc, height=bar_h, label=n)
    axes[0].set_yticks(y, [f"{s} ({report['sequences'][s][0]})" for s in seqs], fontsize=8)
    axes[0].invert_yaxis()
    axes[0].set(xlabel="repeatability", xlim=(0, 1))
    axes[1].set(xlabel=f"homography accuracy at eps={mid} px", xlim=(0, 1))
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle("Per sequence (i = illumination, v = viewpoint)", fontsize=10)
    fig.tight_layout()
    bars = "per_sequence.png"
    fig.savefig(out_dir / bars, dpi=110)
    plt.close(fig)
    return {"accuracy_curve": curve, "per_sequence": bars}


def _draw_matches_figure(
    method: Method,
    seq: HomographySequence,
    rec: dict[str, Any],
    arrays: dict[str, np.ndarray],
    protocol: Protocol,
    out_dir: Path,
) -> str | None:
    """:func:`match_figure` of one pair of a folder sequence (images re-read at ``hom_size``)."""
    ref, t = (int(v) for v in rec["pair"].split("-"))
    pair = next(
        iter_pairs(
            seq,
            protocol.hom_size,
            ref,
            (t,),
            grayscale=True,
            interpolation=protocol.interpolation,
        )
    )
    return match_figure(
        method.name,
        seq.name,
        rec,
        (pair["image0"], pair["image1"]),
        (_pred(arrays, "hom", ref)["keypoints"], _pred(arrays, "hom", t)["keypoints"]),
        protocol,
        out_dir,
    )


def match_figure(
    method: str,
    sequence: str,
    record: Mapping[str, Any],
    images: tuple[np.ndarray, np.ndarray],
    keypoints: tuple[np.ndarray, np.ndarray],
    protocol: Protocol,
    out_dir: str | Path,
) -> str | None:
    """Draw one pair record's matches (green: correct under the GT, red: wrong) into
    ``out_dir/matches/<method>/<sequence>_<pair>.png``; returns that path relative to
    ``out_dir``, or None for a record without matches (a detector without descriptors).

    ``images``: both images at ``protocol.hom_size``; ``keypoints``: their ``[N, 2]`` points
    of the descriptor pass (what ``record["_matches"]`` indexes)."""
    if record.get("_matches") is None:
        return None
    rel = Path("matches") / _slug(method) / f"{_slug(sequence)}_{record['pair']}.png"
    draw_matches(
        *images,
        *keypoints,
        record["_matches"],
        record["_correct"],
        Path(out_dir) / rel,
        title=(
            f"{method} {sequence} {record['pair']}: {record['correct_matches']}/"
            f"{record['matches']} correct (green, <= {protocol.correct_distance:g} px under GT; "
            f"red: wrong), {record['inliers']} RANSAC inliers, corner error "
            f"{fmt(record['corner_error'], 2)} px"
        ),
    )
    return rel.as_posix()


def draw_matches(
    image0: np.ndarray,
    image1: np.ndarray,
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    matches: np.ndarray,
    correct: np.ndarray,
    path: str | Path,
    title: str = "",
) -> Path:
    """``superpoint_ros.visualize.draw_matches`` (side by side, keypoints yellow, ``matches
    [M, 2]`` green where ``correct [M]``, red otherwise) under a white band with ``title``;
    writes ``path`` (PNG)."""
    import cv2

    from superpoint_ros.visualize import draw_matches as draw

    canvas = draw(image0, image1, np.asarray(kpts0), np.asarray(kpts1), matches, correct)
    if title:
        band = np.full((28, canvas.shape[1], 3), 255, np.uint8)
        cv2.putText(band, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        canvas = np.concatenate([band, canvas], axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"cannot write {path}")
    return path
