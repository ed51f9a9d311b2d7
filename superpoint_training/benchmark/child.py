"""The process one matrix combination runs in: ``python -m superpoint_training.benchmark.child
SPEC.json RESULT.json``. A process per combination keeps each one's peak memory its own and a
crash (or a backend that cannot load) confined to its row.

Writes ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": "one line"}``; the exit
status is 0 in both cases (the row records the failure); anything else is a crash.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from superpoint_ros.errors import SuperPointError

from .measure import measure


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m superpoint_training.benchmark.child SPEC.json RESULT.json")
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    try:
        out = {"ok": True, "result": measure(spec)}
    except SuperPointError as exc:
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    Path(argv[1]).write_text(json.dumps(out, allow_nan=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
