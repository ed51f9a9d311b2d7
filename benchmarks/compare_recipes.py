"""Step-4 recipes compared under equal wall-clock budgets, each scored the same way.

Every recipe below is a set of ``key=value`` overrides of ``config/train/superpoint_cpu.yaml``.
Each is trained by the real command (``superpoint train superpoint ... train.time_limit_min=M``)
from the same initial weights on the same images and labels, then scored by

* the training stage's own validation on its held-out pairs (detector mAP against the warped
  pseudo labels, matching accuracy, homography accuracy), read from the run's
  ``metrics.jsonl``;
* ``superpoint evaluate`` (the pinned protocol) on ``--dataset`` folders, all recipes and SIFT
  and ORB in one run.

The table (Markdown) goes to stdout and ``OUT/table.md``; runs sit in ``OUT/runs/<recipe>``,
the evaluation report in ``OUT/evaluate``. A recipe whose run already finished is not trained
again (delete its folder to redo it). Usage (how docs/training_superpoint.md's table was made)::

    nice -n -5 .venv/bin/python benchmarks/compare_recipes.py \\
        --images PHOTOS_DIR [--images ...] --labels labels.h5 \\
        --init-weights superpoint_ros/weights/superpoint_demo.pt --minutes 8 \\
        --dataset ../shared/data/hpatches --dataset ../shared/data/oxford_affine \\
        -o runs/recipes [--only infonce_crop,dense_full]

Wall time is what the run gets, so the machine must be otherwise idle for a fair comparison:
the script prints the load average before and after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPU_CONFIG = REPO / "config" / "train" / "superpoint_cpu.yaml"

# name -> (what it changes, overrides of superpoint_cpu.yaml). One factor at a time from
# `infonce_crop`: the loss, the input (whole 240x320 images vs 120x160 crops at the same pixels
# per step), the batch, the encoder width.
RECIPES: dict[str, tuple[str, list[str]]] = {
    "dense_full": (
        "dense_normalized loss, whole 240x320 images, batch 2 (the old demo recipe)",
        ["loss.descriptor=dense_normalized", "train.batch_size=2", "data.crop_size=[0, 0]"],
    ),
    "infonce_full": (
        "InfoNCE, whole 240x320 images, batch 2",
        ["loss.descriptor=infonce", "train.batch_size=2", "data.crop_size=[0, 0]"],
    ),
    "infonce_crop": (
        "InfoNCE, 120x160 crops, batch 8 (same pixels per step as batch 2 at 240x320)",
        ["loss.descriptor=infonce", "train.batch_size=8", "data.crop_size=[120, 160]"],
    ),
    "dense_crop": (
        "dense_normalized loss, 120x160 crops, batch 8",
        ["loss.descriptor=dense_normalized", "train.batch_size=8", "data.crop_size=[120, 160]"],
    ),
    "triplet_crop": (
        "triplet (hardest in batch), 120x160 crops, batch 8",
        ["loss.descriptor=triplet", "train.batch_size=8", "data.crop_size=[120, 160]"],
    ),
    "infonce_crop_b16": (
        "InfoNCE, 120x160 crops, batch 16",
        ["loss.descriptor=infonce", "train.batch_size=16", "data.crop_size=[120, 160]"],
    ),
    "infonce_crop_wide": (
        "InfoNCE, 120x160 crops, batch 8, encoder 48-48-96-96, heads 192 (from scratch: no "
        "tensor of the initial weights fits)",
        [
            "loss.descriptor=infonce",
            "train.batch_size=8",
            "data.crop_size=[120, 160]",
            "model.backbone_args={channels: [48, 48, 96, 96]}",
            "model.head_channels=192",
        ],
    ),  # fmt: skip
}


def load_avg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def train(args, name: str, overrides: list[str], run_dir: Path) -> float:
    """Train one recipe for ``--minutes``; returns the wall seconds (0 if already done)."""
    if (run_dir / "checkpoint_last.pt").is_file():
        print(f"[{name}] already trained: {run_dir}")
        return 0.0
    cmd = [
        str(Path(sys.executable).parent / "superpoint"), "train", "superpoint",
        "--config", str(CPU_CONFIG), "--labels", str(args.labels), "--output", str(run_dir),
        "--steps", "1000000",
        f"train.time_limit_min={args.minutes}", "train.val_every=0", "train.progress=false",
        f"train.precision={args.precision}", *overrides, *args.set,
    ]  # fmt: skip
    for src in args.images:
        cmd += ["--images", str(src)]
    if not any(o.startswith("model.backbone_args") for o in overrides):  # weights that fit
        cmd += ["--init-weights", str(args.init_weights)]
    print(f"[{name}] load before: {load_avg()}", flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    wall = time.time() - t0
    print(f"[{name}] {wall:.0f} s, load after: {load_avg()}", flush=True)
    return wall


def run_summary(run_dir: Path) -> dict:
    """Steps, pairs seen and the final validation of a run (its metrics.jsonl)."""
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r.get("split") == "train"]
    val = [r for r in records if r.get("split") == "val"]
    config = (run_dir / "config.yaml").read_text()
    batch = int(next(line.split(":")[1] for line in config.splitlines()
                     if line.strip().startswith("batch_size:")))  # fmt: skip
    step = max(r["step"] for r in records)
    return {"steps": step, "pairs": step * batch, "val": val[-1] if val else {},
            "loss": train[-1].get("loss") if train else None}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", action="append", required=True, help="as for train superpoint")
    p.add_argument("--labels", required=True, type=Path)
    p.add_argument("--init-weights", required=True, type=Path)
    p.add_argument("--minutes", type=float, default=15.0, help="training budget per recipe")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--dataset", action="append", default=[], help="evaluation sequences")
    p.add_argument("--only", default="", help="comma list of recipes (default: all)")
    p.add_argument("--set", action="append", default=[], help="extra key=value for every run")
    p.add_argument("-o", "--output", required=True, type=Path)
    args = p.parse_args()
    names = [n for n in args.only.split(",") if n] or list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        sys.exit(f"unknown recipes {unknown}; known: {', '.join(RECIPES)}")
    args.output.mkdir(parents=True, exist_ok=True)
    walls = {}
    for name in names:
        walls[name] = train(args, name, RECIPES[name][1], args.output / "runs" / name)
    models = args.output / "models"
    models.mkdir(exist_ok=True)
    for name in names:  # evaluate names methods after the file: one file per recipe
        shutil.copyfile(args.output / "runs" / name / "checkpoint_last.pt", models / f"{name}.pt")
    methods = {}
    if args.dataset:
        cmd = [str(Path(sys.executable).parent / "superpoint"), "evaluate",
               "-o", str(args.output / "evaluate")]  # fmt: skip
        for d in args.dataset:
            cmd += ["--dataset", d]
        for m in [*(str(models / f"{n}.pt") for n in names), "sift", "orb"]:
            cmd += ["--method", m]
        subprocess.run(cmd, check=True)
        report = json.loads((args.output / "evaluate" / "metrics.json").read_text())
        methods = report["methods"]
    lines = [
        f"Budget {args.minutes:g} min of training per recipe ({args.precision}), same images, "
        f"labels and initial weights ({args.init_weights.name}).",
        "",
        "| recipe | what | steps | pairs | val mAP | val match acc | val H@3 | eps=1 | eps=3 "
        "| eps=5 | Rep. | MLE | NN mAP | M.Score |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v, digits=3):
        return "-" if v is None else f"{v:.{digits}f}"

    for name in [*names, "SIFT", "ORB"]:
        m = methods.get(name, {})
        ha = m.get("homography_accuracy", {})
        if name in RECIPES:
            s = run_summary(args.output / "runs" / name)
            v = s["val"]
            head = (f"| {name} | {RECIPES[name][0]} | {s['steps']} | {s['pairs']} | "
                    f"{f(v.get('detector_mAP'))} | {f(v.get('val_matching_accuracy'))} | "
                    f"{f(v.get('val_homography_acc_3'))} |")  # fmt: skip
        elif m:
            head = f"| {name} | OpenCV baseline | - | - | - | - | - |"
        else:
            continue
        ek = sorted(ha)
        accs = " | ".join(f(ha[k]) for k in ek) if ek else "- | - | -"
        lines.append(
            f"{head} {accs} | {f(m.get('repeatability'))} | {f(m.get('mle'))} | "
            f"{f(m.get('nn_map'))} | {f(m.get('matching_score'))} |"
        )
    table = "\n".join(lines)
    print(table)
    (args.output / "table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
