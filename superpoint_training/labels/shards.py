"""The label export split over ranks: the shard plan, each rank's part store, the merge.

Several processes (torchrun ranks, or ``export-labels --nproc N``) label disjoint shares of one
image list, each into its own part store (``part_path``: ``<output stem>.parts/part-RRRRR.h5``,
the same chunked, resumable ``LabelStoreWriter`` as a one-process export, one writer per file);
rank 0 then merges the parts into the one store training reads (``merge_parts``) and removes
them. No collective ever carries labels: the process group only hands rank 0's plan to the
others and waits for the merge.

Resuming, with any number of ranks: ``plan_shards`` counts an image as done when the output or
*any* part (also parts of ranks that no longer exist) holds it, and shares the rest among the
ranks now running, interleaved (``todo[r::W]``, so every rank gets the same number of images
within one). A part torn by a kill during one of its commits (``LabelStore.verify``) is set
aside as ``part-RRRRR.h5.torn`` (``ShardPlan.torn``) and its images are labelled again: a part
only holds one rank's progress. Each image is labelled by exactly one rank and committed once;
the merge takes
them in the order of the image list (then any other committed names, sorted), so the merged
store equals, dataset by dataset, the store one process writes for the same images (which
commits them in that order). A merge killed halfway resumes too: the output's writer skips the
names it holds already, and the parts are removed only after the output is marked complete.

numpy + h5py only (no torch): what each rank computes is ``export.py``'s business.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superpoint_ros.errors import ConfigError, InputError

from .store import LabelStore, LabelStoreWriter

PART_GLOB = "part-*.h5"
TORN_SUFFIX = ".torn"


def parts_dir(output: str | os.PathLike) -> Path:
    """The folder of the part stores of ``output`` (beside it: ``<stem>.parts``)."""
    output = Path(output)
    return output.with_name(f"{output.stem}.parts")


def part_path(output: str | os.PathLike, rank: int) -> Path:
    """Rank ``rank``'s part store of ``output``."""
    return parts_dir(output) / f"part-{rank:05d}.h5"


def existing_parts(output: str | os.PathLike) -> list[Path]:
    """The part stores present beside ``output`` (of any earlier run), sorted by rank."""
    folder = parts_dir(output)
    return sorted(folder.glob(PART_GLOB)) if folder.is_dir() else []


@dataclass(frozen=True)
class ShardPlan:
    """What rank 0 decided: ``shards[r]`` are rank ``r``'s images (in list order), ``done``
    how many of the list were committed already (in the output or a part), ``torn`` the parts
    it found torn and set aside (their new paths)."""

    shards: tuple[tuple[str, ...], ...]
    done: int
    total: int
    torn: tuple[str, ...] = ()

    @property
    def todo(self) -> int:
        return sum(len(s) for s in self.shards)


def split(todo: Sequence[str], world_size: int) -> tuple[tuple[str, ...], ...]:
    """``todo`` shared among ``world_size`` ranks, interleaved: rank ``r`` takes positions
    ``r, r + W, r + 2W, ...`` (equal shares within one image)."""
    if world_size < 1:
        raise ConfigError(f"the number of ranks must be >= 1, got {world_size}")
    return tuple(tuple(todo[r::world_size]) for r in range(world_size))


def _same_identity(store: LabelStore, identity: Mapping[str, Any]) -> bool:
    return store.identity == json.loads(json.dumps(identity, sort_keys=True, default=str))


def set_aside_torn_parts(output: str | os.PathLike) -> list[Path]:
    """Rename every part of ``output`` that is torn (unreadable, or rows missing: see
    ``LabelStore.verify``) to ``<part>.torn``, out of the resume's way; returns the new paths."""
    torn = []
    for path in existing_parts(output):
        try:
            with LabelStore(path) as store:
                store.verify()
        except InputError:
            aside = path.with_name(path.name + TORN_SUFFIX)
            os.replace(path, aside)
            torn.append(aside)
    return torn


def committed_names(
    output: str | os.PathLike, identity: Mapping[str, Any]
) -> tuple[set[str], list[Path]]:
    """Every image name committed (labelled or skipped) in ``output`` or its parts, and the
    parts found. A store or part made with another config or weights is refused."""
    stores = [Path(output)] if Path(output).is_file() else []
    parts = existing_parts(output)
    done: set[str] = set()
    for path in stores + parts:
        with LabelStore(path) as store:
            if not _same_identity(store, identity):
                raise ConfigError(
                    f"{path} holds labels made with another config or weights; choose another "
                    f"output, or delete {Path(output)} and {parts_dir(output)} to start over"
                )
            done.update(store.names)
            done.update(n for n, _ in store.skipped)
    return done, parts


def plan_shards(
    names: Sequence[str], output: str | os.PathLike, identity: Mapping[str, Any], world_size: int
) -> ShardPlan:
    """Rank 0's plan (module doc): torn parts set aside, then the images of ``names`` not
    committed anywhere yet, shared among ``world_size`` ranks."""
    torn = set_aside_torn_parts(output)
    done, _ = committed_names(output, identity)
    todo = [n for n in names if n not in done]
    return ShardPlan(
        split(todo, world_size), len(names) - len(todo), len(names), tuple(map(str, torn))
    )


def merge_parts(
    writer: LabelStoreWriter, names: Sequence[str], chunk_size: int = 4096
) -> dict[str, int]:
    """Append every image committed in a part of ``writer``'s store and not in the store yet,
    in the order of ``names`` (then any other part names, sorted), ``chunk_size`` images per
    commit; returns ``{"parts": P, "merged": images appended now}``. Marks nothing complete and
    removes nothing (``remove_parts``, after ``writer.finish``)."""
    parts = existing_parts(writer.path)
    identity = json.loads(writer.identity)
    stores = [LabelStore(p) for p in parts]
    try:
        found: dict[str, tuple[int, int]] = {}  # name -> (part, index) of a labelled image
        reasons: dict[str, str] = {}  # name -> why it was skipped
        for k, store in enumerate(stores):
            if not _same_identity(store, identity):
                raise ConfigError(f"{store.path} holds labels made with another config")
            for i, name in enumerate(store.names):
                found.setdefault(name, (k, i))
            for name, reason in store.skipped:
                reasons.setdefault(name, reason)
        in_list = set(names)
        others = sorted(n for n in found.keys() | reasons.keys() if n not in in_list)
        records: list = []
        skipped: list = []
        merged = 0
        for name in [*names, *others]:
            if writer.is_done(name):
                continue
            if name in found:
                k, i = found[name]
                pts, scs = stores[k].points(i)
                records.append((name, pts, scs))
            elif name in reasons:
                skipped.append((name, reasons[name]))
            else:
                continue
            merged += 1
            if len(records) + len(skipped) >= chunk_size:
                writer.append(records, skipped)
                records, skipped = [], []
        writer.append(records, skipped)
    finally:
        for store in stores:
            store.close()
    return {"parts": len(parts), "merged": merged}


def remove_parts(output: str | os.PathLike) -> None:
    """Delete the parts folder of ``output`` (once the merged store is complete)."""
    folder = parts_dir(output)
    if folder.is_dir():
        shutil.rmtree(folder)
