"""Multi-process data-parallel training (``torch.distributed``, DDP) for the trainer.

Two ways to start ``N`` processes, one per device, that train one model together:

* ``torchrun --nproc_per_node N .venv/bin/superpoint train <stage> ...``: torchrun starts the
  processes and sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``;
  ``process_group()`` reads them (``env://``). Also across machines (``--nnodes``).
* ``superpoint train <stage> --nproc N ...``: ``launch()`` spawns the ``N`` processes itself
  (``torch.multiprocessing``, ``spawn``) on this machine, with the same environment variables
  and a free local port, so both ways run the same code.

Every process runs the stage; ``Trainer`` sees the process group (``current()``) and then puts
process ``rank`` on ``cuda:LOCAL_RANK`` (or the CPU), wraps the model in
``DistributedDataParallel`` (``wrap_model``; ``train.sync_batchnorm`` converts BatchNorm to
``SyncBatchNorm`` first, CUDA only), gives it every ``world_size``-th sample of each global batch
(``StepBatchSampler``), averages the logged scalars over the processes (``mean_across``) and
lets only rank 0 write checkpoints, TensorBoard, ``metrics.jsonl`` and the bar. Backends: NCCL
on CUDA, gloo on the CPU. A world size of 1 is the plain single-process trainer (no process
group), bit-identical to a run without any of this.

Errors the user can cause (batch not divisible by the world size, more processes than GPUs, a
CUDA device named under DDP, ``--nproc`` under torchrun) are ``ConfigError``s raised before any
process starts where possible; an error raised in a spawned process reaches the parent as one
line. ``process_group()`` destroys the group on the way out, also after an error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from superpoint_ros.errors import ConfigError, SuperPointError

DEFAULT_TIMEOUT_MIN = 60.0  # collectives wait this long (rank 0 validates while others wait)
SIGNAL_ECHO_S = 2.0  # a second stop signal this soon after the first is the launcher's echo
EXIT_INTERRUPTED = 130  # exit status of a process stopped by Ctrl-C / SIGTERM (as the CLI's)
KILL_GRACE_S = 30.0  # after one process failed, the others get this long before SIGKILL
MESSAGE_CHARS = 4000  # reports travel through a pipe read after the processes end: keep small
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class WorkerFailed(SuperPointError):
    """A spawned training process failed; its traceback (if a bug) was printed above."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its
    machine (its GPU index)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


# ---------------------------------------------------------------------------------------------
# environment and checks


def env_info(environ: Mapping[str, str] | None = None) -> DistInfo | None:
    """The ``DistInfo`` torchrun (or ``launch``) put into the environment, or ``None`` when
    ``WORLD_SIZE`` is not set."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return None
    values = {}
    for key in ENV_KEYS:
        text = environ.get(key, "0")
        try:
            values[key] = int(text)
        except ValueError:
            raise ConfigError(f"environment variable {key}={text!r} is not an integer") from None
    info = DistInfo(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
    if info.world_size < 1 or not 0 <= info.rank < info.world_size or info.local_rank < 0:
        raise ConfigError(
            f"inconsistent torchrun environment: RANK={info.rank}, WORLD_SIZE={info.world_size},"
            f" LOCAL_RANK={info.local_rank}"
        )
    return info


def torchrun_world(nproc: int | None) -> int:
    """The number of processes torchrun started (1 without torchrun); ``ConfigError`` when
    ``--nproc`` is also given (torchrun already started the processes)."""
    outer = env_info()
    world = outer.world_size if outer is not None else 1
    if nproc is not None and world > 1:
        raise ConfigError(
            f"--nproc {nproc} under torchrun (WORLD_SIZE={world}): torchrun already started "
            "the processes; leave --nproc out"
        )
    return world


def current() -> DistInfo:
    """This process's place in the initialised default process group (rank 0 of 1 without
    one). ``local_rank`` comes from ``LOCAL_RANK`` (set by torchrun and ``launch``)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    rank, world = dist.get_rank(), dist.get_world_size()
    local = os.environ.get("LOCAL_RANK")
    return DistInfo(rank, world, int(local) if local is not None else rank)


