"""Multi-process training (DDP) on the CPU with gloo: two processes train the same weights as one
process with the same global batch, each process gets its slice of every batch, only rank 0
writes (checkpoints, metrics, TensorBoard, validation), a run resumes under two processes, a
stop signal ends every process with a checkpoint, and launch mistakes end with one line.
The NCCL/GPU path is only run where two GPUs exist."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from superpoint_ros.errors import ConfigError, SuperPointError
from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
from superpoint_training.training import distributed
from superpoint_training.training.loop import StepContext, Trainer
from superpoint_training.training.loop_config import TrainerConfig

# (the stage and the CLI are imported inside the tests: the spawned processes import this
# module to find their worker functions, and should not pay for the whole training stack)

# MagicPoint, tiny, with a loss that is an equal-weight mean over the samples of a batch (no
# random tie-breaks, no warped borders): then the average of the two halves' gradients is the
# whole batch's gradient and two processes must reproduce one. weight_decay makes Adam's update
# depend on the gradient's scale (Adam alone would hide a sum-instead-of-mean).
TINY = [
    "data.image_size=[32, 48]",
    "data.supersample=2",
    "model.backbone_args={channels: [8, 8, 16, 16]}",
    "model.head_channels=16",
    "loss.tie_break=first",
    "augment.homographic.enable=false",
    "train.batch_size=4",
    "train.weight_decay=0.05",
    "train.num_workers=0",
    "train.num_threads=1",
    "train.log_every=2",
    "train.checkpoint_every=2",
    "train.keep_checkpoints=0",
    "train.val_every=0",
    "train.progress=false",
    "train.device=cpu",
    "eval.num_images=4",
    "eval.classical=[]",
]


def ckpt(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_close_state(a, b, atol=1e-6):
    """Weights and Adam moments agree (float32 rounding of another summation order only)."""
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=atol, msg=k)
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for k in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(sa[i][k], sb[i][k], rtol=1e-4, atol=atol * 1e-2)


def train_records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == "train"]


# ---------------------------------------------------------------------------------------------
# the real stage through the command line


def test_two_processes_train_like_one(tmp_path):
    from superpoint_training.cli.main import main as cli
    from superpoint_training.config import load_config
    from superpoint_training.training.magicpoint import MagicPointConfig, train_magicpoint

    one, two = tmp_path / "one", tmp_path / "two"
    train_magicpoint(load_config(MagicPointConfig, None, TINY + ["train.steps=4"]), one)
    assert cli(["train", "magicpoint", "--output", str(two), "--nproc", "2", "--steps", "4",
                *TINY]) == 0  # fmt: skip
    # the same weights and Adam state as one process after 2 and 4 steps
    for step in (2, 4):
        name = f"checkpoint_step_{step:06d}.pt"
        assert_close_state(ckpt(one / name), ckpt(two / name))
    c = ckpt(two / "checkpoint_last.pt")
    assert c["step"] == 4 and c["world_size"] == 2 and len(c["rng_ranks"]) == 2
    # each rank's own random streams are saved; `rng` is rank 0's (what one process resumes)
    g0, g1 = (s["torch_generator"] for s in c["rng_ranks"])
    assert not torch.equal(g0, g1) and torch.equal(c["rng"]["torch_generator"], g0)
    # one writer: the files of a one-process run, each record once, one event file
    assert sorted(p.name for p in two.iterdir()) == sorted(
        ["checkpoint_last.pt", "checkpoint_step_000002.pt", "checkpoint_step_000004.pt",
         "config.yaml", "eval", "metrics.jsonl", "tensorboard"]
    )  # fmt: skip
    assert len(list((two / "tensorboard").iterdir())) == 1
    records = train_records(two)
    assert [r["step"] for r in records] == [2, 4]
    # logged losses are the means over both processes: the one-process batch means
    for r1, r2 in zip(train_records(one), records):
        assert r2["loss"] == pytest.approx(r1["loss"], rel=1e-6)
        assert r2["keypoint_cells"] == pytest.approx(r1["keypoint_cells"], rel=1e-6)
    lines = (two / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["split"] for x in lines].count("val") == 1
    assert (two / "eval" / "detection.md").is_file()
    # the processes ran elsewhere: this one never joined a process group
    assert not torch.distributed.is_initialized() and "RANK" not in os.environ


# ---------------------------------------------------------------------------------------------
# the trainer under a process group: slices, validation on rank 0, exact resume with random draws


class _Items(torch.utils.data.Dataset):
    """Item ``i``: a 16x16 image and cell labels drawn from ``i`` alone, and ``i`` itself."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        return {
            "image": torch.from_numpy(rng.random((1, 16, 16), dtype=np.float32)),
            "labels": torch.from_numpy(rng.integers(0, 65, (2, 2))),
            "index": i,
        }


