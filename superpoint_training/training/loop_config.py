"""The training loop's settings (``train.*`` of every stage's YAML) and their check."""

from __future__ import annotations

from dataclasses import dataclass

from superpoint_ros.errors import ConfigError

LR_SCHEDULES = ("constant", "cosine", "step")  # implemented in optim.lr_factor
OPTIMIZERS = ("adam", "adamw")  # built by optim.make_optimizer

WORKER_STARTS = ("spawn", "forkserver", "fork")


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
