"""The optimizer and the learning-rate schedule of the training loop (``train.optimizer``,
``train.lr*``): Adam or AdamW, a linear warm-up, then constant, cosine or step decay."""

from __future__ import annotations

import math

import torch

from superpoint_ros.errors import ConfigError

from .loop_config import LR_SCHEDULES, OPTIMIZERS, TrainerConfig


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
