"""Do two training runs follow the same loss curve? (e.g. the same recipe in fp32 and bf16)

Reads the ``train`` records of each run's ``metrics.jsonl`` (one every ``train.log_every``
steps, each the mean over its window) and prints, for every key both runs logged (``loss``,
``detector_loss0``, ``descriptor_loss``...), the mean and the largest relative difference over
the common steps, and the final values. Usage (how docs/training_superpoint.md's figure was
made)::

    for p in fp32 bf16; do
      .venv/bin/superpoint train superpoint --config config/train/superpoint_cpu.yaml \\
          --images IMAGES --labels labels.h5 --init-weights W --output runs/curve_$p \\
          --steps 200 --loss infonce train.precision=$p train.channels_last=false \\
          train.log_every=10 train.val_every=0
    done
    .venv/bin/python benchmarks/compare_loss_curves.py runs/curve_fp32 runs/curve_bf16
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def train_records(run: Path) -> dict[int, dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines) if r.get("split") == "train"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reference", type=Path)
    p.add_argument("other", type=Path)
    args = p.parse_args()
    a, b = train_records(args.reference), train_records(args.other)
    steps = sorted(set(a) & set(b))
    if not steps:
        raise SystemExit("the runs share no logged step")
    skip = {"images_per_s", "data_fraction", "lr", "time", "step", "split"}
    keys = [k for k in a[steps[0]] if k in b[steps[0]] and k not in skip]
    print(f"{args.reference.name} vs {args.other.name}: {len(steps)} common log points, "
          f"steps {steps[0]}..{steps[-1]}")  # fmt: skip
    print("| key | mean rel. diff | max rel. diff | final (ref) | final (other) |")
    print("|---|---|---|---|---|")
    for k in keys:
        x = np.array([a[s][k] for s in steps], np.float64)
        y = np.array([b[s][k] for s in steps], np.float64)
        rel = np.abs(y - x) / np.maximum(np.abs(x), 1e-12)
        print(f"| {k} | {rel.mean():.2%} | {rel.max():.2%} | {x[-1]:.4f} | {y[-1]:.4f} |")
    speed = [np.median([r["images_per_s"] for r in runs.values()]) for runs in (a, b)]
    print(f"median pairs/s: {speed[0]:.2f} vs {speed[1]:.2f} ({speed[1] / speed[0]:.2f}x)")


if __name__ == "__main__":
    main()
