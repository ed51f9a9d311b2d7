"""Training images: where they come from and how they are read, the one home for both.

``ImageSet.from_sources(sources)`` turns what a user passes to ``--images`` (one folder, several
folders, or a text file listing image paths) into an ordered list of image **names** and the file
behind each name. Names are what the label store records, so they must not depend on where the
data sits on a machine:

* one folder: the paths under it (recursive, sorted), relative, POSIX-style (``a/b.jpg``);
* several folders: each folder's relative paths prefixed by the folder's own name
  (``bsds500/test_2018.jpg``, ``urban100/img_001.jpg``); two folders of the same name are refused;
* a ``.txt`` file: one image path a line (``#`` comments and blank lines skipped), relative to
  the file's folder or absolute; the name is the line as written, made POSIX-style.

Sources can be mixed (folders and lists). ``prepare_image`` reads an image as 8-bit grey (the
project's one reader, ``superpoint_ros.image_io``, as the node and the evaluation read it) and
brings it to the training size (``resize_image``: aspect kept + centre crop, the paper's COCO
preprocessing, or a stretch): the label export and the training pairs both read through it, so
training sees exactly the pixels the labels were made on.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from superpoint_ros.errors import ConfigError, InputError
from superpoint_ros.image_io import read_gray

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")
RESIZE_MODES = ("crop", "stretch")
LIST_SUFFIX = ".txt"


def list_images(
    images_dir: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS
) -> list[str]:
    """Image paths under ``images_dir`` (recursive, following links to files), relative,
    POSIX-style, sorted."""
    root = Path(images_dir)
    if not root.is_dir():
        raise InputError(f"images folder not found: {root}")
    exts = {e.lower() for e in extensions}
    names = []
    for folder, _, files in os.walk(root, followlinks=True):
        for f in files:
            p = Path(folder) / f
            if p.suffix.lower() in exts and p.is_file():
                names.append(p.relative_to(root).as_posix())
    return sorted(names)


def _read_list(path: Path) -> list[tuple[str, Path]]:
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        p = Path(text)
        file = p if p.is_absolute() else path.parent / p
        if not file.is_file():
            raise InputError(f"{path}:{n}: image not found: {text}")
        entries.append((Path(text).as_posix().lstrip("/"), file))
    if not entries:
        raise InputError(f"{path} lists no image")
    return entries


def normalize_sources(sources: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """``--images`` as a list of strings (a single string is one source)."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    out = [str(s) for s in sources if str(s)]
    if not out:
        raise ConfigError("no image source given (--images DIR, several, or a .txt list)")
    return out


@dataclass(frozen=True)
class ImageSet:
    """Ordered image ``names`` and the file of each (module doc)."""

    names: tuple[str, ...]
    files: dict[str, Path]
    sources: tuple[str, ...]

    @classmethod
    def from_sources(
        cls,
        sources: str | os.PathLike | Iterable[str | os.PathLike],
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> ImageSet:
        srcs = normalize_sources(sources)
        prefix = len(srcs) > 1
        folder_names: dict[str, str] = {}
        files: dict[str, Path] = {}
        for src in srcs:
            path = Path(src)
            if path.is_file() and path.suffix.lower() == LIST_SUFFIX:
                entries = _read_list(path)
            elif path.is_dir():
                base = path.resolve().name
                if prefix and base in folder_names:
                    raise ConfigError(
                        f"image folders {folder_names[base]} and {src} have the same name "
                        f"{base!r}: image names would collide (rename one, or use a .txt list)"
                    )
                folder_names[base] = src
                rel = list_images(path, extensions)
                entries = [(f"{base}/{r}" if prefix else r, path / r) for r in rel]
            elif path.exists():
                raise InputError(f"{src}: neither a folder of images nor a {LIST_SUFFIX} list")
            else:
                raise InputError(f"images folder not found: {src}")
            for name, file in entries:
                if name in files:
                    raise ConfigError(f"image name {name!r} appears twice in --images {srcs}")
                files[name] = file
        return cls(tuple(sorted(files)), files, tuple(srcs))

    def path(self, name: str) -> Path:
        try:
            return self.files[name]
        except KeyError:
            raise InputError(
                f"image {name!r} is not under --images {list(self.sources)} (the label store "
                "was made from other images, or with the sources in another form)"
            ) from None

    def __len__(self) -> int:
        return len(self.names)


def resize_image(image: np.ndarray, size_hw: Sequence[int], mode: str = "crop") -> np.ndarray:
    """Bring ``image [h, w]`` to ``size_hw``: ``stretch`` resizes to it; ``crop`` scales to
    cover it keeping the aspect ratio, then takes the centre (the paper's COCO preprocessing).
    Area interpolation when shrinking, linear when enlarging."""
    th, tw = int(size_hw[0]), int(size_hw[1])
    h, w = image.shape[:2]
    if mode == "stretch":
        new_h, new_w = th, tw
    elif mode == "crop":
        scale = max(th / h, tw / w)
        new_h, new_w = max(th, math.ceil(h * scale - 1e-6)), max(tw, math.ceil(w * scale - 1e-6))
    else:
        raise ConfigError(f"unknown resize {mode!r}; valid: {', '.join(RESIZE_MODES)}")
    if (new_h, new_w) != (h, w):
        shrink = new_h * new_w < h * w
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, new_h), interpolation=interp)
    y0, x0 = (new_h - th) // 2, (new_w - tw) // 2
    return np.ascontiguousarray(image[y0 : y0 + th, x0 : x0 + tw])


def prepare_image(path: str | os.PathLike, size_hw: Sequence[int], mode: str = "crop"):
    """Read ``path`` as 8-bit grey with the project's one image reader
    (``superpoint_ros.image_io.read_gray``: the node's and the evaluation's pixels, truncated,
    corrupt and oversize files refused with ``InputError``) and ``resize_image`` it."""
    return resize_image(read_gray(path), size_hw, mode)
