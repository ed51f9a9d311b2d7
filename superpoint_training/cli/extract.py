"""Extract keypoints and descriptors from images.

With one image, OUT is a .npz holding keypoints [N,2] (x, y pixels), scores [N] and
descriptors [N,D]; with several, OUT is a directory holding <image stem>.npz each. The model
is loaded once, whatever the number of images.

  superpoint extract --weights W [--backend B] [--max-keypoints K] [--nms-radius R]
                     [--threshold T] [--resize HxW] IMAGE... -o OUT
"""

from __future__ import annotations

import argparse
from pathlib import Path

from superpoint_ros.errors import InputError

from ._common import add_frontend_arguments, build_frontend, check_output, read_image

COMMAND = "extract"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_frontend_arguments(parser)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="a .npz for one image, a directory for several",
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    images = [Path(p) for p in args.images]
    folders = [str(p) for p in images if p.is_dir()]
    if folders:
        raise InputError(f"a directory is not an image: {', '.join(folders)}")
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise InputError(f"image not found: {', '.join(missing)}")
    stems = [p.stem for p in images]
    if len(set(stems)) != len(stems):
        raise InputError("several images share a file name stem; outputs would overwrite")
    out = Path(args.output)
    single = len(images) == 1 and out.suffix == ".npz"
    if len(images) > 1 and out.suffix == ".npz":
        raise InputError(f"{len(images)} images need a directory as output, not {out}")
    check_output(out, directory=not single)
    frontend = build_frontend(args)
    if not single:
        out.mkdir(parents=True, exist_ok=True)
    total = 0
    for path in tqdm(
        images,
        desc="extract",
        unit="img",
        disable=len(images) < 2 or getattr(args, "quiet", False),
    ):
        features = frontend(read_image(path))
        target = out if single else out / f"{path.stem}.npz"
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez(target, **features)
        total += len(features["keypoints"])
    where = out if single else f"{out}/"
    print(f"{len(images)} image(s), {total} keypoints ({frontend.backend_name}) -> {where}")
    return 0
