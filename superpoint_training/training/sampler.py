"""The data order of a run: the batch of step ``s`` is a pure function of ``(seed, s)``, so a
resumed run sees the batches an uninterrupted one would."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from superpoint_ros.errors import ConfigError


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
