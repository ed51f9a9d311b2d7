"""Synthetic shapes (training step 1): look at the generated data.

  superpoint synth preview -o grid.png [--seed S] [--rows R --cols C]
                           [--primitives cube star ...] [--augment] [--zoom Z]

renders a grid of samples with their ground-truth keypoints drawn (green dots) and each tile
labelled with its primitive's name. With ``--augment`` the training augmentation (photometric +
homographic) is applied and the invalid (warped-in) region is tinted red.
"""

from __future__ import annotations

import argparse

from superpoint_ros.errors import ConfigError, InputError
from superpoint_ros.visualize import GREEN, draw_keypoints
from superpoint_training.data.augment import AugmentConfig
from superpoint_training.data.augment import augment as apply_augment
from superpoint_training.data.synthetic.config import PRIMITIVES, SyntheticShapesConfig
from superpoint_training.data.synthetic.primitives import render_sample

COMMAND = "synth"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="synth_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("preview", help="render a grid of samples with ground truth to a PNG")
    p.add_argument("-o", "--output", required=True, help="output image (.png or .jpg)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--rows", type=int, default=3, help="rows of tiles (default 3)")
    p.add_argument("--cols", type=int, default=4, help="columns of tiles (default 4)")
    p.add_argument(
        "--primitives",
        nargs="+",
        metavar="NAME",
        help="primitives to draw, in turn (default: every primitive, in turn)",
    )
    p.add_argument("--augment", action="store_true", help="apply the training augmentation")
    p.add_argument(
        "--size", type=int, nargs=2, metavar=("H", "W"), help="image size (default 120 160)"
    )
    p.add_argument("--zoom", type=int, default=2, help="display magnification (default 2)")


def preview_grid(
    seed: int = 0,
    rows: int = 3,
    cols: int = 4,
    primitives: list[str] | None = None,
    augment: bool = False,
    size: tuple[int, int] | None = None,
    zoom: int = 2,
):
    """The preview grid as a BGR uint8 image (pure: no file written). Tile ``k`` shows the
    primitive ``primitives[k % len(primitives)]`` rendered from the generator seeded with
    ``(seed, k)``."""
    import cv2
    import numpy as np

    primitives = list(primitives or PRIMITIVES)
    unknown = [p for p in primitives if p not in PRIMITIVES]
    if unknown:
        raise ConfigError(f"unknown primitive(s) {unknown}; valid: {', '.join(PRIMITIVES)}")
    if rows < 1 or cols < 1 or zoom < 1:
        raise ConfigError("--rows, --cols and --zoom must be >= 1")
    config = SyntheticShapesConfig(image_size=tuple(size) if size else (120, 160))
    aug_config = AugmentConfig() if augment else None
    h, w = config.image_size
    label_h = 16
    pad = 4
    tile_h, tile_w = h * zoom + label_h, w * zoom
    grid = np.full((rows * (tile_h + pad) + pad, cols * (tile_w + pad) + pad, 3), 255, np.uint8)
    for k in range(rows * cols):
        primitive = primitives[k % len(primitives)]
        rng = np.random.default_rng([seed, k])
        sample = render_sample(rng, config, primitive)
        image, keypoints = sample["image"], sample["keypoints"]
        valid = None
        if aug_config is not None:
            out = apply_augment(rng, image, keypoints, aug_config)
            image = np.clip(np.round(out["image"]), 0, 255).astype(np.uint8)
            keypoints, valid = out["keypoints"], out["valid_mask"]
        big = cv2.resize(image, (w * zoom, h * zoom), interpolation=cv2.INTER_NEAREST)
        big = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
        if valid is not None:
            invalid = (
                cv2.resize(valid, (w * zoom, h * zoom), interpolation=cv2.INTER_NEAREST) < 0.5
            )
            big[invalid] = (0.5 * big[invalid] + [0, 0, 110]).astype(np.uint8)
        points = (np.asarray(keypoints, np.float32) + 0.5) * zoom - 0.5  # same pixel centres
        big = draw_keypoints(big, points, color=GREEN, radius=max(1, zoom))
        r, c = divmod(k, cols)
        y0, x0 = pad + r * (tile_h + pad), pad + c * (tile_w + pad)
        grid[y0 + label_h : y0 + tile_h, x0 : x0 + tile_w] = big
        text = f"{primitive} ({len(keypoints)} pts)"
        cv2.putText(grid, text, (x0 + 2, y0 + label_h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    return grid


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import cv2

    grid = preview_grid(
        seed=args.seed,
        rows=args.rows,
        cols=args.cols,
        primitives=args.primitives,
        augment=args.augment,
        size=tuple(args.size) if args.size else None,
        zoom=args.zoom,
    )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_PNG_COMPRESSION, 9] if out.suffix.lower() == ".png" else []
    if not cv2.imwrite(str(out), grid, params):
        raise InputError(f"cannot write {out} (unsupported extension or unwritable folder)")
    print(f"wrote {out} ({grid.shape[1]}x{grid.shape[0]})")
    return 0
