"""Speed of the synthetic-shapes data pipeline: images/s through a torch DataLoader.

Measures what MagicPoint training consumes: ``SyntheticShapesDataset`` items (render, training
augmentation, keypoint map) batched by ``collate``, with 0 and 2 DataLoader workers, median over
a few runs; the first batch of each run (worker start-up) is not timed. Also prints the render
time of each primitive alone. Compare with ``benchmarks/bench_training.py`` (images/s a training
step consumes). Usage::

    .venv/bin/python benchmarks/bench_synth.py                   # 120x160, batch 32, workers 0,2
    .venv/bin/python benchmarks/bench_synth.py --workers 0 2 4 --batches 10 --runs 5
    .venv/bin/python benchmarks/bench_synth.py --no-augment      # clean renders only
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from superpoint_training.data.augment import AugmentConfig
from superpoint_training.data.synthetic.config import PRIMITIVES, SyntheticShapesConfig
from superpoint_training.data.synthetic.dataset import SyntheticShapesDataset, collate, worker_init
from superpoint_training.data.synthetic.primitives import render_sample


def loader_rate(ds, workers: int, batch_size: int, batches: int, run: int) -> float:
    """Images/s of one pass over ``batches`` batches, the first one (start-up) untimed."""
    ds.set_epoch(run)  # fresh images each run
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate,
        worker_init_fn=worker_init if workers else None,
        shuffle=False,
    )
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    n = 0
    for batch in it:
        n += len(batch["keypoints"])
    elapsed = time.perf_counter() - t0
    del it, loader
    return n / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=8, help="batches per run (first untimed)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--height", type=int, default=120)
    p.add_argument("--width", type=int, default=160)
    p.add_argument("--no-augment", action="store_true", help="clean renders, no augmentation")
    p.add_argument("--per-primitive", type=int, default=20, help="renders per primitive (0: skip)")
    args = p.parse_args()

    config = SyntheticShapesConfig(image_size=(args.height, args.width))
    augment = None if args.no_augment else AugmentConfig()
    print(
        f"synthetic shapes {args.height}x{args.width}, batch {args.batch_size}, "
        f"augmentation {'off' if augment is None else 'on (photometric + homographic)'}, "
        f"supersample {config.supersample}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )

    if args.per_primitive > 0:
        print("\nrender time per primitive (ms, median):")
        for name in PRIMITIVES:
            rng = np.random.default_rng(0)
            times, points = [], []
            for _ in range(args.per_primitive):
                t0 = time.perf_counter()
                sample = render_sample(rng, config, name)
                times.append((time.perf_counter() - t0) * 1e3)
                points.append(len(sample["keypoints"]))
            print(
                f"  {name:18s} {statistics.median(times):6.2f} ms"
                f"   {statistics.mean(points):5.1f} keypoints/image"
            )

    length = args.batch_size * args.batches
    ds = SyntheticShapesDataset(config, split="train", seed=0, length=length, augment=augment)
    print("\nDataLoader throughput (images/s):")
    for workers in args.workers:
        rates = [
            loader_rate(ds, workers, args.batch_size, args.batches, run)
            for run in range(args.runs)
        ]
        runs = ", ".join(f"{r:.0f}" for r in rates)
        print(f"  workers={workers}: median {statistics.median(rates):7.1f} images/s   ({runs})")


if __name__ == "__main__":
    main()