def _random_trainer(run_dir: Path, seen: list, on_step_end=()) -> Trainer:
    """A tiny trainer whose loss draws from both explicit generators every step."""

    def step_fn(model, batch, ctx: StepContext):
        seen.append([ctx.step, batch["index"].tolist()])
        noise = torch.rand(batch["image"].shape, generator=ctx.generator)
        gain = 1.0 + 0.5 * float(ctx.np_rng.random())
        logits = model(batch["image"] + 0.3 * noise)["logits"]
        return F.cross_entropy(logits, batch["labels"]) * gain, {"gain": gain}

    def validate(model, ctx: StepContext):
        (ctx.run_dir / f"validated_by_rank{torch.distributed.get_rank()}").touch()
        assert not isinstance(model, torch.nn.parallel.DistributedDataParallel)
        return {"calls": 1.0}

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = SuperPointNet(
            ModelConfig(
                descriptor_dim=0, backbone_args={"channels": [4, 4, 8, 8]}, head_channels=8
            )
        )
    conf = TrainerConfig(steps=4, batch_size=4, lr=1e-2, num_workers=0, log_every=1,
                         checkpoint_every=2, keep_checkpoints=0, val_every=2, device="cpu",
                         progress=False, tensorboard=False)  # fmt: skip
    return Trainer(model=model, dataset=_Items(), step_fn=step_fn, conf=conf, run_dir=run_dir,
                   seed=3, resolved_config={"train": {}}, stage="test", shuffle=False,
                   validate=validate, on_step_end=list(on_step_end))  # fmt: skip


def _crash_at_3(step: int) -> None:
    if step == 3:  # after step 3's update, before step 4's checkpoint: lost work
        raise RuntimeError("simulated crash")


def _trainer_worker(root: str) -> str:
    """Runs in each of the two processes: a straight run, a crashed one, its resumption."""
    root_dir, rank = Path(root), torch.distributed.get_rank()
    seen_straight: list = []
    _random_trainer(root_dir / "straight", seen_straight).fit()
    seen_crashed: list = []
    try:
        _random_trainer(root_dir / "crashed", seen_crashed, [_crash_at_3]).fit()
    except RuntimeError as exc:
        assert "simulated crash" in str(exc)
    resumed = _random_trainer(root_dir / "crashed", seen_crashed)
    resumed.fit(resume=True)
    assert resumed.rank == rank and resumed.world_size == 2 and resumed.distributed
    record = {"straight": seen_straight, "crashed": seen_crashed}
    (root_dir / f"seen_rank{rank}.json").write_text(json.dumps(record))
    return f"rank {rank} done"


