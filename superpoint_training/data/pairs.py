"""Training step 4's data: image pairs made from real images and their pseudo labels.

Each item is an image of the label store's set (read and brought to the store's size exactly as
the export did: ``data.images.prepare_image``), with its pseudo-label points, and a random
homography of it (the paper's sampler, ``geometry.homographies``, through the augmentation
module's ``homographic_augmentation``): image 0 is the image, image 1 the warped image, the
labels warped with it (points leaving the image dropped), and each image gets its own photometric
augmentation (``data.augment``). Item::

    {"image0": float32 [1, H, W] in [0, 1], "image1": ...,
     "keypoint_map0": float32 [H, W] (1 at label pixels), "keypoint_map1": ...,
     "valid0": float32 [H, W] (all ones), "valid1": float32 [H, W] (0 where the warp brought in
     the border, eroded by ``valid_border_margin``),
     "H_0to1": float32 [3, 3] (image-0 pixels -> image-1 pixels), "index": int64}

Item ``p`` of ``PairDataset`` is a pure function of ``(seed, p)``: position ``p`` reads image
``perm_e[p % n]`` of epoch ``e = p // n`` (a permutation drawn from ``(seed, e)``) and warps it
with a generator seeded by ``(seed, p)``, so every step sees new warps and a resumed run sees the
pairs the killed run would have seen. With ``crop_size`` set, each pair is made from a random
window of that size of the prepared image (its labels shifted with it, the window drawn from the
same ``(seed, p)`` generator): smaller inputs, more pairs per second. ``split_names`` holds out
a fixed part of the images (by a hash of their names) for validation. ``render_pairs`` draws a
few items to a PNG.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from superpoint_ros.errors import ConfigError
from superpoint_ros.visualize import draw_keypoints
from superpoint_training.data.augment import (
    HomographicConfig,
    PhotometricConfig,
    homographic_augmentation,
    keypoint_map,
    photometric_augmentation,
)
from superpoint_training.data.images import ImageSet, prepare_image
from superpoint_training.geometry.homographies import coco_homography_config
from superpoint_training.labels.store import LabelStore


def _pair_homographies() -> HomographicConfig:
    # rpautrat's superpoint_coco.yaml warps: strong, with borders (masked out by valid1)
    return HomographicConfig(
        enable=True,
        homography=coco_homography_config(),
        valid_border_margin=3,
    )


def _pair_photometric() -> PhotometricConfig:
    # rpautrat's superpoint_coco.yaml photometric settings (at 240x320)
    return PhotometricConfig(
        ops=(
            "brightness",
            "contrast",
            "speckle_noise",
            "gaussian_noise",
            "shade",
            "motion_blur",
        ),
        brightness_max_abs_change=50.0,
        contrast_range=(0.5, 1.5),
        gaussian_noise_std_range=(0.0, 10.0),
        speckle_prob_range=(0.0, 0.0035),
        shade_transparency_range=(-0.5, 0.5),
        shade_kernel_size_range=(100, 150),
        motion_blur_max_kernel_size=3,
    )


@dataclass
class PairsConfig:
    """Step-4 data (``data.*``)."""

    images: str | tuple[str, ...] = ""  # folder(s) or .txt list(s) the labels were made from
    # (--images, repeatable; the same sources, in the same form, as export-labels got)
    labels: str = ""  # the label store of ``superpoint export-labels`` (--labels)
    val_fraction: float = 0.05  # images held out for validation (chosen by a hash of the name)
    homographic: HomographicConfig = field(default_factory=_pair_homographies)  # image 1's warp
    photometric: PhotometricConfig = field(default_factory=_pair_photometric)  # both images
    cache_images: bool = False  # keep prepared images in memory (small sets; per worker)
    crop_size: tuple[int, int] = (0, 0)  # (h, w) random window of each training pair, multiples
    # of 8 (0, 0: the whole image); validation pairs always use the whole image


def split_names(names: Sequence[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """``(train, val)``: a name is held out when ``crc32(name) / 2^32 < val_fraction`` (stable
    when images are added or removed). With a non-zero fraction and at least two images, at
    least one image is held out and at least one kept."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    keys = {n: zlib.crc32(n.encode("utf-8")) / 2**32 for n in names}
    val = [n for n in names if keys[n] < val_fraction]
    if val_fraction > 0 and not val and len(names) >= 2:
        val = [min(names, key=lambda n: keys[n])]
    if len(val) == len(names) and len(names) >= 2:
        val = val[:-1]
    held = set(val)
    return [n for n in names if n not in held], val


