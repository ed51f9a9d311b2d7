"""A generic, resumable training loop shared by the training stages (MagicPoint, SuperPoint).

What a stage supplies (see ``superpoint_training/training/magicpoint.py``):

* a model (``SuperPointNet``), a map-style dataset whose item ``i`` is a deterministic function
  of ``(seed, i)`` and its ``collate_fn``;
* ``step_fn(model, batch, ctx) -> (loss, scalars)``: the forward pass and the loss of one batch
  (``ctx.generator`` / ``ctx.np_rng`` are the only random sources it may use);
* optionally ``validate(model, ctx) -> {name: float}``, called every ``val_every`` steps and at
  the end with the model in eval mode under ``torch.no_grad()``.

What the trainer does: Adam(W) with a learning-rate schedule, a tqdm bar (loss, images/s),
TensorBoard scalars (``run_dir/tensorboard``), ``metrics.jsonl``, atomic checkpoints
(``checkpoint_step_000500.pt`` every ``checkpoint_every`` steps and at the end, plus
``checkpoint_last.pt``) in the project's checkpoint format (``superpoint extract --weights``
loads them), each holding model, optimizer, scheduler, step, RNG states, resolved config, seed
and git revision.

Exact resumption. The batch of step ``s`` is made of dataset items chosen by
``StepBatchSampler``, a pure function of ``(seed, s)``; the random generators handed to
``step_fn`` and the global torch / numpy / python RNGs are saved in every checkpoint and
restored; the DataLoader gets its own generator, so creating one never consumes global random
state. Running N steps in one go and running k steps, stopping, then ``resume=True`` to N give
bitwise-equal weights on the CPU (``test/test_training_magicpoint.py``). Ctrl-C or SIGTERM
stops after the step in progress and writes ``checkpoint_last.pt`` (a second one stops at once,
without a checkpoint).

Distributed training (DDP, ``superpoint_training/training/distributed.py``). When a
``torch.distributed`` process group is initialised (torchrun, or ``superpoint train --nproc``),
every process builds the same ``Trainer``; it then runs on ``cuda:LOCAL_RANK`` (or the CPU),
wraps the model in ``DistributedDataParallel`` (``train.sync_batchnorm``: ``SyncBatchNorm``
first), takes every ``world_size``-th sample of each global batch (``train.batch_size`` stays the
global batch), decides every stop (time limit, signals) together with the others, logs scalars
averaged over the processes, and only rank 0 validates (the others wait at a barrier) and
writes checkpoints, TensorBoard, ``metrics.jsonl`` and the bar. ``step_fn`` gets the DDP
wrapper, ``validate`` the plain model. Checkpoints hold the random states of every rank
(``rng_ranks``); all ranks resume from the same file, each with its own states. Without a
process group (or with a world size of 1) none of this runs: the single-process loop is the one
described above, unchanged.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from superpoint_ros.errors import ConfigError
from superpoint_ros.model.weights import checkpoint_dict, save_checkpoint
from superpoint_ros.registry import Registry

from ..config import git_revision, save_run_config, to_dict
from ..precision import autocast as precision_autocast
from ..precision import check_precision, grad_scaler
from . import distributed as dist_util

LAST_CHECKPOINT = "checkpoint_last.pt"
STEP_CHECKPOINT = "checkpoint_step_{step:06d}.pt"
_STEP_RE = re.compile(r"checkpoint_step_(\d+)\.pt$")
LR_SCHEDULES = ("constant", "cosine", "step")
OPTIMIZERS = ("adam", "adamw")
WORKER_STARTS = ("spawn", "forkserver", "fork")
_NOT_AVERAGED = ("images_per_s", "lr")  # DDP: rank 0's values are logged as they are


@dataclass
class TrainerConfig:
    """The training loop's knobs (``train.*`` in a stage's YAML)."""

    steps: int = 200_000  # optimizer steps of the whole run (resuming continues to this count)
    batch_size: int = 32  # images per step (the global batch: DDP processes split it)
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-3  # peak learning rate
    adam_betas: tuple[float, float] = (0.9, 0.999)  # Adam's beta1, beta2
    weight_decay: float = 0.0  # L2 (adam) or decoupled (adamw) weight decay
    lr_schedule: str = "constant"  # constant | cosine (to lr_min at the last step) | step
    lr_warmup_steps: int = 0  # linear warm-up from 0 over this many steps
    lr_min: float = 0.0  # final learning rate of the cosine schedule
    lr_step_every: int = 0  # "step" schedule: multiply lr by lr_step_gamma every this many steps
    lr_step_gamma: float = 0.1  # "step" schedule factor
    grad_clip: float = 0.0  # clip the gradient's global L2 norm to this (0: no clipping)
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    num_threads: int = 0  # torch intra-op CPU threads (0: torch's default)
    num_workers: int = 2  # DataLoader worker processes (0: load batches in this process)
    worker_start: str = "spawn"  # how workers start: spawn | forkserver | fork (see doc)
    log_every: int = 50  # steps between TensorBoard/metrics.jsonl scalars and bar updates
    checkpoint_every: int = 5000  # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 3  # newest step checkpoints kept (0: keep all); checkpoint_last stays
    val_every: int = 5000  # steps between validations (0: only at the end)
    overfit_batch: bool = False  # debug: train on the first batch over and over
    time_limit_min: float = 0.0  # stop (checkpoint + final validation) after this many minutes
    # of this invocation (0: no limit); --resume continues to `steps`
    progress: bool = True  # show the tqdm progress bar
    tensorboard: bool = True  # write TensorBoard scalars to <run>/tensorboard
    sync_batchnorm: bool = False  # DDP on CUDA: BatchNorm statistics over the global batch
    precision: str = "fp32"  # fp32 | bf16 (CPU with AVX-512 BF16/AMX, CUDA) | fp16 (CUDA, with
    # a gradient scaler): the network's forward under autocast (superpoint_training.precision)
    channels_last: bool = False  # NHWC memory format for the network and its input images


@dataclass
class StepContext:
    """What ``step_fn`` and ``validate`` get besides the model and the batch."""

    step: int  # steps completed before this one (0 for the first)
    device: torch.device
    generator: torch.Generator  # explicit torch random source (CPU), saved in checkpoints
    np_rng: np.random.Generator  # explicit numpy random source, saved in checkpoints
    run_dir: Path
    writer: Any = None  # TensorBoard SummaryWriter or None
    is_main: bool = True
    final: bool = False  # the validation at the end of this invocation (steps or time limit)
    precision: str = "fp32"  # train.precision: step_fn runs the network under autocast(...)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context for the network's forward pass (``train.precision``); compute losses
        outside it, from outputs cast to float32."""
        return precision_autocast(self.precision, self.device)


