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
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from superpoint_ros.devices import resolve_device
from superpoint_ros.errors import ConfigError
from superpoint_ros.model.weights import checkpoint_dict, save_checkpoint

from ..precision import autocast as precision_autocast
from ..precision import check_precision, grad_scaler
from . import distributed as dist_util
from .checkpoints import (
    LAST_CHECKPOINT,
    STEP_CHECKPOINT,
    find_resume_checkpoint,
    link_or_copy,
    load_training_checkpoint,
    refuse_existing_run,
    step_checkpoints,
)
from .loop_config import TrainerConfig, check_trainer_config
from .optim import lr_factor, make_optimizer
from .rng_state import rng_state, set_rng_state
from .sampler import StepBatchSampler
from .signals import StopRequests, WorkerInit, stop_signals_blocked

_NOT_AVERAGED = ("images_per_s", "lr")  # DDP: rank 0's values are logged as they are


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
        link_or_copy(path, self.run_dir / LAST_CHECKPOINT)
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
            worker_init_fn=WorkerInit(self.worker_init_fn),
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
        stop = StopRequests(dist_util.SIGNAL_ECHO_S if self.distributed else 0.0).__enter__()
        try:
            spawns = self.conf.num_workers > 0 and self.conf.worker_start != "fork"
            with stop_signals_blocked(spawns):  # workers are born ignoring a group's stop signals
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
