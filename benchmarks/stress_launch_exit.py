"""How often does a ``--nproc`` launch end with a process killed at exit, after a successful run?

Each launch starts two gloo processes (``training.distributed.launch``); each builds a
``DistributedDataParallel`` model that a reference cycle keeps alive after the worker function
returns (as a finished ``Trainer`` does), runs three forward/backward passes and returns. A launch
fails when a process ends with a signal instead of its report. Before ``distributed.shutdown``
collected such cycles, the group's gloo threads were torn down with the interpreter and about one
launch in twenty ended with SIGABRT ("terminate called without an active exception"). Usage::

    .venv/bin/python benchmarks/stress_launch_exit.py --launches 50

It prints one line per failed launch and the count, and exits 1 when any failed.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn

from superpoint_training.training import distributed


class _Holder:
    """A DDP model kept alive by a reference cycle (only the garbage collector frees it)."""

    def __init__(self) -> None:
        self.model = distributed.wrap_model(nn.Linear(8, 8), torch.device("cpu"))
        self.me = self


def _work(_: str) -> str:
    holder = _Holder()
    for _ in range(3):
        holder.model(torch.randn(4, 8)).sum().backward()
    return "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=50, help="launches of 2 processes")
    args = parser.parse_args(argv)
    failed = 0
    start = time.perf_counter()
    for i in range(args.launches):
        try:
            distributed.launch(_work, ("",), nproc=2, device="cpu")
        except Exception as exc:  # noqa: BLE001 - counted and printed
            failed += 1
            print(f"launch {i}: {exc}", flush=True)
    wall = time.perf_counter() - start
    print(f"{failed} of {args.launches} launches failed ({wall:.0f} s, "
          f"{wall / max(args.launches, 1):.1f} s a launch)")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