StepFn = Callable[[nn.Module, dict[str, Any], StepContext], tuple[torch.Tensor, dict[str, Any]]]
ValidateFn = Callable[[nn.Module, StepContext], Mapping[str, float]]


# ---------------------------------------------------------------------------------------------
# data order: a pure function of (seed, step)


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields the dataset indices of steps ``start_step .. end_step - 1``, one list per step.

    Sample ``j`` of step ``s`` is global position ``p = s * batch_size + j``; positions run
    through the dataset epoch by epoch, each epoch in the order of a permutation drawn from
    ``(seed, epoch)`` (``shuffle``) or in index order. ``overfit`` repeats step 0's batch.
    Under DDP, process ``rank`` of ``world_size`` takes every ``world_size``-th sample of the
    global batch. Nothing here has state: resuming at step ``s`` gives the same batches.
    """

    def __init__(
        self,
        length: int,
        batch_size: int,
        seed: int,
        start_step: int,
        end_step: int,
        shuffle: bool = True,
        overfit: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        if length <= 0:
            raise ConfigError("the training dataset is empty")
        self.length = length
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.end_step = end_step
        self.shuffle = shuffle
        self.overfit = overfit
        self.rank = rank
        self.world_size = world_size
        self._perm: tuple[int, np.ndarray] | None = None

    def _order(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            if self.shuffle:
                perm = np.random.default_rng([self.seed, epoch]).permutation(self.length)
            else:
                perm = np.arange(self.length)
            self._perm = (epoch, perm)
        return self._perm[1]

    def indices(self, step: int) -> list[int]:
        """The dataset indices of this process's share of step ``step``'s batch."""
        if self.overfit:
            step = 0
        out = []
        for j in range(self.rank, self.batch_size, self.world_size):
            epoch, pos = divmod(step * self.batch_size + j, self.length)
            out.append(int(self._order(epoch)[pos]))
        return out

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.end_step):
            yield self.indices(step)

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)


# ---------------------------------------------------------------------------------------------
# helpers


def resolve_device(name: str) -> torch.device:
    """``auto``: ``cuda`` if available, else ``cpu``; a requested CUDA device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise ConfigError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA device here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} asked for, but only {torch.cuda.device_count()} CUDA "
                "device(s) exist"
            )
    return device


