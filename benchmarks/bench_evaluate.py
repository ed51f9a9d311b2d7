"""How long `superpoint evaluate` takes per sequence on this machine, and an extrapolation to the
full 116-sequence HPatches release.

Runs the offline evaluation (no cache, no plots: extraction + metrics) of SIFT and ORB on the real
sequences in ../shared/data (HPatches v_graffiti and the 5 Oxford scenes), and of a SuperPoint
network with the paper's architecture (VGG encoder, 256-D descriptors; randomly initialised, so
its *accuracy* means nothing: only its run time is measured) with the torch and ONNX Runtime
backends on v_graffiti. Prints a table and the extrapolation (stated as such).

    .venv/bin/python benchmarks/bench_evaluate.py [--data ../shared/data] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

FULL_HPATCHES = 116  # sequences in hpatches-sequences-release


def timed_evaluate(datasets, method, out, **kw) -> tuple[float, dict]:
    from superpoint_training.evaluation.pipeline import evaluate

    t0 = time.perf_counter()
    report = evaluate(datasets, [method], out, cache_dir=None, plots=False, progress=False, **kw)
    return time.perf_counter() - t0, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--data", type=Path, default=root.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=0, help="torch/cv2 threads (0: default)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    os.environ.setdefault("XDG_CACHE_HOME", str(tmp / "xdg"))  # ONNX export cache

    import cv2

    if args.threads:
        cv2.setNumThreads(args.threads)
    datasets = [args.data / "hpatches", args.data / "oxford_affine"]
    rows = []
    for method in ("sift", "orb"):
        seconds, report = timed_evaluate(datasets, method, tmp / method)
        n = len(report["sequences"])
        m = report["methods"][method]
        rows.append((method, "opencv", n, seconds / n, m["timing"]["extract_seconds_per_image"]))

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
    from superpoint_ros.model.weights import checkpoint_dict, save_checkpoint

    torch.manual_seed(0)
    weights = save_checkpoint(tmp / "vgg_random.pt", checkpoint_dict(SuperPointNet(ModelConfig())))
    graffiti = args.data / "hpatches" / "v_graffiti"
    for backend in ("torch", "onnxruntime"):
        timed_evaluate(graffiti, str(weights), tmp / f"warm_{backend}", backend=backend)  # export
        seconds, report = timed_evaluate(graffiti, str(weights), tmp / backend, backend=backend)
        m = next(iter(report["methods"].values()))
        rows.append(
            (
                "superpoint (VGG, random init)",
                backend,
                1,
                seconds,
                m["timing"]["extract_seconds_per_image"],
            )
        )

    print(
        f"CPU: {report['versions']['processor']}, torch threads {torch.get_num_threads()}, "
        f"cv2 threads {cv2.getNumThreads()}"
    )
    print(
        "| method | backend | sequences timed | s per sequence (extract + metrics) | "
        "extraction s per image (240x320 + 480x640) | full HPatches (116 seq.), extrapolated |"
    )
    print("|---|---|---|---|---|---|")
    for name, backend, n, per_seq, per_img in rows:
        full = per_seq * FULL_HPATCHES
        print(
            f"| {name} | {backend} | {n} | {per_seq:.2f} | {per_img:.3f} | {full / 60:.1f} min |"
        )


if __name__ == "__main__":
    main()
