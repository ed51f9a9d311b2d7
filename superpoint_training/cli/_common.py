"""Options and helpers shared by the inference subcommands (extract, benchmark, demo...)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from superpoint_ros import image_io
from superpoint_ros.backends import PRECISIONS, backend_choices
from superpoint_ros.errors import ConfigError
from superpoint_ros.frontend import FrontendConfig, parse_size
from superpoint_ros.frontend.config import NMS_MODES
from superpoint_ros.frontend.conventions import DESCRIPTOR_SAMPLINGS
from superpoint_ros.loader import load_frontend


def add_frontend_arguments(parser: argparse.ArgumentParser, backend: bool = True) -> None:
    """``--weights``, ``--backend`` and the front-end settings; unset ones keep the model's."""
    parser.add_argument(
        "--weights",
        "-w",
        metavar="W",
        help="weights file (any supported layout), exported .onnx or TensorRT .engine; "
        "default: the packaged demo model",
    )
    if backend:
        parser.add_argument(
            "--backend",
            "-b",
            default="auto",
            metavar="B",
            help=f"inference backend: {', '.join(backend_choices())} (default: auto)",
        )
        parser.add_argument(
            "--precision",
            choices=PRECISIONS,
            default=None,
            help="fp32 (default), fp16 (tensorrt, torch on CUDA) or int8 (tensorrt on a Q/DQ "
            "model from superpoint quantize --target tensorrt; onnxruntime runs a quantised "
            ".onnx as it is)",
        )
        parser.add_argument("--fp16", action="store_true", help="the same as --precision fp16")
        parser.add_argument(
            "--rebuild-engine",
            action="store_true",
            help="tensorrt: rebuild an engine whose record does not match this machine or "
            "model, instead of refusing it",
        )
        parser.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (torch backend)")
    parser.add_argument("--max-keypoints", type=int, metavar="K", help="keypoint slots K")
    parser.add_argument("--nms-radius", type=int, metavar="R", help="NMS radius in pixels")
    parser.add_argument("--threshold", type=float, metavar="T", help="detection threshold")
    parser.add_argument("--border", type=int, metavar="B", help="border to drop, pixels")
    parser.add_argument("--resize", metavar="HxW", help="stretch images to HxW (multiples of 8)")
    parser.add_argument(
        "--subpixel",
        action="store_true",
        default=None,
        help="refine keypoints to sub-pixel positions",
    )
    parser.add_argument(
        "--nms", metavar="MODE", help=f"NMS mode: {', '.join(NMS_MODES)} (default: maxpool)"
    )
    parser.add_argument(
        "--descriptor-sampling",
        metavar="RULE",
        help=f"descriptor sampling rule: {', '.join(DESCRIPTOR_SAMPLINGS)} (default: the "
        "weights' own; see README 'Descriptor sampling')",
    )


def frontend_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The front-end settings given on the command line (absent ones are left out), checked
    against their ranges here, where they are read: before any model is loaded or compared with
    the settings baked into an .onnx (which would otherwise suggest re-exporting with an
    impossible value)."""
    table = {
        "max_keypoints": args.max_keypoints,
        "nms_radius": args.nms_radius,
        "detection_threshold": args.threshold,
        "border": args.border,
        "subpixel": args.subpixel,
        "nms": getattr(args, "nms", None),
        "descriptor_sampling": getattr(args, "descriptor_sampling", None),
    }
    out = {k: v for k, v in table.items() if v is not None}
    if getattr(args, "resize", None):
        out["resize"] = parse_size(args.resize)
    FrontendConfig().replace(**out)  # ConfigError naming the first value out of range
    return out


def build_frontend(args: argparse.Namespace):
    return load_frontend(
        args.weights,
        args.backend,
        frontend_overrides(args),
        precision=getattr(args, "precision", None) or "fp32",
        fp16=getattr(args, "fp16", False),
        device=getattr(args, "device", None),
        rebuild_engine=getattr(args, "rebuild_engine", False),
    )


def read_image(path: str | Path) -> np.ndarray:
    """A uint8 gray or BGR image from disk (:func:`superpoint_ros.image_io.read_image`: header
    size checked first, damaged files refused); ``InputError`` with the reason otherwise."""
    return image_io.read_image(path)


def check_output(path: str | Path, *, directory: bool = False) -> Path:
    """Refuse, before any work starts, an output that cannot be written: a file where a folder is
    needed (``directory``) or a folder where a file is, or a parent path that is a file."""
    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        raise ConfigError(f"cannot write into {path}: it is a file, not a folder")
    if not directory and path.is_dir():
        raise ConfigError(f"cannot write {path}: it is a directory")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"cannot write {path}: {parent} is a file, not a folder")
            break
    return path