def wants_cuda(device: str) -> bool:
    """Whether ``train.device`` puts the processes on CUDA devices (``auto``: when torch sees
    a GPU)."""
    if device == "auto":
        return torch.cuda.is_available()
    return device.startswith("cuda")


def backend_for(device: str) -> str:
    """NCCL for CUDA devices, gloo for the CPU."""
    return "nccl" if wants_cuda(device) else "gloo"


def check_launch(batch_size: int, world_size: int, device: str, local: int | None = None) -> None:
    """Refuse what cannot run with ``world_size`` processes, one line each: the global batch
    must split evenly, ``cuda:N`` pins one GPU, and on CUDA each of the ``local`` processes
    started on this machine (``--nproc``) needs its own GPU (under torchrun each process
    checks its ``LOCAL_RANK`` in ``rank_device``)."""
    if world_size < 1:
        raise ConfigError(f"--nproc must be >= 1, got {world_size}")
    if world_size == 1:
        return
    check_batch(batch_size, world_size)
    if device not in ("auto", "cpu", "cuda") and device.startswith("cuda:"):
        raise ConfigError(
            f"train.device={device} pins one GPU, but with {world_size} processes each uses "
            "cuda:LOCAL_RANK: use --device cuda (or auto); choose GPUs with CUDA_VISIBLE_DEVICES"
        )
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but torch sees no CUDA device here")
    if local is not None and wants_cuda(device) and local > torch.cuda.device_count():
        raise ConfigError(
            f"--nproc {local} on CUDA needs {local} GPUs (one per process); this machine has "
            f"{torch.cuda.device_count()}"
        )


def check_batch(batch_size: int, world_size: int) -> None:
    """The global batch must split into ``world_size`` equal slices."""
    if batch_size % world_size:
        raise ConfigError(
            f"train.batch_size {batch_size} is not divisible by the {world_size} processes: "
            f"each takes batch_size / world_size images per step (try --batch-size "
            f"{max(world_size, batch_size // world_size * world_size)})"
        )


