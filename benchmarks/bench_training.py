"""Speed of one MagicPoint training step on this machine: steps/s and images/s (median).

A step is forward + detector loss + backward + Adam update of ``SuperPointNet`` (descriptor_dim
0) on a batch of synthetic-shapes images, batches prepared beforehand (the data pipeline's own
speed is measured by the synthetic-data benchmark). Usage::

    .venv/bin/python benchmarks/bench_training.py                       # 120x160, batch 32
    .venv/bin/python benchmarks/bench_training.py --batch-size 8 --steps 10 --threads 2
    .venv/bin/python benchmarks/bench_training.py --device cuda         # where a GPU exists
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
from superpoint_training.losses import get_loss


def batch_of_shapes(batch_size: int, size: tuple[int, int], seed: int = 0):
    """A real batch from the synthetic-shapes dataset (random tensors as a fallback)."""
    try:
        from superpoint_training.data.synthetic_shapes import (
            SyntheticShapesConfig,
            SyntheticShapesDataset,
            collate,
        )

        ds = SyntheticShapesDataset(
            SyntheticShapesConfig(image_size=size), split="train", seed=seed, length=batch_size
        )
        return collate([ds[i] for i in range(batch_size)]), "synthetic shapes"
    except ImportError:
        g = torch.Generator().manual_seed(seed)
        h, w = size
        return {
            "image": torch.rand(batch_size, 1, h, w, generator=g),
            "keypoint_map": (torch.rand(batch_size, h, w, generator=g) > 0.995).float(),
            "valid_mask": torch.ones(batch_size, h, w),
        }, "random tensors"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--height", type=int, default=120)
    p.add_argument("--width", type=int, default=160)
    p.add_argument("--steps", type=int, default=7, help="timed steps (after 2 warm-up steps)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels", default="64,64,128,128", help="VGG encoder widths")
    p.add_argument("--head-channels", type=int, default=256)
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    channels = tuple(int(c) for c in args.channels.split(","))
    torch.manual_seed(0)
    model = SuperPointNet(
        ModelConfig(
            descriptor_dim=0,
            backbone_args={"channels": channels},
            head_channels=args.head_channels,
        )
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = get_loss("detector", tie_break="random")
    gen = torch.Generator().manual_seed(0)
    batch, source = batch_of_shapes(args.batch_size, (args.height, args.width))
    batch = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
    times = []
    for i in range(args.steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        logits = model(batch["image"])["logits"]
        loss, _ = loss_fn(logits, batch["keypoint_map"], batch["valid_mask"], gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"device {device} ({platform.processor() or platform.machine()}), torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; model channels {channels} "
        f"head {args.head_channels} ({n_params / 1e6:.2f} M params); batch {args.batch_size} "
        f"at {args.height}x{args.width} ({source})"
    )
    print(
        f"step time median {med * 1000:.0f} ms (min {min(times) * 1000:.0f}, max "
        f"{max(times) * 1000:.0f}, {len(times)} steps): {1 / med:.3f} steps/s, "
        f"{args.batch_size / med:.1f} images/s"
    )


if __name__ == "__main__":
    main()
