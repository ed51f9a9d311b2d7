"""The node's statistics: counters, recent timings, and what ``/diagnostics`` and the periodic
log line say about them (no rclpy; the node publishes and logs the results).

Thread-safe: the executor's callback counts arrivals, the worker counts processed frames, the
executor's timers read windows.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

# Counts since start, reported in /diagnostics and the log line.
COUNTERS = ("received", "processed", "dropped", "bad_inputs", "errors", "track_resets",
            "debug_images")  # fmt: skip


class Stats:
    """Counters and recent timings, shared by the worker and the executor's timers.

    ``clock`` (monotonic seconds) is injectable so tests can step time by hand.
    """

    def __init__(self, keep: int = 20000, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.start = clock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._received: collections.deque[float] = collections.deque(maxlen=keep)  # arrivals
        # (end time, processing s, front-end s, keypoints, matches)
        self._processed: collections.deque[tuple[float, float, float, int, int]] = (
            collections.deque(maxlen=keep)
        )
        self._seen: dict[str, dict[str, int]] = {}  # reader -> counts at its last look

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def frame_received(self) -> None:
        """An image arrived (counted in ``received`` and the input rate)."""
        now = self._clock()
        with self._lock:
            self._counts["received"] += 1
            self._received.append(now)

    def frame_processed(
        self, processing_s: float, frontend_s: float, keypoints: int, matches: int
    ) -> None:
        """A frame went through (counted in ``processed``, the output rate and the timings)."""
        now = self._clock()
        with self._lock:
            self._counts["processed"] += 1
            self._processed.append((now, processing_s, frontend_s, keypoints, matches))

    def window(self, seconds: float) -> dict[str, float]:
        """Rates and timings over the last ``seconds`` (or since start, if shorter), and every
        counter of :data:`COUNTERS` since start."""
        now = self._clock()
        span = max(1e-6, min(seconds, now - self.start))
        with self._lock:
            received = sum(1 for t in self._received if t > now - span)
            done = [p for p in self._processed if p[0] > now - span]
            counts = dict(self._counts)
        out: dict[str, float] = {
            "input_rate_hz": received / span,
            "output_rate_hz": len(done) / span,
        }
        if done:
            proc = np.array([p[1] for p in done]) * 1e3
            front = np.array([p[2] for p in done]) * 1e3
            out.update(
                processing_ms_mean=float(proc.mean()),
                processing_ms_p95=float(np.percentile(proc, 95)),
                processing_ms_max=float(proc.max()),
                frontend_ms_mean=float(front.mean()),
                keypoints_mean=float(np.mean([p[3] for p in done])),
                matches_mean=float(np.mean([p[4] for p in done])),
            )
        for name in COUNTERS:
            out[name] = counts.get(name, 0)
        return out

    def new_since_last_look(
        self, reader: str, window: Mapping[str, float], names: Sequence[str]
    ) -> dict[str, int]:
        """How much each counter of ``names`` grew since ``reader`` last asked (``window`` from
        :meth:`window`); each reader (diagnostics, the log line) keeps its own last look."""
        seen = self._seen.setdefault(reader, {})
        new = {n: int(window[n]) - seen.get(n, 0) for n in names}
        seen.update({n: int(window[n]) for n in names})
        return new


def health(
    window: Mapping[str, float],
    new: Mapping[str, int],
    input_publishers: int,
    last_track_reset: str,
) -> tuple[str, str]:
    """``(level, message)`` of the node's ``/diagnostics`` status; level ``ok``, ``warn`` or
    ``error``. ``new``: counts of ``errors``, ``bad_inputs`` and ``track_resets`` since the last
    status. Failed frames are an error, bad inputs and a shared input topic a warning; track
    resets are named in an ``ok`` message (a camera switch is not a fault)."""
    if new["errors"]:
        level, message = "error", f"{new['errors']} frames failed"
    elif new["bad_inputs"]:
        level, message = "warn", f"{new['bad_inputs']} bad input frames"
    elif input_publishers > 1:
        level, message = "warn", f"{input_publishers} publishers on the image topic"
    elif window["received"] == 0:
        level, message = "ok", "waiting for images"
    else:
        level, message = "ok", "ok"
    if new["track_resets"] and level == "ok":
        message += f"; {new['track_resets']} track resets ({last_track_reset})"
    return level, message


def log_line(window: Mapping[str, float], new_dropped: int) -> str:
    """The periodic statistics line: rates, timings, counts (``new_dropped`` since the last)."""
    w = window
    timing = (
        f"processing {w['processing_ms_mean']:.1f} ms mean / {w['processing_ms_p95']:.1f} "
        f"p95 (front-end {w['frontend_ms_mean']:.1f}), {w['keypoints_mean']:.0f} keypoints, "
        f"{w['matches_mean']:.0f} matches"
        if "processing_ms_mean" in w
        else "nothing processed"
    )
    return (
        f"in {w['input_rate_hz']:.1f} Hz, out {w['output_rate_hz']:.1f} Hz, {timing}; "
        f"dropped {new_dropped} (total {w['dropped']}), bad inputs {w['bad_inputs']}, "
        f"errors {w['errors']}, track resets {w['track_resets']}"
    )
