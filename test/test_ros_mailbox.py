"""``superpoint_ros.ros.mailbox``: the node's one-slot hand-over, without rclpy."""

from __future__ import annotations

import threading
import time

from superpoint_ros.ros.mailbox import Mailbox


def test_mailbox_keeps_only_the_newest():
    box = Mailbox()
    assert box.put("a") is False
    assert box.put("b") is True  # "a" was never taken: dropped
    assert box.take(0.01) == "b"
    assert box.take(0.01) is None
    box.close()
    assert box.take(5.0) is None  # closed: returns at once


def test_a_waiting_take_wakes_on_put_and_on_close():
    box = Mailbox()
    got: list = []
    taker = threading.Thread(target=lambda: got.append(box.take(60.0)))
    taker.start()
    time.sleep(0.05)
    box.put("frame")
    taker.join(60.0)
    assert got == ["frame"]
    waiter = threading.Thread(target=lambda: got.append(box.take(60.0)))
    waiter.start()
    time.sleep(0.05)
    box.close()
    waiter.join(60.0)
    assert not waiter.is_alive() and got == ["frame", None]
