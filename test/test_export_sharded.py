"""The label export over several ranks (gloo on this CPU): the shard plan and the merge by hand,
a 2-rank torchrun export (``python -m superpoint_training``) equal to the one-process store, and
a 2-rank export killed with SIGKILL that resumes, with 3 ranks or with one process, to that same
store. Every process runs torch with one thread: with equal thread counts the stores are
bit-identical (with 2 threads against 1 the points stay identical and the scores differ by float
rounding, 4e-9 measured; see README "Scale-out")."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from superpoint_ros.errors import ConfigError
from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
from superpoint_ros.model.weights import checkpoint_dict, save_checkpoint
from superpoint_training.cli.main import main
from superpoint_training.labels.shards import (
    existing_parts,
    merge_parts,
    part_path,
    parts_dir,
    plan_shards,
    split,
)
from superpoint_training.labels.store import LabelStore, LabelStoreWriter

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DATASETS = ("names", "offsets", "counts", "points", "scores", "skipped_names", "skipped_reasons")
IDENTITY = {"seed": 0, "what": "hand-made"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """15 textured images (some in a subfolder), one corrupt file, a tiny random MagicPoint and
    the one-process export of them (the reference every sharded export must equal)."""
    root = tmp_path_factory.mktemp("sharded")
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(15):
        img = cv2.GaussianBlur((rng.random((60, 80)) * 255).astype(np.uint8), (0, 0), 2)
        cv2.rectangle(img, (10 + 3 * i, 12), (40 + i, 40), 255, -1)
        cv2.imwrite(str(images / ("sub" if i % 5 == 4 else "") / f"im{i:02d}.png"), img)
    (images / "broken.png").write_bytes(b"not an image")
    torch.manual_seed(0)
    net = SuperPointNet(
        ModelConfig(backbone_args={"channels": [4, 4, 8, 8]}, head_channels=8, descriptor_dim=0)
    )
    save_checkpoint(root / "magicpoint.pt", checkpoint_dict(net))
    assert export_in_process(export_args(root, root / "one.h5")) == 0
    return root


def export_in_process(args: list[str]) -> int:
    """``superpoint`` in this process, its torch thread count restored after (the export sets 1
    for the whole process)."""
    threads = torch.get_num_threads()
    try:
        return main(args)
    finally:
        torch.set_num_threads(threads)


def export_args(root: Path, labels: Path, *extra: str) -> list[str]:
    return [
        "export-labels", "--weights", str(root / "magicpoint.pt"), "--images",
        str(root / "images"), "-o", str(labels), "--num-homographies", "16",
        "image_size=[64, 96]", "adaptation.detection_threshold=0.01", "num_workers=0",
        "progress=false", "chunk_size=1", "num_threads=1", *extra,
    ]  # fmt: skip


def datasets(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in DATASETS}
        out.update({k: f.attrs[k] for k in ("identity", "num_images", "num_points")})
        out["complete"] = bool(f.attrs["complete"])
    return out


def assert_same_store(a: Path, b: Path) -> None:
    """Every dataset and the identity equal, bit for bit."""
    da, db = datasets(a), datasets(b)
    for key in da:
        assert np.array_equal(da[key], db[key]), key
    assert da["complete"] and da["num_images"] == 15


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


# ---------------------------------------------------------------------------------------------
# the plan and the merge, by hand


def test_split_interleaves_equal_shares():
    names = ["a", "b", "c", "d", "e"]
    assert split(names, 2) == (("a", "c", "e"), ("b", "d"))
    assert split(names, 3) == (("a", "d"), ("b", "e"), ("c",))
    assert split(names, 1) == (tuple(names),)
    assert split(["a"], 3) == (("a",), (), ())
    with pytest.raises(ConfigError, match=">= 1"):
        split(names, 0)


def rec(name: str, k: int) -> tuple[str, np.ndarray, np.ndarray]:
    """Image ``name`` with ``k`` points (x = k, y = 0..k-1) and scores 1/(k+j+1)."""
    pts = np.array([[k, j] for j in range(k)], np.float32).reshape(-1, 2)
    return name, pts, np.array([1 / (k + j + 1) for j in range(k)], np.float32)


def test_plan_counts_the_output_and_every_part_as_done(tmp_path):
    out = tmp_path / "labels.h5"
    LabelStoreWriter(out, IDENTITY).append([rec("a", 1)])
    LabelStoreWriter(part_path(out, 0), IDENTITY).append([rec("c", 2)], [("d", "unreadable")])
    LabelStoreWriter(part_path(out, 4), IDENTITY).append([rec("f", 0)])  # a rank gone since
    plan = plan_shards(["a", "b", "c", "d", "e", "f", "g"], out, IDENTITY, 2)
    assert plan.shards == (("b", "g"), ("e",)) and plan.done == 4 and plan.todo == 3
    assert [p.name for p in existing_parts(out)] == ["part-00000.h5", "part-00004.h5"]
    LabelStoreWriter(part_path(out, 1), {"seed": 1}).append([rec("b", 1)])
    with pytest.raises(ConfigError, match="another config"):
        plan_shards(["a", "b"], out, IDENTITY, 2)


def test_a_torn_part_is_set_aside_and_its_images_labelled_again(tmp_path):
    out = tmp_path / "labels.h5"
    LabelStoreWriter(part_path(out, 0), IDENTITY).append([rec("a", 1), rec("b", 2)])
    torn = part_path(out, 1)
    LabelStoreWriter(torn, IDENTITY).append([rec("c", 3)])
    LabelStoreWriter(torn, IDENTITY).append([rec("d", 4)])
    with open(torn, "r+b") as f:  # what a kill in the middle of HDF5's writes can leave
        f.truncate(torn.stat().st_size // 2)
    plan = plan_shards(["a", "b", "c", "d", "e"], out, IDENTITY, 2)
    assert plan.torn == (str(torn) + ".torn",)
    assert plan.done == 2 and plan.shards == (("c", "e"), ("d",))
    assert not torn.exists() and Path(plan.torn[0]).is_file()  # kept for a look, not merged
    assert [p.name for p in existing_parts(out)] == ["part-00000.h5"]
    assert plan_shards(["a", "b", "c"], out, IDENTITY, 1).torn == ()  # set aside once


def test_merge_takes_the_list_order_and_resumes(tmp_path):
    out = tmp_path / "labels.h5"
    LabelStoreWriter(part_path(out, 0), IDENTITY).append(
        [rec("a", 1), rec("c", 3), rec("zz", 1)], [("e", "bad file")]
    )
    LabelStoreWriter(part_path(out, 1), IDENTITY).append([rec("d", 0), rec("b", 2)])
    # a merge killed after its first commit left "a" in the output
    LabelStoreWriter(out, IDENTITY).append([rec("a", 1)])
    writer = LabelStoreWriter(out, IDENTITY)
    assert merge_parts(writer, ["a", "b", "c", "d", "e"], chunk_size=2) == {
        "parts": 2, "merged": 5,
    }  # fmt: skip
    with LabelStore(out) as store:
        assert store.names == ["a", "b", "c", "d", "zz"]  # list order, then others sorted
        assert store.skipped == [("e", "bad file")]
        assert list(store.counts) == [1, 2, 3, 0, 1]
        pts, scs = store.points(2)
        assert pts.tolist() == [[3, 0], [3, 1], [3, 2]]
        assert np.allclose(scs, [1 / 4, 1 / 5, 1 / 6])
    assert merge_parts(LabelStoreWriter(out, IDENTITY), ["a"])["merged"] == 0  # nothing twice


# ---------------------------------------------------------------------------------------------
# real ranks


def test_torchrun_two_ranks_equal_one_process(data, tmp_path):
    """``torchrun --nproc_per_node 2 -m superpoint_training export-labels``: gloo, two ranks,
    the merged store equals the one-process store; the parts are gone; rank 0 alone reports."""
    out = tmp_path / "two.h5"
    cmd = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2",
           "-m", "superpoint_training", *export_args(data, out)]  # fmt: skip
    res = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("labels: ") == 1 and "(2 processes)" in res.stdout
    assert "15 labelled (15 in this run), 1 skipped" in res.stdout
    assert_same_store(data / "one.h5", out)
    assert not parts_dir(out).exists()


def committed(paths: list[Path]) -> int:
    """Images committed in part stores being written (read without HDF5's file lock, so the
    writers never find the file taken; a read during a write may fail: counted as 0)."""
    total = 0
    for p in paths:
        try:
            with h5py.File(p, "r", locking=False) as f:
                total += int(f.attrs["num_images"]) + int(f.attrs["num_skipped"])
        except Exception:  # noqa: BLE001 - a half-written file: try again later
            pass
    return total


def test_sigkilled_two_rank_export_resumes_with_three_ranks_or_one(data, tmp_path):
    out = tmp_path / "labels.h5"
    cmd = [sys.executable, "-m", "superpoint_training", *export_args(data, out, "--nproc", "2")]
    proc = subprocess.Popen(
        cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    parts = [part_path(out, 0), part_path(out, 1)]
    deadline = time.monotonic() + 300
    try:
        while committed(parts) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks, at once
        proc.wait(timeout=60)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = committed(parts)
    assert 2 <= killed_at < 16, "the export ended before the kill: make it slower"
    assert not out.exists()  # no merge yet
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy2(parts[0], copy / "part-00000.h5")
    if parts[1].exists():
        shutil.copy2(parts[1], copy / "part-00001.h5")

    # resume with 3 ranks (spawned here): the rest shared among them, merged, parts removed
    assert main(export_args(data, out, "--nproc", "3")) == 0
    assert_same_store(data / "one.h5", out)
    assert not parts_dir(out).exists()
    with LabelStore(out) as store:
        assert store.summary["ranks"] == 3 and store.summary["labelled_now"] < 15

    # the same killed state resumed by one process (no process group: it still merges)
    out1 = tmp_path / "again" / "labels.h5"
    parts_dir(out1).mkdir(parents=True)
    for p in copy.iterdir():
        shutil.copy2(p, parts_dir(out1) / p.name)
    assert export_in_process(export_args(data, out1)) == 0
    assert_same_store(data / "one.h5", out1)
    assert not parts_dir(out1).exists()


def test_sigterm_stops_every_rank_in_one_line_then_resumes(data, tmp_path):
    """SIGTERM to ``--nproc 2``'s launcher reaches both ranks, which stop like Ctrl-C (their
    open chunk committed first): exit status 130, one line; the same command with one process
    then finishes the store."""
    out = tmp_path / "labels.h5"
    cmd = [sys.executable, "-m", "superpoint_training",
           *export_args(data, out, "chunk_size=3", "--nproc", "2")]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    parts = [part_path(out, 0), part_path(out, 1)]
    deadline = time.monotonic() + 300
    while committed(parts) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # a first chunk committed: both ranks are labelling
    os.kill(proc.pid, signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "superpoint export-labels: interrupted"
    assert 3 <= committed(parts) < 16 and not out.exists()
    assert export_in_process(export_args(data, out)) == 0
    assert_same_store(data / "one.h5", out)


def test_rank_mistakes_are_one_line(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "x.h5"
    assert main(export_args(data, out, "--nproc", "2", "--device", "cuda:1")) == 1
    assert "pins one GPU" in capsys.readouterr().err
    assert main(export_args(data, out, "--nproc", "0")) == 1
    assert "--nproc must be >= 1" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(export_args(data, out, "--nproc", "2")) == 1
    assert "under torchrun" in capsys.readouterr().err
    assert not out.exists()


def test_python_m_is_the_superpoint_command():
    a = subprocess.run([sys.executable, "-m", "superpoint_training", "export-labels", "--help"],
                       env=env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    b = subprocess.run([str(VENV_BIN / "superpoint"), "export-labels", "--help"],
                       env=env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert a.returncode == 0 and a.stdout == b.stdout and "--nproc N" in a.stdout


def test_rounds_retrain_the_detector_under_ddp_in_the_same_group(data, tmp_path):
    """``rounds.num_rounds=2`` with ``--nproc 2``: both rounds sharded and merged, the detector
    retrained between them by both ranks together (DDP over the export's gloo group)."""
    out = tmp_path / "labels.h5"
    rounds = [
        "rounds.num_rounds=2", "rounds.steps=2",
        "rounds.overrides=[train.num_workers=0, train.progress=false, train.tensorboard=false,"
        " train.batch_size=2, train.val_every=0, 'model.backbone_args={channels: [4, 4, 8, 8]}',"
        " model.head_channels=8, data.val_fraction=0.0]",
        "--nproc", "2", "--num-homographies", "2",
    ]  # fmt: skip
    assert main(export_args(data, out, *rounds)) == 0
    ckpt = torch.load(
        tmp_path / "labels.round1_detector" / "checkpoint_last.pt", map_location="cpu",
        weights_only=True,
    )  # fmt: skip
    assert ckpt["step"] == 2 and ckpt["world_size"] == 2
    with LabelStore(tmp_path / "labels.round1.h5") as first, LabelStore(out) as final:
        assert first.names == final.names and len(final) == 15 and final.complete
        assert final.identity["weights_sha256"] != first.identity["weights_sha256"]
    assert not parts_dir(out).exists() and not parts_dir(tmp_path / "labels.round1.h5").exists()


def test_rounds_batch_must_split_over_the_ranks(data, tmp_path, capsys):
    rounds = ["rounds.num_rounds=2", "rounds.overrides=[train.batch_size=3]", "--nproc", "2"]
    assert main(export_args(data, tmp_path / "x.h5", *rounds)) == 1
    assert "not divisible by the 2 processes" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()
