"""Training step 3: export pseudo ground truth for a folder of images by homographic adaptation.

``export_round(conf, weights, images_dir, output) -> summary`` (one export; ``superpoint
export-labels`` runs it through ``training.label_rounds.export_labels``, which adds the rounds):
every image of ``images_dir`` (recursively, sorted, by extension) is read as
grayscale and brought to ``conf.image_size`` (240x320, as the paper does for COCO:
``prepare_image``), then ``labels.homographic_adaptation`` runs the MagicPoint ``weights`` on
``adaptation.num_homographies`` warps of it, and the selected points go into one HDF5 label
store (``labels.store``), committed every ``chunk_size`` images.

* Resumable: rerunning the same command continues a killed export; images already in the store
  are skipped, and a store made with another config or other weights is refused. Image ``name``
  always gets the same homographies (drawn from ``(seed, crc32(name))``), so labels do not
  depend on batch size, order or interruptions.
* Unreadable images are logged, recorded in the store and counted in the summary.
* Several rounds (``rounds.*`` here, run by ``training.label_rounds``): export, train the
  detector on the labels, export again with the retrained detector.
* Several processes (``labels.ranks``: torchrun, or ``--nproc N``): each rank labels its share
  of the images into its own part store, rank 0 merges the parts into ``output``
  (``labels.shards``); the merged store equals the one-process store of the same images, and a
  killed multi-rank export resumes with any number of ranks (also one).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import signal
import sys
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from superpoint_ros.devices import resolve_device
from superpoint_ros.errors import ConfigError, InputError
from superpoint_ros.model.superpoint import CELL
from superpoint_ros.model.weights import build_model, load_weights
from superpoint_ros.visualize import draw_keypoints

from ..config import to_dict
from ..data.images import IMAGE_EXTENSIONS, RESIZE_MODES, ImageSet, prepare_image
from ..precision import PRECISIONS, autocast, check_precision
from ..training import distributed
from .homographic_adaptation import (
    AdaptationConfig,
    adapt_and_select,
    sample_adaptation_homographies,
)
from .shards import (
    TORN_SUFFIX,
    existing_parts,
    merge_parts,
    part_path,
    plan_shards,
    remove_parts,
)
from .store import LabelStore, LabelStoreWriter, summarize

log = logging.getLogger(__name__)


@dataclass
class RoundsConfig:
    """Repeated adaptation (``rounds.*``): export, retrain the detector, export again."""

    num_rounds: int = 1  # exports in all (1: a single export with the given weights)
    steps: int = 20000  # detector training steps between two exports
    config: str = ""  # step-4 YAML for that training (default: config/train/superpoint.yaml)
    overrides: tuple[str, ...] = ()  # key=value overrides of that training (e.g. train.lr=...)


@dataclass
class ExportConfig:
    """Everything ``superpoint export-labels`` depends on (``config/train/export_labels.yaml``).

    Keys under "identity" decide the labels and are stored with them (a resumed export must
    match); the others only change speed or reporting.
    """

    seed: int = 0  # identity: homographies of image `name` are drawn from (seed, crc32(name))
    image_size: tuple[int, int] = (240, 320)  # identity: (h, w) the images are brought to
    resize: str = "crop"  # identity: crop (keep aspect, fill, centre crop) | stretch
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)  # identity (not
    # adaptation.warp_batch, which changes speed only)
    batch_size: int = 1  # images adapted together (B x num_homographies warps per image batch)
    chunk_size: int = 64  # images per store commit (a kill loses at most one chunk of work)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_threads: int = 0  # torch CPU threads (0: torch's default)
    num_workers: int = 2  # image-reading worker processes (0: read in this process)
    precision: str = "fp32"  # detector inference: fp32 | bf16 | fp16 (CUDA) (speed only)
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS  # files taken as images (case-insensitive)
    limit: int = 0  # export only the first N images of the sorted list (0: all)
    progress: bool = True  # show the tqdm progress bar
    preview_images: int = 8  # images drawn by --preview
    rounds: RoundsConfig = field(default_factory=RoundsConfig)  # repeated adaptation


IDENTITY_KEYS = ("seed", "image_size", "resize", "adaptation")
SPEED_ONLY_ADAPTATION_KEYS = ("warp_batch",)  # change speed, not labels: not in the identity


def check_config(conf: ExportConfig) -> None:
    h, w = conf.image_size
    if h <= 0 or w <= 0 or h % CELL or w % CELL:
        raise ConfigError(f"image_size must be positive multiples of {CELL}, got {h}x{w}")
    if conf.resize not in RESIZE_MODES:
        raise ConfigError(f"unknown resize {conf.resize!r}; valid: {', '.join(RESIZE_MODES)}")
    for key in ("batch_size", "chunk_size"):
        if getattr(conf, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(conf, key)}")
    for key in ("num_workers", "num_threads", "limit", "preview_images"):
        if getattr(conf, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {getattr(conf, key)}")
    if conf.precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {conf.precision!r}; valid: {', '.join(PRECISIONS)}")
    if conf.rounds.num_rounds < 1:
        raise ConfigError(f"rounds.num_rounds must be >= 1, got {conf.rounds.num_rounds}")


# ---------------------------------------------------------------------------------------------
# images


class _ImageFolder:
    """Map-style dataset for the DataLoader: ``(name, image uint8 [H, W] or None, error)``."""

    def __init__(self, images: ImageSet, names: Sequence[str], size_hw, mode: str):
        self.images, self.names, self.size_hw, self.mode = images, list(names), size_hw, mode

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int):
        name = self.names[i]
        try:
            return name, prepare_image(self.images.path(name), self.size_hw, self.mode), ""
        except InputError as exc:
            return name, None, str(exc)


def _collate(items):
    return items


def image_rng(seed: int, name: str) -> np.random.Generator:
    """The random source of image ``name``'s homographies (independent of order/batching)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


