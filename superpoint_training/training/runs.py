"""A run's start and record, shared by the stages: the checks before anything is written
(a run directory is never overwritten; a resume must not change what the run computes), the
message of a run already complete, and ``config.yaml``."""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from superpoint_ros.errors import ConfigError

from ..config import flatten, git_revision, save_run_config, to_dict
from . import distributed as dist_util
from .checkpoints import LAST_CHECKPOINT, find_resume_checkpoint, refuse_existing_run
from .loop_config import check_trainer_config

# Resuming must not change what the run computes. These keys may differ between the config a
# run was started with and the one it is resumed with (they change speed or reporting, or
# extend a run whose schedule does not depend on its length).
RESUME_MUTABLE_KEYS = (
    "train.device",
    "train.num_threads",
    "train.num_workers",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.val_every",
    "train.progress",
    "train.tensorboard",
    "train.steps",
    "train.time_limit_min",
    "train.worker_start",
    "train.sync_batchnorm",  # like the number of processes, a property of the launch
)


def check_resume_config(saved: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Refuse to resume with a config that changes the computation (see
    ``RESUME_MUTABLE_KEYS``); ``train.steps`` may change only with the constant schedule."""
    a, b = flatten(saved), flatten(current)
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    mutable = set(RESUME_MUTABLE_KEYS)
    if b.get("train.lr_schedule") != "constant":
        mutable.discard("train.steps")
    bad = [k for k in diff if k not in mutable and not k.startswith("eval.")]
    if bad:
        details = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in bad[:8])
        raise ConfigError(
            "cannot resume with a different config (" + details + "); --resume alone takes the "
            "run's settings from its checkpoint: leave out the --config, flags and key=value "
            "that change them, or start a new --output"
        )


REPO = Path(__file__).resolve().parents[2]


@dataclass
class RunStart:
    """What :func:`begin_run` checked: where the run goes and what it resumes from."""

    run_dir: Path
    resolved: dict[str, Any]  # the resolved config, as saved in checkpoints
    revision: str  # git revision of the code
    resume_from: Path | None = None  # the checkpoint to resume from (resume only)


def begin_run(conf: Any, output_dir: str | os.PathLike, resume: bool) -> RunStart:
    """A stage's start, before anything is written: the loop's config is checked; without
    ``resume`` a directory holding a run is refused; with it, the newest checkpoint that loads
    is chosen (one line on stderr per newer one skipped, and why) and a config that would change
    the computation of the saved run is refused. The stage then builds everything else that can
    fail, and only then writes (:func:`record_run`, ``Trainer.fit``)."""
    check_trainer_config(conf.train)
    run_dir = Path(output_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"cannot write into {run_dir}: it is a file, not a folder")
    resolved = to_dict(conf)
    resume_from = None
    if resume:
        point = find_resume_checkpoint(run_dir)
        if dist_util.current().is_main:
            for note in point.notes():
                print(f"warning: {note}", file=sys.stderr, flush=True)
        check_resume_config(point.checkpoint["config"], resolved)
        resume_from = point.path
    else:
        refuse_existing_run(run_dir)
    return RunStart(run_dir, resolved, git_revision(REPO), resume_from)


def completion_message(stage: str, run_dir: Path, step: int, conf: Any) -> str:
    """What ``--resume`` says about a run that already reached ``train.steps``: that it is
    complete, and how to train it further."""
    head = f"{run_dir} is complete: it reached step {step} of train.steps={conf.train.steps}"
    if conf.train.lr_schedule == "constant":
        return (
            f"{head}; nothing to do. To train it further: superpoint train {stage} --output "
            f"{run_dir} --resume --steps N (N > {step})"
        )
    start_from = (
        f"--init-weights {run_dir / LAST_CHECKPOINT}" if hasattr(conf, "init_weights") else ""
    )
    return (
        f"{head}; nothing to do. Its {conf.train.lr_schedule} learning-rate schedule ends at "
        f"that step, so it cannot be extended: start a new --output {start_from}".rstrip()
    )


def record_run(
    run_dir: Path, conf: Any, stage: str, revision: str, resume: bool, **extra: Any
) -> None:
    """Write ``run_dir/config.yaml`` (resolved config + run facts + ``extra``); one writer
    under torch.distributed."""
    if not dist_util.current().is_main:
        return
    info = {
        "stage": stage,
        "seed": conf.seed,
        "git_revision": revision,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "resumed": resume,
        "torch": torch.__version__,
    }
    save_run_config(run_dir, conf, {**info, **extra})