def test_trainer_slices_batches_validates_on_rank0_and_resumes_exactly(tmp_path):
    assert distributed.launch(_trainer_worker, (str(tmp_path),), nproc=2, device="cpu") == (
        "rank 0 done"
    )
    seen = [json.loads((tmp_path / f"seen_rank{r}.json").read_text()) for r in (0, 1)]
    # global batch of step s: items 4s..4s+3; rank 0 takes the even positions, rank 1 the odd
    assert seen[0]["straight"] == [[s, [4 * s, 4 * s + 2]] for s in range(4)]
    assert seen[1]["straight"] == [[s, [4 * s + 1, 4 * s + 3]] for s in range(4)]
    # the crashed run did steps 0-2, then resumed at step 2 (its last checkpoint)
    assert [s for s, _ in seen[1]["crashed"]] == [0, 1, 2, 2, 3]
    # resuming reproduces the straight run bit for bit: each rank got back its own streams
    a = ckpt(tmp_path / "straight" / "checkpoint_last.pt")
    b = ckpt(tmp_path / "crashed" / "checkpoint_last.pt")
    assert a["step"] == b["step"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for i in a["optimizer"]["state"]:
        assert torch.equal(a["optimizer"]["state"][i]["exp_avg_sq"],
                           b["optimizer"]["state"][i]["exp_avg_sq"])  # fmt: skip
    for r in (0, 1):
        assert torch.equal(a["rng_ranks"][r]["torch_generator"],
                           b["rng_ranks"][r]["torch_generator"])  # fmt: skip
    # only rank 0 validated and logged; logged scalars are means over the ranks
    for run in ("straight", "crashed"):
        names = sorted(p.name for p in (tmp_path / run).iterdir())
        assert "validated_by_rank0" in names and "validated_by_rank1" not in names
    records = train_records(tmp_path / "straight")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(1.0 <= r["gain"] <= 1.5 for r in records)


class _CycleHolder:
    """A DDP model that only the garbage collector frees (as a finished trainer holds one)."""

    def __init__(self) -> None:
        self.model = distributed.wrap_model(torch.nn.Linear(4, 4), torch.device("cpu"))
        self.me = self


def _ddp_left_in_a_cycle(_: str) -> bool:
    gc.disable()  # no automatic collection: only shutdown() may free the cycle
    holder = _CycleHolder()
    holder.model(torch.ones(2, 4)).sum().backward()
    model = weakref.ref(holder.model)
    del holder
    assert model() is not None  # still alive, holding the process group
    distributed.shutdown()
    return model() is None


def test_shutdown_frees_models_that_hold_the_group_before_destroying_it():
    # left to the interpreter's teardown, the gloo group they hold killed about one launch in
    # twenty with SIGABRT after a successful run (benchmarks/stress_launch_exit.py)
    assert distributed.launch(_ddp_left_in_a_cycle, ("",), nproc=2, device="cpu") is True


# ---------------------------------------------------------------------------------------------
# stopping and failing


def _rank1_fails(root: str) -> None:
    if torch.distributed.get_rank() == 1:
        raise ConfigError("rank one cannot go on")
    torch.distributed.barrier()  # rank 0 waits for a peer that is gone: must not hang


def test_a_failing_process_ends_the_launch_with_one_line():
    start = time.monotonic()
    with pytest.raises(SuperPointError, match="^rank one cannot go on$"):
        distributed.launch(_rank1_fails, ("",), nproc=2, device="cpu")
    assert time.monotonic() - start < 25


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the processes")
def test_sigterm_stops_every_process_after_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "superpoint_training.cli.main", "train", "magicpoint",
           "--output", str(run), "--nproc", "2", *TINY, "train.steps=500"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 40
    while not (run / "checkpoint_step_000002.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.02)
    ranks = [p for p in _children(proc.pid) if b"spawn_main" in _cmdline(p)]
    assert len(ranks) == 2
    proc.send_signal(signal.SIGTERM)  # to the launcher only: it passes it on
    out, err = proc.communicate(timeout=40)
    assert proc.returncode == 130, (out, err)
    assert out.count("interrupted: saved step") == 1 and "Traceback" not in err, (out, err)
    assert all(not Path(f"/proc/{p}").exists() for p in ranks)
    c = ckpt(run / "checkpoint_last.pt")
    assert 2 <= c["step"] < 500 and c["world_size"] == 2
    assert f"interrupted: saved step {c['step']}" in out


# ---------------------------------------------------------------------------------------------
# misconfiguration: one line, nothing started


def test_launch_mistakes_are_one_line(tmp_path, capsys, monkeypatch):
    from superpoint_training.cli.main import main as cli

    base = ["train", "magicpoint", "--output", str(tmp_path / "r"), *TINY]
    cases = [
        (["--nproc", "2", "--batch-size", "3"], "train.batch_size 3 is not divisible by the 2"),
        (["--nproc", "0"], "--nproc must be >= 1"),
        (["--nproc", "2", "--device", "cuda:1"], "pins one GPU"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert cli([*base, *extra]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli([*base, "--nproc", "2"]) == 1
    assert "under torchrun" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ConfigError, match="inconsistent torchrun environment"):
        distributed.env_info()
    assert not (tmp_path / "r").exists()


def test_sync_batchnorm_conversion_rules():
    plain = SuperPointNet(ModelConfig(descriptor_dim=0))
    assert distributed.convert_sync_batchnorm(plain, torch.device("cpu")) is plain
    bn = SuperPointNet(ModelConfig(descriptor_dim=0, backbone="vgg_bn"))
    assert distributed.has_batchnorm(bn)
    with pytest.raises(ConfigError, match="SyncBatchNorm is GPU-only"):
        distributed.convert_sync_batchnorm(bn, torch.device("cpu"))
    # a world size of 1 needs nothing; DDP wants the devices sorted out
    distributed.check_launch(3, 1, "cuda:5")
    assert distributed.backend_for("cpu") == "gloo"
    assert distributed.rank_device("cpu", 3) == torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# the GPU path (NCCL): only where two GPUs exist


@pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason="NCCL/DDP on CUDA needs two GPUs; none here"
)
def test_two_gpus_with_sync_batchnorm_train_like_one(tmp_path):
    from superpoint_training.cli.main import main as cli
    from superpoint_training.config import load_config
    from superpoint_training.training.magicpoint import MagicPointConfig, train_magicpoint

    gpu = [a for a in TINY if not a.startswith("train.device")] + [
        "train.device=cuda", "model.backbone=vgg_bn", "train.steps=2",
    ]  # fmt: skip
    train_magicpoint(load_config(MagicPointConfig, None, gpu), tmp_path / "one")
    assert cli(["train", "magicpoint", "--output", str(tmp_path / "two"), "--nproc", "2",
                "--sync-bn", *gpu]) == 0  # fmt: skip
    a, b = (
        ckpt(tmp_path / "one" / "checkpoint_last.pt"),
        ckpt(tmp_path / "two" / "checkpoint_last.pt"),
    )
    assert b["world_size"] == 2 and "cuda_device" in b["rng_ranks"][1]
    assert_close_state(a, b, atol=1e-4)
