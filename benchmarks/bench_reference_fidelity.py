"""How closely the front-end reproduces each origin's own post-processing, on real photos.

    nice -n 15 .venv/bin/python benchmarks/bench_reference_fidelity.py [--photos N] [--json F]

For each origin, one forward pass of our ``SuperPointNet`` (whose equality with each layout's
own network ``test/test_weights.py`` pins) feeds

* the origin's post-processing, rebuilt here from its description: softmax (Magic Leap's demo
  adds 1e-5 to the denominator), threshold, NMS (greedy; SuperGlue's two re-expansion rounds;
  rpautrat's TF box NMS), border, and descriptor sampling by ``grid_sample`` with the origin's
  grid and ``align_corners`` (TensorFlow 1's ``resize_bilinear`` written out in NumPy for
  rpautrat's TF head);
* our graph's own functions (``postprocess``: ``detector_scores``, threshold, ``nms`` with each
  mode's rounds, ``remove_border``; ``sample_descriptors`` with the layout's default rule), with
  no top-K: the origins keep every point above the threshold, and random weights give more than
  the 3840 slots an export can hold.

Reported per origin: how many keypoints the origin keeps, the share of them each of our NMS
modes keeps too (the same integer pixel, i.e. within 0.5 px) and how many more it keeps, and
the cosine between our descriptor and the origin's at the origin's keypoints (median, 5th
percentile, minimum), beside the cosine that ``center`` sampling would give. Weights are random
(no third-party weights may be bundled or downloaded), He-scaled; ``peaky`` multiplies the
detector's last convolution by 40 so scores are as separated as a trained model's. Photos:
``../shared/data`` (Kodak, TUM fr2/desk, Urban100), stretched to 480 x 640.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import maximum_filter

from superpoint_ros.frontend.config import NMS_MODES
from superpoint_ros.frontend.postprocess import (
    detector_scores,
    nms,
    remove_border,
    sample_descriptors,
)
from superpoint_ros.frontend.postprocess_greedy import greedy_nms
from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
from superpoint_ros.model.weights import (
    build_model,
    checkpoint_dict,
    load_weights,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
H, W = 480, 640
THRESHOLD = 0.005  # the same detection threshold on both sides
BORDER = 4


# --- models ------------------------------------------------------------------------------


def _he_(net: torch.nn.Module, g: torch.Generator, peaky: bool) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2 / fan) ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
        if peaky:
            net.detector[1].conv.weight.mul_(40.0)


ML_NAMES = ["conv1a", "conv1b", "conv2a", "conv2b", "conv3a", "conv3b", "conv4a", "conv4b"]


def magicleap_file(folder: Path, peaky: bool) -> Path:
    """Random weights saved as Magic Leap's plain state dict (``conv1a.weight`` ...), so they
    load through the ``magicleap`` layout and get its default rule."""
    net = SuperPointNet(ModelConfig(backbone="vgg"))
    _he_(net, torch.Generator().manual_seed(11), peaky)
    sd = net.state_dict()
    out = {}
    for k, name in enumerate(ML_NAMES):
        for p in ("weight", "bias"):
            out[f"{name}.{p}"] = sd[f"backbone.stages.{k // 2}.{k % 2}.conv.{p}"]
    for name, ours in (("convPa", "detector.0"), ("convPb", "detector.1"),
                       ("convDa", "descriptor.0"), ("convDb", "descriptor.1")):  # fmt: skip
        for p in ("weight", "bias"):
            out[f"{name}.{p}"] = sd[f"{ours}.conv.{p}"]
    path = folder / f"magicleap{'_peaky' if peaky else ''}.pth"
    torch.save(out, path)
    return path


def bn_file(folder: Path, layout: str, peaky: bool) -> Path:
    """Random weights of eric-yyjau's (conv-BN-ReLU) or rpautrat's (conv-ReLU-BN) network, as
    our checkpoint holding that layout's default rule."""
    from superpoint_ros.frontend.conventions import LAYOUT_SAMPLING

    if layout == "eric_yyjau":
        config = ModelConfig(backbone="vgg_bn", head_norm="bn")
    else:
        norm = {"norm": "bn_after_relu", "bn_eps": 1e-3}
        config = ModelConfig(
            backbone="vgg", backbone_args=norm, head_norm="bn_after_relu", head_bn_eps=1e-3
        )
    net = SuperPointNet(config)
    _he_(net, torch.Generator().manual_seed(12), peaky)
    conventions = {"descriptor_sampling": LAYOUT_SAMPLING[layout]}
    path = folder / f"{layout}{'_peaky' if peaky else ''}.pt"
    return save_checkpoint(path, checkpoint_dict(net.eval(), conventions))


