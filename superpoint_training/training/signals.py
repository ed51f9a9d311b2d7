"""Stop signals during training: Ctrl-C and SIGTERM stop the loop after the step in progress
(a checkpoint is written first); DataLoader workers are born ignoring them, so a signal sent to
the whole process group never kills a worker mid-start."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing import resource_tracker
from typing import Any


class StopRequests:
    """Ctrl-C (SIGINT) and ``kill`` (SIGTERM) during ``fit``: the first one asks the loop to
    stop after the step in progress (then checkpoint and exit), so a checkpoint never holds a
    half-done step (its random draws already made, say); a second one interrupts at once,
    without a checkpoint. Handlers are installed only in the main thread and restored after.
    ``echo_s`` (DDP): a second signal this soon after the first is ignored, as it is the
    launcher passing on the Ctrl-C the terminal already sent to every process."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, echo_s: float = 0.0) -> None:
        self.signum: int | None = None
        self.echo_s = echo_s
        self._first = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            if time.monotonic() - self._first < self.echo_s:
                return
            raise KeyboardInterrupt
        self.signum = signum
        self._first = time.monotonic()

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def stop_signals_blocked(spawns: bool = True) -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread while DataLoader workers start: a child inherits
    the mask, so a signal sent to the whole process group (Ctrl-C, ``timeout``, a batch
    scheduler, ``kill -- -PGID``) while it starts up stays pending there until
    :class:`WorkerInit` ignores it, instead of killing the worker (whose death then ends the
    trainer with a traceback and no checkpoint). Here the signal is delivered when the block
    ends. (Python's multiprocessing resource tracker starts the same way; with ``spawns``, new
    interpreters to start, it is started first here, as starting it unblocks both signals in
    this thread.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if spawns:
        resource_tracker.ensure_running()
    stop = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class WorkerInit:
    """DataLoader ``worker_init_fn``: workers ignore Ctrl-C and SIGTERM (a terminal, ``timeout``
    or a scheduler sends them to the whole process group; the trainer decides when to stop and
    shuts its workers down itself; a worker whose trainer died exits on its own, torch's
    watchdog sees the parent gone), then run the dataset's own init."""

    def __init__(self, fn: Callable[[int], None] | None):
        self.fn = fn

    def __call__(self, worker_id: int) -> None:
        stop = {signal.SIGINT, signal.SIGTERM}
        for sig in stop:
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop)  # pending ones are now discarded
        if self.fn is not None:
            self.fn(worker_id)
