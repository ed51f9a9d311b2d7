"""The pseudo-label store: one HDF5 file for a whole image set (numpy + h5py; no torch).

Public tools write one small file per image and lose most of a 28-50 h COCO export to it; here
every image's points go into concatenated arrays with a per-image index:

* ``names [K]`` (str): image paths relative to the images folder, in commit order;
* ``offsets [K]`` (int64), ``counts [K]`` (int32): image ``i``'s points are rows
  ``offsets[i] : offsets[i] + counts[i]`` of
* ``points [M, 2]`` (float32, (x, y) pixels of the preprocessed image, pixel centres at integer
  coordinates) and ``scores [M]`` (float32, the averaged detector probability), best first;
* ``skipped_names [S]``, ``skipped_reasons [S]`` (str): images that could not be read;
* attributes: ``format``, ``identity`` (JSON: everything that decides the labels, i.e. the
  export config and the weights' SHA-256; a resumed export must match it), ``meta`` (JSON:
  informational), ``num_images`` / ``num_points`` / ``num_skipped`` (the committed counts),
  ``complete`` (the export reached the end of its image list).

Incremental and resumable. ``LabelStoreWriter.append`` commits a chunk of images: it opens the
file, appends the rows, then raises the committed counts, and closes it (so the file is closed,
hence consistent, whenever the export is computing). Rows beyond the committed counts (left by
a process killed inside ``append``) are ignored by readers and truncated when a writer reopens
the file, so a killed export resumed with the same config neither duplicates nor loses an
image. HDF5 is not crash-consistent, though: it updates its metadata in place, in its own
order, so a kill during the few milliseconds of a commit can tear the file (seen: about one
SIGKILL in three in ``test_export_sharded``'s kill-anywhere test, which kills right after a
commit). A torn file raises ``InputError`` when opened or read (``LabelStore.verify`` reads
every committed row); a multi-rank export sets a torn *part* aside and labels its images again
(``labels.shards``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from superpoint_ros.errors import ConfigError, InputError

FORMAT = "superpoint_training.labels.v1"
_STR = h5py.string_dtype(encoding="utf-8")


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, default=str)


def _open(path: Path, mode: str) -> h5py.File:
    try:
        return h5py.File(path, mode)
    except OSError as exc:
        raise InputError(
            f"cannot open label store {path} ({exc}); is it open in another process? If an "
            "export was killed while writing it, delete the file and export again"
        ) from exc


def _torn(path: Path, exc: OSError) -> InputError:
    return InputError(
        f"label store {path} cannot be read ({exc}): an export killed while committing to it "
        "tore it; delete it and export again"
    )


def _check_format(f: h5py.File, path: Path) -> None:
    if f.attrs.get("format") != FORMAT:
        raise InputError(f"{path} is not a label store (format {f.attrs.get('format')!r})")


class LabelStoreWriter:
    """Appends committed chunks of images to a label store, creating or resuming it.

    ``identity``: JSON-able mapping of everything that determines the labels; a file made with
    another identity is refused (``ConfigError``), never mixed. ``meta``: informational,
    rewritten on every open.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        identity: Mapping[str, Any],
        meta: Mapping[str, Any] | None = None,
    ):
        self.path = Path(path)
        self.identity = _json(identity)
        meta_json = _json(meta or {})
        if self.path.exists():
            with _open(self.path, "a") as f:
                _check_format(f, self.path)
                if f.attrs["identity"] != self.identity:
                    raise ConfigError(
                        f"{self.path} holds labels made with another config or weights; "
                        "choose another output, or delete it to start over "
                        f"(stored: {f.attrs['identity']}; now: {self.identity})"
                    )
                self._truncate(f)
                f.attrs["meta"] = meta_json
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = FORMAT
                f.attrs["identity"] = self.identity
                f.attrs["meta"] = meta_json
                for key in ("num_images", "num_points", "num_skipped"):
                    f.attrs[key] = 0
                f.attrs["complete"] = False
                f.create_dataset("names", (0,), _STR, maxshape=(None,), chunks=(4096,))
                f.create_dataset("offsets", (0,), np.int64, maxshape=(None,), chunks=(4096,))
                f.create_dataset("counts", (0,), np.int32, maxshape=(None,), chunks=(4096,))
                f.create_dataset(
                    "points", (0, 2), np.float32, maxshape=(None, 2), chunks=(32768, 2)
                )
                f.create_dataset("scores", (0,), np.float32, maxshape=(None,), chunks=(32768,))
                f.create_dataset("skipped_names", (0,), _STR, maxshape=(None,), chunks=(256,))
                f.create_dataset("skipped_reasons", (0,), _STR, maxshape=(None,), chunks=(256,))
            os.replace(tmp, self.path)
        with _open(self.path, "r") as f:
            try:
                self._done = set(f["names"].asstr()[: int(f.attrs["num_images"])])
                self._done.update(f["skipped_names"].asstr()[: int(f.attrs["num_skipped"])])
            except OSError as exc:
                raise _torn(self.path, exc) from exc

    @staticmethod
    def _truncate(f: h5py.File) -> None:
        """Drop rows a killed ``append`` wrote beyond the committed counts."""
        k, m, s = (int(f.attrs[key]) for key in ("num_images", "num_points", "num_skipped"))
        for name, n in (("names", k), ("offsets", k), ("counts", k), ("points", m),
                        ("scores", m), ("skipped_names", s), ("skipped_reasons", s)):  # fmt: skip
            if f[name].shape[0] != n:
                f[name].resize(n, axis=0)

    def is_done(self, name: str) -> bool:
        """The image is committed (labelled or skipped) already."""
        return name in self._done

    @property
    def done(self) -> frozenset[str]:
        return frozenset(self._done)

    def append(
        self,
        records: Sequence[tuple[str, np.ndarray, np.ndarray]],
        skipped: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Commit ``records`` (``(name, points [N, 2], scores [N])``) and ``skipped`` images
        (``(name, reason)``) in one go. Names already committed raise ``ValueError``."""
        new = [r[0] for r in records] + [s[0] for s in skipped]
        dup = [n for n in new if n in self._done]
        if dup or len(set(new)) != len(new):
            raise ValueError(f"images committed twice: {dup[:5] or new}")
        if not new:
            return
        counts = np.array([len(np.asarray(p).reshape(-1, 2)) for _, p, _ in records], np.int64)
        with _open(self.path, "a") as f:
            self._truncate(f)
            k, m, s = (int(f.attrs[key]) for key in ("num_images", "num_points", "num_skipped"))
            if records:
                pts = np.concatenate(
                    [np.asarray(p, np.float32).reshape(-1, 2) for _, p, _ in records]
                )
                scs = np.concatenate(
                    [np.asarray(v, np.float32).reshape(-1) for _, _, v in records]
                )
                if len(scs) != len(pts):
                    raise ValueError("points and scores differ in length")
                offsets = m + np.concatenate([[0], np.cumsum(counts)[:-1]])
                _extend(f["points"], pts)
                _extend(f["scores"], scs)
                _extend(f["names"], np.array([r[0] for r in records], dtype=object))
                _extend(f["offsets"], offsets.astype(np.int64))
                _extend(f["counts"], counts.astype(np.int32))
            if skipped:
                _extend(f["skipped_names"], np.array([n for n, _ in skipped], dtype=object))
                _extend(f["skipped_reasons"], np.array([r for _, r in skipped], dtype=object))
            # the commit: counts raised last, after the rows are in
            f.attrs["num_points"] = m + int(counts.sum())
            f.attrs["num_skipped"] = s + len(skipped)
            f.attrs["num_images"] = k + len(records)
        self._done.update(new)

    def finish(self, summary: Mapping[str, Any] | None = None) -> None:
        """Mark the export complete and store its ``summary`` (JSON) as an attribute."""
        with _open(self.path, "a") as f:
            f.attrs["complete"] = True
            f.attrs["summary"] = _json(summary or {})


def _extend(ds: h5py.Dataset, values: np.ndarray) -> None:
    n = ds.shape[0]
    ds.resize(n + len(values), axis=0)
    ds[n:] = values


class LabelStore:
    """Read access to a label store (safe in DataLoader workers: each process opens its own
    handle on first use)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"label store not found: {self.path}")
        with _open(self.path, "r") as f:
            _check_format(f, self.path)
            try:
                k = int(f.attrs["num_images"])
                s = int(f.attrs["num_skipped"])
                self.num_points = int(f.attrs["num_points"])
                self.names: list[str] = list(f["names"].asstr()[:k])
                self.offsets = f["offsets"][:k]
                self.counts = f["counts"][:k]
                self.identity: dict[str, Any] = json.loads(f.attrs["identity"])
                self.meta: dict[str, Any] = json.loads(f.attrs["meta"])
                self.complete = bool(f.attrs["complete"])
                self.summary = json.loads(f.attrs["summary"]) if "summary" in f.attrs else {}
                self.skipped = list(
                    zip(f["skipped_names"].asstr()[:s], f["skipped_reasons"].asstr()[:s])
                )
            except OSError as exc:
                raise _torn(self.path, exc) from exc
        self._index = {n: i for i, n in enumerate(self.names)}
        self._file: h5py.File | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.names)

    def __getstate__(self) -> dict[str, Any]:  # picklable for DataLoader workers
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, -1
        return state

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = _open(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"image {name!r} is not in {self.path}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def points(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(points [N, 2] float32, scores [N] float32)`` of image ``i`` (best first)."""
        start, n = int(self.offsets[i]), int(self.counts[i])
        f = self._handle()
        return f["points"][start : start + n], f["scores"][start : start + n]

    def verify(self) -> None:
        """Read every committed row and check the index against it; ``InputError`` when the
        file is torn (rows missing, unreadable, or an index that does not add up)."""
        k, m = len(self.names), self.num_points
        ends = np.asarray(self.offsets, np.int64) + np.asarray(self.counts, np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        if (
            len(self.offsets) != k
            or len(self.counts) != k
            or (k and (not np.array_equal(self.offsets, starts) or ends[-1] != m))
        ):
            raise InputError(
                f"label store {self.path} is torn: its index does not add up to its "
                f"{m} committed points; delete it and export again"
            )
        f = self._handle()
        try:
            rows = (f["points"].shape[0], f["scores"].shape[0])
            f["points"][:m], f["scores"][:m]  # noqa: B018 - the read is the check
        except OSError as exc:
            raise _torn(self.path, exc) from exc
        if min(rows) < m:
            raise InputError(
                f"label store {self.path} is torn: {min(rows)} rows of the {m} committed "
                "points; delete it and export again"
            )

    def total_points(self) -> int:
        return int(self.counts.sum())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def summarize(store: LabelStore) -> dict[str, Any]:
    """Counts of a store: images, points, mean/min/max points per image, skipped images."""
    counts = np.asarray(store.counts)
    return {
        "images": len(store),
        "points": int(counts.sum()),
        "points_per_image_mean": float(counts.mean()) if len(counts) else 0.0,
        "points_per_image_min": int(counts.min()) if len(counts) else 0,
        "points_per_image_max": int(counts.max()) if len(counts) else 0,
        "skipped": len(store.skipped),
        "complete": store.complete,
    }


def iter_records(store: LabelStore, names: Iterable[str] | None = None):
    """Yield ``(name, points, scores)`` for ``names`` (default: all, in commit order)."""
    for name in store.names if names is None else names:
        pts, scs = store.points(store.index(name))
        yield name, pts, scs
