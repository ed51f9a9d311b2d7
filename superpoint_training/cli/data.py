"""Fetch benchmark datasets.

Examples:
  superpoint data download hpatches ~/datasets
  superpoint data download hpatches ~/datasets --sha256 <64 hex digits> --keep-archive
  superpoint data download hpatches ~/datasets --url http://mirror.example/hpatches.tar.gz

The download resumes where it stopped (run the same command again after an interruption),
checks the announced size and, with --sha256, the checksum, and unpacks safely into DEST.
"""

from __future__ import annotations

import argparse

from superpoint_training.evaluation.datasets import find_sequences
from superpoint_training.evaluation.download import DATASETS, download_dataset

COMMAND = "data"


def add_arguments(parser: argparse.ArgumentParser) -> None:

    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True
    dl = sub.add_parser(
        "download",
        help="download and unpack a dataset",
        description="Download and unpack a dataset: "
        + "; ".join(f"{k}: {v.description} ({v.url})" for k, v in DATASETS.items()),
    )
    dl.add_argument("name", choices=sorted(DATASETS), help="dataset to fetch")
    dl.add_argument("dest", metavar="DEST", help="folder to download and unpack into")
    dl.add_argument("--url", help="download from this URL instead (a mirror)")
    dl.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the archive")
    dl.add_argument("--size", type=int, metavar="BYTES", help="expected archive size in bytes")
    dl.add_argument(
        "--keep-archive", action="store_true", help="keep the .tar.gz after unpacking it"
    )
    dl.add_argument(
        "--retries",
        type=int,
        default=3,
        help="resume attempts after a dropped connection within one run (default: 3)",
    )
    dl.add_argument(
        "--timeout", type=float, default=60.0, help="network timeout in seconds (default: 60)"
    )
    dl.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:

    folder = download_dataset(
        args.name,
        args.dest,
        url=args.url,
        sha256=args.sha256,
        size=args.size,
        keep_archive=args.keep_archive,
        retries=args.retries,
        timeout=args.timeout,
        progress=not args.quiet,
    )
    seqs = find_sequences(folder)
    kinds = {k: sum(s.kind == k for s in seqs) for k in ("illumination", "viewpoint")}
    print(
        f"{args.name}: {len(seqs)} sequences ({kinds['illumination']} illumination, "
        f"{kinds['viewpoint']} viewpoint) in {folder}"
    )
    print(f"evaluate with: superpoint evaluate --dataset {folder} --method sift -o REPORT_DIR")
    return 0
