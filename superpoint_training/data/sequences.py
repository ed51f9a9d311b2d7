"""Homography sequence folders (HPatches, Oxford affine): the files, the ground truth, the split.

One home for what a sequence folder is, shared by the offline evaluation
(:mod:`superpoint_training.evaluation.datasets`) and the bag writer
(:mod:`superpoint_training.bags.writer`); no pixels are decoded here.

* HPatches: one folder per sequence, ``i_*`` (illumination) or ``v_*`` (viewpoint), holding
  ``1.ppm`` .. ``K.ppm`` and ``H_1_2`` .. ``H_1_K`` (K = 6 in the release).
* Oxford affine: one folder per scene holding ``img1..K.{ppm,pgm,png,jpg}`` and ``H1to2p`` ..
  ``H1toKp``; ``leuven`` is the illumination sequence, the others count as viewpoint (graf,
  wall: viewpoint; boat, bark: zoom + rotation; bikes, trees: blur; ubc: JPEG).

Both store 3x3 homographies as whitespace-separated text mapping image 1 to image N, which is
the project's ``H_0to1`` (``superpoint_ros.geometry``) with image 1 as image 0.

A folder is a sequence of a layout when it holds numbered images and at least one ground-truth
file of that layout; it must then be complete (images 1..K with K >= 2, ``H_1_n`` for every
n = 2..K), else :class:`~superpoint_ros.errors.InputError` says what is missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from superpoint_ros.errors import InputError

IMAGE_EXTENSIONS = (".ppm", ".pgm", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
ILLUMINATION, VIEWPOINT = "illumination", "viewpoint"
OXFORD_ILLUMINATION = ("leuven",)  # Oxford scenes whose images differ by lighting only
# layout -> (image file stem prefix, ground-truth file name pattern of H_1_n)
LAYOUTS = {"hpatches": ("", "H_1_{}"), "oxford": ("img", "H1to{}p")}
_GT_FILE = {
    layout: re.compile("^" + re.escape(pattern).replace(r"\{\}", r"(\d+)") + "$")
    for layout, (_, pattern) in LAYOUTS.items()
}


def sequence_kind(name: str) -> str:
    """``ILLUMINATION`` for HPatches ``i_*`` sequences and the Oxford scenes that differ by
    lighting only (``leuven``), else ``VIEWPOINT``: the split a sequence counts in. By name
    alone, so a sequence read back from a bag gets the same kind as its folder."""
    if name.startswith("i_") or name.lower() in OXFORD_ILLUMINATION:
        return ILLUMINATION
    return VIEWPOINT


# Largest condition number of a ground-truth homography: HPatches and Oxford files stay below
# 2e6; a rank-deficient matrix written out in full is above 1e15.
MAX_CONDITION = 1e10


def load_homography(path: str | Path) -> np.ndarray:
    """The 3x3 float64 homography of a ground-truth file (9 whitespace-separated numbers,
    row-major), exactly as written (see :func:`read_homography` for the normalised one)."""
    try:
        values = np.array(Path(path).read_text().split(), dtype=np.float64)
    except ValueError:
        raise InputError(f"{path}: not a 3x3 homography (non-numeric text)") from None
    if values.size != 9:
        raise InputError(f"{path}: expected 9 numbers for a 3x3 homography, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path}: the homography has non-finite values")
    H = values.reshape(3, 3)
    singular = np.linalg.svd(H, compute_uv=False)
    rank = int(np.sum(singular > singular[0] / MAX_CONDITION))
    if rank < 3:
        raise InputError(
            f"{path}: degenerate homography, singular (rank {rank}): it maps the image onto a "
            "line or a point and has no inverse"
        )
    return H


def normalise_homography(H: np.ndarray, source: str | Path = "homography") -> np.ndarray:
    """``H / H[2, 2]`` (float64), the form every metric uses; ``source`` names it in errors."""
    H = np.asarray(H, np.float64)
    if abs(H[2, 2]) < 1e-12:
        raise InputError(f"{source}: degenerate homography (H[2,2] = 0)")
    return H / H[2, 2]


def read_homography(path: str | Path) -> np.ndarray:
    """A ground-truth file's homography, normalised so ``H[2, 2] = 1``."""
    return normalise_homography(load_homography(path), path)