def rank_device(device: str, local_rank: int) -> torch.device:
    """The device of the process with ``local_rank``: ``cuda:LOCAL_RANK`` for ``auto`` (with a
    GPU) and ``cuda``, else the CPU."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(
            f"train.device={device} pins one GPU; under DDP each process uses cuda:LOCAL_RANK: "
            "use device cuda or auto (choose GPUs with CUDA_VISIBLE_DEVICES)"
        )
    if not wants_cuda(device):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but torch sees no CUDA device here")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigError(
            f"process with LOCAL_RANK {local_rank} needs cuda:{local_rank}, but this machine "
            f"has {count} CUDA device(s): start at most {count} processes per machine"
        )
    return torch.device("cuda", local_rank)


# ---------------------------------------------------------------------------------------------
# the process group


@contextlib.contextmanager
def process_group(
    device: str, timeout_min: float = DEFAULT_TIMEOUT_MIN, environ: Mapping[str, str] | None = None
) -> Iterator[DistInfo]:
    """Join the process group described by the environment (``env://``: ``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) with NCCL on CUDA or gloo
    on the CPU, and destroy it on the way out, whatever happens inside. A world size of 1 (or
    no ``WORLD_SIZE``) creates no group. ``timeout_min`` bounds every collective (rank 0
    validating while the others wait at a barrier must fit into it)."""
    import torch.distributed as dist

    info = env_info(environ) or DistInfo()
    if not info.enabled:
        yield info
        return
    if dist.is_initialized():
        raise ConfigError("a torch.distributed process group is already initialised here")
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(rank_device(device, info.local_rank))
    dist.init_process_group(
        backend,
        init_method="env://",
        world_size=info.world_size,
        rank=info.rank,
        timeout=datetime.timedelta(minutes=timeout_min),
    )
    try:
        yield info
    finally:
        shutdown()


def shutdown() -> None:
    """Destroy the default process group if there is one (idempotent).

    Objects that still hold the group (a ``DistributedDataParallel`` model in a reference cycle,
    e.g. a finished trainer) are collected first: otherwise the group and its gloo threads live
    on until the interpreter's teardown, where destroying them ends the process with SIGABRT
    ("terminate called without an active exception") after a successful run, about one launch
    in twenty here (``benchmarks/stress_launch_exit.py``)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# spawning the processes ourselves (--nproc)


def free_port() -> int:
    """A TCP port free on this machine right now (rank 0's store binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(
    fn: Callable[..., Any],
    args: Sequence[Any] = (),
    nproc: int = 2,
    device: str = "auto",
    timeout_min: float = DEFAULT_TIMEOUT_MIN,
) -> Any:
    """Run ``fn(*args)`` in ``nproc`` new processes that form one process group on this
    machine; returns rank 0's result. ``fn`` and ``args`` must be picklable (``fn`` a
    module-level function), the result small (a path, a few numbers: it goes through a pipe
    that is read once the processes ended). Each process gets ``RANK = LOCAL_RANK = r``,
    ``WORLD_SIZE = nproc``, a free ``MASTER_PORT`` on 127.0.0.1, the process group
    (``process_group``) and, when ``OMP_NUM_THREADS`` is not set, ``cpu_count // nproc`` torch
    threads.

    Signals: Ctrl-C reaches every process from the terminal; SIGINT/SIGTERM sent to this
    (parent) process are forwarded to them; each stops after its step in progress (the
    trainer checkpoints) and this raises ``KeyboardInterrupt``. Processes die with the parent
    (Linux: SIGTERM when it disappears). When one process fails, the others get SIGTERM and,
    ``KILL_GRACE_S`` later, SIGKILL; the failure is raised here as one line:
    ``SuperPointError`` (the message of a user error raised in the process) or
    ``WorkerFailed``."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    outer = env_info()
    if outer is not None and outer.enabled:
        raise ConfigError(
            "--nproc inside a torchrun launch (WORLD_SIZE is set): torchrun already started "
            "the processes; leave --nproc out"
        )
    threads = 0
    if "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // nproc)
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = free_port()
    procs = [
        ctx.Process(
            target=_worker,
            args=(rank, nproc, port, device, timeout_min, threads, fn, tuple(args), queue),
            name=f"superpoint-rank{rank}",
            daemon=False,  # a daemon may not start DataLoader workers
        )
        for rank in range(nproc)
    ]
    with _ForwardSignals(procs):
        for p in procs:
            p.start()
        failed = _wait(procs)
    reports: dict[int, tuple[str, Any]] = {}
    while not queue.empty():
        rank, status, payload = queue.get()
        reports[rank] = (status, payload)
    codes = {rank: p.exitcode for rank, p in enumerate(procs)}
    if all(c == 0 for c in codes.values()):
        return reports.get(0, ("ok", None))[1]
    errors = [(r, reports[r][1]) for r in sorted(reports) if reports[r][0] == "error"]
    if errors:
        messages = {m for _, m in errors}
        rank, message = errors[0]
        raise SuperPointError(message if len(messages) == 1 else f"rank {rank}: {message}")
    if all(c in (0, EXIT_INTERRUPTED) for c in codes.values()):
        raise KeyboardInterrupt
    order = sorted(reports, key=lambda r: (r != failed, r))  # the first to fail first
    crashes = [(r, reports[r][1]) for r in order if reports[r][0] == "crash"]
    if crashes:
        rank, message = crashes[0]
        raise WorkerFailed(f"training process rank {rank} failed: {message} (traceback above)")
    rank = failed if failed is not None else min(r for r, c in codes.items() if c != 0)
    code = codes[rank]
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
    raise WorkerFailed(f"training process rank {rank} {how} without a report")


def _wait(procs: list) -> int | None:
    """Wait for every process; after the first failure, stop the others (SIGTERM, then
    SIGKILL after ``KILL_GRACE_S``). Returns the rank that failed first, or ``None``."""
    from multiprocessing.connection import wait

    alive = dict(enumerate(procs))
    failed: int | None = None
    kill_at = float("inf")
    while alive:
        wait([p.sentinel for p in alive.values()], timeout=0.5)
        for rank, p in list(alive.items()):
            if p.exitcode is None:
                continue
            del alive[rank]
            if p.exitcode not in (0, EXIT_INTERRUPTED) and failed is None:
                failed = rank
                kill_at = time.monotonic() + KILL_GRACE_S
                for other in alive.values():
                    _signal(other, signal.SIGTERM)
        if time.monotonic() > kill_at:
            for p in alive.values():
                _signal(p, signal.SIGKILL)
            kill_at = float("inf")
    for p in procs:
        p.join()
    return failed