def make_optimizer(params, conf: TrainerConfig) -> torch.optim.Optimizer:
    if conf.optimizer == "adam":
        cls = torch.optim.Adam
    elif conf.optimizer == "adamw":
        cls = torch.optim.AdamW
    else:
        raise ConfigError(f"unknown optimizer {conf.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    return cls(params, lr=conf.lr, betas=tuple(conf.adam_betas), weight_decay=conf.weight_decay)


def lr_factor(step: int, conf: TrainerConfig) -> float:
    """Learning-rate multiplier for the update after ``step`` completed steps."""
    if conf.lr_warmup_steps > 0 and step < conf.lr_warmup_steps:
        return (step + 1) / conf.lr_warmup_steps
    if conf.lr_schedule == "constant":
        return 1.0
    if conf.lr_schedule == "step":
        return conf.lr_step_gamma ** (step // conf.lr_step_every) if conf.lr_step_every else 1.0
    if conf.lr_schedule == "cosine":
        span = max(1, conf.steps - conf.lr_warmup_steps)
        t = min(1.0, (step - conf.lr_warmup_steps) / span)
        floor = conf.lr_min / conf.lr if conf.lr > 0 else 0.0
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    raise ConfigError(f"unknown lr_schedule {conf.lr_schedule!r}; valid: {LR_SCHEDULES}")


def check_trainer_config(conf: TrainerConfig) -> None:
    """Reject values the loop cannot run with, naming the key."""
    positive = ("steps", "batch_size", "log_every", "checkpoint_every")
    for key in positive:
        if getattr(conf, key) <= 0:
            raise ConfigError(f"train.{key} must be > 0, got {getattr(conf, key)}")
    for key in ("num_threads", "num_workers", "keep_checkpoints", "val_every", "lr_warmup_steps",
                "time_limit_min", "grad_clip", "weight_decay"):  # fmt: skip
        if getattr(conf, key) < 0:
            raise ConfigError(f"train.{key} must be >= 0, got {getattr(conf, key)}")
    if conf.worker_start not in WORKER_STARTS:
        raise ConfigError(
            f"unknown train.worker_start {conf.worker_start!r}; valid: {', '.join(WORKER_STARTS)}"
        )
    if conf.lr_schedule not in LR_SCHEDULES:
        raise ConfigError(
            f"unknown train.lr_schedule {conf.lr_schedule!r}; valid: {', '.join(LR_SCHEDULES)}"
        )
    if conf.optimizer not in OPTIMIZERS:
        raise ConfigError(
            f"unknown train.optimizer {conf.optimizer!r}; valid: {', '.join(OPTIMIZERS)}"
        )
    if conf.lr <= 0:
        raise ConfigError(f"train.lr must be > 0, got {conf.lr}")


def rng_state(
    generator: torch.Generator,
    np_rng: np.random.Generator,
    cuda_device: torch.device | None = None,
) -> dict[str, Any]:
    """Every random state a run depends on, as checkpoint-safe data (``weights_only`` loads).
    ``cuda_device`` (DDP): save only that GPU's state (``cuda_device``), not every GPU's."""
    state = {
        "torch": torch.get_rng_state(),
        "torch_generator": generator.get_state(),
        "numpy_generator": np_rng.bit_generator.state,
        "numpy_global": _np_global_state(),
        "python": _python_state(),
    }
    if cuda_device is not None and cuda_device.type == "cuda":
        state["cuda_device"] = torch.cuda.get_rng_state(cuda_device)
    elif torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _np_global_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}  # fmt: skip


def _python_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, torch.tensor(internal, dtype=torch.int64), gauss]


