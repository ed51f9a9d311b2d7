"""Assemble the folder of training photos the packaged model was trained on (links, no copies).

    .venv/bin/python tools/link_training_images.py ../shared/data /work/data_train

makes ``DEST/{bsds500,urban100,kodak24,tum_fr2_desk}/`` with one symbolic link per photo of
``SHARED/photos/{bsds500,urban100,kodak24}`` and ``SHARED/sequences/tum_fr2_desk``, and writes
``DEST/skimage/<name>.png`` from the 14 CC0 / public-domain photos scikit-image ships. Image
names in the label store (``bsds500/test_100007.jpg``, ...) are paths relative to ``DEST``, so
``superpoint train superpoint --images DEST`` finds every labelled image again on another
machine. HPatches and Oxford are never linked: they are for evaluation only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import skimage.data

SKIMAGE_PHOTOS = (
    "astronaut", "camera", "chelsea", "coffee", "rocket", "brick", "grass", "gravel", "coins",
    "hubble_deep_field", "clock", "text", "immunohistochemistry", "retina",
)  # fmt: skip
SOURCES = {
    "bsds500": "photos/bsds500",
    "urban100": "photos/urban100",
    "kodak24": "photos/kodak24",
    "tum_fr2_desk": "sequences/tum_fr2_desk",
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shared", type=Path, help="the shared data folder (../shared/data)")
    p.add_argument("dest", type=Path, help="folder to create")
    args = p.parse_args()
    for name, rel in SOURCES.items():
        src = (args.shared / rel).resolve()
        if not src.is_dir():
            print(f"error: {src} not found", file=sys.stderr)
            return 1
        out = args.dest / name
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.iterdir()):
            link = out / f.name
            if f.is_file() and not link.exists():
                link.symlink_to(f)
    out = args.dest / "skimage"
    out.mkdir(parents=True, exist_ok=True)
    for name in SKIMAGE_PHOTOS:
        image = getattr(skimage.data, name)()
        if image.ndim == 3:
            image = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(out / f"{name}.png"), image)
    count = sum(1 for f in args.dest.rglob("*") if f.is_file() or f.is_symlink())
    print(f"{args.dest}: {count} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
