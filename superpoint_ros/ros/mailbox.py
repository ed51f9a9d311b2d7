"""The node's one-slot hand-over from the subscription callback to the worker thread (no rclpy).

Latency never builds up: the callback only drops the newest message into the slot; the worker
takes whatever is there when it is free. A message replaced before the worker took it is a
dropped frame (``put`` says so, the node counts it).
"""

from __future__ import annotations

import threading
from typing import Any


class Mailbox:
    """One slot: ``put`` replaces what the consumer has not taken yet (newest frame wins)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False

    def put(self, item: Any) -> bool:
        """Store ``item``; True when it replaced an item nobody took (a dropped frame)."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self._cond.notify()
        return replaced

    def take(self, timeout: float) -> Any:
        """The stored item (emptying the slot), or None after ``timeout`` s or when closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake a waiting ``take`` (it returns None) and make later waits return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