def set_rng_state(
    state: Mapping[str, Any],
    generator: torch.Generator,
    np_rng: np.random.Generator,
    cuda_device: torch.device | None = None,
) -> None:
    """Restore ``rng_state``'s output. ``cuda_device`` (DDP): set only that GPU's state."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["torch_generator"])
    np_rng.bit_generator.state = state["numpy_generator"]
    g = state["numpy_global"]
    np.random.set_state(
        (g["name"], g["keys"].numpy().astype(np.uint32), g["pos"], g["has_gauss"],
         g["cached_gaussian"])
    )  # fmt: skip
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss))
    if cuda_device is not None and cuda_device.type == "cuda":
        if "cuda_device" in state:
            torch.cuda.set_rng_state(state["cuda_device"], cuda_device)
        elif "cuda" in state and cuda_device.index < len(state["cuda"]):
            torch.cuda.set_rng_state(state["cuda"][cuda_device.index], cuda_device)
    elif "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    elif "cuda_device" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda_device"])


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


def _link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` a copy of ``src`` atomically (hard link when the filesystem allows)."""
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


class _StopRequests:
    """Ctrl-C (SIGINT) and ``kill`` (SIGTERM) during ``fit``: the first one asks the loop to
    stop after the step in progress (then checkpoint and exit), so a checkpoint never holds a
    half-done step (its random draws already made, say); a second one interrupts at once,
    without a checkpoint. Handlers are installed only in the main thread and restored after.
    ``echo_s`` (DDP): a second signal this soon after the first is ignored, as it is the
    launcher passing on the Ctrl-C the terminal already sent to every process."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, echo_s: float = 0.0) -> None:
        self.signum: int | None = None
        self.echo_s = echo_s
        self._first = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequests:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            if time.monotonic() - self._first < self.echo_s:
                return
            raise KeyboardInterrupt
        self.signum = signum
        self._first = time.monotonic()

    def __exit__(self, *exc) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _stop_signals_blocked(spawns: bool = True) -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread while DataLoader workers start: a child inherits
    the mask, so a signal sent to the whole process group (Ctrl-C, ``timeout``, a batch
    scheduler, ``kill -- -PGID``) while it starts up stays pending there until
    :class:`_WorkerInit` ignores it, instead of killing the worker (whose death then ends the
    trainer with a traceback and no checkpoint). Here the signal is delivered when the block
    ends. (Python's multiprocessing resource tracker starts the same way; with ``spawns``, new
    interpreters to start, it is started first here, as starting it unblocks both signals in
    this thread.)"""
    import signal
    import threading
    from multiprocessing import resource_tracker

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if spawns:
        resource_tracker.ensure_running()
    stop = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _WorkerInit:
    """DataLoader ``worker_init_fn``: workers ignore Ctrl-C and SIGTERM (a terminal, ``timeout``
    or a scheduler sends them to the whole process group; the trainer decides when to stop and
    shuts its workers down itself; a worker whose trainer died exits on its own, torch's
    watchdog sees the parent gone), then run the dataset's own init."""

    def __init__(self, fn: Callable[[int], None] | None):
        self.fn = fn

    def __call__(self, worker_id: int) -> None:
        import signal

        stop = {signal.SIGINT, signal.SIGTERM}
        for sig in stop:
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop)  # pending ones are now discarded
        if self.fn is not None:
            self.fn(worker_id)


