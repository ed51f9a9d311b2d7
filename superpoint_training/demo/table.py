"""The demo's table as text: the summary printed at the end of ``make demo`` (and written to
the report as Markdown), and the per-frame table of the report (pure string formatting)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .metrics import CORRECT_PX, EPIPOLAR_PX, TRACK_LENGTHS


def _num(value: float | None, fmt: str = ".0f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{unit}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def summary_rows(s: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(figure, value)`` rows of the summary ``metrics.summarise`` returns."""
    rows = [
        ("keypoints per frame", f"mean {_num(s['keypoints_mean'])}, "
                                f"min {_num(s['keypoints_min'], 'd')}"),
        ("matches per frame", f"mean {_num(s['matches_mean'])}, "
                              f"min {_num(s['matches_min'], 'd')} (with the previous "
                              "processed frame)"),
    ]  # fmt: skip
    if "correct_ratio" in s:
        rows += [
            ("correct matches", f"{_pct(s['correct_ratio'])} within {CORRECT_PX:g} px of the "
                                "ground truth"),
            ("homography", f"{_pct(s['homography_correct_ratio'])} of frame pairs within "
                           f"{CORRECT_PX:g} px (median corner error "
                           f"{_num(s['homography_error_px_median'], '.2f', ' px')})"),
        ]  # fmt: skip
    else:
        rows.append(("correct matches", "n/a (no ground truth for these frames)"))
    epipolar = f"(RANSAC fundamental matrix, {EPIPOLAR_PX:g} px)"
    rows.append(
        ("epipolar inliers", f"{_pct(s['epipolar_inlier_ratio'])} of the matches {epipolar}")
    )
    longer = ", ".join(f">={n}: {s[f'tracks_ge_{n}']}" for n in TRACK_LENGTHS)
    rows.append(("points followed", f"over {longer} frames (longest {s['track_length_max']}; "
                                    f"{s['tracks']} tracks)"))  # fmt: skip
    if s.get("long_tracks_consistent_ratio") is not None:
        rows.append((
            "tracks on target", f"{_pct(s['long_tracks_consistent_ratio'])} of those over "
            f">={TRACK_LENGTHS[0]} frames end within {CORRECT_PX:g} px of their start's ground "
            "truth",
        ))  # fmt: skip
    rows += [
        ("latency", f"p50 {_num(s['latency_ms_p50'], '.0f', ' ms')}, "
                    f"p95 {_num(s['latency_ms_p95'], '.0f', ' ms')} (publish -> ~/features)"),
        ("processed", f"{_num(s['processed_fps'], '.1f')} frames/s"),
        ("dropped", f"{s['frames_dropped']} of {s['frames_published']} frames (the node keeps "
                    "only the newest)"),
    ]  # fmt: skip
    return rows


def render_summary(s: Mapping[str, Any], title: str) -> str:
    """The summary as aligned plain text under ``title`` (for the terminal)."""
    rows = summary_rows(s)
    width = max(len(k) for k, _ in rows)
    return "\n".join([title] + [f"  {k:<{width}}  {v}" for k, v in rows])


def summary_markdown(s: Mapping[str, Any]) -> str:
    """The summary as a Markdown table."""
    lines = ["| figure | value |", "|---|---|"]
    return "\n".join(lines + [f"| {k} | {v} |" for k, v in summary_rows(s)])


def frames_markdown(rows: list[Mapping[str, Any]]) -> str:
    """One Markdown line per published frame (``metrics.frame_rows``)."""
    head = ["| frame | keypoints | matches | vs frame | correct | homography error (px) "
            "| latency (ms) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    out = []
    for r in rows:
        if not r["answered"]:
            out.append(f"| {r['frame']} | dropped | | | | | |")
            continue
        out.append(
            f"| {r['frame']} | {r['keypoints']} | {_blank(r['matches'])} "
            f"| {_blank(r['previous'])} | {_blank(r['correct_ratio'], _pct)} "
            f"| {_blank(r['homography_error_px'], lambda v: f'{v:.2f}')} "
            f"| {r['latency_ms']:.0f} |"
        )
    return "\n".join(head + out)


def _blank(value: Any, fmt=str) -> str:
    return "" if value is None else fmt(value)
