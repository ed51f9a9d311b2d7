"""MagicPoint training (step 2) and its infrastructure: a tiny real run on CPU lowers the loss,
writes a checkpoint ``superpoint extract`` loads, resumes exactly after a crash; the trainer's
pieces (data order, config rules, CLI); the detection evaluation on hand-computed cases."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from superpoint_ros.errors import ConfigError
from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
from superpoint_ros.model.weights import build_model, load_weights
from superpoint_training.cli.main import main as cli
from superpoint_training.config import load_config
from superpoint_training.evaluation.detection import (
    DetectionEvalConfig,
    DetectionEvaluator,
    Detections,
    match_detections,
    pr_curve,
    predict_classical,
    save_report,
)
from superpoint_training.training.loop_config import TrainerConfig
from superpoint_training.training.magicpoint import MagicPointConfig, train_magicpoint
from superpoint_training.training.optim import lr_factor
from superpoint_training.training.runs import check_resume_config
from superpoint_training.training.sampler import StepBatchSampler
from superpoint_training.training.stages import get_stage

TINY = [
    "data.image_size=[32, 48]",
    "data.supersample=2",
    "model.backbone_args={channels: [8, 8, 16, 16]}",
    "model.head_channels=16",
    "train.batch_size=4",
    "train.num_workers=0",
    "train.num_threads=1",
    "train.log_every=2",
    "train.val_every=0",
    "train.progress=false",
    "train.device=cpu",
    "eval.num_images=6",
    "eval.classical=[harris]",
]


def tiny_conf(*extra: str) -> MagicPointConfig:
    return load_config(MagicPointConfig, None, TINY + list(extra))


def read_metrics(run_dir, split="train"):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def ckpt(path):
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------
# a real tiny run


def test_tiny_run_lowers_loss_and_checkpoint_loads_in_extract(tmp_path):
    conf = tiny_conf("train.steps=24", "train.lr=3e-3", "train.checkpoint_every=12")
    last = train_magicpoint(conf, tmp_path / "run")
    run = tmp_path / "run"
    losses = [r["loss"] for r in read_metrics(run)]
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:2]), losses
    # files of the run
    assert last == run / "checkpoint_last.pt"
    assert sorted(p.name for p in run.glob("*.pt")) == [
        "checkpoint_last.pt", "checkpoint_step_000012.pt", "checkpoint_step_000024.pt",
    ]  # fmt: skip
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["steps"] == 24 and saved["run"]["stage"] == "magicpoint"
    assert saved["run"]["seed"] == 0 and saved["run"]["git_revision"]
    # checkpoint: training state + resolved config + revision
    c = ckpt(last)
    assert c["step"] == 24 and c["config"]["train"]["lr"] == 3e-3
    assert {"optimizer", "scheduler", "rng", "git_revision", "seed"} <= set(c)
    assert c["git_revision"] == saved["run"]["git_revision"]
    # evaluation report at the end
    table = (run / "eval" / "detection.md").read_text()
    assert "| magicpoint |" in table and "| harris |" in table
    assert (run / "eval" / "detection_pr.png").stat().st_size > 1000
    assert any((run / "tensorboard").iterdir())
    # the checkpoint is a weights file: load_weights + build_model, and `superpoint extract`
    weights = load_weights(last)
    model = build_model(weights)
    assert model.config.descriptor_dim == 0 and model.config.head_channels == 16
    image = (np.random.default_rng(0).random((48, 64)) * 255).astype(np.uint8)
    cv2.rectangle(image, (10, 10), (40, 30), 255, -1)
    cv2.imwrite(str(tmp_path / "img.png"), image)
    out = tmp_path / "features.npz"
    code = cli(["extract", "--weights", str(last), "--backend", "torch", str(tmp_path / "img.png"),
                "-o", str(out)])  # fmt: skip
    assert code == 0
    features = np.load(out)
    assert features["keypoints"].ndim == 2 and features["keypoints"].shape[1] == 2


def test_resume_after_a_crash_is_bitwise_exact(tmp_path):
    # in-process data loading here; the killed-CLI test below runs a worker process
    extra = ("train.steps=6", "train.checkpoint_every=3", "train.keep_checkpoints=0")
    train_magicpoint(tiny_conf(*extra), tmp_path / "straight")

    def crash(step: int) -> None:
        if step == 5:  # after step 5's update, before the checkpoint of step 6: lost work
            raise RuntimeError("simulated kill")

    with pytest.raises(RuntimeError, match="simulated kill"):
        train_magicpoint(tiny_conf(*extra), tmp_path / "crashed", on_step_end=[crash])
    assert ckpt(tmp_path / "crashed" / "checkpoint_last.pt")["step"] == 3
    # a run directory holding a run is not overwritten without --resume
    with pytest.raises(ConfigError, match="pass --resume"):
        train_magicpoint(tiny_conf(*extra), tmp_path / "crashed")
    train_magicpoint(tiny_conf(*extra), tmp_path / "crashed", resume=True)
    a = ckpt(tmp_path / "straight" / "checkpoint_last.pt")
    b = ckpt(tmp_path / "crashed" / "checkpoint_last.pt")
    assert a["step"] == b["step"] == 6
    assert same_weights(a["model"], b["model"])
    assert same_weights(a["optimizer"]["state"][0], b["optimizer"]["state"][0])
    # the intermediate checkpoint agrees too, and a finished run resumes to nothing
    assert same_weights(
        ckpt(tmp_path / "straight" / "checkpoint_step_000003.pt")["model"],
        ckpt(tmp_path / "crashed" / "checkpoint_step_000003.pt")["model"],
    )
    train_magicpoint(tiny_conf(*extra), tmp_path / "crashed", resume=True)
    assert ckpt(tmp_path / "crashed" / "checkpoint_last.pt")["step"] == 6
    # resuming with a config that changes the computation is refused
    with pytest.raises(ConfigError, match="train.lr"):
        train_magicpoint(tiny_conf(*extra, "train.lr=0.01"), tmp_path / "crashed", resume=True)


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


def _is_data_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker process")
def test_killed_cli_run_checkpoints_and_resumes_exactly(tmp_path):
    """A real `kill` (SIGTERM) of `superpoint train`: checkpoint of the last step, data workers
    gone, and resuming gives the weights of a run that was never killed."""
    run = tmp_path / "killed"
    extra = ["train.steps=400", "train.checkpoint_every=2", "train.keep_checkpoints=0",
             "train.num_workers=1"]  # fmt: skip
    cmd = [sys.executable, "-m", "superpoint_training.cli.main", "train", "magicpoint",
           "--output", str(run), *TINY, *extra]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180  # generous: a loaded 2-core CI machine
    while not (run / "checkpoint_step_000004.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.02)
    workers = [p for p in _children(proc.pid) if _is_data_worker(p)]
    assert len(workers) == 1
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130 and "interrupted: saved step" in out, (out, err)
    assert "Traceback" not in err, err
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers)
    killed_at = ckpt(run / "checkpoint_last.pt")["step"]
    assert 4 <= killed_at < 400
    # resume to a few steps beyond the kill, and compare with a straight run that far
    target = f"train.steps={killed_at + 3}"
    train_magicpoint(tiny_conf(*extra, target), run, resume=True)
    train_magicpoint(tiny_conf(*extra, target), tmp_path / "straight")
    a = ckpt(run / "checkpoint_last.pt")
    b = ckpt(tmp_path / "straight" / "checkpoint_last.pt")
    assert a["step"] == b["step"] == killed_at + 3
    assert same_weights(a["model"], b["model"])


def test_overfit_one_batch(tmp_path):
    conf = tiny_conf("train.steps=40", "train.lr=3e-3", "train.overfit_batch=true")
    train_magicpoint(conf, tmp_path / "run")
    records = read_metrics(tmp_path / "run")
    losses = [r["loss"] for r in records]
    assert losses[-1] < 0.5 * losses[0], losses
    # the same batch every step: the same share of cells holding a keypoint
    assert len({r["keypoint_cells"] for r in records}) == 1


def test_time_limit_stops_with_checkpoint_and_report(tmp_path):
    conf = tiny_conf("train.steps=50", "train.time_limit_min=1e-6", "train.checkpoint_every=25")
    train_magicpoint(conf, tmp_path / "run")
    assert ckpt(tmp_path / "run" / "checkpoint_last.pt")["step"] == 1
    assert (tmp_path / "run" / "eval" / "detection.md").is_file()


# ---------------------------------------------------------------------------------------------
# trainer pieces


def test_step_sampler_is_a_function_of_seed_and_step():
    s = StepBatchSampler(10, 4, seed=1, start_step=0, end_step=6, shuffle=True)
    batches = list(s)
    assert len(batches) == 6 and all(len(b) == 4 for b in batches)
    flat = [i for b in batches for i in b]
    assert sorted(flat[:10]) == list(range(10))  # epoch 0 visits every item once
    assert sorted(flat[10:20]) == list(range(10))  # and so does epoch 1
    assert flat[:10] != flat[10:20]  # in another order
    resumed = StepBatchSampler(10, 4, seed=1, start_step=4, end_step=6, shuffle=True)
    assert list(resumed) == batches[4:]
    plain = StepBatchSampler(100, 4, seed=1, start_step=2, end_step=3, shuffle=False)
    assert list(plain) == [[8, 9, 10, 11]]
    overfit = StepBatchSampler(100, 4, seed=1, start_step=5, end_step=7, overfit=True)
    first = StepBatchSampler(100, 4, seed=1, start_step=0, end_step=1)
    assert list(overfit) == list(first) * 2  # step 0's batch, again and again
    # two DDP processes split the global batch
    r0 = StepBatchSampler(100, 4, 1, 2, 3, shuffle=False, rank=0, world_size=2)
    r1 = StepBatchSampler(100, 4, 1, 2, 3, shuffle=False, rank=1, world_size=2)
    assert list(r0) == [[8, 10]] and list(r1) == [[9, 11]]


def test_lr_schedules():
    conf = TrainerConfig(steps=100, lr=1.0, lr_schedule="cosine", lr_warmup_steps=10)
    assert lr_factor(0, conf) == pytest.approx(0.1) and lr_factor(9, conf) == pytest.approx(1)
    assert lr_factor(10, conf) == pytest.approx(1.0) and lr_factor(55, conf) == pytest.approx(0.5)
    assert lr_factor(100, conf) == pytest.approx(0.0)
    step = TrainerConfig(lr_schedule="step", lr_step_every=10, lr_step_gamma=0.5)
    assert [lr_factor(s, step) for s in (0, 9, 10, 25)] == [1, 1, 0.5, 0.25]


def test_resume_config_rules():
    base = {"train": {"steps": 10, "lr": 1e-3, "device": "cpu", "lr_schedule": "constant"}}
    longer = {"train": {"steps": 20, "lr": 1e-3, "device": "cuda", "lr_schedule": "constant"}}
    check_resume_config(base, longer)  # more steps, another device: fine
    cos = {"train": {**base["train"], "lr_schedule": "cosine"}}
    with pytest.raises(ConfigError, match="train.steps"):  # the schedule depends on steps
        check_resume_config(cos, {"train": {**cos["train"], "steps": 20}})


def test_stage_registry():
    stage = get_stage("magicpoint")
    assert stage.config_cls is MagicPointConfig and stage.default_config.endswith(
        "config/train/magicpoint.yaml"
    )
    with pytest.raises(ConfigError, match="unknown training stage 'nope'; valid: .*magicpoint"):
        get_stage("nope")


def test_shipped_configs_resolve(repo_root):
    paper = load_config(MagicPointConfig, repo_root / "config/train/magicpoint.yaml")
    assert (paper.train.steps, paper.train.batch_size, paper.train.lr) == (200_000, 32, 1e-3)
    assert paper.data.image_size == (120, 160) and paper.model.descriptor_dim == 0
    assert paper.model.backbone_args == {} and paper.train.device == "auto"
    cpu = load_config(MagicPointConfig, repo_root / "config/train/magicpoint_cpu.yaml")
    assert cpu.data.image_size == (120, 160) and cpu.train.device == "cpu"
    assert cpu.train.time_limit_min == 30


# ---------------------------------------------------------------------------------------------
# the command line


def test_cli_train_overrides_resume_and_errors(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "magicpoint", "--output", str(run), "--steps", "2", "--batch-size", "2",
            "--device", "cpu", *TINY[:3], "model.head_channels=8", "train.progress=false",
            "train.num_workers=0", "eval.num_images=2", "eval.classical=[]"]  # fmt: skip
    assert cli(args) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["batch_size"] == 2 and saved["model"]["head_channels"] == 8
    assert saved["data"]["image_size"] == [32, 48]
    # again without --resume: refused, one line, exit 1
    capsys.readouterr()
    assert cli(args) == 1
    assert "pass --resume" in capsys.readouterr().err
    # --resume uses the run's own config.yaml; extending the run is allowed
    assert cli(["train", "magicpoint", "--output", str(run), "--resume", "--steps", "3"]) == 0
    assert ckpt(run / "checkpoint_last.pt")["step"] == 3
    # unknown key: one line naming it and the valid keys
    assert cli(["train", "magicpoint", "--print-config", "train.stpes=3"]) == 1
    err = capsys.readouterr().err
    assert "unknown config key 'train.stpes'" in err and "train.steps" in err
    assert cli(["train", "magicpoint", "--print-config", "--steps", "7", "train.lr=5e-4"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["steps"] == 7 and printed["train"]["lr"] == 5e-4
    assert cli(["train", "nope"]) == 1
    assert "unknown training stage 'nope'" in capsys.readouterr().err
    # --eval-only on the run: writes the report
    capsys.readouterr()
    assert cli(["train", "magicpoint", "--output", str(run), "--eval-only",
                "eval.photometric=true"]) == 0  # fmt: skip
    assert "| magicpoint |" in capsys.readouterr().out
    assert (run / "eval" / "detection_noisy.md").read_text().count("photometric noise on") == 1


# ---------------------------------------------------------------------------------------------
# detection evaluation (hand-computed cases)


def test_match_detections_greedy_by_score():
    gt = np.array([[10.0, 10.0], [30.0, 10.0]])
    pts = np.array([[11.0, 10.0], [10.0, 12.0], [30.0, 14.0], [50.0, 50.0]])
    scores = np.array([0.5, 0.9, 0.8, 0.7])
    correct, dist = match_detections(pts, scores, gt, 3.0)
    # (10,12) has the best score and takes GT (10,10) at 2 px; (11,10) then finds it taken;
    # (30,14) is 4 px away: wrong at 3 px; (50,50) is far from everything.
    assert correct.tolist() == [False, True, False, False]
    assert dist[1] == pytest.approx(2.0) and np.isnan(dist[0])
    assert match_detections(pts, scores, gt, 4.0)[0].tolist() == [False, True, True, False]
    assert match_detections(np.zeros((0, 2)), np.zeros(0), gt, 3.0)[0].shape == (0,)


def test_pr_curve_and_average_precision_by_hand():
    gt = [np.array([[10.0, 10.0], [30.0, 10.0]]), np.array([[5.0, 5.0]])]
    dets = [
        Detections(np.array([[10.0, 10.0], [50.0, 50.0]]), np.array([0.9, 0.7])),
        Detections(np.array([[5.0, 6.0], [20.0, 20.0]]), np.array([0.8, 0.6])),
    ]
    r = pr_curve("x", dets, gt, 3.0)
    # ranked: 0.9 T, 0.8 T, 0.7 F, 0.6 F; 3 GT corners
    assert r.precision.tolist() == pytest.approx([1, 1, 2 / 3, 2 / 4])
    assert r.recall.tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert r.average_precision == pytest.approx(1 / 3 + 1 / 3)
    assert r.best_f1 == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert r.localization_error == pytest.approx(0.5)
    # tied scores form one threshold (their order does not matter)
    tied = [Detections(np.array([[50.0, 50.0], [10.0, 10.0]]), np.array([0.5, 0.5]))]
    r = pr_curve("t", tied, [np.array([[10.0, 10.0]])], 3.0)
    assert r.precision.tolist() == [0.5] and r.average_precision == pytest.approx(0.5)
    # nothing detected
    empty = pr_curve("e", [Detections(np.zeros((0, 2)), np.zeros(0))], [gt[0]], 3.0)
    assert empty.average_precision == 0.0


def _square_image():
    img = np.full((48, 64), 0.1, np.float32)
    img[12:36, 16:48] = 0.9  # corners at pixels (16,12), (47,12), (16,35), (47,35)
    # slightly blurred as rendered shapes are (OpenCV's FAST suppresses exact ties away)
    img = cv2.GaussianBlur(img, (0, 0), 0.7)
    gt = np.array([[16, 12], [47, 12], [16, 35], [47, 35]], np.float32)
    return img[None], gt


@pytest.mark.parametrize("name", ["harris", "shi_tomasi", "fast"])
def test_classical_detectors_find_the_corners_of_a_square(name):
    img, gt = _square_image()
    conf = DetectionEvalConfig(classical=(name,))
    (det,) = predict_classical(name, [img], conf)
    best = det.points[:4]
    # the four strongest responses are the four corners (within 2 px: the detectors' own
    # conventions put the corner on either side of the edge)
    d = np.linalg.norm(best[:, None] - gt[None], axis=-1)
    assert (d.min(axis=0) <= 2.0).all(), (name, best)
    r = pr_curve(name, [det], [gt], 3.0)
    assert r.recall[-1] == 1.0


def test_model_predictions_and_report(tmp_path):
    img, gt = _square_image()
    dataset = [{"image": img, "keypoints": gt}]
    conf = DetectionEvalConfig(num_images=1, classical=("harris",))
    model = SuperPointNet(
        ModelConfig(descriptor_dim=0, backbone_args={"channels": (4, 4, 8, 8)}, head_channels=8)
    )
    results = DetectionEvaluator(dataset, conf).evaluate(model)
    assert list(results) == ["magicpoint", "harris"]
    # an untrained net: softmax over 65 is about 1/65 everywhere, above the 0.001 floor
    assert results["magicpoint"].num_detections > 0
    paths = save_report(results, tmp_path, conf, {"step": 0})
    assert paths["plot"].stat().st_size > 1000
    table = paths["table"].read_text()
    assert "| magicpoint |" in table and "| harris |" in table and "3 px" in table
    data = json.loads(paths["json"].read_text())
    assert data["protocol"]["correct_distance"] == 3.0 and data["step"] == 0
