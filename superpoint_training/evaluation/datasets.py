"""Data-contract pairs from homography benchmarks laid out as HPatches or Oxford sequences.

The folders, their ground truth and their split (illumination / viewpoint) are
:mod:`superpoint_training.data.sequences` (re-exported here); this module reads the images as
the methods see them and pairs them. Pairs come out as dicts of the data contract::

    {"image0": uint8 [h, w] (or [h, w, 3]), "image1": ..., "H_0to1": float64 [3, 3],
     "sequence": str, "kind": "illumination" | "viewpoint", "index0": 1, "index1": N,
     "name0": "v_graffiti/1.ppm", "name1": ..., "size0"/"size1": original (h, w)}

When the images are stretched to a protocol size, ``H_0to1`` is rescaled with them
(``superpoint_ros.geometry.rescale_homography``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from superpoint_ros import image_io
from superpoint_ros.geometry import Size, rescale_homography
from superpoint_training.data.sequences import (
    ILLUMINATION,
    IMAGE_EXTENSIONS,
    OXFORD_ILLUMINATION,
    VIEWPOINT,
    HomographySequence,
    find_sequences,
    load_sequence,
    read_homography,
    sequence_kind,
)

__all__ = [
    "ILLUMINATION",
    "IMAGE_EXTENSIONS",
    "INTERPOLATIONS",
    "OXFORD_ILLUMINATION",
    "VIEWPOINT",
    "HomographySequence",
    "find_sequences",
    "iter_pairs",
    "load_sequence",
    "make_pair",
    "read_homography",
    "read_image",
    "sequence_kind",
    "stretch",
]

INTERPOLATIONS = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
}


def read_image(path: str | Path, grayscale: bool = True) -> np.ndarray:
    """uint8 ``[h, w]`` (``grayscale``) or ``[h, w, 3]`` BGR, read with the project's one image
    reader (:mod:`superpoint_ros.image_io`: header size checked first, damaged files refused
    with :class:`~superpoint_ros.errors.InputError`).

    Files are decoded as they are (grey files stay one channel, colour ones come as BGR, alpha
    dropped, 16 bits >> 8) and colour is made grey with ``cv2.cvtColor(BGR2GRAY)``: the
    conversion the node's front-end and the bench node apply to colour frames, so offline and
    on-robot evaluation see the same grey pixels. (Decoding straight to grey,
    ``IMREAD_GRAYSCALE``, rounds differently on some pixels: by one grey level, and per format.)
    """
    if grayscale:
        return image_io.read_gray(path)
    image = image_io.read_image(path)
    return image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)


def stretch(image: np.ndarray, size: Size | None, interpolation: str = "area") -> np.ndarray:
    """Resize ``image`` to ``size`` (h, w) without keeping the aspect ratio; ``None`` keeps it."""
    if size is None or tuple(image.shape[:2]) == tuple(size):
        return image
    return cv2.resize(
        image, (int(size[1]), int(size[0])), interpolation=INTERPOLATIONS[interpolation]
    )


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
    full0 = read_image(seq.image(reference), grayscale) if full0 is None else full0
    full1 = images.get(index1)
    full1 = read_image(seq.image(index1), grayscale) if full1 is None else full1
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
                cache[i] = read_image(seq.image(i), grayscale)
        yield make_pair(seq, t, size, reference, grayscale, interpolation, images=cache)