# ---------------------------------------------------------------------------------------------
# export


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def store_identity(conf: ExportConfig, weights_sha: str) -> dict[str, Any]:
    """What decides the labels: the identity keys of ``conf`` and the weights' hash."""
    tree = to_dict(conf)
    identity = {k: tree[k] for k in IDENTITY_KEYS}
    identity["adaptation"] = {
        k: v for k, v in identity["adaptation"].items() if k not in SPEED_ONLY_ADAPTATION_KEYS
    }
    return {**identity, "weights_sha256": weights_sha}


def load_detector(weights: str | os.PathLike, device):
    """The network of ``weights`` (any layout ``load_weights`` reads), eval mode, on
    ``device``."""
    return build_model(load_weights(weights)).to(device).eval()


def is_main() -> bool:
    """This process is rank 0 of its process group (or there is no group)."""
    return not grouped() or dist.get_rank() == 0


def export_round(
    conf: ExportConfig,
    weights: str | os.PathLike,
    images_dir: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
) -> dict[str, Any]:
    """One export with ``weights`` into ``output`` (resuming it); returns the summary.

    In one process (no ``torch.distributed`` group and no part stores left beside ``output``)
    the labels go straight into ``output``. Under a process group (torchrun, ``--nproc``),
    or when an earlier multi-rank export left parts, each rank labels its shard into its own
    part and rank 0 merges them (``labels.shards``); every rank returns the summary."""
    images = ImageSet.from_sources(images_dir, conf.extensions)
    names = list(images.names)
    if conf.limit:
        names = names[: conf.limit]
    if not names:
        raise InputError(f"no images ({', '.join(conf.extensions)}) under {images.sources}")
    info = distributed.current()
    in_group = grouped()
    device = (
        _rank_device(conf.device, info.local_rank) if in_group else resolve_device(conf.device)
    )
    check_precision(conf.precision, device)
    if conf.num_threads > 0:
        torch.set_num_threads(conf.num_threads)
    identity = store_identity(conf, file_sha256(weights))
    meta = {
        "weights": str(weights),
        "images": [str(Path(s).resolve()) for s in images.sources],
        "device": str(device),
        "precision": conf.precision,
    }
    if not in_group and not existing_parts(output):
        writer = LabelStoreWriter(output, identity, meta)
        todo = [n for n in names if not writer.is_done(n)]
        labelled, elapsed = _label(conf, weights, images, todo, writer, device, len(names))
        return _finish(writer, labelled, elapsed)

    # sharded (module labels.shards): rank 0 plans, every rank labels its part, rank 0 merges
    plan = plan_shards(names, output, identity, info.world_size) if info.is_main else None
    plan = distributed.broadcast(plan)
    if info.is_main:
        for aside in plan.torn:
            print(
                f"warning: {aside.removesuffix(TORN_SUFFIX)} was torn by a kill during a commit; "
                f"set aside as {aside}, its images are labelled again",
                file=sys.stderr, flush=True,
            )  # fmt: skip
    mine = plan.shards[info.rank]
    labelled, elapsed = 0, 0.0
    if mine:
        part_meta = {**meta, "rank": info.rank, "world_size": info.world_size}
        writer = LabelStoreWriter(part_path(output, info.rank), identity, part_meta)
        labelled, elapsed = _label(
            conf, weights, images, mine, writer, device, len(mine), info if in_group else None
        )
    stats = distributed.gather_all((labelled, elapsed)) if in_group else [(labelled, elapsed)]
    summary = None
    if info.is_main:
        writer = LabelStoreWriter(output, identity, {**meta, "world_size": info.world_size})
        merge_parts(writer, names, max(conf.chunk_size, 4096))
        summary = _finish(
            writer, sum(n for n, _ in stats), max(t for _, t in stats), ranks=len(stats)
        )
        remove_parts(output)
    return distributed.broadcast(summary) if in_group else summary