def _to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """``batch`` on ``device``; with ``channels_last``, 4-d tensors (images) in NHWC layout."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device, channels_last) for v in batch)
    return batch


def _scalar(v: Any) -> float:
    return float(v.detach().float().mean()) if isinstance(v, torch.Tensor) else float(v)


# ---------------------------------------------------------------------------------------------
# the loop


@dataclass
class Trainer:
    """Runs ``conf.steps`` optimizer steps of ``step_fn`` over ``dataset`` (see module doc)."""

    model: nn.Module
    dataset: torch.utils.data.Dataset
    step_fn: StepFn
    conf: TrainerConfig
    run_dir: Path
    seed: int
    resolved_config: dict[str, Any]  # the stage's whole resolved config, saved in checkpoints
    stage: str = "train"
    collate_fn: Callable | None = None
    worker_init_fn: Callable[[int], None] | None = None
    validate: ValidateFn | None = None
    conventions: Mapping[str, Any] | None = None
    git_revision: str = "unknown"
    shuffle: bool = True
    rank: int | None = None  # None: from the torch.distributed process group (0 without one)
    world_size: int | None = None  # None: from the process group (1 without one)
    on_step_end: list[Callable[[int], None]] = field(default_factory=list)  # hooks (tests)

    def __post_init__(self) -> None:
        check_trainer_config(self.conf)
        self.run_dir = Path(self.run_dir)
        info = self._dist_info()
        self.rank, self.world_size = info.rank, info.world_size
        self.distributed = info.enabled
        self.is_main = self.rank == 0
        if self.distributed:
            dist_util.check_batch(self.conf.batch_size, self.world_size)
            self.device = dist_util.rank_device(self.conf.device, info.local_rank)
        else:
            self.device = resolve_device(self.conf.device)
        check_precision(self.conf.precision, self.device)
        self.model.to(self.device)
        if self.conf.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.scaler = grad_scaler(self.conf.precision, self.device)
        if self.distributed:  # before the optimizer: SyncBatchNorm replaces modules
            self.model = dist_util.wrap_model(self.model, self.device, self.conf.sync_batchnorm)
        self.optimizer = make_optimizer(self.model.parameters(), self.conf)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, self.conf)
        )
        stream = self.seed * 1000 + self.rank  # per-process streams, reproducible
        self.generator = torch.Generator().manual_seed(stream)
        self.np_rng = np.random.default_rng(stream)
        self.step = 0
        self.writer = None

    def _dist_info(self) -> dist_util.DistInfo:
        found = dist_util.current()
        if self.rank is None and self.world_size is None:
            return found
        asked = (self.rank or 0, 1 if self.world_size is None else self.world_size)
        if asked != (found.rank, found.world_size):
            raise ConfigError(
                f"Trainer(rank={asked[0]}, world_size={asked[1]}) does not match the process "
                f"group (rank {found.rank} of {found.world_size}); leave rank and world_size "
                "out: they come from torch.distributed"
            )
        return found

    @property
    def module(self) -> nn.Module:
        """The model without its ``DistributedDataParallel`` wrapper."""
        return getattr(self.model, "module", self.model)

    def _rng_state(self) -> dict[str, Any]:
        cuda_device = self.device if self.distributed else None
        return rng_state(self.generator, self.np_rng, cuda_device)

    # -- checkpoints --------------------------------------------------------------------------

    def checkpoint(self, rng_ranks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The checkpoint dict. ``rng_ranks`` (DDP): the random states of every rank, by rank
        (saved as ``rng_ranks`` beside ``world_size``; ``rng`` is rank 0's)."""
        extra: dict[str, Any] = {}
        if rng_ranks is not None:
            extra = {"rng_ranks": list(rng_ranks), "world_size": len(rng_ranks)}
        if self.scaler is not None:  # fp16: the loss scale, for an exact resume
            extra["grad_scaler"] = self.scaler.state_dict()
        return checkpoint_dict(
            self.module,  # unwrap DDP
            self.conventions,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            step=self.step,
            rng=rng_ranks[0] if rng_ranks else rng_state(self.generator, self.np_rng),
            config=self.resolved_config,
            seed=self.seed,
            stage=self.stage,
            git_revision=self.git_revision,
            **extra,
        )

    def save(self, rng_ranks: list[dict[str, Any]] | None = None) -> Path:
        """Write ``checkpoint_step_<step>.pt`` and ``checkpoint_last.pt`` (atomically), then
        drop the oldest step checkpoints beyond ``keep_checkpoints``."""
        path = save_checkpoint(
            self.run_dir / STEP_CHECKPOINT.format(step=self.step), self.checkpoint(rng_ranks)
        )
        _link_or_copy(path, self.run_dir / LAST_CHECKPOINT)
        keep = self.conf.keep_checkpoints
        if keep > 0:
            for _, old in step_checkpoints(self.run_dir)[:-keep]:
                old.unlink(missing_ok=True)
        return path

    def restore(self, path: str | os.PathLike) -> None:
        """Load model, optimizer, scheduler, step and random states. Under DDP every rank
        reads the same file; rank ``r`` takes ``rng_ranks[r]`` when the saved run had that
        rank, else (more processes than before) rank 0's global states and fresh generators
        seeded from ``(seed, rank, step)``."""
        ckpt = load_training_checkpoint(path)
        self.module.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("grad_scaler"):
            self.scaler.load_state_dict(ckpt["grad_scaler"])
        self.step = int(ckpt["step"])
        if not self.distributed:
            set_rng_state(ckpt["rng"], self.generator, self.np_rng)
            return
        saved = ckpt.get("rng_ranks") or [ckpt["rng"]]
        own = saved[self.rank] if self.rank < len(saved) else saved[0]
        set_rng_state(own, self.generator, self.np_rng, self.device)
        if self.rank >= len(saved):
            key = [self.seed, self.rank, self.step]
            self.generator.manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))
            self.np_rng.bit_generator.state = np.random.default_rng(key).bit_generator.state

    # -- loop ---------------------------------------------------------------------------------

    def _context(self, final: bool = False) -> StepContext:
        return StepContext(
            self.step, self.device, self.generator, self.np_rng, self.run_dir, self.writer,
            self.is_main, final, self.conf.precision,
        )  # fmt: skip

    def _batches(self) -> Iterator[Any]:
        """The batches of steps ``self.step .. conf.steps - 1``. DataLoader workers are started
        here, at once (not on the first ``next``), before ``fit`` starts threads of its own
        (TensorBoard's writer): with ``worker_start="fork"``, forking a process that runs other
        threads can deadlock the child on a lock one of them held. The default, ``spawn``,
        starts clean interpreters whose parent is this process, so they also exit when it is
        killed (a worker forked from a fork server watches the server, not the trainer, and
        outlives a killed run)."""
        sampler = StepBatchSampler(
            len(self.dataset), self.conf.batch_size, self.seed, self.step, self.conf.steps,
            shuffle=self.shuffle, overfit=self.conf.overfit_batch, rank=self.rank,
            world_size=self.world_size,
        )  # fmt: skip
        if self.conf.overfit_batch:  # one batch, loaded once, reused every step
            first = self.collate([self.dataset[i] for i in sampler.indices(0)])
            return iter([first] * len(sampler))
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=self.conf.num_workers,
            collate_fn=self.collate_fn,
            worker_init_fn=_WorkerInit(self.worker_init_fn),
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.seed + self.step),
            persistent_workers=False,
            multiprocessing_context=self.conf.worker_start if self.conf.num_workers else None,
        )
        return iter(loader)

    def collate(self, items: list[Any]) -> Any:
        if self.collate_fn is not None:
            return self.collate_fn(items)
        return torch.utils.data.default_collate(items)

    def run_validation(self, final: bool = False) -> dict[str, float]:
        """``validate`` on the plain model (eval mode, no grad); under DDP on rank 0 only, the
        others wait for it at a barrier (and return ``{}``)."""
        if self.validate is None:
            return {}
        if self.distributed and not self.is_main:
            dist_util.barrier(self.device)
            return {}
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                ctx = self._context(final)
                metrics = {k: float(v) for k, v in self.validate(self.module, ctx).items()}
        finally:
            self.model.train(was_training)
        if self.is_main:
            for k, v in metrics.items():
                if self.writer is not None:
                    self.writer.add_scalar(f"val/{k}", v, self.step)
            self._log_json({"step": self.step, "split": "val", **metrics})
        if self.distributed:
            dist_util.barrier(self.device)
        return metrics

    def _log_json(self, record: Mapping[str, Any]) -> None:
        record = {**record, "time": round(time.time(), 3)}  # wall clock (Unix seconds)
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def fit(self, resume: bool = False, resume_from: str | os.PathLike | None = None) -> Path:
        """Train to ``conf.steps``; returns the path of ``checkpoint_last.pt``.

        ``resume``: continue from ``resume_from``, by default the newest checkpoint of
        ``run_dir`` that loads (:func:`find_resume_checkpoint`). Without it, a run directory
        that already holds a checkpoint is refused (so a run is never overwritten by accident).
        """
        from tqdm import tqdm

        last = self.run_dir / LAST_CHECKPOINT
        if resume:
            self.restore(resume_from or find_resume_checkpoint(self.run_dir).path)
        else:
            refuse_existing_run(self.run_dir)
        if self.distributed:  # every rank has read the run directory before rank 0 writes
            dist_util.barrier(self.device)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.conf.num_threads > 0:
            torch.set_num_threads(self.conf.num_threads)
        if self.step >= self.conf.steps:
            return last
        stop = _StopRequests(dist_util.SIGNAL_ECHO_S if self.distributed else 0.0).__enter__()
        try:
            spawns = self.conf.num_workers > 0 and self.conf.worker_start != "fork"
            with _stop_signals_blocked(spawns):  # workers are born ignoring a group's stop signals
                batches = self._batches()  # before any thread starts (see _batches)
        except BaseException:
            stop.__exit__()
            raise
        if self.is_main and self.conf.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # TensorBoard hides events at steps >= purge_step from earlier files: those a killed
            # run logged after its last checkpoint. The checkpoint's own step keeps its points
            # (its train/ scalars and its validation describe the model resumed from).
            self.writer = SummaryWriter(
                str(self.run_dir / "tensorboard"), purge_step=self.step + 1
            )
        bar = tqdm(
            total=self.conf.steps,
            initial=self.step,
            desc=self.stage,
            unit="step",
            dynamic_ncols=True,
            mininterval=1.0,
            disable=not (self.conf.progress and self.is_main),
        )
        self.model.train()
        sums: dict[str, float] = {}
        count = 0
        window_start = started = time.perf_counter()
        limit_s = self.conf.time_limit_min * 60.0
        data_time = 0.0
        interrupted = False
        try:
            while self.step < self.conf.steps:
                t0 = time.perf_counter()
                batch = _to_device(next(batches), self.device, self.conf.channels_last)
                data_time += time.perf_counter() - t0
                loss, scalars = self.step_fn(self.model, batch, self._context())
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss is {float(loss)} at step {self.step}")
                self.optimizer.zero_grad(set_to_none=True)
                if self.scaler is None:
                    loss.backward()
                    if self.conf.grad_clip > 0:
                        nn.utils.clip_grad_norm_(self.model.parameters(), self.conf.grad_clip)
                    self.optimizer.step()
                else:  # fp16: scaled loss, unscaled before clipping, step skipped on inf/nan
                    self.scaler.scale(loss).backward()
                    if self.conf.grad_clip > 0:
                        self.scaler.unscale_(self.optimizer)
                        nn.utils.clip_grad_norm_(self.model.parameters(), self.conf.grad_clip)
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                self.scheduler.step()
                self.step += 1
                sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
                for k, v in scalars.items():
                    sums[k] = sums.get(k, 0.0) + _scalar(v)
                count += 1
                bar.update(1)
                timed_out = limit_s > 0 and time.perf_counter() - started >= limit_s
                interrupted = stop.signum is not None
                if self.distributed:  # all processes stop after the same step
                    timed_out, interrupted = dist_util.any_across(
                        [timed_out, interrupted], self.device
                    )
                end = self.step == self.conf.steps or timed_out or interrupted
                if self.step % self.conf.log_every == 0 or end:
                    elapsed = time.perf_counter() - window_start
                    record = {k: v / count for k, v in sums.items()}
                    record["images_per_s"] = count * self.conf.batch_size / max(elapsed, 1e-9)
                    record["data_fraction"] = data_time / max(elapsed, 1e-9)
                    record["lr"] = self.optimizer.param_groups[0]["lr"]
                    if self.distributed:  # means over the processes (images_per_s: rank 0's)
                        local = {k: v for k, v in record.items() if k not in _NOT_AVERAGED}
                        record = {**record, **dist_util.mean_across(local)}
                    self._log_train(record, bar)
                    sums, count, data_time = {}, 0, 0.0
                    window_start = time.perf_counter()
                for hook in self.on_step_end:
                    hook(self.step)
                if self.step % self.conf.checkpoint_every == 0 or end:
                    if self.distributed:  # every rank's random states, rank 0 writes
                        states = dist_util.gather_all(self._rng_state())
                        if self.is_main:
                            self.save(rng_ranks=states)
                    elif self.is_main:
                        self.save()
                overfit = self.conf.overfit_batch
                periodic = self.conf.val_every > 0 and self.step % self.conf.val_every == 0
                if interrupted:
                    if self.is_main:
                        bar.write(f"interrupted: saved step {self.step}; continue with --resume")
                    break
                if (periodic and not overfit) or end:
                    metrics = self.run_validation(final=end)
                    if metrics and self.is_main:
                        bar.write(
                            f"step {self.step}: "
                            + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
                        )
                    # validation time is not training throughput
                    window_start = time.perf_counter()
                if timed_out:
                    if self.is_main:
                        bar.write(
                            f"time limit of {self.conf.time_limit_min:g} min reached at step "
                            f"{self.step}; continue with --resume"
                        )
                    break
            if self.distributed:  # no process returns before the last checkpoint is written
                dist_util.barrier(self.device)
        finally:
            stop.__exit__()
            shutdown = getattr(batches, "_shutdown_workers", None)
            if shutdown is not None:  # stop the DataLoader workers now, not at exit
                shutdown()
            bar.close()
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        if stop.signum is not None or interrupted:
            raise KeyboardInterrupt
        return last

    def _log_train(self, record: Mapping[str, float], bar) -> None:
        if not self.is_main:
            return
        if self.writer is not None:
            for k, v in record.items():
                self.writer.add_scalar(f"train/{k}", v, self.step)
        self._log_json({"step": self.step, "split": "train", **record})
        bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['images_per_s']:.1f}")