# --- the origins' post-processing, from their descriptions -------------------------------


def heatmap(logits: np.ndarray, eps: float) -> np.ndarray:
    """Softmax over 65 channels (``exp / (sum + eps)``; eps = 1e-5 in Magic Leap's demo, 0 for
    an exact softmax), dustbin dropped, cells unfolded row-major."""
    e = np.exp(logits.astype(np.float64) - (0 if eps else logits.max(0)))
    p = (e / (e.sum(0) + eps))[:-1]
    hc, wc = p.shape[1:]
    return p.reshape(8, 8, hc, wc).transpose(2, 0, 3, 1).reshape(hc * 8, wc * 8)


def border_keep(points: np.ndarray) -> np.ndarray:
    x, y = points[:, 0], points[:, 1]
    return (x >= BORDER) & (x < W - BORDER) & (y >= BORDER) & (y < H - BORDER)


def rounds_nms(scores: np.ndarray, radius: int, rounds: int) -> np.ndarray:
    """SuperGlue/LightGlue's ``simple_nms`` (max-pool, then ``rounds`` re-expansions), written
    with SciPy's maximum filter."""
    size = 2 * radius + 1

    def pool(x):
        return maximum_filter(x, size=size, mode="constant", cval=-np.inf)

    keep = scores == pool(scores)
    for _ in range(rounds):
        suppressed = pool(keep.astype(float)) > 0
        remaining = np.where(suppressed, 0, scores)
        keep = keep | ((remaining == pool(remaining)) & ~suppressed)
    return np.where(keep, scores, 0)


def box_nms_tf(scores: np.ndarray, size: int, iou: float, min_prob: float) -> np.ndarray:
    """rpautrat's ``box_nms``: boxes of side ``size`` centred on points with prob >= min_prob,
    greedy by score (TensorFlow's non_max_suppression), a box suppressed when its IoU with a kept
    one exceeds ``iou``."""
    ys, xs = np.nonzero(scores >= min_prob)
    order = np.argsort(-scores[ys, xs], kind="stable")
    taken = np.zeros(scores.shape, bool)
    kept = []
    r = size
    for i in order:
        x, y = xs[i], ys[i]
        y0, y1, x0, x1 = max(0, y - r), y + r + 1, max(0, x - r), x + r + 1
        near = np.argwhere(taken[y0:y1, x0:x1])
        if len(near):
            dy = np.abs(near[:, 0] + y0 - y)
            dx = np.abs(near[:, 1] + x0 - x)
            inter = np.clip(size - dx, 0, None) * np.clip(size - dy, 0, None)
            if np.any(inter / (2 * size * size - inter) > iou):
                continue
        taken[y, x] = True
        kept.append((x, y))
    return np.array(kept).reshape(-1, 2)


