"""The report of a sequence evaluation: ``metrics.json`` (:func:`build_report`), and
``report.md`` with its tables (:func:`render_report`), written with the plots by
:func:`write_report`."""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import metrics as M
from .environment import versions
from .plots import write_plots
from .protocol import Protocol
from .results import SEQUENCE_GROUPS

REPORT_FORMAT = "superpoint_ros.eval_report.v1"
REPORT_TITLE = "Evaluation report"

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
    for group in SEQUENCE_GROUPS:
        if any(group in r["splits"] for r in report["methods"].values()):
            out += [f"## {group.capitalize()}", "", summary_table(report, group), ""]
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
