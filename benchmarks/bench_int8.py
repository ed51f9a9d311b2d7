"""FP32 against INT8 (``superpoint quantize``) on this CPU: speed at one size, interleaved on the
same images, and accuracy on the real sequences.

1. Exports the model (default: the packaged demo model) and quantises it for ``--target cpu``
   on ``--count`` photos of ``--calib`` (and, with ``--variants``, the alternatives the cpu
   target was chosen among: int8 activations, reduced-range weights, TensorRT's symmetric form).
2. Speed: each model is loaded as the node loads it (ONNX Runtime backend, ``--resize``); every
   round runs every image through every model in turn, so load changes hit all alike. Prints
   the median milliseconds of the whole front-end call (pre-processing, graph, unpadding) and
   of the graph alone, and the ratio FP32/INT8 from this one run. With ``--openvino`` (and the
   ``openvino`` package importable) the same files run in the openvino backend too (OpenVINO's CPU
   runtime, float layers in float32), in the same rounds.
3. Accuracy (unless ``--no-accuracy``): ``superpoint evaluate`` (the console script beside this
   interpreter) of every model on ``--data``/hpatches and ``--data``/oxford_affine; prints
   homography accuracy at eps 1/3/5 and NN mAP, and the INT8 - FP32 differences.

    nice -n 10 .venv/bin/python benchmarks/bench_int8.py [--weights W] [--size 480x640]
        [--rounds 10] [--count 100] [--variants] [--openvino] [--no-accuracy] [--keep DIR]
        [--int8 MODEL.int8.onnx]

Never a test: timings depend on the machine and its load (the load average is printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from superpoint_ros.frontend import default_weights
from superpoint_ros.frontend.config import parse_size
from superpoint_ros.frontend.preprocess import prepare
from superpoint_ros.image_io import read_image
from superpoint_ros.loader import load_frontend
from superpoint_training.deploy.calibration import (
    CalibrationImages,
    calibration_record,
    select_calibration_images,
)
from superpoint_training.deploy.pipeline import quantize_onnx
from superpoint_training.deploy.quantize import TARGETS, quantize_frontend
from superpoint_training.deploy.source import float_frontend

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

# The alternatives the cpu target was chosen among (--variants).
VARIANTS = {
    "int8-s8s8": dataclasses.replace(TARGETS["cpu"], name="cpu", activations="int8"),
    "int8-u8s8-reduced": dataclasses.replace(TARGETS["cpu"], name="cpu", reduce_range=True),
    "int8-tensorrt-form": TARGETS["tensorrt"],
}


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def quantize_variants(fp32: Path, folder: Path, calib: Path, count: int, size) -> dict[str, Path]:
    names = select_calibration_images(calib, count)
    record = calibration_record(calib, names, size)
    out = {}
    for name, target in VARIANTS.items():
        reader = CalibrationImages([calib / n for n in names], size)
        # quantize_frontend takes a target name; the variants are registered for this run only.
        TARGETS[f"bench-{name}"] = dataclasses.replace(target, name=f"bench-{name}")
        out[name] = quantize_frontend(
            fp32, folder / f"{name}.onnx", reader, record, f"bench-{name}"
        )
    return out


def agreement(ref: dict, out: dict) -> float:
    """Share of the reference's valid keypoints with one of ``out``'s within 1 pixel."""
    a = ref["keypoints"][ref["scores"] > 0]
    b = out["keypoints"][out["scores"] > 0]
    if len(a) == 0 or len(b) == 0:
        return float(len(a) == len(b))
    return float((np.linalg.norm(a[:, None] - b[None], axis=2).min(1) <= 1).mean())


def time_models(models: dict[str, Path], images, size, rounds, threads, openvino) -> list:
    frontends = {
        name: load_frontend(
            path, backend="onnxruntime", config={"resize": size}, threads=threads
        )  # fmt: skip
        for name, path in models.items()
    }
    # The openvino backend (float layers in float32, as every other backend runs them).
    ov_graphs = {
        name: load_frontend(path, backend="openvino", threads=threads).backend
        for name, path in (models.items() if openvino else ())
    }
    runners = [(name, "onnxruntime") for name in models] + [(n, "openvino") for n in ov_graphs]
    tensors = [_tensor(image, size) for image in images]
    # Agreement with FP32 (ONNX Runtime), outside the timed calls.
    reference = [frontends["fp32"].backend.infer(t) for t in tensors]
    agree = {}
    for name, kind in runners:
        run = frontends[name].backend.infer if kind == "onnxruntime" else ov_graphs[name].infer
        agree[(name, kind)] = statistics.mean(
            agreement(ref, run(t)) for ref, t in zip(reference, tensors)
        )  # also the warm-up: first runs allocate and pick kernels
    total = {r: [] for r in runners}
    graph = {r: [] for r in runners}
    for _ in range(rounds):
        for image, tensor in zip(images, tensors):
            for name, kind in runners:
                if kind == "onnxruntime":
                    t0 = time.perf_counter()
                    _, stages = frontends[name].timed(image)
                    total[(name, kind)].append(time.perf_counter() - t0)
                    graph[(name, kind)].append(stages["inference"])
                else:
                    t0 = time.perf_counter()
                    ov_graphs[name].infer(tensor)
                    graph[(name, kind)].append(time.perf_counter() - t0)
    base = statistics.median(graph[runners[0]])
    return [
        {
            "model": name,
            "runtime": kind,
            "graph_ms": statistics.median(graph[(name, kind)]) * 1e3,
            "total_ms": statistics.median(total[(name, kind)]) * 1e3
            if total[(name, kind)]
            else float("nan"),
            "speedup": base / statistics.median(graph[(name, kind)]),
            "keypoints_within_1px_of_fp32": agree[(name, kind)],
        }
        for name, kind in runners
    ]


def _tensor(image: np.ndarray, size) -> np.ndarray:
    return prepare(image, size).tensor


def evaluate(models: dict[str, Path], data: Path, out: Path) -> dict[str, dict]:
    exe = Path(sys.executable).with_name("superpoint")
    cmd = [str(exe), "--quiet", "evaluate", "--dataset", str(data / "hpatches"),
           "--dataset", str(data / "oxford_affine"), "-o", str(out)]  # fmt: skip
    for name, path in models.items():
        cmd += ["--method", f"{name}={path}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    methods = json.loads((out / "metrics.json").read_text())["methods"]
    return {
        name: {
            "pairs": m["pairs"],
            "keypoints": m["keypoints"],
            **{f"eps{k}": v for k, v in m["homography_accuracy"].items()},
            "nn_map": m["nn_map"],
            "repeatability": m["repeatability"],
        }
        for name, m in methods.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="weights file or float .onnx (default: demo model)")
    parser.add_argument("--calib", type=Path, default=DATA / "photos")
    parser.add_argument("--count", type=int, default=100, help="calibration photos")
    parser.add_argument("--size", default="480x640", help="timing and calibration size")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--images", type=int, default=6, help="timing images (kodak24)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--variants", action="store_true", help="also time the alternatives")
    parser.add_argument("--variant-count", type=int, default=8, help="their calibration photos")
    parser.add_argument("--openvino", action="store_true", help="also time OpenVINO's runtime")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--int8", type=Path, help="an INT8 .onnx made already (skip quantising)")
    parser.add_argument("--keep", type=Path, help="keep the models and reports in this folder")
    args = parser.parse_args()
    size = parse_size(args.size)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_int8_"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_CACHE_HOME", str(work / "xdg"))
    source = Path(args.weights) if args.weights else default_weights()
    print(f"model {source}; load average before: {load_average()}")

    t0 = time.perf_counter()
    fp32 = float_frontend(source, work)
    models = {"fp32": fp32}
    models["int8"] = args.int8 or quantize_onnx(
        fp32, work / "int8.onnx", args.calib, "cpu", args.count, size
    )
    print(f"quantised (cpu target, {args.count} photos of {args.calib}) in "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    if args.variants:
        # Speed does not depend on the calibration set: the variants calibrate on fewer photos.
        models.update(quantize_variants(fp32, work, args.calib, args.variant_count, size))

    files = sorted((args.data / "photos" / "kodak24").glob("*.png"))[: args.images]
    images = [read_image(f) for f in files]
    rows = time_models(models, images, size, args.rounds, args.threads, args.openvino)
    print(f"\nspeed at {size[0]}x{size[1]}, {len(images)} images x {args.rounds} rounds, "
          f"interleaved; load average after: {load_average()}")  # fmt: skip
    print("| model | runtime | graph ms (median) | front-end ms (median) | FP32/this | "
          "keypoints within 1 px of FP32 |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['runtime']} | {r['graph_ms']:.1f} | {r['total_ms']:.1f} | "
              f"{r['speedup']:.2f}x | {r['keypoints_within_1px_of_fp32']:.2f} |")  # fmt: skip

    if not args.no_accuracy:
        acc = evaluate(models, args.data, work / "evaluate")
        print("\naccuracy on hpatches + oxford_affine (superpoint evaluate, default protocol)")
        print("| model | pairs | keypoints | eps=1 | eps=3 | eps=5 | NN mAP | Rep. |")
        print("|---|---|---|---|---|---|---|---|")
        for name, m in acc.items():
            print(f"| {name} | {m['pairs']} | {m['keypoints']:.0f} | {m['eps1.0']:.3f} | "
                  f"{m['eps3.0']:.3f} | {m['eps5.0']:.3f} | {m['nn_map']:.3f} | "
                  f"{m['repeatability']:.3f} |")  # fmt: skip
        for name in acc:
            if name != "fp32":
                d3 = acc[name]["eps3.0"] - acc["fp32"]["eps3.0"]
                dm = acc[name]["nn_map"] - acc["fp32"]["nn_map"]
                print(f"{name} - fp32: eps=3 {d3:+.3f}, NN mAP {dm:+.3f}")
    print(f"\nmodels and reports in {work}")


if __name__ == "__main__":
    main()
