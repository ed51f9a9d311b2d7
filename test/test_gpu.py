"""GPU-only checks of the training side (skipped with a reason without CUDA; run by
``benchmarks/gpu_check.sh`` on a machine with a GPU): autocast training steps on CUDA, the label
export on CUDA against the CPU, the export's process-group code over NCCL, and a 2-GPU sharded
export. None of these has run yet: no GPU was available where they were written."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pytest
import torch

from superpoint_training.cli.main import main

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here"),
]

MAGICPOINT_TINY = [
    "data.image_size=[32, 48]", "data.supersample=2",
    "model.backbone_args={channels: [8, 8, 16, 16]}", "model.head_channels=16",
    "train.batch_size=4", "train.num_workers=0", "train.log_every=1", "train.val_every=0",
    "train.progress=false", "train.tensorboard=false", "train.device=cuda", "eval.num_images=4",
    "eval.classical=[]",
]  # fmt: skip


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_autocast_training_steps_on_cuda(tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    run = tmp_path / precision
    args = ["train", "magicpoint", "--output", str(run), "--steps", "4",
            f"train.precision={precision}", *MAGICPOINT_TINY]  # fmt: skip
    assert main(args) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r.get("split") == "train" and "loss" in r]
    assert losses and all(np.isfinite(losses))
    assert (run / "checkpoint_last.pt").is_file()


@pytest.fixture(scope="module")
def export_data(tmp_path_factory):
    import cv2

    from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
    from superpoint_ros.model.weights import checkpoint_dict, save_checkpoint

    root = tmp_path_factory.mktemp("gpu_export")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        img = cv2.GaussianBlur((rng.random((60, 80)) * 255).astype(np.uint8), (0, 0), 2)
        cv2.rectangle(img, (10 + 3 * i, 12), (40 + i, 40), 255, -1)
        cv2.imwrite(str(root / "images" / f"im{i}.png"), img)
    torch.manual_seed(0)
    net = SuperPointNet(
        ModelConfig(backbone_args={"channels": [4, 4, 8, 8]}, head_channels=8, descriptor_dim=0)
    )
    save_checkpoint(root / "mp.pt", checkpoint_dict(net))
    return root


def export(root, out, *extra) -> list:
    from superpoint_training.labels.store import LabelStore, iter_records

    args = [
        "export-labels", "--weights", str(root / "mp.pt"), "--images", str(root / "images"),
        "-o", str(out), "--num-homographies", "8", "image_size=[64, 96]",
        "adaptation.detection_threshold=0.01", "num_workers=0", "progress=false", *extra,
    ]  # fmt: skip
    assert main(args) == 0
    with LabelStore(out) as store:
        return [(n, p.copy(), s.copy()) for n, p, s in iter_records(store)]


def test_export_on_cuda_matches_the_cpu(export_data, tmp_path):
    cpu = export(export_data, tmp_path / "cpu.h5", "--device", "cpu")
    gpu = export(export_data, tmp_path / "gpu.h5", "--device", "cuda")
    assert [n for n, _, _ in cpu] == [n for n, _, _ in gpu]
    for (_, pa, _), (_, pb, _) in zip(cpu, gpu):
        # TF32 convolutions and another summation order: a point near the threshold may differ
        a, b = {tuple(p) for p in pa.tolist()}, {tuple(p) for p in pb.tolist()}
        assert len(a & b) >= 0.95 * max(len(a), len(b))


def test_export_process_group_over_nccl(export_data, tmp_path, monkeypatch):
    """A one-rank NCCL group runs the sharded path (plan broadcast, counts gathered, merge) and
    writes the labels a plain CUDA export writes."""
    import torch.distributed as dist

    from superpoint_training.training.distributed import free_port

    plain = export(export_data, tmp_path / "plain.h5", "--device", "cuda")
    monkeypatch.setenv("LOCAL_RANK", "0")
    torch.cuda.set_device(0)
    dist.init_process_group(
        "nccl", init_method=f"tcp://127.0.0.1:{free_port()}", world_size=1, rank=0,
        timeout=datetime.timedelta(minutes=5),
    )  # fmt: skip
    try:
        grouped = export(export_data, tmp_path / "grouped.h5", "--device", "cuda")
    finally:
        dist.destroy_process_group()
    assert [n for n, _, _ in plain] == [n for n, _, _ in grouped]
    for (_, pa, _), (_, pb, _) in zip(plain, grouped):
        assert np.array_equal(pa, pb)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="a 2-GPU export needs two GPUs")
def test_two_gpu_export_equals_one_gpu(export_data, tmp_path):
    one = export(export_data, tmp_path / "one.h5", "--device", "cuda")
    two = export(export_data, tmp_path / "two.h5", "--device", "cuda", "--nproc", "2")
    assert [n for n, _, _ in one] == [n for n, _, _ in two]
    for (_, pa, sa), (_, pb, sb) in zip(one, two):
        assert np.array_equal(pa, pb) and np.allclose(sa, sb, atol=1e-5)
