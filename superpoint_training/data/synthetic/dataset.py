"""``SyntheticShapesDataset``: ``(seed, split, index)``-deterministic synthetic samples for a
torch ``DataLoader`` (workers are deterministic too), with optional augmentation
(``superpoint_training.data.augment``) and an on-disk cache of the fixed val/test splits (one
``.npz`` per split); ``collate`` and ``worker_init`` for its loader."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from superpoint_training.data.augment import AugmentConfig, augment, keypoint_map

from .config import SyntheticShapesConfig
from .primitives import render_sample

SPLITS = {"train": 0, "val": 1, "test": 2}
CACHE_FORMAT = 1  # bump when the cache layout or the generator's output changes


def _sample_seeds(seed: int, split: str, epoch: int, index: int) -> list[np.random.SeedSequence]:
    entropy = [int(seed), SPLITS[split], int(epoch), int(index)]
    return np.random.SeedSequence(entropy).spawn(2)  # render stream, augmentation stream


class SyntheticShapesDataset(torch.utils.data.Dataset):
    """Synthetic shapes for MagicPoint training, generated on the fly.

    Item ``i`` depends only on ``(seed, split, i)`` (and, for ``train``, the epoch set with
    ``set_epoch``), so it is the same in every process and every ``DataLoader`` worker. Items:

    * ``image``: float32 ``[1, H, W]`` in ``[0, 1]``;
    * ``keypoints``: float32 ``[N, 2]`` (x, y), pixel-centre convention (varies per item: batch
      with ``collate``);
    * ``keypoint_map``: float32 ``[H, W]``, 1 at the pixel of each keypoint;
    * ``valid_mask``: float32 ``[H, W]``, 1 where the (warped) image has content;
    * ``homography``: float64 ``[3, 3]`` applied by the augmentation (identity without);
    * ``primitive``: str.

    ``augment`` (an ``AugmentConfig``) adds photometric and homographic augmentation; ``None``
    gives the clean renders. ``cache_dir`` stores the clean renders of a ``val``/``test`` split
    in one ``.npz`` (written once, reused; the file name holds a digest of the config, seed and
    length, so a changed config never reads a stale cache). ``train`` is never cached.

    Workers: pass ``worker_init_fn=worker_init`` (see there why it does not touch OpenCV).
    """

    def __init__(
        self,
        config: SyntheticShapesConfig | None = None,
        split: str = "train",
        seed: int = 0,
        length: int = 10000,
        augment: AugmentConfig | None = None,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        if seed < 0 or length < 0:
            raise ValueError("seed and length must be >= 0")
        self.config = config or SyntheticShapesConfig()
        self.split = split
        self.seed = int(seed)
        self.length = int(length)
        self.augment = augment
        self.epoch = 0
        self.cache_path: Path | None = None
        self._cache: dict[str, np.ndarray] | None = None
        if cache_dir is not None and split != "train":
            self.cache_path = Path(cache_dir) / self.cache_name()
            self._cache = self._load_or_build_cache(progress)

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Draw new ``train`` images for each epoch (val/test ignore it)."""
        self.epoch = int(epoch)

    def cache_name(self) -> str:
        """``synthetic_shapes_<split>_<digest>.npz``, the digest covering what shapes it."""
        key = {
            "config": self.config.to_dict(),
            "seed": self.seed,
            "split": self.split,
            "length": self.length,
            "format": CACHE_FORMAT,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        return f"synthetic_shapes_{self.split}_{digest}.npz"

    def _load_or_build_cache(self, progress: bool) -> dict[str, np.ndarray]:
        path = self.cache_path
        assert path is not None
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:
                cache = {k: data[k] for k in data.files}
            if len(cache["images"]) == self.length:
                return cache
        from tqdm import tqdm

        images = np.zeros((self.length, *self.config.image_size), np.uint8)
        keypoints, offsets, primitives = [], [0], []
        for i in tqdm(range(self.length), desc=f"synthetic shapes: {self.split} cache",
                      disable=not progress, leave=False):  # fmt: skip
            sample = self.render(i)
            images[i] = sample["image"]
            keypoints.append(sample["keypoints"])
            offsets.append(offsets[-1] + len(sample["keypoints"]))
            primitives.append(sample["primitive"])
        cache = {
            "images": images,
            "keypoints": np.concatenate(keypoints).astype(np.float32)
            if keypoints
            else np.zeros((0, 2), np.float32),
            "offsets": np.asarray(offsets, np.int64),
            "primitives": np.asarray(primitives, dtype=str),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npz")
        np.savez(tmp, **cache)
        os.replace(tmp, path)
        return cache

    def render(self, index: int) -> dict[str, Any]:
        """The clean render of item ``index`` (``render_sample``'s dict)."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        if self._cache is not None:
            c = self._cache
            a, b = c["offsets"][index], c["offsets"][index + 1]
            return {
                "image": c["images"][index],
                "keypoints": c["keypoints"][a:b],
                "primitive": str(c["primitives"][index]),
            }
        epoch = self.epoch if self.split == "train" else 0
        render_seq, _ = _sample_seeds(self.seed, self.split, epoch, index)
        return render_sample(np.random.default_rng(render_seq), self.config)

    def sample(self, index: int) -> dict[str, Any]:
        """Item ``index`` as numpy arrays: image float32 ``[H, W]`` in ``[0, 255]``, keypoints,
        valid_mask, homography, primitive (``__getitem__`` before conversion to torch)."""
        clean = self.render(index)
        size = clean["image"].shape
        if self.augment is None:
            out = {
                "image": clean["image"].astype(np.float32),
                "keypoints": clean["keypoints"],
                "valid_mask": np.ones(size, np.float32),
                "homography": np.eye(3),
            }
        else:
            epoch = self.epoch if self.split == "train" else 0
            _, aug_seq = _sample_seeds(self.seed, self.split, epoch, index)
            out = augment(
                np.random.default_rng(aug_seq), clean["image"], clean["keypoints"], self.augment
            )
        out["primitive"] = clean["primitive"]
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.sample(int(index))
        size = s["image"].shape
        return {
            "image": torch.from_numpy(s["image"] / np.float32(255.0))[None],
            "keypoints": torch.from_numpy(np.asarray(s["keypoints"], np.float32)),
            "keypoint_map": torch.from_numpy(keypoint_map(s["keypoints"], size)),
            "valid_mask": torch.from_numpy(np.asarray(s["valid_mask"], np.float32)),
            "homography": torch.from_numpy(np.asarray(s["homography"], np.float64)),
            "primitive": s["primitive"],
        }


def collate(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch dataset items: tensors of equal shape are stacked (``image [B, 1, H, W]``...),
    ``keypoints`` stays a list of ``[N_i, 2]`` tensors and strings a list of strings."""
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        if key != "keypoints" and torch.is_tensor(values[0]):
            out[key] = torch.stack(values)
        else:
            out[key] = values
    return out


def worker_init(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=worker_init)``: one torch thread per worker.

    It leaves OpenCV alone on purpose: ``cv2.setNumThreads`` in a forked worker deadlocks once
    the parent has used OpenCV's thread pool (measured here), while OpenCV's own parallel
    functions keep working there. The dataset itself needs no per-worker seeding: every item is
    a function of ``(seed, split, epoch, index)``."""
    torch.set_num_threads(1)
