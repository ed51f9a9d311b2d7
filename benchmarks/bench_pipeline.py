"""Throughput of every stage of the four-step pipeline on one device, and what the whole
pipeline would take at the paper's settings on it (a projection from these rates, not a run).

    .venv/bin/python benchmarks/bench_pipeline.py [--device auto|cpu|cuda] [--quick]
        [--precision fp32|bf16|fp16] [--json FILE]

Stages, each on one batch prepared beforehand (data loading is measured apart, in stage 1):

1. synthetic shapes: rendered + augmented 120x160 images/s in this process (one CPU core; the
   DataLoader workers of a training run render in parallel, so the projection says how many
   workers step 2 needs);
2. MagicPoint: training steps/s (stage step + backward + Adam) at the paper's batch 32, 120x160;
3. homographic adaptation: images/s at N = 100 homographies, 240x320, the batched path (all N
   warps in one forward on a GPU, ``warp_batch`` auto) vs one homography at a time (OpenCV warps
   and one network call per warp, as public tools do);
4. SuperPoint: training steps/s at batch 32 pairs, 240x320, the paper's dense descriptor loss.

Projection at the paper's settings (``config/train/magicpoint.yaml``, ``export_labels.yaml``,
``superpoint.yaml``): MagicPoint 200,000 steps, COCO train2014 (82,783 images) x 100
homographies once, SuperPoint 200,000 steps; printed next to figures others reported (one RTX
2070 Super: 7 h MagicPoint, 24 h SuperPoint; a TF reproduction's export: 28-50 h on one GPU).

``--quick`` (the default without a GPU, where the paper's sizes take minutes a step): batch 2
instead of 32 and 4 homographies instead of 100, 1 timed repetition; the projection then scales
linearly per image and per warp, which it says. The networks' weights are random (speed does
not depend on them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_training beside this file

from bench_training import pairs_batch, shapes_batch, stage_step  # noqa: E402

from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet  # noqa: E402
from superpoint_training.data.augment import AugmentConfig  # noqa: E402
from superpoint_training.data.synthetic.config import SyntheticShapesConfig
from superpoint_training.data.synthetic.dataset import SyntheticShapesDataset
from superpoint_training.geometry.homographies import coco_homography_config  # noqa: E402
from superpoint_training.labels.homographic_adaptation import (  # noqa: E402
    homographic_adaptation,
    homographic_adaptation_reference,
    resolve_warp_batch,
    sample_adaptation_homographies,
    select_points,
)
from superpoint_training.training.loop import StepContext  # noqa: E402

PAPER = {
    "magicpoint_steps": 200_000,
    "magicpoint_batch": 32,
    "magicpoint_size": (120, 160),
    "coco_images": 82_783,
    "homographies": 100,
    "label_size": (240, 320),
    "superpoint_steps": 200_000,
    "superpoint_batch": 32,
}
REPORTED_H = {"magicpoint": 7.0, "superpoint": 24.0}  # one RTX 2070 Super (a team's report)
REPORTED_EXPORT_H = (28.0, 50.0)  # a public TF reproduction's COCO export on one GPU


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_time(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def synthetic_rate(images: int) -> float:
    """Rendered + augmented 120x160 images/s in this process."""
    ds = SyntheticShapesDataset(
        SyntheticShapesConfig(image_size=PAPER["magicpoint_size"]), split="train", seed=0,
        length=images + 1, augment=AugmentConfig(),
    )  # fmt: skip
    ds[0]
    t0 = time.perf_counter()
    for i in range(1, images + 1):
        ds[i]
    return images / (time.perf_counter() - t0)


def train_step_time(stage, batch_size, size, device, precision, repeats) -> float:
    """Median seconds of one training step of ``stage`` (paper network) at ``batch_size``."""
    torch.manual_seed(0)
    model = SuperPointNet(ModelConfig(descriptor_dim=0 if stage == "magicpoint" else 256))
    model = model.to(device)
    make = shapes_batch if stage == "magicpoint" else pairs_batch
    batch = {k: v.to(device) for k, v in make(batch_size, size).items()}
    step_fn = stage_step(stage, "dense")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    ctx = StepContext(0, device, gen, np.random.default_rng(0), None, precision=precision)

    def step():
        loss, _ = step_fn(model, batch, ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return median_time(step, device, repeats, warmup=2)


def adaptation_times(num, device, precision, repeats) -> tuple[float, float]:
    """Median seconds per 240x320 image at ``num`` homographies: batched, one at a time."""
    from superpoint_training.precision import autocast

    torch.manual_seed(0)
    model = SuperPointNet(ModelConfig(descriptor_dim=0)).to(device).eval()
    h, w = PAPER["label_size"]
    rng = np.random.default_rng(0)
    image = rng.random((h, w), dtype=np.float32)
    H = sample_adaptation_homographies(rng, num, (h, w), coco_homography_config())
    img_t = torch.from_numpy(image)[None, None].to(device)
    H_t = torch.from_numpy(H)[None]
    wb = resolve_warp_batch(0, num, device)

    def batched():
        with autocast(precision, device):
            prob = homographic_adaptation(model, img_t, H_t, 3, wb)["prob"]
        select_points(prob)

    def one_at_a_time():  # fp32 always, as public tools run it (and numpy has no bf16)
        homographic_adaptation_reference(model, image, H, 3, device)

    return median_time(batched, device, repeats), median_time(one_at_a_time, device, repeats)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", default="fp32", help="fp32 | bf16 | fp16 (CUDA)")
    p.add_argument("--quick", action="store_true", help="small batches (default on a CPU)")
    p.add_argument(
        "--smoke", action="store_true",
        help="tests only: batch 1, 2 homographies, SuperPoint at 120x160 (figures meaningless)",
    )  # fmt: skip
    p.add_argument("--repeats", type=int, default=0, help="timed repetitions (0: 10 / quick 1)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    name = args.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    quick = args.quick or args.smoke or device.type != "cuda"
    repeats = args.repeats or (1 if quick else 10)
    batch = 1 if args.smoke else 2 if quick else PAPER["superpoint_batch"]
    num = 2 if args.smoke else 4 if quick else PAPER["homographies"]
    sp_size = PAPER["magicpoint_size"] if args.smoke else PAPER["label_size"]
    what = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    mode = "paper sizes"
    if quick:
        mode = f"QUICK: batch {batch}, {num} homographies, linear extrapolation"
    if args.smoke:
        mode = "SMOKE (a test of this script): SuperPoint at 120x160, figures meaningless"
    print(
        f"device: {device} ({what}); torch {torch.__version__}, {torch.get_num_threads()} CPU "
        f"threads; precision {args.precision}; {mode}"
    )
    if device.type != "cuda":
        print("NO GPU: these are CPU figures (the CPU fallback), not a GPU measurement")

    t0 = time.perf_counter()
    synth = synthetic_rate(2 if args.smoke else 8 if quick else 64)
    mp_s = train_step_time(
        "magicpoint", batch, PAPER["magicpoint_size"], device, args.precision, repeats
    )
    ha_batched, ha_single = adaptation_times(num, device, args.precision, repeats)
    sp_s = train_step_time("superpoint", batch, sp_size, device, args.precision, repeats)
    scale_batch = PAPER["superpoint_batch"] / batch  # 1 at the paper's sizes
    scale_warps = PAPER["homographies"] / num
    mp_step = mp_s * scale_batch
    sp_step = sp_s * scale_batch
    ha_image = ha_batched * scale_warps
    ha_image_single = ha_single * scale_warps
    figures = {
        "device": str(device),
        "device_name": what,
        "precision": args.precision,
        "quick": quick,
        "smoke": args.smoke,
        "measured": {
            "synthetic_images_per_s_one_core": synth,
            "magicpoint_step_s": mp_s,
            "magicpoint_batch": batch,
            "adaptation_image_s_batched": ha_batched,
            "adaptation_image_s_one_at_a_time": ha_single,
            "adaptation_homographies": num,
            "superpoint_step_s": sp_s,
            "superpoint_batch": batch,
        },
        "projection_s": {
            "magicpoint": mp_step * PAPER["magicpoint_steps"],
            "export": ha_image * PAPER["coco_images"],
            "export_one_at_a_time": ha_image_single * PAPER["coco_images"],
            "superpoint": sp_step * PAPER["superpoint_steps"],
        },
    }
    proj = figures["projection_s"]
    total = proj["magicpoint"] + proj["export"] + proj["superpoint"]
    figures["projection_s"]["total"] = total
    mp_img_s = PAPER["magicpoint_batch"] / mp_step
    workers = mp_img_s / synth

    print(f"\nmeasured on {device} ({repeats} timed repetition(s), medians)")
    print("| stage | setting | figure |")
    print("|---|---|---|")
    print(f"| 1 synthetic shapes | 120x160, augmented, one CPU core | {synth:.0f} images/s |")
    print(f"| 2 MagicPoint step | batch {batch}, 120x160 | {mp_s * 1000:.0f} ms, "
          f"{1 / mp_s:.2f} steps/s |")  # fmt: skip
    print(f"| 3 adaptation, batched | N={num}, 240x320 | {ha_batched:.3f} s/image, "
          f"{1 / ha_batched:.2f} images/s |")  # fmt: skip
    print(
        f"| 3 adaptation, one at a time | N={num}, 240x320 | {ha_single:.3f} s/image, "
        f"{1 / ha_single:.2f} images/s ({ha_single / ha_batched:.1f}x the batched time) |"
    )
    print(f"| 4 SuperPoint step | batch {batch} pairs, {sp_size[0]}x{sp_size[1]}, dense loss | "
          f"{sp_s * 1000:.0f} ms, {1 / sp_s:.2f} steps/s |")  # fmt: skip

    how = "linear extrapolation from the quick sizes, " if quick else ""
    print(f"\nPROJECTION, one {device.type.upper()} ({what}), paper settings ({how}"
          "a projection from the rates above, not a run):")  # fmt: skip
    print("| step | paper setting | projected | reported elsewhere |")
    print("|---|---|---|---|")
    print(f"| 1+2 MagicPoint | 200k steps x batch 32, 120x160 | {hours(proj['magicpoint'])} "
          f"({mp_step:.3f} s/step; needs ~{workers:.1f} rendering workers) | "
          f"{REPORTED_H['magicpoint']:.0f} h (RTX 2070 Super) |")  # fmt: skip
    print(f"| 3 export | 82,783 COCO images x 100 homographies, batched | "
          f"{hours(proj['export'])} ({1 / ha_image:.2f} images/s); one at a time: "
          f"{hours(proj['export_one_at_a_time'])} | {REPORTED_EXPORT_H[0]:.0f}-"
          f"{REPORTED_EXPORT_H[1]:.0f} h (TF reproduction, one GPU) |")  # fmt: skip
    print(
        f"| 4 SuperPoint | 200k steps x batch 32 pairs, 240x320 | {hours(proj['superpoint'])} "
        f"({sp_step:.3f} s/step) | {REPORTED_H['superpoint']:.0f} h (RTX 2070 Super) |"
    )
    print(
        f"| all four | | **{hours(total)}** | "
        f"{sum(REPORTED_H.values()) + REPORTED_EXPORT_H[0]:.0f}-"
        f"{sum(REPORTED_H.values()) + REPORTED_EXPORT_H[1]:.0f} h |"
    )
    print(f"\nbenchmark time: {time.perf_counter() - t0:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
        print(f"figures: {args.json}")


if __name__ == "__main__":
    main()
