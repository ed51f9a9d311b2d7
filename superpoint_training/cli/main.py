"""``superpoint``: the command line of the workstation side.

Every module of this package that defines ``COMMAND``, ``add_arguments(parser)`` and
``run(args) -> int`` is a subcommand, discovered at start-up (so adding a command touches no
other file). Modules import their heavy dependencies (torch, onnxruntime...) inside ``run``.
Errors a user can cause (``SuperPointError``, missing files) end with one line and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from superpoint_ros.errors import SuperPointError

PROG = "superpoint"


def _subcommand_modules():
    package = importlib.import_module("superpoint_training.cli")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"superpoint_training.cli.{info.name}")
        if hasattr(module, "COMMAND"):
            yield module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="SuperPoint: extract, export, benchmark, train and evaluate.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in _subcommand_modules():
        doc = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(
            module.COMMAND,
            help=doc[0] if doc else None,
            description=(module.__doc__ or "").strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except SuperPointError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"{PROG}: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
