"""``superpoint``: the command line of the workstation side.

Every module of this package that defines ``COMMAND``, ``add_arguments(parser)`` and
``run(args) -> int`` is a subcommand, discovered at start-up (so adding a command touches no
other file). A command module imports what it needs at its top, like any module; only the
command named on the line is imported (``superpoint extract`` never loads the training code),
every one for ``superpoint --help``. A command whose optional dependency (torch...) is not
installed is still listed, and running it says in one line what is missing.

:func:`main` is the last line of defence: whatever a command raises ends with one line on
stderr, ``superpoint COMMAND: ...``, and an exit status that says which kind of failure it was
(:data:`EXIT`); the traceback is printed only with ``--debug`` (anywhere on the command line)
or ``SUPERPOINT_DEBUG=1``.

Common flags, valid anywhere on the line for every command: ``--debug`` and ``--quiet`` (no
progress bars; commands read ``args.quiet``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback
from collections.abc import Sequence

from superpoint_ros.errors import SuperPointError

PROG = "superpoint"
DEBUG_ENV = "SUPERPOINT_DEBUG"
REPORT_TO = (
    "please report it (the command and the output of the same command with --debug) on the "
    "issue tracker of the superpoint_ros repository"
)
# Exit status by kind of failure (argparse's usage errors are 2).
EXIT = {
    "ok": 0,
    "input": 1,  # something the user can fix: a file, an option, a model, a missing backend
    "usage": 2,  # the command line itself (argparse)
    "system": 3,  # the machine: permission denied, disk full, out of memory
    "bug": 4,  # anything else: a bug of this project
    "interrupted": 130,  # Ctrl-C
}


def _module_names() -> list[str]:
    package = importlib.import_module("superpoint_training.cli")
    names = (info.name for info in pkgutil.iter_modules(package.__path__))
    return sorted(n for n in names if not n.startswith("_") and n != "main")


class _Unavailable:
    """A command whose module could not be imported for want of an optional dependency."""

    def __init__(self, name: str, missing: str) -> None:
        self.COMMAND = name.replace("_", "-")
        self.__doc__ = f"(unavailable here: needs the Python package {missing!r})"
        self.missing = missing

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def run(self, args: argparse.Namespace) -> int:
        raise SuperPointError(
            f"this command needs the Python package {self.missing!r}, which is not installed "
            "(pip install -e '.[train]', see the README's Install section)"
        )


def _import_command(name: str):
    try:
        return importlib.import_module(f"superpoint_training.cli.{name}")
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if not top or top in ("superpoint_ros", "superpoint_training"):
            raise
        return _Unavailable(name, top)


def _subcommand_modules(argv: Sequence[str] = ()):
    """The command modules: only the one named by the first word of ``argv`` when it names
    one, else all of them (for help and for argparse's list of valid commands)."""
    names = _module_names()
    word = next((a for a in argv if not a.startswith("-")), "")
    chosen = word.replace("-", "_")
    if chosen in names:
        module = _import_command(chosen)
        if getattr(module, "COMMAND", None) == word:
            yield module
            return
    for name in names:
        module = _import_command(name)
        if hasattr(module, "COMMAND"):
            yield module


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser of ``superpoint``; with ``argv``, only the command it names is loaded."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="SuperPoint: extract, export, benchmark, train and evaluate.",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"print the traceback of an unexpected error (or {DEBUG_ENV}=1); valid anywhere",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars, for every command; valid anywhere"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in _subcommand_modules(argv):
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


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure is one line on stderr and an :data:`EXIT` status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    quiet = "--quiet" in argv
    common = ("--debug", "--quiet")  # valid anywhere, for every command
    argv = [a for a in argv if a not in common]
    args = build_parser(argv).parse_args(argv)
    args.quiet = quiet
    name = f"{PROG} {args.command}"

    def fail(kind: str, text: str) -> int:
        if debug:
            traceback.print_exc()
        print(f"{name}: {text}", file=sys.stderr)
        return EXIT[kind]

    try:
        return int(args._run(args) or 0)
    except SuperPointError as exc:
        return fail("input", f"error: {_one_line(exc)}")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return fail("input", f"error: {exc.strerror or _one_line(exc)}{where}")
    except KeyboardInterrupt:
        return fail("interrupted", "interrupted")
    except MemoryError:
        return fail("system", "error: out of memory (try smaller images or --resize)")
    except OSError as exc:  # permissions, a full disk, a device error: the machine, not the input
        where = f": {exc.filename}" if exc.filename else ""
        return fail("system", f"error: {exc.strerror or _one_line(exc)}{where}")
    except Exception as exc:  # the last line of defence: a bug
        hint = "" if debug else "; run it again with --debug for the traceback"
        return fail(
            "bug",
            f"internal error: {type(exc).__name__}: {_one_line(exc)[:300]}; this is a bug, "
            f"{REPORT_TO}{hint}",
        )


if __name__ == "__main__":
    sys.exit(main())
