"""The pseudo-label store: exact round trip, refusal of another config, and resumption after a
partial write and after a real SIGKILL, without duplicated or lost images."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from superpoint_ros.errors import ConfigError, InputError
from superpoint_training.labels.store import LabelStore, LabelStoreWriter, summarize

ROOT = Path(__file__).resolve().parents[1]
IDENTITY = {"num_homographies": 100, "weights_sha256": "abc"}


def record(i: int) -> tuple[str, np.ndarray, np.ndarray]:
    """Image ``img_{i}``: ``i % 5`` points whose coordinates encode (image, point)."""
    n = i % 5
    pts = np.array([[i, j] for j in range(n)], np.float32).reshape(-1, 2)
    return f"img_{i:03d}.png", pts, np.linspace(1.0, 0.5, n, dtype=np.float32)


def check_store(path: Path, expected: range) -> LabelStore:
    store = LabelStore(path)
    assert store.names == [record(i)[0] for i in expected]  # no duplicate, none lost, in order
    for i in expected:
        name, pts, scs = record(i)
        got_pts, got_scs = store.points(store.index(name))
        assert np.array_equal(got_pts, pts) and np.array_equal(got_scs, scs)
    return store


def test_round_trip_and_skipped(tmp_path):
    path = tmp_path / "labels.h5"
    w = LabelStoreWriter(path, IDENTITY, {"note": "x"})
    w.append([record(i) for i in range(3)], skipped=[("broken.jpg", "cannot decode")])
    w.append([record(i) for i in range(3, 7)])
    w.finish({"images": 7})
    store = check_store(path, range(7))
    assert store.skipped == [("broken.jpg", "cannot decode")]
    assert store.complete and store.summary == {"images": 7} and store.meta == {"note": "x"}
    s = summarize(store)
    assert s["images"] == 7 and s["points"] == sum(i % 5 for i in range(7)) and s["skipped"] == 1
    assert store.points(store.index("img_000.png"))[0].shape == (0, 2)


def test_resume_skips_done_and_refuses_duplicates(tmp_path):
    path = tmp_path / "labels.h5"
    LabelStoreWriter(path, IDENTITY).append([record(i) for i in range(4)], [("bad.png", "x")])
    w = LabelStoreWriter(path, IDENTITY)
    assert w.is_done("img_002.png") and w.is_done("bad.png") and not w.is_done("img_004.png")
    with pytest.raises(ValueError, match="twice"):
        w.append([record(3)])
    w.append([record(i) for i in range(4, 6)])
    check_store(path, range(6))


def test_other_config_is_refused(tmp_path):
    path = tmp_path / "labels.h5"
    LabelStoreWriter(path, IDENTITY).append([record(0)])
    with pytest.raises(ConfigError, match="another config"):
        LabelStoreWriter(path, {**IDENTITY, "num_homographies": 10})


def test_not_a_store(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.attrs["x"] = 1
    with pytest.raises(InputError, match="not a label store"):
        LabelStore(path)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError):
        LabelStore(tmp_path / "junk.h5")


def test_rows_beyond_the_commit_are_ignored_then_truncated(tmp_path):
    path = tmp_path / "labels.h5"
    LabelStoreWriter(path, IDENTITY).append([record(i) for i in range(3)])
    # what a process killed inside append leaves: rows written, counts not yet raised
    with h5py.File(path, "a") as f:
        for name in ("names", "offsets", "counts"):
            f[name].resize(f[name].shape[0] + 2, axis=0)
        f["names"][-2:] = ["img_003.png", "img_004.png"]
        f["points"].resize(f["points"].shape[0] + 7, axis=0)
    check_store(path, range(3))  # readers see only committed images
    w = LabelStoreWriter(path, IDENTITY)
    assert not w.is_done("img_003.png")
    w.append([record(i) for i in range(3, 6)])
    check_store(path, range(6))
    with h5py.File(path, "r") as f:
        assert f["points"].shape[0] == f.attrs["num_points"]


WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {test_dir!r})
    from test_label_store import IDENTITY, record
    from superpoint_training.labels.store import LabelStoreWriter
    w = LabelStoreWriter(sys.argv[1], IDENTITY)
    todo = [i for i in range(40) if not w.is_done(record(i)[0])]
    for start in range(0, len(todo), 4):
        w.append([record(i) for i in todo[start:start + 4]])
        print("committed", flush=True)
        time.sleep(0.05)  # stands for the computation between chunks
    """
)


def test_killed_writer_resumes_without_duplicates(tmp_path):
    path = tmp_path / "labels.h5"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT), test_dir=str(ROOT / "test")))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(3):
            assert proc.stdout.readline().startswith("committed")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    partial = LabelStore(path)
    assert 12 <= len(partial) < 40 and len(set(partial.names)) == len(partial.names)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert time.perf_counter() - start < 30
    check_store(path, range(40))


# ---------------------------------------------------------------------------------------------
# torn files: HDF5 is not crash-consistent, a kill during a commit can leave any of these


def test_a_truncated_store_is_one_clear_error(tmp_path):
    path = tmp_path / "labels.h5"
    LabelStoreWriter(path, IDENTITY).append([record(i) for i in range(20)])
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(InputError, match="killed while .*export again"):
        LabelStore(path)
    with pytest.raises(InputError, match="killed while .*export again"):
        LabelStoreWriter(path, IDENTITY)


def test_verify_finds_committed_rows_that_are_not_there(tmp_path):
    path = tmp_path / "labels.h5"
    LabelStoreWriter(path, IDENTITY).append([record(i) for i in range(1, 4)])  # 1+2+3 points
    with LabelStore(path) as store:
        store.verify()  # intact
    with h5py.File(path, "a") as f:  # the counts committed, the last rows never written
        f["points"].resize(4, axis=0)
        f["scores"].resize(4, axis=0)
    with LabelStore(path) as store, pytest.raises(InputError, match="4 rows of the 6 committed"):
        store.verify()
    with h5py.File(path, "a") as f:  # an index that does not add up: image 2 starts at 2, not 3
        f["offsets"][2] = 2
    with LabelStore(path) as store, pytest.raises(InputError, match="does not add up"):
        store.verify()