def grouped() -> bool:
    """A ``torch.distributed`` process group is initialised (of any size, also 1)."""
    return dist.is_available() and dist.is_initialized()


def _rank_device(device: str, local_rank: int):
    """The device of a rank: ``cuda:LOCAL_RANK`` for ``auto`` (with a GPU) and ``cuda``, the
    CPU for ``cpu``; ``cuda:N`` is refused (every rank would take the same GPU)."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(
            f"device={device} pins one GPU, but each export rank uses cuda:LOCAL_RANK: use "
            "--device cuda (or auto); choose GPUs with CUDA_VISIBLE_DEVICES"
        )
    return distributed.rank_device(device, local_rank)


def _label(
    conf: ExportConfig,
    weights: str | os.PathLike,
    images: ImageSet,
    todo: Sequence[str],
    writer: LabelStoreWriter,
    device,
    total: int,
    rank_info=None,
) -> tuple[int, float]:
    """Label the images ``todo`` into ``writer``, ``chunk_size`` images per commit; returns
    ``(images labelled, seconds)``. The bar counts ``total`` (only rank 0's shows)."""
    model = load_detector(weights, device)
    ada = conf.adaptation
    size = tuple(conf.image_size)
    loader = torch.utils.data.DataLoader(
        _ImageFolder(images, todo, size, conf.resize),
        batch_size=conf.batch_size,
        num_workers=conf.num_workers if len(todo) > conf.batch_size else 0,
        collate_fn=_collate,
    )
    desc = "export-labels"
    if rank_info is not None:
        desc = f"export-labels rank {rank_info.rank}/{rank_info.world_size}"
    show = conf.progress and (rank_info is None or rank_info.is_main)
    bar = tqdm(
        total=total,
        initial=total - len(todo),
        desc=desc,
        unit="img",
        dynamic_ncols=True,
        mininterval=1.0,
        disable=not show,
    )
    records: list = []
    skipped: list = []
    labelled = points = 0
    start = time.perf_counter()
    with _sigterm_as_interrupt():
        try:
            for batch in loader:
                good = [(n, img) for n, img, _ in batch if img is not None]
                for n, _, err in batch:
                    if err:
                        if show:
                            bar.write(f"skipping unreadable image: {err}")
                        else:
                            log.warning("skipping unreadable image: %s", err)
                        skipped.append((n, err))
                if good:
                    imgs = torch.from_numpy(np.stack([img for _, img in good])).to(device)
                    imgs = imgs.float().div_(255.0)[:, None]
                    homs = np.stack(
                        [
                            sample_adaptation_homographies(
                                image_rng(conf.seed, n), ada.num_homographies, size, ada.homography
                            )
                            for n, _ in good
                        ]
                    )
                    with autocast(conf.precision, device):
                        labels = adapt_and_select(model, imgs, torch.from_numpy(homs), ada)
                    for (n, _), (pts, scs) in zip(good, labels):
                        records.append((n, pts, scs))
                        points += len(pts)
                    labelled += len(good)
                bar.update(len(batch))
                if len(records) + len(skipped) >= conf.chunk_size:
                    writer.append(records, skipped)
                    records, skipped = [], []
                if labelled:
                    bar.set_postfix(pts=f"{points / labelled:.0f}/img")
            writer.append(records, skipped)
        except KeyboardInterrupt:
            with _stop_signals_ignored():  # the launcher's echo of Ctrl-C must not cut the commit
                writer.append(records, skipped)  # keep the finished images of the open chunk
            bar.write(f"interrupted: {len(writer.done)} images committed; rerun to continue")
            raise
        finally:
            bar.close()
    return labelled, time.perf_counter() - start


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (torchrun passing on Ctrl-C, ``kill``, ``--nproc``'s launcher) stops the
    labelling like Ctrl-C: the open chunk is committed first. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _stop_signals_ignored():
    """SIGINT and SIGTERM ignored for the duration (a commit). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _finish(
    writer: LabelStoreWriter, labelled: int, elapsed: float, ranks: int | None = None
) -> dict[str, Any]:
    """Mark ``writer``'s store complete with its summary (``ranks``: a sharded export's
    number of ranks; ``elapsed``: the slowest rank's seconds)."""
    writer.finish()
    summary = {
        **summarize(LabelStore(writer.path)),
        "labelled_now": labelled,
        "seconds_now": round(elapsed, 2),
        "images_per_s_now": labelled / elapsed if elapsed > 0 and labelled else None,
        "output": str(writer.path),
    }
    if ranks is not None:
        summary["ranks"] = ranks
    writer.finish(summary)
    return summary


# ---------------------------------------------------------------------------------------------
# preview


def preview_image(
    store_path: str | os.PathLike,
    images_dir: str | os.PathLike,
    num_images: int = 8,
    cols: int = 4,
) -> np.ndarray:
    """A BGR grid of the store's first ``num_images`` images with their labels drawn."""
    store = LabelStore(store_path)
    images = ImageSet.from_sources(images_dir)
    identity = store.identity
    size = tuple(identity["image_size"])
    tiles = []
    with store:
        for i in range(min(num_images, len(store))):
            name = store.names[i]
            image = prepare_image(images.path(name), size, identity["resize"])
            pts, _ = store.points(i)
            tile = draw_keypoints(image, pts, radius=2)
            cv2.putText(
                tile, f"{name[-28:]}: {len(pts)} pts", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (0, 0, 255), 1, cv2.LINE_AA,
            )  # fmt: skip
            tiles.append(tile)
    if not tiles:
        raise InputError(f"{store_path} holds no labelled image to preview")
    cols = min(cols, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    h, w = tiles[0].shape[:2]
    grid = np.full((rows * (h + 4) - 4, cols * (w + 4) - 4, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        y, x = (k // cols) * (h + 4), (k % cols) * (w + 4)
        grid[y : y + h, x : x + w] = tile
    return grid


def save_preview(
    store_path: str | os.PathLike,
    images_dir: str | os.PathLike,
    output: str | os.PathLike,
    num_images: int = 8,
) -> Path:
    """Write ``preview_image`` as a PNG."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(output), preview_image(store_path, images_dir, num_images)):
        raise InputError(f"cannot write {output}")
    return output


def summary_text(summary: dict[str, Any]) -> str:
    """One line per figure, for the command line."""
    lines = [
        f"labels: {summary.get('output')}",
        f"images: {summary['images']} labelled ({summary['labelled_now']} in this run), "
        f"{summary['skipped']} skipped (unreadable)",
        f"points: {summary['points']} ({summary['points_per_image_mean']:.1f} per image, "
        f"min {summary['points_per_image_min']}, max {summary['points_per_image_max']})",
    ]
    if summary.get("images_per_s_now"):
        ranks = f" ({summary['ranks']} processes)" if summary.get("ranks", 1) > 1 else ""
        lines.append(
            f"time: {summary['seconds_now']:.1f} s, {summary['images_per_s_now']:.3f} "
            f"images/s{ranks}"
        )
    return "\n".join(lines)
