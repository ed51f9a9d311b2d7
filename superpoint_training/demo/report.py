"""The demo's report folder: pictures, plots, the table, and a page that shows them.

``index.html`` (open it in a browser), ``summary.md`` (the table and one line per frame),
``metrics.json`` (every figure, machine-readable), ``matches_<frame>.png`` (a few frames and the
frame the node matched them with: correct matches green, wrong red, or all green without
ground truth), ``tracks.png`` (the last processed frame with the path of every track still
alive there), ``plots.png`` (per-frame keypoints, matches, correctness, latency; track lengths).
"""

from __future__ import annotations

import html
import json
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import matplotlib
import numpy as np

from superpoint_ros.visualize import GREEN, RED, draw_matches

from .metrics import (
    CORRECT_PX,
    TRACK_LENGTHS,
    FrameRecord,
    Track,
    correct_matches,
    pair_homography,
    track_drift,
)
from .table import frames_markdown, summary_markdown

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402

MATCH_PICTURES = 3  # frames drawn with their matches: first, middle, last matched frame


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    """``text`` in white on a black band at the top of ``image`` (in place)."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    (w, h), base = cv2.getTextSize(text, font, scale, 1)
    cv2.rectangle(image, (0, 0), (w + 12, h + base + 10), (0, 0, 0), -1)
    cv2.putText(image, text, (6, h + 5), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def draw_frame_matches(
    image0: np.ndarray, image1: np.ndarray, rec0: FrameRecord, rec1: FrameRecord,
    H_0to: list[np.ndarray] | None,
) -> np.ndarray:  # fmt: skip
    """Frames ``rec0`` and ``rec1`` side by side with the node's matches between them."""
    m = rec1.matches
    correct = None
    if H_0to is not None and len(m["matches"]):
        H = pair_homography(H_0to, rec0.index, rec1.index)
        correct = correct_matches(m["kpts0"], m["kpts1"], H)
    canvas = draw_matches(image0, image1, rec0.features["keypoints"], rec1.features["keypoints"],
                          m["matches"], correct)  # fmt: skip
    text = f"frame {rec0.index} -> {rec1.index}: {len(m['matches'])} matches"
    if correct is not None:
        text += f", {int(correct.sum())} correct (green)"
    return _caption(canvas, text)


