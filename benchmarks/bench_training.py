"""Speed of one training step of each stage, per precision and memory format, interleaved.

A step is the stage's own step function (``training.magicpoint`` / ``training.superpoint``
``make_step_fn``: forward under ``train.precision``'s autocast, losses in float32) + backward +
Adam update, on a batch prepared beforehand (the data pipelines are measured by their own
benchmarks). Every variant (precision x memory format) gets its own copy of the same initial
network; the variants take turns step by step, so a change of machine load hits them alike, and
the ratios against fp32 come from one run. Usage::

    .venv/bin/python benchmarks/bench_training.py                        # both stages, CPU
    .venv/bin/python benchmarks/bench_training.py --stage superpoint --batch-size 4 \\
        --size 240x320 --precisions fp32,bf16 --channels-last both --steps 8
    .venv/bin/python benchmarks/bench_training.py --device cuda --precisions fp32,bf16,fp16

``--channels`` / ``--head-channels`` size the VGG encoder (default: the paper's 64-64-128-128,
heads 256); ``--descriptor-loss`` picks the step-4 loss.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import numpy as np
import torch

from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
from superpoint_training.config import load_config
from superpoint_training.losses import get_loss
from superpoint_training.training.loop import StepContext
from superpoint_training.training.superpoint import SuperPointTrainConfig, make_step_fn


def shapes_batch(batch_size: int, size: tuple[int, int], seed: int = 0) -> dict:
    """A real batch of the synthetic-shapes dataset (MagicPoint's input)."""
    from superpoint_training.data.synthetic.config import SyntheticShapesConfig
    from superpoint_training.data.synthetic.dataset import SyntheticShapesDataset, collate

    ds = SyntheticShapesDataset(
        SyntheticShapesConfig(image_size=size), split="train", seed=seed, length=batch_size
    )
    batch = collate([ds[i] for i in range(batch_size)])
    return {k: v for k, v in batch.items() if torch.is_tensor(v)}


def pairs_batch(batch_size: int, size: tuple[int, int], seed: int = 0) -> dict:
    """A step-4 batch: textured images, their copies shifted by a few pixels (the homography),
    sparse labels; the arithmetic of a step does not depend on the content."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = torch.from_numpy(rng.random((batch_size, 1, h, w), dtype=np.float32))
    img1 = torch.roll(img, shifts=(3, 5), dims=(2, 3))
    H = torch.tensor([[1.0, 0.0, 5.0], [0.0, 1.0, 3.0], [0.0, 0.0, 1.0]]).expand(batch_size, 3, 3)
    kmap = torch.from_numpy((rng.random((batch_size, h, w)) > 0.997).astype(np.float32))
    return {
        "image0": img, "image1": img1, "keypoint_map0": kmap,
        "keypoint_map1": torch.roll(kmap, shifts=(3, 5), dims=(1, 2)),
        "valid0": torch.ones(batch_size, h, w), "valid1": torch.ones(batch_size, h, w),
        "H_0to1": H.contiguous(),
    }  # fmt: skip


def stage_step(stage: str, descriptor_loss: str):
    if stage == "magicpoint":
        loss_fn = get_loss("detector", tie_break="random")

        def step_fn(model, batch, ctx):
            with ctx.autocast():
                logits = model(batch["image"])["logits"]
            return loss_fn(
                logits.float(), batch["keypoint_map"], batch["valid_mask"], ctx.generator
            )

        return step_fn
    conf = load_config(SuperPointTrainConfig, None, [("loss.descriptor", descriptor_loss)])
    return make_step_fn(conf)


def run_stage(args, stage: str, device: torch.device) -> None:
    h, w = (int(v) for v in args.size.split("x"))
    channels = tuple(int(c) for c in args.channels.split(","))
    torch.manual_seed(0)
    base = SuperPointNet(
        ModelConfig(
            descriptor_dim=0 if stage == "magicpoint" else 256,
            backbone_args={"channels": channels},
            head_channels=args.head_channels,
        )
    )
    make = shapes_batch if stage == "magicpoint" else pairs_batch
    batch = {k: v.to(device) for k, v in make(args.batch_size, (h, w)).items()}
    step_fn = stage_step(stage, args.descriptor_loss)
    layouts = {"no": [False], "yes": [True], "both": [False, True]}[args.channels_last]
    variants = []
    for precision in args.precisions.split(","):
        for cl in layouts:
            model = copy.deepcopy(base).to(device)
            vb = batch
            if cl:
                model = model.to(memory_format=torch.channels_last)
                vb = {
                    k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                    for k, v in batch.items()
                }
            variants.append({
                "name": f"{precision}{' channels_last' if cl else ''}", "model": model,
                "opt": torch.optim.Adam(model.parameters(), lr=1e-3), "batch": vb,
                "precision": precision, "times": [], "losses": [],
                "gen": torch.Generator().manual_seed(0),
            })  # fmt: skip
    for i in range(args.steps + 2):
        for v in variants:
            ctx = StepContext(
                i, device, v["gen"], np.random.default_rng(0), None, precision=v["precision"]
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            loss, _ = step_fn(v["model"], v["batch"], ctx)
            v["opt"].zero_grad(set_to_none=True)
            loss.backward()
            v["opt"].step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:  # warm-up: first calls allocate and pick kernels
                v["times"].append(time.perf_counter() - t0)
            v["losses"].append(float(loss.detach()))
    n_params = sum(p.numel() for p in base.parameters())
    images = args.batch_size * (1 if stage == "magicpoint" else 2)
    print(
        f"\n{stage}: channels {channels} head {args.head_channels} ({n_params / 1e6:.2f} M "
        f"params), batch {args.batch_size} {'images' if stage == 'magicpoint' else 'pairs'} at "
        f"{h}x{w}, {args.steps} interleaved steps"
    )
    ref = statistics.median(variants[0]["times"])
    print("| variant | median ms | min | max | steps/s | images/s | vs first | loss after |")
    print("|---|---|---|---|---|---|---|---|")
    for v in variants:
        med = statistics.median(v["times"])
        print(
            f"| {v['name']} | {med * 1000:.0f} | {min(v['times']) * 1000:.0f} | "
            f"{max(v['times']) * 1000:.0f} | {1 / med:.2f} | {images / med:.1f} | "
            f"{ref / med:.2f}x | {v['losses'][-1]:.4f} |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage", choices=["magicpoint", "superpoint", "both"], default="both")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--size", default="240x320", help="HxW")
    p.add_argument("--steps", type=int, default=6, help="timed steps each (after 2 warm-up)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precisions", default="fp32,bf16", help="comma list: fp32,bf16,fp16")
    p.add_argument("--channels-last", choices=["no", "yes", "both"], default="no")
    p.add_argument("--channels", default="64,64,128,128", help="VGG encoder widths")
    p.add_argument("--head-channels", type=int, default=256)
    p.add_argument("--descriptor-loss", default="infonce")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"device {device} ({platform.processor() or platform.machine()}), torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads"
    )
    stages = ["magicpoint", "superpoint"] if args.stage == "both" else [args.stage]
    for stage in stages:
        run_stage(args, stage, device)


if __name__ == "__main__":
    main()
