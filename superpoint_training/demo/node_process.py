"""The real ``superpoint_node``, started as a child process for the demo and stopped after it.

It runs exactly as a user starts it (the ``superpoint_node`` console script with ``--ros-args``),
in its own namespace so the demo's topics never meet a robot's, with its log in a file.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from superpoint_ros.errors import SuperPointError

NODE_NAME = "superpoint_node"


def node_command() -> list[str]:
    """The ``superpoint_node`` console script beside this Python (a venv), else on ``PATH``,
    else the module run by this Python (same code, same entry point)."""
    local = Path(sys.executable).parent / NODE_NAME
    if local.is_file():
        return [str(local)]
    found = shutil.which(NODE_NAME)
    return [found] if found else [sys.executable, "-m", "superpoint_ros.ros.superpoint_node"]


def ros_arguments(namespace: str, image_topic: str, params: Mapping[str, object]) -> list[str]:
    """``--ros-args`` putting the node in ``namespace``, its ``image`` input on
    ``image_topic``, and ``-p name:=value`` per parameter (booleans as YAML's true/false)."""
    out = ["--ros-args", "-r", f"__ns:={namespace}", "-r", f"image:={image_topic}"]
    for name, value in params.items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out += ["-p", f"{name}:={text}"]
    return out


class NodeProcess:
    """``superpoint_node`` running with ``ros_arguments(...)``, stdout and stderr in ``log``."""

    def __init__(self, log: Path, namespace: str, image_topic: str,
                 params: Mapping[str, object]) -> None:  # fmt: skip
        self.log = log
        self.command = node_command() + ros_arguments(namespace, image_topic, params)
        self._file = open(log, "w")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            self.proc = subprocess.Popen(
                self.command, stdout=self._file, stderr=subprocess.STDOUT, env=env
            )
        except OSError as exc:
            self._file.close()
            raise SuperPointError(f"cannot start {self.command[0]}: {exc.strerror}") from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def failure(self) -> str:
        """The line of the log that says why the node stopped (its fatal line, else the last)."""
        lines = [ln.strip() for ln in self.log.read_text(errors="replace").splitlines()]
        lines = [ln for ln in lines if ln]
        fatal = [ln for ln in lines if "cannot start" in ln or "FATAL" in ln]
        return (fatal or lines or ["(no output)"])[-1]

    def stop(self, timeout: float = 15.0) -> int | None:
        """Ctrl-C the node (its clean shutdown path), kill it after ``timeout`` s; its exit
        status (None if it had to be killed)."""
        try:
            if self.alive():
                self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        finally:
            self._file.close()
