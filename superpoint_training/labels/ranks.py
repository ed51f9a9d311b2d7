"""Starting the label export in one process or several (``export-labels --nproc N``, torchrun).

``run_export(conf, weights, images, output, preview, nproc, timeout_min)`` picks how, the way
``superpoint train`` does (``training.distributed``):

* ``WORLD_SIZE`` > 1 in the environment (torchrun, also over several machines with
  ``--nnodes``): this process joins the group (``env://``) and runs its rank;
* ``nproc`` > 1: ``nproc`` processes are spawned on this machine (``distributed.launch``);
* otherwise: one process, no group.

The process group uses NCCL when the ranks run on CUDA and gloo on the CPU (as training, so
the detector retraining between ``rounds`` runs under DDP in the same group); it carries rank
0's shard plan, the ranks' counts and the wait for the merge, never labels
(``labels.shards``). Every rank must see the same image sources (the same names) and the
output's folder: the parts are written beside the output, and rank 0 reads them all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from superpoint_ros.errors import ConfigError

from ..training import distributed
from ..training.label_rounds import export_labels, retrain_config
from .label_export import ExportConfig, check_config

DEFAULT_TIMEOUT_MIN = 60.0  # the fastest rank waits this long for the slowest at the merge


def check_ranks(conf: ExportConfig, world_size: int, local: int | None = None) -> None:
    """Refuse, before any process starts, what cannot run with ``world_size`` ranks (``local``
    of them spawned on this machine by ``--nproc``)."""
    if world_size < 1:
        raise ConfigError(f"--nproc must be >= 1, got {world_size}")
    if world_size == 1:
        return
    if conf.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(
            f"device={conf.device} pins one GPU, but each of the {world_size} export ranks uses "
            "cuda:LOCAL_RANK: use --device cuda (or auto); choose GPUs with CUDA_VISIBLE_DEVICES"
        )
    cuda = distributed.wants_cuda(conf.device)
    if conf.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but torch sees no CUDA device here")
    if local is not None and cuda and local > torch.cuda.device_count():
        raise ConfigError(
            f"--nproc {local} on CUDA needs {local} GPUs (one per rank); this machine has "
            f"{torch.cuda.device_count()}"
        )
    if conf.rounds.num_rounds > 1:  # the retraining between rounds runs under DDP
        tconf = retrain_config(conf, "weights.pt", ".", "labels.h5")
        distributed.check_batch(tconf.train.batch_size, world_size)


def run_export(
    conf: ExportConfig,
    weights: str | os.PathLike,
    images: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    preview: str | os.PathLike | None = None,
    nproc: int | None = None,
    timeout_min: float = DEFAULT_TIMEOUT_MIN,
) -> dict[str, Any] | None:
    """Export in this process, as a torchrun rank, or in ``nproc`` spawned processes (module
    doc); returns the summary (``None`` on torchrun ranks other than 0, which print nothing)."""
    check_config(conf)
    world = distributed.torchrun_world(nproc)
    args = (conf, Path(weights), images, Path(output), preview)
    if nproc is not None:
        check_ranks(conf, nproc, local=nproc)
        if nproc > 1:
            return distributed.launch(
                _export_process, args, nproc, conf.device, timeout_min=timeout_min
            )
    if world > 1:
        check_ranks(conf, world)
        with distributed.process_group(conf.device, timeout_min) as info:
            summary = _export_process(*args)
        return summary if info.is_main else None
    return _export_process(*args)


def _export_process(conf, weights, images, output, preview) -> dict[str, Any]:
    """One rank's export (module level: ``--nproc`` pickles it into each process)."""
    return export_labels(conf, weights, images, output, preview)
