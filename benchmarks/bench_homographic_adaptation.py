"""Throughput of homographic adaptation (training step 3): batched torch path vs one homography
at a time (OpenCV warps, one network call per warp, as public tools do), and the projected time
of a COCO train2014 export (82,783 images).

    .venv/bin/python benchmarks/bench_homographic_adaptation.py [--images 3] [--num 100]
        [--device cpu] [--model cpu|paper|both] [--warp-batch 100 25 10]

Both paths compute the same average (``test/test_homographic_adaptation.py`` checks they agree)
on the same images and homographies; the network's weights are random (speed does not depend
on them). The images are Kodak photos from ../shared/data when present, else random textures.
Figures: images/s (one image = ``--num`` warps through the detector, unwarping, averaging, NMS),
from the median time per image over ``--images`` x ``--rounds`` timings per path.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
from superpoint_training.data.images import prepare_image
from superpoint_training.labels.homographic_adaptation import (
    AdaptationConfig,
    homographic_adaptation,
    homographic_adaptation_reference,
    sample_adaptation_homographies,
    select_points,
)

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "kodak24"
COCO_TRAIN2014 = 82_783
MODELS = {
    # config/train/magicpoint_cpu.yaml's network
    "cpu": ModelConfig(
        backbone_args={"channels": [32, 32, 64, 64]}, head_channels=128, descriptor_dim=0
    ),  # fmt: skip
    # the paper's MagicPoint (config/train/magicpoint.yaml)
    "paper": ModelConfig(descriptor_dim=0),
}


def images(n: int, size=(240, 320)) -> list[np.ndarray]:
    files = sorted(KODAK.glob("*.png"))[:n] if KODAK.is_dir() else []
    out = [prepare_image(f, size, "crop") for f in files]
    rng = np.random.default_rng(0)
    while len(out) < n:
        out.append((rng.random(size) * 255).astype(np.uint8))
    return out


def bench(
    model_name: str, imgs, num: int, device: str, warp_batches, conf, rounds: int = 1
) -> list[dict]:
    """Time every path on every image ``rounds`` times, the paths interleaved in a random order
    image by image (other processes share this CPU: interleaving spreads their load over all
    paths alike); the median time per image is reported, wall and process CPU time."""
    torch.manual_seed(0)
    model = SuperPointNet(MODELS[model_name]).to(device).eval()
    size = imgs[0].shape
    homs = [
        sample_adaptation_homographies(np.random.default_rng(i), num, size, conf.homography)
        for i in range(len(imgs))
    ]

    def batched(img, H, wb):
        x = torch.from_numpy(img).float().div(255)[None, None].to(device)
        prob = homographic_adaptation(model, x, torch.from_numpy(H)[None], 3, wb)["prob"]
        select_points(prob, conf.nms_radius, conf.detection_threshold, conf.top_k, 4)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def reference(img, H):
        with torch.no_grad():
            ref = homographic_adaptation_reference(
                model, img.astype(np.float32) / 255, H, 3, device
            )
        select_points(torch.from_numpy(ref["prob"])[None], conf.nms_radius,
                      conf.detection_threshold, conf.top_k, 4)  # fmt: skip

    paths = {f"batched (warp_batch {wb})": (lambda i, H, wb=wb: batched(i, H, wb))
             for wb in warp_batches}  # fmt: skip
    paths["one homography at a time (OpenCV warps)"] = reference
    for fn in paths.values():  # warm-up (first calls allocate)
        fn(imgs[0], homs[0][:2])
    wall: dict[str, list[float]] = {k: [] for k in paths}
    cpu: dict[str, list[float]] = {k: [] for k in paths}
    order_rng = np.random.default_rng(0)
    for _ in range(rounds):
        for img, H in zip(imgs, homs):
            for k in order_rng.permutation(len(paths)):  # random order: no path always first
                name = list(paths)[k]
                t0, c0 = time.perf_counter(), time.process_time()
                paths[name](img, H)
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                print(f"  {model_name} {name}: {wall[name][-1]:.2f} s", flush=True)
    rows = []
    for k in paths:
        med = float(np.median(wall[k]))
        rows.append({"model": model_name, "path": k, "images_per_s": 1.0 / med,
                     "s_per_image": med, "cpu_s_per_image": float(np.median(cpu[k]))})  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=3, help="images timed per path")
    p.add_argument("--num", type=int, default=100, help="homographies per image")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", choices=["cpu", "paper", "both"], default="both")
    p.add_argument("--warp-batch", type=int, nargs="+", default=[100, 10, 4])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--rounds", type=int, default=2, help="times every image is timed per path")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    conf = AdaptationConfig(num_homographies=args.num)
    imgs = images(args.images)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}, N={args.num}, "
          f"{len(imgs)} images of {imgs[0].shape}")  # fmt: skip
    rows = []
    for name in ["cpu", "paper"] if args.model == "both" else [args.model]:
        rows += bench(name, imgs, args.num, args.device, args.warp_batch, conf, args.rounds)
    print("\n| model | path | images/s | s/image (wall) | CPU s/image | speed-up (wall) "
          "| COCO train2014 at this rate |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == name]
        ref = group[-1]["images_per_s"]
        for r in group:
            hours = COCO_TRAIN2014 / r["images_per_s"] / 3600
            print(f"| {name} | {r['path']} | {r['images_per_s']:.3f} | {r['s_per_image']:.2f} "
                  f"| {r['cpu_s_per_image']:.2f} | {r['images_per_s'] / ref:.2f}x "
                  f"| {hours:,.0f} h |")  # fmt: skip


if __name__ == "__main__":
    main()
