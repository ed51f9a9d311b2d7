"""A run's checkpoint files: names (``checkpoint_step_000500.pt``, ``checkpoint_last.pt``),
atomic writing of the last one, reading for a resume (the newest file that loads), and the
refusal to start a new run over an old one."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from superpoint_ros.errors import ConfigError

LAST_CHECKPOINT = "checkpoint_last.pt"
STEP_CHECKPOINT = "checkpoint_step_{step:06d}.pt"
_STEP_RE = re.compile(r"checkpoint_step_(\d+)\.pt$")


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by the trainer (safely: ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no checkpoint to resume from: {path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if "step" not in ckpt or "optimizer" not in ckpt:
        raise ConfigError(f"{path} is a weights file without training state; cannot resume")
    return ckpt


@dataclass
class ResumePoint:
    """The checkpoint a run resumes from: the newest one that loads (``checkpoint_last.pt``,
    then the step checkpoints, newest first), and why newer ones were skipped."""

    path: Path
    checkpoint: dict[str, Any]
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, one-line reason)

    @property
    def step(self) -> int:
        return int(self.checkpoint["step"])

    def notes(self) -> list[str]:
        """One line per skipped file, saying what is resumed instead."""
        return [
            f"skipped {p.name}: {why}; resuming from {self.path.name} (step {self.step})"
            for p, why in self.skipped
        ]


def _load_reason(exc: BaseException) -> str:
    """Why a checkpoint did not load, in one line (torch's messages span several)."""
    if isinstance(exc, ConfigError):
        return str(exc)
    text = " ".join(str(exc).split())[:160] or type(exc).__name__
    return f"cannot be read (truncated or damaged? {type(exc).__name__}: {text})"


def find_resume_checkpoint(run_dir: str | os.PathLike) -> ResumePoint:
    """The newest checkpoint of ``run_dir`` that loads (a disk that filled up or a copy cut
    short leaves ``checkpoint_last.pt`` truncated while older step checkpoints are intact).
    ``ConfigError`` in one line when there is none, or none loads."""
    run_dir = Path(run_dir)
    candidates = [run_dir / LAST_CHECKPOINT] + [p for _, p in step_checkpoints(run_dir)[::-1]]
    candidates = [p for p in candidates if p.is_file()]
    if not candidates:
        raise ConfigError(
            f"no checkpoint to resume from in {run_dir} (no {LAST_CHECKPOINT} or "
            "checkpoint_step_*.pt); start it without --resume"
        )
    skipped: list[tuple[Path, str]] = []
    for path in candidates:
        try:
            return ResumePoint(path, load_training_checkpoint(path), skipped)
        except Exception as exc:  # noqa: BLE001 - any unreadable file: try the next one
            skipped.append((path, _load_reason(exc)))
    reasons = "; ".join(f"{p.name}: {why}" for p, why in skipped)
    raise ConfigError(f"cannot resume {run_dir}: no checkpoint loads ({reasons})")


def step_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the step checkpoints in ``run_dir``, oldest first."""
    out = []
    for p in run_dir.glob("checkpoint_step_*.pt"):
        m = _STEP_RE.search(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` a copy of ``src`` atomically (hard link when the filesystem allows)."""
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def refuse_existing_run(run_dir: Path) -> None:
    """A run directory that already holds a checkpoint is continued with ``--resume`` only."""
    if (run_dir / LAST_CHECKPOINT).exists() or step_checkpoints(run_dir):
        raise ConfigError(
            f"{run_dir} already holds a run (checkpoints); pass --resume to continue it, or "
            "choose another --output"
        )