def _signal(proc, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, TypeError):
        os.kill(proc.pid, signum)


class _ForwardSignals:
    """In the parent of ``launch``: SIGINT/SIGTERM are passed on to the processes (which stop
    after their step; one from the terminal arrives twice, the echo is ignored) instead of
    interrupting the wait."""

    def __init__(self, procs: list):
        self.procs = procs
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _ForwardSignals:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._forward)
        return self

    def _forward(self, signum, frame) -> None:
        for p in self.procs:
            if p.pid is not None and p.exitcode is None:
                _signal(p, signum)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _die_with_parent() -> None:
    """Linux: get SIGTERM (stop after the step, checkpoint) when the launching process dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


def _worker(rank, world_size, port, device, timeout_min, threads, fn, args, queue) -> None:
    """Body of a process started by ``launch`` (module level: ``spawn`` pickles it)."""
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl: do not train orphaned
        sys.exit(EXIT_INTERRUPTED)
    env = {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_WORLD_SIZE": str(world_size),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    os.environ.update(env)
    if threads:
        torch.set_num_threads(threads)
    code = 0
    try:
        with process_group(device, timeout_min):
            result = fn(*args)
        queue.put((rank, "ok", result if rank == 0 else None))
    except SuperPointError as exc:
        queue.put((rank, "error", str(exc)[:MESSAGE_CHARS]))
        code = 1
    except KeyboardInterrupt:
        queue.put((rank, "interrupted", None))
        code = EXIT_INTERRUPTED
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, traceback printed
        traceback.print_exc()
        queue.put((rank, "crash", f"{type(exc).__name__}: {exc}"[:MESSAGE_CHARS]))
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


# ---------------------------------------------------------------------------------------------
# what the trainer does with the group


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with its BatchNorm layers turned into ``SyncBatchNorm`` (statistics over the
    global batch instead of each process's slice). torch implements it for CUDA only, so a
    model with BatchNorm on the CPU is refused; a model without BatchNorm is returned as is."""
    if not has_batchnorm(model):
        return model
    if device.type != "cuda":
        raise ConfigError(
            "train.sync_batchnorm needs CUDA devices (torch's SyncBatchNorm is GPU-only); on "
            "the CPU each process normalises its own slice: set train.sync_batchnorm=false"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_model(
    model: nn.Module, device: torch.device, sync_batchnorm: bool = False
) -> nn.parallel.DistributedDataParallel:
    """``DistributedDataParallel`` around ``model`` (already on ``device``): gradients are
    averaged over the processes during ``backward``; rank 0's weights and buffers are copied
    to all at construction, its buffers (BatchNorm statistics) before every forward."""
    if sync_batchnorm:
        model = convert_sync_batchnorm(model, device)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def any_across(flags: Sequence[bool], device: torch.device) -> list[bool]:
    """Element-wise OR of ``flags`` over all processes (so every process makes the same
    stop/checkpoint decision)."""
    import torch.distributed as dist

    t = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def mean_across(values: Mapping[str, float]) -> dict[str, float]:
    """The mean of each scalar over the processes that logged it (key order of this
    process's ``values``, then keys only others had)."""
    import torch.distributed as dist

    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, dict(values))
    keys = list(values) + sorted({k for g in gathered for k in g} - set(values))
    out = {}
    for k in keys:
        vals = [float(g[k]) for g in gathered if k in g]
        out[k] = sum(vals) / len(vals)
    return out


def gather_all(obj: Any) -> list[Any]:
    """``obj`` of every process, by rank (e.g. their random states for a checkpoint)."""
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process (e.g. a default run directory named by time)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(device: torch.device) -> None:
    import torch.distributed as dist

    if device.type == "cuda":
        dist.barrier(device_ids=[device.index])
    else:
        dist.barrier()
