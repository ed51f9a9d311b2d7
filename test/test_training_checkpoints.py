"""Checkpoints written by earlier code still resume: the shipped run's own checkpoint
(training/superpoint_demo/checkpoint_last.pt, written by the trainer before it became the
training/ package) is found, accepted for a resume with its own config, and restored into a
Trainer: weights, optimizer, schedule, step and random states. Read-only: nothing is written
into the run's folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from superpoint_ros.model.weights import build_model, load_weights
from superpoint_training.config import load_config, to_dict
from superpoint_training.training.checkpoints import LAST_CHECKPOINT, find_resume_checkpoint
from superpoint_training.training.loop import Trainer
from superpoint_training.training.runs import check_resume_config
from superpoint_training.training.superpoint import SuperPointTrainConfig

RUN = Path(__file__).resolve().parents[1] / "training" / "superpoint_demo"


@pytest.fixture(scope="module")
def shipped():
    path = RUN / LAST_CHECKPOINT
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    return path


def test_the_shipped_run_resumes_with_its_own_config(shipped):
    point = find_resume_checkpoint(RUN)
    assert point.path == shipped and not point.skipped
    ckpt = point.checkpoint
    assert ckpt["stage"] == "superpoint" and point.step > 0
    # `superpoint train superpoint --output RUN --resume`: the settings come from the checkpoint
    conf = load_config(SuperPointTrainConfig, None, [], base=ckpt["config"])
    check_resume_config(ckpt["config"], to_dict(conf))  # raises if the resume would change it


def test_the_shipped_checkpoint_restores_into_a_trainer(shipped, tmp_path):
    ckpt = torch.load(shipped, map_location="cpu", weights_only=True)
    conf = load_config(SuperPointTrainConfig, None, [("train.device", "cpu")], base=ckpt["config"])
    model = build_model(load_weights(shipped))
    for p in model.parameters():  # so the restore, not the build, must bring the weights back
        torch.nn.init.zeros_(p)
    trainer = Trainer(
        model=model,
        dataset=[0],
        step_fn=lambda *a: None,
        conf=conf.train,
        run_dir=tmp_path,
        seed=conf.seed,
        resolved_config=to_dict(conf),
    )
    trainer.restore(shipped)
    assert trainer.step == int(ckpt["step"])
    state = trainer.module.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ckpt["model"].items())
    assert trainer.scheduler.last_epoch == int(ckpt["scheduler"]["last_epoch"])
    opt = trainer.optimizer.state_dict()
    assert len(opt["state"]) == len(ckpt["optimizer"]["state"])
    assert np.isclose(trainer.optimizer.param_groups[0]["lr"], ckpt["scheduler"]["_last_lr"][0])
    assert trainer.np_rng.bit_generator.state == ckpt["rng"]["numpy_generator"]
    assert torch.equal(trainer.generator.get_state(), ckpt["rng"]["torch_generator"])
    assert not any(tmp_path.iterdir())  # restoring writes nothing
