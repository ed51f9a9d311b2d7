"""Evaluate models and baselines on HPatches/Oxford sequences with the pinned protocol.

Examples:
  superpoint evaluate --dataset hpatches-sequences-release --method sift --method orb \\
      --method cpu_run=runs/sp/checkpoint_last.pt --method superpoint.onnx -o reports/hpatches
  superpoint evaluate --dataset ../shared/data/oxford_affine --method sift -o /tmp/r \\
      --set hom_size=240x320 --set eps=1,3,5,10

Writes REPORT_DIR/metrics.json, REPORT_DIR/report.md and PNG plots; extractions are cached in
REPORT_DIR/cache (keyed by method and protocol), so adding a method re-runs only that one.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from superpoint_ros.backends import backend_choices  # light: no backend library imported
from superpoint_ros.errors import ConfigError
from superpoint_training.evaluation.pipeline import evaluate
from superpoint_training.evaluation.protocol import Protocol
from superpoint_training.evaluation.report import summary_table
from superpoint_training.evaluation.results import SEQUENCE_GROUPS

COMMAND = "evaluate"
_NAME = re.compile(r"[A-Za-z0-9_.+-]+")


def parse_methods(specs: list[str]) -> tuple[list[str], list[str | None]]:
    """``--method`` values: ``sift``, ``PATH`` or ``NAME=PATH`` (the name the report shows;
    by default a file's stem, so every training run would be "checkpoint_last"). Returns the
    specs and the names given (``None``: the default). A file whose own name holds ``=`` is
    taken as a path."""
    out: list[str] = []
    names: list[str | None] = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if sep and _NAME.fullmatch(name) and path and not Path(spec).exists():
            out.append(path)
            names.append(name)
        elif sep and not Path(spec).exists():
            raise ConfigError(
                f"--method {spec!r}: NAME=PATH needs a name of letters, digits, '_', '-', '.', "
                "'+' and a path"
            )
        else:
            out.append(spec)
            names.append(None)
    given = [n for n in names if n is not None]
    twice = sorted({n for n in given if given.count(n) > 1})
    if twice:
        raise ConfigError(f"--method names must differ: {', '.join(twice)} given twice")
    return out, names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        action="append",
        metavar="DIR",
        help="a sequence folder (HPatches 1..6.ppm + H_1_N, or Oxford img1..6 + H1toNp) or a "
        "folder of them; repeat to combine several",
    )
    parser.add_argument(
        "--method",
        action="append",
        metavar="M",
        help="sift, orb, a weights file (.pt/.pth/.tar) or an exported .onnx, optionally "
        "named in the report as NAME=PATH (default: the file's stem); repeat",
    )
    parser.add_argument(
        "-o", "--output", metavar="REPORT_DIR", help="report folder (created; required)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a protocol field, e.g. --set rep_size=480x640 --set eps=1,3,5 "
        "(see --show-protocol)",
    )
    parser.add_argument(
        "--show-protocol",
        action="store_true",
        help="print the resolved protocol as JSON and exit",
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=backend_choices(),
        help="inference backend for SuperPoint models (default: auto)",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="extraction cache (default: REPORT_DIR/cache)",
    )
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write a cache")
    parser.add_argument(
        "--match-pair",
        type=int,
        metavar="N",
        help="image drawn against the reference in the match figures (default: middle target)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    protocol = Protocol().with_overrides(args.set)
    if args.show_protocol:
        print(json.dumps({**protocol.to_dict(), "key": protocol.key()}, indent=2))
        return 0
    missing = [
        opt
        for opt, value in (
            ("--dataset", args.dataset),
            ("--method", args.method),
            ("-o", args.output),
        )
        if not value
    ]
    if missing:
        raise ConfigError(f"evaluate needs {', '.join(missing)} (see superpoint evaluate -h)")
    cache = None if args.no_cache else (args.cache_dir or "default")
    specs, given = parse_methods(args.method)
    report = evaluate(
        args.dataset,
        specs,
        args.output,
        protocol=protocol,
        cache_dir=cache,
        backend=args.backend,
        plot_target=args.match_pair,
        plots=not args.no_plots,
        progress=not args.quiet,
        names=given,
    )
    for group in SEQUENCE_GROUPS:
        if any(group in m["splits"] for m in report["methods"].values()):
            print(f"\n{group}:\n{summary_table(report, group)}")
    print(f"\nreport: {args.output}/report.md, metrics: {args.output}/metrics.json")
    return 0