def grid_sample_desc(dense: torch.Tensor, pts: np.ndarray, grid_fn, align: bool) -> np.ndarray:
    unit = F.normalize(dense, dim=1)
    p = torch.from_numpy(pts.astype(np.float32))
    g = torch.stack(grid_fn(p[:, 0], p[:, 1]), dim=-1).view(1, 1, -1, 2)
    d = F.grid_sample(unit, g, mode="bilinear", align_corners=align)[0, :, 0].T.numpy()
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def tf_resize_desc(dense: torch.Tensor, pts: np.ndarray) -> np.ndarray:
    raw = dense[0].numpy().astype(np.float64)
    hc, wc = raw.shape[1:]
    sx, sy = pts[:, 0] / 8.0, pts[:, 1] / 8.0
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    x1, y1 = np.minimum(x0 + 1, wc - 1), np.minimum(y0 + 1, hc - 1)
    fx, fy = sx - x0, sy - y0
    top = raw[:, y0, x0] * (1 - fx) + raw[:, y0, x1] * fx
    bot = raw[:, y1, x0] * (1 - fx) + raw[:, y1, x1] * fx
    d = (top * (1 - fy) + bot * fy).T
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def origin_pipeline(origin: str, logits: np.ndarray, dense: torch.Tensor):
    """(keypoints [N, 2] int (x, y), descriptors [N, D]) as the origin's code computes them."""
    if origin in ("magicleap_demo", "eric_yyjau"):
        prob = heatmap(logits, 1e-5 if origin == "magicleap_demo" else 0.0)
        pts = greedy_nms(prob, 4, threshold=THRESHOLD)
        pts = pts[border_keep(pts)]
        desc = grid_sample_desc(
            dense, pts, lambda x, y: (x / (W / 2) - 1, y / (H / 2) - 1), align=True
        )
    elif origin in ("superglue", "rpautrat_pytorch"):
        prob = rounds_nms(heatmap(logits, 0.0), 4, 2)
        prob[:BORDER], prob[-BORDER:], prob[:, :BORDER], prob[:, -BORDER:] = -1, -1, -1, -1
        ys, xs = np.nonzero(prob > THRESHOLD)
        pts = np.stack([xs, ys], 1)
        if origin == "superglue":

            def grid(x, y):
                return (x - 3.5) / (W - 4.5) * 2 - 1, (y - 3.5) / (H - 4.5) * 2 - 1
        else:

            def grid(x, y):
                return (x + 0.5) / W * 2 - 1, (y + 0.5) / H * 2 - 1

        desc = grid_sample_desc(dense, pts, grid, align=origin == "superglue")
    else:  # rpautrat_tf: box NMS (side 4, IoU 0.1, min_prob 0.01), then prob >= threshold
        prob = heatmap(logits, 0.0)
        pts = box_nms_tf(prob, 4, 0.1, max(0.01, THRESHOLD))
        pts = pts[border_keep(pts)]
        desc = tf_resize_desc(dense, pts)
    return pts, desc


# --- comparison --------------------------------------------------------------------------

ORIGINS = {  # origin -> (weights layout, our sampling rule, our NMS radius)
    "magicleap_demo": ("magicleap", None, 4),
    "superglue": ("magicleap", "superglue", 4),
    "eric_yyjau": ("eric_yyjau", None, 4),
    "rpautrat_tf": ("rpautrat", None, 4),
    "rpautrat_pytorch": ("rpautrat", "center", 4),
}


def photos(n: int) -> list[tuple[str, np.ndarray]]:
    files = sorted((SHARED / "photos" / "kodak24").glob("*.png"))[:4]
    files += sorted((SHARED / "sequences" / "tum_fr2_desk").glob("*.png"))[::7][:3]
    files += sorted((SHARED / "photos" / "urban100").glob("*.jpg"))[:3]
    out = []
    for f in files[:n]:
        gray = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        out.append((f.name, cv2.resize(gray, (W, H), interpolation=cv2.INTER_AREA)))
    return out