def draw_tracks(
    image: np.ndarray, last: FrameRecord, tracks: dict[int, Track],
    H_0to: list[np.ndarray] | None, min_span: int = TRACK_LENGTHS[0],
) -> np.ndarray:  # fmt: skip
    """``image`` (the last processed frame, dimmed to grey) with the path of every track seen
    in it that was followed over at least ``min_span`` frames. Each step of a path is green when
    it follows the same scene point (within ``CORRECT_PX`` of the ground truth; without ground
    truth: an epipolar inlier of its frame pair), red when the match jumped elsewhere."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    out = cv2.cvtColor((gray * 0.6).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    alive = [t for t in tracks.values() if t.frames[-1] == last.index and t.span >= min_span]
    wrong_steps = 0
    for track in alive:
        pts = np.array(track.points, np.float32)
        if H_0to is not None:
            ok = [
                correct_matches(pts[k : k + 1], pts[k + 1 : k + 2],
                                pair_homography(H_0to, track.frames[k], track.frames[k + 1]))[0]
                for k in range(len(pts) - 1)
            ]  # fmt: skip
        else:
            ok = track.inliers
        wrong_steps += len(ok) - int(sum(ok))
        ends = np.round(pts).astype(np.int32)
        for k, good in enumerate(ok):
            cv2.line(out, tuple(map(int, ends[k])), tuple(map(int, ends[k + 1])),
                     GREEN if good else RED, 1, cv2.LINE_AA)  # fmt: skip
        cv2.circle(out, tuple(map(int, ends[-1])), 2, GREEN, -1, cv2.LINE_AA)
    check = "off the ground truth" if H_0to is not None else "epipolar outliers"
    text = (f"frame {last.index}: {len(alive)} points followed over >= {min_span} frames; "
            f"steps {check} in red ({wrong_steps})")  # fmt: skip
    return _caption(out, text)


def plot_figure(rows: list[dict[str, Any]], tracks: dict[int, Track], path: Path) -> None:
    """Four panels: keypoints and matches per frame; correct-match ratio and homography error;
    latency; the distribution of track lengths."""
    frames = np.array([r["frame"] for r in rows])
    done = np.array([r["answered"] for r in rows])

    def series(key: str) -> np.ndarray:
        return np.array([np.nan if r[key] is None else r[key] for r in rows], np.float64)

    fig, ax = plt.subplots(2, 2, figsize=(11, 7))
    a = ax[0, 0]
    a.plot(frames[done], series("keypoints")[done], ".-", label="keypoints")
    a.plot(frames[done], series("matches")[done], ".-", label="matches")
    if (~done).any():
        a.plot(frames[~done], np.zeros((~done).sum()), "rx", label="dropped")
    a.set(xlabel="frame", ylabel="count", title="keypoints and matches per frame")
    a.legend()
    a = ax[0, 1]
    ratio = series("correct_ratio")
    if np.isfinite(ratio).any():
        a.plot(frames[done], 100 * ratio[done], ".-", color="tab:green")
        a.set(ylim=(0, 100), ylabel="% correct", xlabel="frame",
              title=f"correct within {CORRECT_PX:g} px; homography corner error")  # fmt: skip
        b = a.twinx()
        b.plot(frames, series("homography_error_px"), ".", color="tab:purple")
        b.set_ylabel("corner error (px)", color="tab:purple")
        b.set_yscale("log")
    else:
        a.text(0.5, 0.5, "no ground truth", ha="center", transform=a.transAxes)
        a.set_axis_off()
    a = ax[1, 0]
    a.plot(frames[done], series("latency_ms")[done], ".-", color="tab:orange")
    a.set(xlabel="frame", ylabel="ms", title="latency: publish -> ~/features")
    a = ax[1, 1]
    lengths = np.array([t.span for t in tracks.values()], np.int64)
    if len(lengths):
        a.hist(lengths, bins=np.arange(2, lengths.max() + 2) - 0.5, color="tab:blue")
        a.set_yscale("log")
    a.set(xlabel="frames a point was followed over", ylabel="tracks", title="track lengths")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def match_frames(records: list[FrameRecord], count: int = MATCH_PICTURES) -> list[int]:
    """Indices into ``records`` of up to ``count`` answered frames with matches, spread over
    the run (first, middle, last)."""
    with_matches = [k for k, r in enumerate(records) if r.answered and r.matches is not None
                    and len(r.matches["matches"])]  # fmt: skip
    if len(with_matches) <= count:
        return with_matches
    picks = np.linspace(0, len(with_matches) - 1, count).round().astype(int)
    return [with_matches[p] for p in picks]


def write_report(
    folder: Path, title: str, records: list[FrameRecord], rows: list[dict[str, Any]],
    tracks: dict[int, Track], summary: dict[str, Any], frames: list[Path],
    H_0to: list[np.ndarray] | None, details: dict[str, Any],
) -> Path:  # fmt: skip
    """Write the report into ``folder`` (created; older files of the same names replaced);
    returns the path of ``index.html``."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("matches_*.png"):
        old.unlink()
    pictures = []
    answered = [k for k, r in enumerate(records) if r.answered]
    for k in match_frames(records):
        prev = max(j for j in answered if j < k)
        name = f"matches_{records[k].index:04d}.png"
        image = draw_frame_matches(cv2.imread(str(frames[prev])), cv2.imread(str(frames[k])),
                                   records[prev], records[k], H_0to)  # fmt: skip
        cv2.imwrite(str(folder / name), image)
        pictures.append((name, f"frame {records[prev].index} -> {records[k].index}"))
    if answered:
        last = records[answered[-1]]
        cv2.imwrite(
            str(folder / "tracks.png"),
            draw_tracks(cv2.imread(str(frames[answered[-1]])), last, tracks, H_0to),
        )
        pictures.insert(0, ("tracks.png", "tracks over the last processed frame"))
    plot_figure(rows, tracks, folder / "plots.png")
    pictures.append(("plots.png", "per-frame figures and track lengths"))
    summary_md = summary_markdown(summary)
    (folder / "summary.md").write_text(
        f"# {title}\n\n{summary_md}\n\n" + "".join(f"- {k}: {v}\n" for k, v in details.items())
        + f"\n## Frames\n\n{frames_markdown(rows)}\n"
    )  # fmt: skip
    drifts = ({str(t.track_id): track_drift(t, H_0to) for t in tracks.values()
               if t.span >= TRACK_LENGTHS[0]}
              if H_0to is not None else {})  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(
        {"title": title, "summary": summary, "details": details, "frames": rows,
         "track_lengths": sorted((t.span for t in tracks.values()), reverse=True),
         "long_track_drift_px": drifts},
        indent=1, default=float,
    ))  # fmt: skip
    index = folder / "index.html"
    index.write_text(_page(title, summary_md, details, pictures))
    return index


def _page(title: str, summary_md: str, details: dict[str, Any], pictures) -> str:
    rows = [ln.strip("|").split("|") for ln in summary_md.splitlines()[2:]]
    table = "".join(f"<tr><th>{html.escape(k.strip())}</th><td>{html.escape(v.strip())}</td>"
                    "</tr>" for k, v in rows)  # fmt: skip
    facts = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>"
                    for k, v in details.items())  # fmt: skip
    figures = "".join(f'<figure><img src="{n}" alt="{html.escape(c)}"><figcaption>'
                      f"{html.escape(c)}</figcaption></figure>" for n, c in pictures)  # fmt: skip
    return (
        "<!doctype html><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
        "th{text-align:left;padding-right:1em}img{max-width:100%}"
        "figure{margin:1em 0}</style>"
        f"<h1>{html.escape(title)}</h1><table>{table}</table><ul>{facts}</ul>{figures}"
        "<p>Per-frame figures: summary.md; everything: metrics.json.</p>"
    )


def free_port(first: int = 8000, count: int = 100) -> int:
    """The first TCP port from ``first`` that nothing listens on here (0 if none is free)."""
    for port in range(first, first + count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return 0


def open_command(index: Path, environ: Mapping[str, str], platform: str) -> str:
    """The one command that shows ``index``: ``xdg-open``/``open`` where a desktop is
    available, else a local web server on a free port (no display needed) with the address to
    browse."""
    if platform == "darwin":
        return f"open {index}"
    if platform.startswith("win"):
        return f"start {index}"
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return f"xdg-open {index}"
    port = free_port()
    return (
        f"python3 -m http.server {port} --bind 127.0.0.1 --directory {index.parent}   "
        f"# no display here: then browse http://localhost:{port}/ (from your desktop: "
        f"ssh -L {port}:localhost:{port} THIS_MACHINE)"
    )
