"""Export pseudo-labels by homographic adaptation (training step 3).

  superpoint export-labels --weights MAGICPOINT --images DIR [--images DIR2 ...] -o LABELS.h5
      [--num-homographies N] [--batch-size B] [--device D] [--precision P] [--preview PNG]
      [--config config/train/export_labels.yaml] [--nproc N] [key=value ...]
  torchrun --nproc_per_node N [--nnodes M ...] -m superpoint_training export-labels ...

Every image under each DIR (recursively; or listed in a .txt file) is read as grayscale, brought
to 240x320 (aspect kept, centre crop), and labelled with the MagicPoint detector averaged over N
random homographies; the points of all images go into one HDF5 store. Rerunning the same
command resumes a killed export.
Flags are shortcuts for config keys (--num-homographies is adaptation.num_homographies);
``key=value`` overrides any key (e.g. adaptation.detection_threshold=0.02 rounds.num_rounds=2).
--preview draws the labels over the first images into a PNG (alone: from an existing store).
Several processes (one per GPU, or several on the CPU): --nproc N starts them on this machine,
torchrun starts them anywhere (then leave --nproc out); each labels its share into
<output stem>.parts/, rank 0 merges the parts into the output. A killed export resumes with any
number of processes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from superpoint_ros.errors import ConfigError
from superpoint_training.config import load_config, parse_override, to_dict
from superpoint_training.labels.label_export import ExportConfig, save_preview, summary_text
from superpoint_training.labels.ranks import run_export
from superpoint_training.training.distributed import env_info

COMMAND = "export-labels"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "config" / "train" / "export_labels.yaml"
# Fewer points per image than this on average: the detector is not usable yet (a 3-minute
# MagicPoint gave 5 per image; the demo model's labels have 77 per 240x320 image).
FEW_POINTS_PER_IMAGE = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument("--weights", type=Path, help="MagicPoint (detector) weights")
    parser.add_argument(
        "--images", type=Path, required=True, action="append",
        help="folder of images, or a .txt list of image paths; repeat to mix several sources "
        "(names are then prefixed by each folder's name)",
    )  # fmt: skip
    parser.add_argument("-o", "--output", type=Path, required=True, help="label store (.h5)")
    parser.add_argument(
        "--config", type=Path, default=None,
        help=f"export YAML (default: {DEFAULT_CONFIG.relative_to(REPO)} when present)",
    )  # fmt: skip
    parser.add_argument(
        "--num-homographies", type=int, default=None,
        help="warps per image, the first the identity (adaptation.num_homographies; 100)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=None, help="images per batch")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--precision", default=None,
        help="detector inference precision: fp32 | bf16 | fp16 (CUDA) (precision; fp32)",
    )  # fmt: skip
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument(
        "--preview", type=Path, default=None, help="draw the labels of a few images into a PNG"
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    parser.add_argument(
        "--nproc", type=int, default=None, metavar="N",
        help="export with N processes on this machine (one per GPU, or several on the CPU); "
        "under torchrun leave it out",
    )  # fmt: skip
    parser.add_argument(
        "--dist-timeout-min", type=float, default=60.0, metavar="M",
        help="several processes: how long one waits for the others (the plan, the merge) "
        "before giving up (default 60)",
    )  # fmt: skip


def resolve_config(args: argparse.Namespace):

    path = args.config
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    overrides: list = []
    for text in args.overrides:
        if "=" not in text:
            raise ConfigError(f"unexpected argument {text!r}: overrides are key=value")
        overrides.append(parse_override(text))
    for dest, key in (
        ("num_homographies", "adaptation.num_homographies"),
        ("batch_size", "batch_size"),
        ("device", "device"),
        ("precision", "precision"),
        ("limit", "limit"),
    ):
        value = getattr(args, dest)
        if value is not None:
            overrides.append((key, value))
    if getattr(args, "quiet", False):  # the common --quiet: no progress bar
        overrides.append(("progress", False))
    conf = load_config(ExportConfig, path, overrides)
    return conf


def few_points_warning(summary: dict) -> str | None:
    """A warning when the store holds very few points per image (an undertrained detector)."""
    mean = summary.get("points_per_image_mean", 0.0)
    if not summary.get("images") or mean >= FEW_POINTS_PER_IMAGE:
        return None
    return (
        f"warning: only {mean:.1f} points per image (fewer than {FEW_POINTS_PER_IMAGE}): the "
        "detector is not usable yet and SuperPoint trained on these labels will be too; train "
        "MagicPoint further (superpoint train magicpoint --resume; its validation mAP should "
        "be near the classical detectors') or lower adaptation.detection_threshold"
    )


def run(args: argparse.Namespace) -> int:

    conf = resolve_config(args)
    outer = env_info()
    if args.print_config and outer is not None and not outer.is_main:
        return 0  # under torchrun: rank 0 prints it once
    if args.print_config:
        import yaml

        print(yaml.safe_dump(to_dict(conf), sort_keys=False), end="")
        return 0
    if args.weights is None:
        if args.preview is not None and args.output.is_file():
            save_preview(args.output, args.images, args.preview, conf.preview_images)
            print(f"preview: {args.preview}")
            return 0
        raise ConfigError("--weights is required (the MagicPoint checkpoint to adapt)")
    summary = run_export(
        conf, args.weights, args.images, args.output, args.preview, args.nproc,
        args.dist_timeout_min,
    )  # fmt: skip
    if summary is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    print(summary_text(summary))
    warning = few_points_warning(summary)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if args.preview is not None:
        print(f"preview: {args.preview}")
    return 0
