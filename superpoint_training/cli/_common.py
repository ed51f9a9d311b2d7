"""Options and helpers shared by the inference subcommands (extract, benchmark, demo...)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from superpoint_ros.errors import InputError
from superpoint_ros.frontend.config import NMS_MODES
from superpoint_ros.frontend.conventions import DESCRIPTOR_SAMPLINGS


def add_frontend_arguments(parser: argparse.ArgumentParser, backend: bool = True) -> None:
    """``--weights``, ``--backend`` and the front-end settings; unset ones keep the model's."""
    from superpoint_ros.backends import BACKEND_CHOICES

    parser.add_argument(
        "--weights", "-w", metavar="W",
        help="weights file (any supported layout), exported .onnx or TensorRT .engine; "
        "default: the packaged demo model",
    )
    if backend:
        parser.add_argument(
            "--backend", "-b", default="auto", metavar="B",
            help=f"inference backend: {', '.join(BACKEND_CHOICES)} (default: auto)",
        )
        parser.add_argument("--fp16", action="store_true", help="half precision (GPU backends)")
        parser.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (torch backend)")
    parser.add_argument("--max-keypoints", type=int, metavar="K", help="keypoint slots K")
    parser.add_argument("--nms-radius", type=int, metavar="R", help="NMS radius in pixels")
    parser.add_argument("--threshold", type=float, metavar="T", help="detection threshold")
    parser.add_argument("--border", type=int, metavar="B", help="border to drop, pixels")
    parser.add_argument("--resize", metavar="HxW", help="stretch images to HxW (multiples of 8)")
    parser.add_argument("--subpixel", action="store_true", default=None,
                        help="refine keypoints to sub-pixel positions")
    parser.add_argument("--nms", metavar="MODE",
                        help=f"NMS mode: {', '.join(NMS_MODES)} (default: maxpool)")
    parser.add_argument(
        "--descriptor-sampling", metavar="RULE",
        help=f"descriptor sampling rule: {', '.join(DESCRIPTOR_SAMPLINGS)} (default: the "
        "weights' own; see README 'Descriptor sampling')",
    )


def frontend_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The front-end settings given on the command line (absent ones are left out)."""
    from superpoint_ros.frontend import parse_size

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
    return out


def build_frontend(args: argparse.Namespace):
    from superpoint_ros.frontend import load_frontend

    return load_frontend(
        args.weights, args.backend, frontend_overrides(args),
        fp16=getattr(args, "fp16", False), device=getattr(args, "device", None),
    )


def read_image(path: str | Path) -> np.ndarray:
    """A uint8 gray or BGR image from disk; ``InputError`` when missing or unreadable."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"cannot read image {path} (not an image OpenCV can decode)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.dtype != np.uint8:
        raise InputError(f"unsupported image type {image.dtype} in {path}")
    return image