def homography_from_reference(
    from_image1: Callable[[int], np.ndarray], index: int, reference: int = 1
) -> np.ndarray:
    """The H mapping image ``reference`` to image ``index``, from ``from_image1(n)`` = the
    stored ``H_1_n`` (identity for n = 1): ``H_1_index @ inv(H_1_reference)``."""
    H_1toN = from_image1(index)
    if reference == 1:
        return H_1toN
    return H_1toN @ np.linalg.inv(from_image1(reference))


@dataclass
class HomographySequence:
    """One sequence on disk: its images by index (1..K) and the files of ``H_1_n``."""

    name: str
    path: Path
    layout: str  # a key of LAYOUTS
    kind: str  # ILLUMINATION | VIEWPOINT
    images: dict[int, Path] = field(default_factory=dict)  # n -> image file, n = 1..K
    homographies: dict[int, Path] = field(default_factory=dict)  # n -> file of H_1_n, n = 2..K

    def image(self, index: int) -> Path:
        """The file of image ``index``."""
        if index not in self.images:
            raise InputError(f"{self.path}: no image {index}")
        return self.images[index]

    def homography(self, index: int, reference: int = 1) -> np.ndarray:
        """The 3x3 H (``H[2, 2] = 1``) mapping image ``reference`` to image ``index``."""
        return homography_from_reference(self._from_image1, index, reference)

    def _from_image1(self, index: int) -> np.ndarray:
        if index == 1:
            return np.eye(3)
        if index not in self.homographies:
            raise InputError(f"{self.path}: no ground-truth homography for image {index}")
        return read_homography(self.homographies[index])

    def fingerprint(self) -> list:
        """(name, size, mtime) of every file: changes when the data changes (cache keys)."""
        files = sorted({*self.images.values(), *self.homographies.values()})
        return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _numbered(folder: Path, prefix: str) -> dict[int, Path]:
    """Image files named ``<prefix><n>.<image extension>`` by n."""
    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        number = path.stem[len(prefix) :]
        if (
            path.suffix.lower() in IMAGE_EXTENSIONS
            and path.stem.startswith(prefix)
            and number.isdigit()
            and path.is_file()
        ):
            if int(number) in found:
                raise InputError(f"{folder}: two files for image {int(number)}: "
                                 f"{found[int(number)].name}, {path.name}")  # fmt: skip
            found[int(number)] = path
    return found


def load_sequence(path: str | Path) -> HomographySequence | None:
    """The sequence in folder ``path`` (either layout); ``None`` if it holds none."""
    path = Path(path)
    if not path.is_dir():
        return None
    names = [p.name for p in path.iterdir()]
    for layout, (prefix, h_name) in LAYOUTS.items():
        if not any(_GT_FILE[layout].match(n) for n in names):
            continue
        images = _numbered(path, prefix)
        if not images:
            continue
        count = max(images)
        if sorted(images) != list(range(1, count + 1)) or count < 2:
            raise InputError(f"{path}: images {sorted(images)} are not numbered 1..K with K >= 2")
        homographies = {n: path / h_name.format(n) for n in range(2, count + 1)}
        missing = [p.name for p in homographies.values() if not p.is_file()]
        if missing:
            raise InputError(f"{path}: ground-truth homographies missing: {missing}")
        return HomographySequence(
            path.name, path, layout, sequence_kind(path.name), images, homographies
        )
    return None


def find_sequences(roots: str | Path | Sequence[str | Path]) -> list[HomographySequence]:
    """Sequences in ``roots``: each root is one sequence folder or a folder of them (other
    sub-folders are ignored). Sorted by name; ``InputError`` when a root does not exist or
    holds none, or two sequences share a name."""
    if isinstance(roots, (str, Path)):
        roots = [roots]
    out: dict[str, HomographySequence] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"dataset folder {root} does not exist or is not a folder")
        seq = load_sequence(root)
        subs = sorted(p for p in root.iterdir() if p.is_dir())
        found = [seq] if seq else [s for s in map(load_sequence, subs) if s is not None]
        if not found:
            raise InputError(
                f"no sequences found in {root}: expected 1.ppm..6.ppm with H_1_2..H_1_6 "
                "(HPatches) or img1..6.ppm|pgm with H1to2p..H1to6p (Oxford), in it or in its "
                "sub-folders"
            )
        for s in found:
            if s.name in out:
                raise InputError(
                    f"two sequences named {s.name!r}: {out[s.name].path} and {s.path}"
                )
            out[s.name] = s
    return [out[k] for k in sorted(out)]
