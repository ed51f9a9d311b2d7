"""Readers for homography benchmarks laid out as HPatches or Oxford sequences.

* HPatches: one folder per sequence, ``i_*`` (illumination) or ``v_*`` (viewpoint), holding
  ``1.ppm`` .. ``6.ppm`` and ``H_1_2`` .. ``H_1_6``.
* Oxford affine: one folder per scene holding ``img1..6.{ppm,pgm,png,jpg}`` and
  ``H1to2p`` .. ``H1to6p``; ``leuven`` is the illumination sequence, the others count as
  viewpoint (graf, wall: viewpoint; boat, bark: zoom + rotation; bikes, trees: blur; ubc: JPEG).

Both store 3x3 homographies as whitespace-separated text mapping image 1 to image N, which is
this project's ``H_0to1`` with image 1 as image 0. Pairs come out as dicts of the data contract::

    {"image0": uint8 [h, w] (or [h, w, 3]), "image1": ..., "H_0to1": float64 [3, 3],
     "sequence": str, "kind": "illumination" | "viewpoint", "index0": 1, "index1": N,
     "name0": "v_graffiti/1.ppm", "name1": ..., "size0"/"size1": original (h, w)}

When the images are stretched to a protocol size, ``H_0to1`` is rescaled with them
(``superpoint_ros.geometry.rescale_homography``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from superpoint_ros.errors import InputError
from superpoint_ros.geometry import Size, rescale_homography

IMAGE_EXTENSIONS = (".ppm", ".pgm", ".png", ".jpg", ".jpeg")
ILLUMINATION, VIEWPOINT = "illumination", "viewpoint"
OXFORD_ILLUMINATION = ("leuven",)  # Oxford scenes whose images differ by lighting only
INTERPOLATIONS = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
}


def sequence_kind(name: str) -> str:
    """``ILLUMINATION`` for HPatches ``i_*`` sequences and the Oxford scenes that differ by
    lighting only (``leuven``), else ``VIEWPOINT``: the split a sequence counts in. By name
    alone, so a sequence read back from a bag gets the same kind as its folder."""
    if name.startswith("i_") or name.lower() in OXFORD_ILLUMINATION:
        return ILLUMINATION
    return VIEWPOINT


@dataclass
class HomographySequence:
    """One sequence: its images by index (1..6) and the GT homographies from image 1."""

    name: str
    path: Path
    layout: str  # "hpatches" | "oxford"
    kind: str  # ILLUMINATION | VIEWPOINT
    images: dict[int, Path] = field(default_factory=dict)
    homographies: dict[int, Path] = field(default_factory=dict)  # N -> file of H_1toN

    def homography(self, index: int, reference: int = 1) -> np.ndarray:
        """The 3x3 H mapping image ``reference`` to image ``index`` (files store 1 -> N)."""
        H_1toN = self._read_h(index)
        if reference == 1:
            return H_1toN
        return H_1toN @ np.linalg.inv(self._read_h(reference))

    def _read_h(self, index: int) -> np.ndarray:
        if index == 1:
            return np.eye(3)
        if index not in self.homographies:
            raise InputError(f"{self.path}: no ground-truth homography for image {index}")
        return read_homography(self.homographies[index])

    def read_image(self, index: int, grayscale: bool = True) -> np.ndarray:
        if index not in self.images:
            raise InputError(f"{self.path}: no image {index}")
        return read_image(self.images[index], grayscale)

    def fingerprint(self) -> list:
        """(name, size, mtime) of every file: changes when the data changes (cache keys)."""
        files = sorted({*self.images.values(), *self.homographies.values()})
        return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def read_homography(path: str | Path) -> np.ndarray:
    """A 3x3 homography stored as 9 whitespace-separated numbers; normalised so H[2,2] = 1."""
    try:
        values = np.array(Path(path).read_text().split(), dtype=np.float64)
    except ValueError:
        raise InputError(f"{path}: not a 3x3 homography (non-numeric text)") from None
    if values.size != 9:
        raise InputError(f"{path}: expected 9 numbers for a 3x3 homography, got {values.size}")
    H = values.reshape(3, 3)
    if abs(H[2, 2]) < 1e-12:
        raise InputError(f"{path}: degenerate homography (H[2,2] = 0)")
    return H / H[2, 2]


def read_image(path: str | Path, grayscale: bool = True) -> np.ndarray:
    """uint8 ``[h, w]`` (``grayscale``) or ``[h, w, 3]`` BGR, read with OpenCV.

    Files are decoded as they are (``IMREAD_ANYCOLOR``: grey files stay one channel, colour
    ones come as 8-bit BGR, alpha dropped) and colour is made grey with
    ``cv2.cvtColor(BGR2GRAY)``: the conversion the node's front-end and the bench node apply to
    colour frames, so offline and on-robot evaluation see the same grey pixels. (Decoding
    straight to grey, ``IMREAD_GRAYSCALE``, rounds differently on some pixels: by one grey
    level, and per format.)
    """
    image = cv2.imread(str(path), cv2.IMREAD_ANYCOLOR)
    if image is None:
        raise InputError(f"{path}: cannot read image (missing, empty or unsupported format)")
    if image.ndim == 2:
        return image if grayscale else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if grayscale else image


def stretch(image: np.ndarray, size: Size | None, interpolation: str = "area") -> np.ndarray:
    """Resize ``image`` to ``size`` (h, w) without keeping the aspect ratio; ``None`` keeps it."""
    if size is None or tuple(image.shape[:2]) == tuple(size):
        return image
    return cv2.resize(
        image, (int(size[1]), int(size[0])), interpolation=INTERPOLATIONS[interpolation]
    )


_HPATCHES_IMAGE = re.compile(r"^([1-9])\.(ppm|pgm|png|jpe?g)$", re.IGNORECASE)
_HPATCHES_H = re.compile(r"^H_1_([2-9])$")
_OXFORD_IMAGE = re.compile(r"^img([1-9])\.(ppm|pgm|png|jpe?g)$", re.IGNORECASE)
_OXFORD_H = re.compile(r"^H1to([2-9])p$")


def load_sequence(path: str | Path) -> HomographySequence | None:
    """Read a sequence folder of either layout; ``None`` if the folder is neither."""
    path = Path(path)
    if not path.is_dir():
        return None
    for layout, img_re, h_re in (
        ("hpatches", _HPATCHES_IMAGE, _HPATCHES_H),
        ("oxford", _OXFORD_IMAGE, _OXFORD_H),
    ):
        images, homs = {}, {}
        for f in sorted(path.iterdir()):
            if m := img_re.match(f.name):
                images.setdefault(int(m.group(1)), f)
            elif m := h_re.match(f.name):
                homs[int(m.group(1))] = f
        if 1 in images and homs:
            return HomographySequence(
                path.name, path, layout, sequence_kind(path.name), images, homs
            )
    return None


def find_sequences(roots: str | Path | Sequence[str | Path]) -> list[HomographySequence]:
    """Sequences in ``roots``: each root is one sequence folder or a folder of them.

    Sorted by name; raises ``InputError`` when a root holds none or two share a name.
    """
    if isinstance(roots, (str, Path)):
        roots = [roots]
    out: dict[str, HomographySequence] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"dataset folder {root} does not exist")
        seq = load_sequence(root)
        found = [seq] if seq else [s for s in map(load_sequence, sorted(root.iterdir())) if s]
        if not found:
            raise InputError(
                f"{root}: no sequence in the HPatches (1.ppm + H_1_N) or Oxford "
                "(img1.ppm + H1toNp) layout, neither the folder itself nor its subfolders"
            )
        for s in found:
            if s.name in out:
                raise InputError(
                    f"two sequences named {s.name!r}: {out[s.name].path} and {s.path}"
                )
            out[s.name] = s
    return [out[k] for k in sorted(out)]


def make_pair(
    seq: HomographySequence,
    index1: int,
    size: Size | None = None,
    reference: int = 1,
    grayscale: bool = True,
    interpolation: str = "area",
    images: dict[int, np.ndarray] | None = None,
) -> dict:
    """The pair (``reference``, ``index1``) of ``seq`` as a data-contract dict, both images
    stretched to ``size`` (h, w) with ``H_0to1`` rescaled to match (``None``: original sizes).
    ``images`` may hold already-read full-size images by index."""
    images = images if images is not None else {}
    full0 = images.get(reference)
    full0 = seq.read_image(reference, grayscale) if full0 is None else full0
    full1 = images.get(index1)
    full1 = seq.read_image(index1, grayscale) if full1 is None else full1
    size0, size1 = tuple(full0.shape[:2]), tuple(full1.shape[:2])
    H = seq.homography(index1, reference)
    img0, img1 = full0, full1
    if size is not None:
        size = (int(size[0]), int(size[1]))
        img0 = stretch(full0, size, interpolation)
        img1 = stretch(full1, size, interpolation)
        H = rescale_homography(H, size0, size, size1, size)
    return {
        "image0": img0,
        "image1": img1,
        "H_0to1": H,
        "sequence": seq.name,
        "kind": seq.kind,
        "index0": reference,
        "index1": index1,
        "name0": f"{seq.name}/{seq.images[reference].name}",
        "name1": f"{seq.name}/{seq.images[index1].name}",
        "size0": size0,
        "size1": size1,
    }


def iter_pairs(
    seq: HomographySequence,
    size: Size | None = None,
    reference: int = 1,
    targets: Sequence[int] = (2, 3, 4, 5, 6),
    grayscale: bool = True,
    interpolation: str = "area",
) -> Iterator[dict]:
    """Pairs (reference, t) for every target ``t`` the sequence has (see ``make_pair``)."""
    cache: dict[int, np.ndarray] = {}
    for t in targets:
        if t not in seq.images:
            continue
        for i in (reference, t):
            if i not in cache:
                cache[i] = seq.read_image(i, grayscale)
        yield make_pair(seq, t, size, reference, grayscale, interpolation, images=cache)