def our_points(logits: torch.Tensor, mode: str, radius: int) -> set[tuple[int, int]]:
    """The keypoints our graph selects with NMS ``mode`` before its top-K (the same functions
    the exported graph runs), as a set of (x, y)."""
    prob = detector_scores(logits)
    scores = torch.where(prob > THRESHOLD, prob, torch.zeros_like(prob))
    kept = remove_border(nms(scores, radius, NMS_MODES[mode]), BORDER)[0]
    ys, xs = torch.nonzero(kept, as_tuple=True)
    return set(zip(xs.tolist(), ys.tolist()))


def cosines(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    return np.sum(ours * theirs, axis=1)


def run(n_photos: int, peaky: bool) -> dict:
    images = photos(n_photos)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "magicleap": magicleap_file(Path(tmp), peaky),
            "eric_yyjau": bn_file(Path(tmp), "eric_yyjau", peaky),
            "rpautrat": bn_file(Path(tmp), "rpautrat", peaky),
        }
        for origin, (layout, rule, radius) in ORIGINS.items():
            weights = load_weights(files[layout])
            rule = rule or weights.conventions["descriptor_sampling"]
            net = build_model(weights)
            theirs_total, cos, cos_center = 0, [], []
            rows = {m: {"reproduced": 0, "extra": 0} for m in NMS_MODES}
            for _, image in images:
                with torch.no_grad():
                    out = net(torch.from_numpy(image)[None, None].float() / 255.0)
                    dense = out["descriptors_dense"]
                    ref_pts, ref_desc = origin_pipeline(origin, out["logits"][0].numpy(), dense)
                    theirs = {tuple(p) for p in ref_pts.tolist()}
                    theirs_total += len(theirs)
                    for mode in NMS_MODES:
                        mine = our_points(out["logits"], mode, radius)
                        rows[mode]["reproduced"] += len(theirs & mine)
                        rows[mode]["extra"] += len(mine - theirs)
                    pts = torch.from_numpy(ref_pts.astype(np.float32))[None]
                    ours = sample_descriptors(dense, pts, rule)[0].numpy()
                    cos.append(cosines(ours, ref_desc))
                    other = sample_descriptors(dense, pts, "center")[0].numpy()
                    cos_center.append(cosines(other, ref_desc))
            cos_all, center_all = np.concatenate(cos), np.concatenate(cos_center)
            results[origin] = {
                "layout": layout,
                "rule": rule,
                "their_keypoints": theirs_total,
                "modes": {
                    m: {
                        "reproduced_share": r["reproduced"] / max(theirs_total, 1),
                        "extra_keypoints": r["extra"],
                    }
                    for m, r in rows.items()
                },
                "cos_median": float(np.median(cos_all)),
                "cos_p5": float(np.percentile(cos_all, 5)),
                "cos_min": float(cos_all.min()),
                "center_cos_median": float(np.median(center_all)),
                "center_cos_p5": float(np.percentile(center_all, 5)),
            }
    return {"photos": [name for name, _ in images], "peaky": peaky, "origins": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"needs the real photos in {SHARED}", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    report = {"flat": run(args.photos, False), "peaky": run(args.photos, True)}
    for kind, res in report.items():
        print(f"\n## {kind} random weights, {len(res['photos'])} photos at {H}x{W}")
        modes = " | ".join(f"{m}: reproduced (extra)" for m in NMS_MODES)
        print(
            f"| origin | our rule | their kpts | {modes} | cos median / p5 / min "
            "| `center` cos median / p5 |"
        )
        print("|---" * (5 + len(NMS_MODES)) + "|")
        for origin, o in res["origins"].items():
            cells = " | ".join(
                f"{100 * m['reproduced_share']:.2f}% ({m['extra_keypoints']})"
                for m in o["modes"].values()
            )
            print(
                f"| {origin} | {o['rule']} | {o['their_keypoints']} | {cells} | "
                f"{o['cos_median']:.6f} / {o['cos_p5']:.6f} / {o['cos_min']:.6f} | "
                f"{o['center_cos_median']:.4f} / {o['center_cos_p5']:.4f} |"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
