"""Backbones of SuperPoint side by side: parameters, GFLOPs at 480x640 and CPU latency.

    .venv/bin/python benchmarks/bench_backbones.py [--size 480 640] [--runs 5] [--threads 0]

Each row is a whole SuperPoint network (encoder + detector head + 256-d descriptor head, heads
256 wide, as ``config/train/superpoint.yaml``), plus the narrow network of
``config/train/superpoint_cpu.yaml``. FLOPs are counted analytically from every convolution's
output size, a multiply-add counting as 2 FLOPs (BatchNorm, ReLU and pooling are left out; BN
folds into the convolutions at export). Latency: the network alone (no post-processing), eval
mode, batch 1, median of ``--runs`` timed runs after one warm-up, on this machine's CPU with
torch's default threads; other processes share the CPU, so the median is reported.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet

NETWORKS = {
    "vgg (paper)": ModelConfig(backbone="vgg"),
    "vgg_bn": ModelConfig(backbone="vgg_bn", head_norm="bn"),
    "mobile": ModelConfig(backbone="mobile", head_norm="bn"),
    "mobile, heads 128": ModelConfig(backbone="mobile", head_norm="bn", head_channels=128),
    "vgg 32-32-64-64, heads 128 (superpoint_cpu.yaml)": ModelConfig(
        backbone="vgg", backbone_args={"channels": [32, 32, 64, 64]}, head_channels=128
    ),
}


def conv_macs(model: nn.Module, size_hw) -> tuple[int, int]:
    """``(total MACs, encoder MACs)`` of one forward at ``size_hw``, from conv output sizes."""
    counts: dict[str, int] = {}

    def hook(name):
        def fn(mod: nn.Conv2d, _inp, out):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            counts[name] = out[0].numel() * (mod.in_channels // mod.groups) * k

        return fn

    handles = [
        m.register_forward_hook(hook(n)) for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    ]  # fmt: skip
    with torch.no_grad():
        model(torch.zeros(1, 1, *size_hw))
    for h in handles:
        h.remove()
    total = sum(counts.values())
    return total, sum(v for k, v in counts.items() if k.startswith("backbone."))


def latency_ms(model: nn.Module, size_hw, runs: int) -> float:
    x = torch.rand(1, 1, *size_hw)
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"))
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    size = tuple(args.size)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {size[0]}x{size[1]}, batch 1")  # fmt: skip
    print("\n| network | parameters | encoder params | GFLOPs | encoder GFLOPs | CPU ms |")
    print("|---|---|---|---|---|---|")
    for name, cfg in NETWORKS.items():
        torch.manual_seed(0)
        model = SuperPointNet(cfg).eval()
        params = sum(t.numel() for t in model.parameters())
        enc = sum(t.numel() for t in model.backbone.parameters())
        macs, enc_macs = conv_macs(model, size)
        ms = latency_ms(model, size, args.runs)
        print(f"| {name} | {params:,} | {enc:,} | {2 * macs / 1e9:.1f} | "
              f"{2 * enc_macs / 1e9:.1f} | {ms:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