# ---------------------------------------------------------------------------------------------
# stages: `superpoint train <stage>` looks them up here


@dataclass
class Stage:
    """A training stage as the command line sees it.

    ``run(conf, output_dir, resume=False) -> Path`` trains (or resumes) and returns the last
    checkpoint; ``config_cls`` is its config dataclass; ``default_config`` the YAML used without
    ``--config``; ``flags`` maps extra command-line flags to config keys, e.g.
    ``{"--labels": ("data.labels", "pseudo-label store")}`` (the common flags --steps,
    --batch-size, --device, --overfit-batch exist for every stage); ``evaluate(weights, conf,
    output_dir, device) -> str`` (writes a report, returns a summary to print), if given,
    backs ``--eval-only``. A flag in ``repeatable`` may be given several times; its key then
    gets the list of values (one value stays a plain value).
    """

    name: str
    run: Callable[..., Path]
    config_cls: type
    default_config: str
    flags: dict[str, tuple[str, str]] = field(default_factory=dict)
    repeatable: tuple[str, ...] = ()  # flags that may be given several times (a list value)
    description: str = ""
    evaluate: Callable[..., str] | None = None


STAGES: Registry[Stage] = Registry("training stage")


def get_stage(name: str) -> Stage:
    """The stage registered as ``name``. A stage module ``superpoint_training.training.<name>``
    registers itself when imported, so it is imported on demand; on an unknown name every
    module of the package is imported so the error lists all valid stages."""
    import importlib
    import pkgutil

    from .. import training as package

    if name not in STAGES:
        try:
            importlib.import_module(f"{package.__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package.__name__}.{name}":
                raise
    if name not in STAGES:
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                try:  # only to list the valid names: a module that fails is not one
                    importlib.import_module(f"{package.__name__}.{info.name}")
                except Exception:  # noqa: BLE001
                    continue
    try:
        return STAGES.get(name)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None


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
    from ..config import flatten

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


def refuse_existing_run(run_dir: Path) -> None:
    """A run directory that already holds a checkpoint is continued with ``--resume`` only."""
    if (run_dir / LAST_CHECKPOINT).exists() or step_checkpoints(run_dir):
        raise ConfigError(
            f"{run_dir} already holds a run (checkpoints); pass --resume to continue it, or "
            "choose another --output"
        )


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
    import sys

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
    import datetime

    info = {
        "stage": stage,
        "seed": conf.seed,
        "git_revision": revision,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "resumed": resume,
        "torch": torch.__version__,
    }
    save_run_config(run_dir, conf, {**info, **extra})
