"""Train a stage of SuperPoint: ``superpoint train magicpoint [options] [key=value ...]``.

Stages: magicpoint (step 2, synthetic shapes), superpoint (step 4, when installed). Each stage
reads its YAML (``--config``, default ``config/train/<stage>.yaml``), then ``key=value``
overrides (dotted keys, YAML values: ``train.lr=5e-4 model.backbone=vgg_bn``), then the flags
below, which are shortcuts for config keys. ``superpoint train <stage> --help`` lists the
stage's own flags; ``--print-config`` shows the resolved config and exits.

Common flags: --output DIR, --steps N (train.steps), --batch-size B (train.batch_size),
--device auto|cpu|cuda|cuda:N (train.device), --resume, --overfit-batch (train.overfit_batch),
--eval-only [--weights W], --print-config.

Several processes (DDP, one per GPU, or several on the CPU; --batch-size stays the global
batch): ``superpoint train <stage> --nproc N ...`` starts them itself, or
``torchrun --nproc_per_node N .venv/bin/superpoint train <stage> ...`` (then leave --nproc out).
--sync-bn (train.sync_batchnorm), --dist-timeout-min M.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from superpoint_ros.errors import ConfigError
from superpoint_training.config import load_config, parse_override, to_dict
from superpoint_training.training import distributed
from superpoint_training.training.checkpoints import LAST_CHECKPOINT, find_resume_checkpoint
from superpoint_training.training.distributed import env_info
from superpoint_training.training.runs import completion_message
from superpoint_training.training.stages import get_stage

COMMAND = "train"
COMMON_FLAGS = {  # flag dest -> config key
    "steps": "train.steps",
    "batch_size": "train.batch_size",
    "device": "train.device",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", help="training stage: magicpoint | superpoint")
    parser.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        help="the stage's options and key=value overrides (see: superpoint train STAGE --help)",
    )


def stage_parser(stage) -> argparse.ArgumentParser:
    """The parser of ``superpoint train <stage> ...`` (common flags + the stage's own)."""
    p = argparse.ArgumentParser(
        prog=f"superpoint train {stage.name}",
        description=stage.description or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Overrides: dotted config keys with YAML values, e.g. train.lr=5e-4 "
        "'model.backbone_args={channels: [32, 32, 64, 64]}'.",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument(
        "--config", type=Path, default=None,
        help=f"stage YAML (default: {stage.default_config}; with --resume: the config saved in "
        "the run's checkpoint; with --eval-only: <output>/config.yaml; a run's config.yaml "
        "works anywhere)",
    )  # fmt: skip
    p.add_argument(
        "--output", "-o", type=Path, default=None,
        help="run directory (default: runs/<stage>_<date-time>; required with --resume)",
    )  # fmt: skip
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (train.steps)")
    p.add_argument("--batch-size", type=int, default=None, help="batch (train.batch_size)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (train.device)")
    p.add_argument(
        "--resume", action="store_true",
        help="continue the run in --output from its newest checkpoint that loads, with the "
        "settings saved in it (--steps N extends a finished run)",
    )  # fmt: skip
    p.add_argument(
        "--overfit-batch", action="store_true",
        help="debug: train on one batch over and over (train.overfit_batch=true)",
    )  # fmt: skip
    p.add_argument(
        "--eval-only", action="store_true",
        help="evaluate --weights (default: <output>/checkpoint_last.pt) and write the report "
        "into <output>/eval instead of training",
    )  # fmt: skip
    p.add_argument("--weights", type=Path, default=None, help="weights for --eval-only")
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    p.add_argument(
        "--nproc", type=int, default=None, metavar="N",
        help="train with N processes on this machine (DDP: one per GPU, NCCL; or on the CPU, "
        "gloo); --batch-size stays the global batch. Under torchrun leave it out",
    )  # fmt: skip
    p.add_argument(
        "--sync-bn", action="store_true",
        help="DDP on CUDA: BatchNorm statistics over the global batch (train.sync_batchnorm)",
    )  # fmt: skip
    p.add_argument(
        "--dist-timeout-min", type=float, default=60.0, metavar="M",
        help="DDP: how long a process waits for the others (rank 0 validating, a checkpoint) "
        "before giving up (default 60)",
    )  # fmt: skip
    for flag, (key, help_text) in stage.flags.items():
        if flag in stage.repeatable:
            p.add_argument(
                flag, default=None, action="append", help=f"{help_text}; repeatable ({key})"
            )
        else:
            p.add_argument(flag, default=None, help=f"{help_text} ({key})")
    return p


def resolve_config(stage, opts: argparse.Namespace, base: dict | None = None):
    """Defaults <- YAML (or ``base``: a checkpoint's resolved config) <- key=value overrides
    <- flags."""

    path = opts.config
    if path is None and base is None and Path(stage.default_config).is_file():
        path = Path(stage.default_config)
    overrides: list = []
    for text in opts.overrides:
        if "=" not in text:
            raise ConfigError(
                f"unexpected argument {text!r}: overrides are key=value (e.g. train.steps=10)"
            )
        overrides.append(parse_override(text))
    for dest, key in COMMON_FLAGS.items():
        value = getattr(opts, dest)
        if value is not None:
            overrides.append((key, value))
    if opts.overfit_batch:
        overrides.append(("train.overfit_batch", True))
    if getattr(opts, "sync_bn", False):
        overrides.append(("train.sync_batchnorm", True))
    for flag, (key, _) in stage.flags.items():
        value = getattr(opts, flag.lstrip("-").replace("-", "_"))
        if isinstance(value, list):  # a repeatable flag: one value stays a plain string
            overrides.append((key, value[0] if len(value) == 1 else list(value)))
        elif value is not None:
            overrides.append(parse_override(f"{key}={value}"))
    return load_config(stage.config_cls, path, overrides, base=base)


def run(args: argparse.Namespace) -> int:

    stage = get_stage(args.stage)
    opts = stage_parser(stage).parse_intermixed_args(args.args)
    if getattr(args, "quiet", False):  # the common --quiet: no progress bar
        opts.overrides.append("train.progress=false")
    if opts.resume and opts.output is None:
        raise ConfigError("--resume needs --output RUN_DIR (the run to continue)")
    outer = env_info()
    is_main = outer is None or outer.is_main
    base = None
    resumed_step = None
    if opts.resume and not opts.eval_only:
        # the run's settings come from its checkpoint itself (config.yaml is a copy for people
        # to read; --config still wins when given, and is checked against the checkpoint)
        point = find_resume_checkpoint(opts.output)
        resumed_step = point.step
        if opts.config is None:
            base = point.checkpoint["config"]
    elif opts.config is None and opts.output is not None and opts.eval_only:
        run_config = opts.output / "config.yaml"  # the run's own config, if it has one
        if run_config.is_file():
            opts.config = run_config
    conf = resolve_config(stage, opts, base)
    if (opts.print_config or opts.eval_only) and not is_main:
        return 0  # under torchrun: rank 0 does it once
    if opts.print_config:
        import yaml

        print(yaml.safe_dump(to_dict(conf), sort_keys=False), end="")
        return 0
    if opts.eval_only:
        if stage.evaluate is None:
            raise ConfigError(f"stage {stage.name!r} has no --eval-only evaluation")
        if opts.output is None and opts.weights is None:
            raise ConfigError("--eval-only needs --output RUN_DIR or --weights FILE")
        weights = opts.weights or opts.output / LAST_CHECKPOINT
        out_dir = (opts.output or weights.parent) / "eval"
        device = getattr(getattr(conf, "train", None), "device", "auto")
        print(stage.evaluate(weights, conf, out_dir, device))
        return 0
    if resumed_step is not None and resumed_step >= conf.train.steps:
        if is_main:
            print(completion_message(stage.name, opts.output, resumed_step, conf))
        return 0
    output = opts.output
    if output is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        output = Path("runs") / f"{stage.name}_{stamp}"
    last = launch_stage(stage.name, conf, output, opts.resume, opts.nproc, opts.dist_timeout_min)
    if last is not None:
        print(f"checkpoint: {last}")
    return 0


def launch_stage(
    stage_name: str,
    conf,
    output: Path,
    resume: bool,
    nproc: int | None = None,
    timeout_min: float = 60.0,
) -> Path | None:
    """Run the stage in this process, under torchrun (``WORLD_SIZE`` set: join the process
    group), or in ``nproc`` processes spawned here. Returns the last checkpoint (``None`` on
    ranks other than 0 under torchrun, which print nothing)."""

    world = distributed.torchrun_world(nproc)
    if nproc is not None:
        world = nproc
    distributed.check_launch(conf.train.batch_size, world, conf.train.device, local=nproc)
    if nproc is not None and nproc > 1:
        args = (stage_name, conf, output, resume)
        return distributed.launch(
            _train_process, args, nproc, conf.train.device, timeout_min=timeout_min
        )
    if world > 1:  # torchrun
        with distributed.process_group(conf.train.device, timeout_min) as info:
            output = distributed.broadcast(output)  # rank 0's default name (time stamp)
            last = _train_process(stage_name, conf, output, resume)
        return last if info.is_main else None
    return _train_process(stage_name, conf, output, resume)


def _train_process(stage_name: str, conf, output: Path, resume: bool) -> Path:
    """One process's training (module level: ``--nproc`` pickles it into each process)."""

    return get_stage(stage_name).run(conf, output, resume=resume)
