"""The report's plots: homography accuracy against the corner-error threshold, and
repeatability and accuracy per sequence (PNG, matplotlib without a display)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as M
from .results import SEQUENCE_GROUPS, in_group

CURVE_THRESHOLDS = np.arange(1, 11, dtype=np.float64)  # px, for the accuracy curves


def _pyplot():
    # matplotlib only when plotting: a report without plots does not need it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(report: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Accuracy-vs-threshold curves and per-sequence bars as PNGs; returns relative paths."""
    plt = _pyplot()
    eps = report["protocol"]["eps"]
    names = list(report["methods"])
    groups = [
        g for g in SEQUENCE_GROUPS if any(g in r["splits"] for r in report["methods"].values())
    ]
    thresholds = np.unique(np.r_[CURVE_THRESHOLDS, eps])
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    for ax, group in zip(axes[0], groups):
        for n in names:
            recs = [
                r
                for r in report["methods"][n]["pair_results"]
                if r.get("correct") is not None and in_group(r, group)
            ]
            if not recs:
                continue
            errs = [math.inf if r["corner_error"] is None else r["corner_error"] for r in recs]
            ax.plot(thresholds, M.accuracy_curve(errs, thresholds), marker="o", ms=3, label=n)
        for e in eps:
            ax.axvline(e, color="0.85", lw=0.8, zorder=0)
        pairs = max(
            (report["methods"][n]["splits"].get(group, {}).get("pairs", 0) for n in names),
            default=0,
        )
        ax.set(
            title=f"{group} ({pairs} pairs)",
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
