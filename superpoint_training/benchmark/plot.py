"""The matrix's picture: homography accuracy at eps=3 against FPS, one labelled point per row
that ran (colour = model, marker = variant, the label = variant and size), the rows no other
row beats on both axes joined by a dashed line. Without accuracy (no ``--dataset``): FPS bars,
one per row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLOT_FILE = "accuracy_vs_fps.png"
ACCURACY_KEY = "3"  # eps in px of the accuracy axis (the protocol's middle threshold)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher is better on both),
    sorted by the first coordinate."""
    keep = [
        i
        for i, (x, y) in enumerate(points)
        if not any(
            (x2 >= x and y2 >= y) and (x2 > x or y2 > y)
            for j, (x2, y2) in enumerate(points)
            if j != i
        )
    ]
    return sorted(keep, key=lambda i: points[i][0])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(metrics: dict[str, Any]) -> str:
    m = metrics["machine"]
    where = m.get("gpu") or m.get("cpu") or "this machine"
    return f"{where}"


def write_plot(metrics: dict[str, Any], path: str | Path) -> Path | None:
    """Draw the rows that ran into ``path`` (PNG); None when no row ran."""
    rows = [r for r in metrics["rows"] if r["status"] == "ok"]
    if not rows:
        return None
    plt = _pyplot()
    models = list(dict.fromkeys(r["model"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    markers = {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(variants)}
    scored = [
        r for r in rows
        if ((r.get("accuracy") or {}).get("homography_accuracy") or {}).get(ACCURACY_KEY)
        is not None
    ]  # fmt: skip
    if scored:
        fig, ax = plt.subplots(figsize=(9, 6))
        pts = [(r["fps"], r["accuracy"]["homography_accuracy"][ACCURACY_KEY]) for r in scored]
        front = pareto(pts)
        if len(front) > 1:
            ax.plot(*zip(*[pts[i] for i in front]), ls="--", color="0.6", lw=1, zorder=1,
                    label="best trade-offs")  # fmt: skip
        for r, (x, y) in zip(scored, pts):
            ax.scatter(x, y, s=70, color=colours[r["model"]], marker=markers[r["variant"]],
                       edgecolor="black", linewidth=0.5, zorder=3)  # fmt: skip
            ax.annotate(f"{r['model']} {r['variant']} {r['size']}", (x, y), xytext=(6, 4),
                        textcoords="offset points", fontsize=8)  # fmt: skip
        fps = [p[0] for p in pts]
        if max(fps) / max(min(fps), 1e-9) > 8:
            ax.set_xscale("log")
        ax.set_xlabel("frames per second (1 / median latency; higher is better)")
        ax.set_ylabel(f"homography accuracy at eps={ACCURACY_KEY} px (higher is better)")
        ax.set_ylim(0, min(1.0, max(p[1] for p in pts) + 0.15))
        ax.grid(alpha=0.3)
        for m in models:
            ax.scatter([], [], color=colours[m], marker="o", label=f"model {m}")
        for v in variants:
            ax.scatter([], [], color="white", edgecolor="black", marker=markers[v], label=v)
        ax.legend(fontsize=8, loc="lower left")
        ax.set_title(f"Accuracy against speed, {_title(metrics)}", fontsize=10)
    else:
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
        labels = [f"{r['model']} {r['variant']} {r['size']}" for r in rows]
        ax.barh(range(len(rows)), [r["fps"] for r in rows],
                color=[colours[r["model"]] for r in rows])  # fmt: skip
        for i, r in enumerate(rows):
            ax.text(r["fps"], i, f" {r['fps']:.1f}", va="center", fontsize=8)
        ax.set_yticks(range(len(rows)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("frames per second (1 / median latency)")
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"Speed (no --dataset: no accuracy), {_title(metrics)}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