class PairDataset(torch.utils.data.Dataset):
    """Pairs of ``names`` (images of the store ``labels``), ``length`` items (module doc).

    ``photometric=False`` leaves pixel values alone, ``crop=False`` ignores ``crop_size``
    (validation pairs: whole images, unchanged pixels).
    """

    def __init__(
        self,
        conf: PairsConfig,
        names: Sequence[str],
        seed: int,
        length: int,
        photometric: bool = True,
        shuffle: bool = True,
        crop: bool = True,
    ):

        if not conf.labels:
            raise ConfigError("data.labels (--labels) is not set: the label store to train on")
        if not conf.images:
            raise ConfigError("data.images (--images) is not set: the folder of the images")
        self.conf = conf
        self.store = LabelStore(conf.labels)
        self.names = list(names)
        if not self.names:
            raise ConfigError(f"no training images in {conf.labels}")
        missing = [n for n in self.names if n not in self.store]
        if missing:
            raise ConfigError(f"images not in {conf.labels}: {missing[:5]}")
        self.size = tuple(self.store.identity["image_size"])
        self.resize = self.store.identity["resize"]
        self.images = ImageSet.from_sources(conf.images)
        absent = [n for n in self.names if n not in self.images.files]
        if absent:
            raise ConfigError(
                f"{len(absent)} labelled images are not under --images {list(self.images.sources)}"
                f" (first: {', '.join(absent[:3])}); give the sources export-labels was given, "
                "in the same form"
            )
        self.crop = tuple(int(v) for v in conf.crop_size) if crop else (0, 0)
        if any(self.crop):
            ch, cw = self.crop
            if ch <= 0 or cw <= 0 or ch % 8 or cw % 8 or ch > self.size[0] or cw > self.size[1]:
                raise ConfigError(
                    f"data.crop_size must be positive multiples of 8 within the labels' size "
                    f"{self.size[0]}x{self.size[1]} (or [0, 0]), got {ch}x{cw}"
                )
        self.seed = seed
        self.length = length
        self.photometric = photometric
        self.shuffle = shuffle
        self._cache: dict[str, np.ndarray] = {}
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def image_index(self, p: int) -> int:
        n = len(self.names)
        epoch, pos = divmod(p, n)
        if not self.shuffle:
            return pos
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch, 1]).permutation(n))
        return int(self._perm[1][pos])

    def load(self, name: str) -> np.ndarray:
        """The prepared uint8 image ``[H, W]`` of ``name`` (as the export saw it)."""
        image = self._cache.get(name)
        if image is None:
            image = prepare_image(self.images.path(name), self.size, self.resize)
            if self.conf.cache_images:
                self._cache[name] = image
        return image

    def raw(self, p: int) -> dict[str, Any]:
        """Item ``p`` as numpy arrays, plus ``keypoints0``/``keypoints1`` ``[N, 2]`` and the
        image's ``name``."""
        name = self.names[self.image_index(p)]
        image = self.load(name).astype(np.float32)
        points, _ = self.store.points(self.store.index(name))
        rng = np.random.default_rng([self.seed, p])
        if any(self.crop):
            image, points = random_crop(rng, image, points, self.crop)
        warped = homographic_augmentation(rng, image, points, self.conf.homographic)
        img0, img1 = image, warped["image"]
        if self.photometric:
            img0 = photometric_augmentation(rng, img0, self.conf.photometric)
            img1 = photometric_augmentation(rng, img1, self.conf.photometric)
        return {
            "image0": img0 / 255.0,
            "image1": img1 / 255.0,
            "keypoints0": np.asarray(points, np.float32).reshape(-1, 2),
            "keypoints1": warped["keypoints"],
            "valid1": warped["valid_mask"],
            "H_0to1": warped["homography"],
            "name": name,
        }

    def __getitem__(self, p: int) -> dict[str, torch.Tensor]:
        r = self.raw(p)
        size = r["image0"].shape[-2:]
        return {
            "image0": torch.from_numpy(np.asarray(r["image0"], np.float32))[None],
            "image1": torch.from_numpy(np.asarray(r["image1"], np.float32))[None],
            "keypoint_map0": torch.from_numpy(keypoint_map(r["keypoints0"], size)),
            "keypoint_map1": torch.from_numpy(keypoint_map(r["keypoints1"], size)),
            "valid0": torch.ones(tuple(size), dtype=torch.float32),
            "valid1": torch.from_numpy(np.asarray(r["valid1"], np.float32)),
            "H_0to1": torch.from_numpy(np.asarray(r["H_0to1"], np.float32)),
            "index": torch.tensor(p, dtype=torch.int64),
        }


def random_crop(
    rng: np.random.Generator, image: np.ndarray, points: np.ndarray, size_hw
) -> tuple[np.ndarray, np.ndarray]:
    """A window of ``size_hw`` at a random position (the top-left corner uniform over the
    positions that fit), and the ``points [N, 2]`` (x, y) that fall inside it, shifted into it
    (a point at ``(x, y)`` lands at ``(x - x0, y - y0)``; kept when it lies within the window's
    pixels, ``-0.5 <= x - x0 < w - 0.5``)."""
    h, w = image.shape[:2]
    ch, cw = int(size_hw[0]), int(size_hw[1])
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    pts = np.asarray(points, np.float32).reshape(-1, 2) - np.array([x0, y0], np.float32)
    x, y = pts[:, 0], pts[:, 1]
    keep = (x >= -0.5) & (x < cw - 0.5) & (y >= -0.5) & (y < ch - 0.5)
    return np.ascontiguousarray(image[y0 : y0 + ch, x0 : x0 + cw]), pts[keep]


def render_pairs(dataset: PairDataset, indices: Sequence[int]) -> np.ndarray:
    """A BGR grid, one row per item: image 0 with its labels, image 1 with the warped labels
    (the invalid region tinted red)."""

    rows = []
    for p in indices:
        r = dataset.raw(p)
        a = draw_keypoints(_u8(r["image0"]), r["keypoints0"])
        b = draw_keypoints(_u8(r["image1"]), r["keypoints1"])
        b[r["valid1"] < 0.5] = (b[r["valid1"] < 0.5] * 0.5 + np.array([0, 0, 127])).astype(
            np.uint8
        )
        gap = np.full((a.shape[0], 6, 3), 255, np.uint8)
        rows.append(np.concatenate([a, gap, b], axis=1))
        rows.append(np.full((6, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
