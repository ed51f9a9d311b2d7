"""The matrix's picture: homography accuracy at eps=3 against FPS, one labelled point per row
that ran (colour = model, marker = variant, the label = variant and size), the rows no other
row beats on both axes joined by a dashed line. Without accuracy (no ``--dataset``): FPS bars,
one per row."""

from __future__ import annotations

import importlib.util
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


LABEL_SIZE = 8  # pt


def label_offsets(
    ax: Any, points: list[tuple[float, float]], labels: list[str]
) -> list[tuple[float, float]]:
    """Offsets (points) of each label from its point such that no two labels overlap (greedy,
    in the order given): beside the point, to its left in the right 40% of the axes, moved up
    or down in steps of a line where it would cover a label already placed."""
    scale = ax.figure.dpi / 72.0  # pixels per point
    x_lo, x_hi = ax.transAxes.transform((0, 0))[0], ax.transAxes.transform((1, 0))[0]
    placed: list[tuple[float, float, float, float]] = []
    out = []
    steps = [0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6]
    for (x, y), text in zip(points, labels):
        px, py = ax.transData.transform((x, y))
        width = len(text) * LABEL_SIZE * 0.6 * scale
        height = LABEL_SIZE * 1.25 * scale
        left = (px - x_lo) / max(x_hi - x_lo, 1.0) > 0.6
        dx = -6.0 if left else 6.0
        for k in steps:
            dy = 4.0 + k * LABEL_SIZE * 1.3
            x0 = px + dx * scale - (width if left else 0.0)
            y0 = py + dy * scale
            box = (x0, x0 + width, y0, y0 + height)
            if not any(box[0] < b[1] and b[0] < box[1] and box[2] < b[3] and b[2] < box[3]
                       for b in placed):  # fmt: skip
                break
        placed.append(box)
        out.append((dx, dy))
    return out


def plot_unavailable_reason() -> str | None:
    """None when the plot can be drawn here (matplotlib installed), else why not."""
    if importlib.util.find_spec("matplotlib") is None:
        return "no plot: matplotlib is not installed (pip install matplotlib)"
    return None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker as ticker

    return plt, ticker


def _title(metrics: dict[str, Any]) -> str:
    m = metrics["machine"]
    if m.get("gpu"):
        mode = m.get("jetson_power_mode")
        return str(m["gpu"]) + (f", {mode}" if mode else "")
    cores = str(m.get("cores") or "?").split(" / ")[0]
    return f"{m.get('cpu') or 'this machine'} ({cores} cores)"


def write_plot(metrics: dict[str, Any], path: str | Path) -> Path | None:
    """Draw the rows that ran into ``path`` (PNG); None when no row ran or matplotlib is
    missing (:func:`plot_unavailable_reason`)."""
    rows = [r for r in metrics["rows"] if r["status"] == "ok"]
    if not rows or plot_unavailable_reason():
        return None
    plt, ticker = _pyplot()
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
        fps = [p[0] for p in pts]
        log = max(fps) / max(min(fps), 1e-9) > 8
        if log:
            ax.set_xscale("log")
            ax.set_xlim(min(fps) / 1.5, max(fps) * 1.5)
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        else:
            ax.set_xlim(0, max(fps) * 1.15)
        ax.set_xlabel("frames per second (1 / median latency; higher is better)")
        ax.set_ylabel(f"homography accuracy at eps={ACCURACY_KEY} px (higher is better)")
        ax.set_ylim(0, min(1.05, max(p[1] for p in pts) + 0.15))
        labels = [f"{r['model']} {r['variant']} {r['size']}" for r in scored]
        for r, (x, y), text, offset in zip(scored, pts, labels, label_offsets(ax, pts, labels)):
            ax.scatter(x, y, s=70, color=colours[r["model"]], marker=markers[r["variant"]],
                       edgecolor="black", linewidth=0.5, zorder=3)  # fmt: skip
            ax.annotate(text, (x, y), xytext=offset, textcoords="offset points",
                        ha="right" if offset[0] < 0 else "left", fontsize=LABEL_SIZE,
                        arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})  # fmt: skip
        ax.grid(alpha=0.3)
        for m in models:
            ax.scatter([], [], color=colours[m], marker="o", label=f"model {m}")
        for v in variants:
            ax.scatter([], [], color="white", edgecolor="black", marker=markers[v], label=v)
        ax.legend(fontsize=8, loc="best")
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
