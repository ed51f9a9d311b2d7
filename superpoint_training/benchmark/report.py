"""The matrix's report folder: ``metrics.json`` (everything measured, one row per
combination), ``report.md`` (the machine, the table, the plot, what was skipped and why) and
``accuracy_vs_fps.png`` (:mod:`.plot`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from . import machine
from .plot import PLOT_FILE, plot_unavailable_reason, write_plot

EPS_KEYS = ("1", "3", "5")  # homography accuracy columns (the protocol's eps)


def fmt(value: Any, digits: int = 1) -> str:
    """A table cell: ``-`` for None/inf/nan."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def results_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the rows that ran (accuracy columns when any row has accuracy)."""
    done = [r for r in rows if r["status"] == "ok"]
    with_acc = any(r.get("accuracy") for r in done)
    head = ["model", "variant", "size", "p50 ms", "p95 ms", "FPS", "peak RSS MiB", "GPU MiB",
            "keypoints"]  # fmt: skip
    if with_acc:
        head += [f"H@{e}" for e in EPS_KEYS] + ["NN mAP", "Rep."]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in done:
        gpu = (r.get("gpu_memory") or {}).get("mib")
        cells = [r["model"], r["variant"], r["size"], fmt(r["p50_ms"]), fmt(r["p95_ms"]),
                 fmt(r["fps"]), fmt(r["peak_rss_mib"], 0), fmt(gpu, 0),
                 str(r["keypoints"])]  # fmt: skip
        if with_acc:
            acc = r.get("accuracy") or {}
            h = acc.get("homography_accuracy") or {}
            cells += [fmt(h.get(e), 3) for e in EPS_KEYS]
            cells += [fmt(acc.get("nn_map"), 3), fmt(acc.get("repeatability"), 3)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grouped(rows: list[dict[str, Any]], status: str) -> list[tuple[str, str, str, str]]:
    """(model, variant, sizes, reason) for the rows of ``status``, sizes of one reason merged."""
    out: dict[tuple[str, str, str], list[str]] = {}
    for r in rows:
        if r["status"] == status:
            out.setdefault((r["model"], r["variant"], r["reason"]), []).append(r["size"])
    return [(m, v, ", ".join(sizes), reason) for (m, v, reason), sizes in out.items()]


def render(metrics: dict[str, Any], plot: str | None) -> str:
    """``report.md`` from the ``metrics.json`` dict and the plot's file name (None: none)."""
    s = metrics["settings"]
    rows = metrics["rows"]
    has_acc = any(r.get("accuracy") for r in rows if r["status"] == "ok")
    out = [
        "# Benchmark matrix",
        "",
        f"Created {metrics['created']}. Command:",
        "",
        "```bash",
        metrics.get("command") or "(called from Python)",
        "```",
        "",
        "## Machine",
        "",
        machine.header_table(metrics["machine"]),
        f"| load average at the end | {metrics.get('load_average_end') or 'absent'} |",
        "",
        "## Results",
        "",
        f"Latency: the whole front-end (pre-processing, the backend's graph = network and "
        f"post-processing, finalisation) on one real photo stretched to the row's size, "
        f"{s['runs']} timed runs after {s['warmup']} warm-up runs; FPS = 1000 / p50. Each "
        "combination runs in its own process: peak RSS is that process's peak resident memory "
        "after the timed runs (interpreter, libraries, model and buffers); GPU MiB is the "
        "process's GPU memory where there is a GPU.",
    ]
    if has_acc:
        out += [
            "",
            "Accuracy: `superpoint evaluate`'s code and pinned protocol on "
            f"{', '.join(s['datasets'])}, with both extraction passes at the row's size: "
            "H@eps = fraction of pairs whose homography's mean corner error is <= eps px, "
            "NN mAP and repeatability (Rep.) as in `superpoint evaluate`'s report.",
        ]
    out += ["", results_table(rows), ""]
    if plot:
        out += [f"![{'Accuracy' if has_acc else 'Speed'} against FPS]({plot})", ""]
    elif plot_unavailable_reason() and any(r["status"] == "ok" for r in rows):
        out += [f"({plot_unavailable_reason()})", ""]
    for status, title in (("skipped", "Skipped"), ("failed", "Failed")):
        items = grouped(rows, status)
        if items:
            out += [f"## {title}", "", "| model | variant | sizes | reason |", "|---|---|---|---|"]
            out += [f"| {m} | {v} | {sz} | {reason} |" for m, v, sz, reason in items]
            out.append("")
    out += ["## Models", "", "| model | file | kind | precision | SHA-256 |", "|---|" * 5]
    for label, m in s["models"].items():
        out.append(
            f"| {label} | `{m['path']}` | {m['kind']} | {m['precision']} | `{m['sha256'][:16]}` |"
        )
    out += [
        "",
        f"Front-end settings of weights files (exported with them for the ONNX variants): "
        f"`{json.dumps(s['frontend_settings'])}`. INT8 calibration: "
        f"{s['calib'] or 'none'} ({s['calib_count']} photos at most).",
        "",
    ]
    return "\n".join(out)


def write_report(out_dir: str | Path, metrics: dict[str, Any]) -> dict[str, Path]:
    """Write ``metrics.json``, the plot and ``report.md`` into ``out_dir``; returns their
    paths (``plot`` absent when no row ran)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out_dir / "metrics.json", "report": out_dir / "report.md"}
    paths["metrics"].write_text(json.dumps(_json_safe(metrics), indent=2, allow_nan=False) + "\n")
    plot = write_plot(metrics, out_dir / PLOT_FILE)
    if plot:
        paths["plot"] = plot
    paths["report"].write_text(render(metrics, PLOT_FILE if plot else None))
    return paths
