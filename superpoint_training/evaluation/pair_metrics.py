"""Pass 2 of the sequence evaluation: the metrics of one image pair, and of a sequence's pairs.

A pair is the protocol's reference image against one target. Its predictions come at both
protocol sizes (``rep``: detector metrics, ``hom``: descriptor metrics) from any source: the
extraction cache (:mod:`.extraction`), a front-end run here (:func:`evaluate_pair`), or features
extracted elsewhere (the ROS bench node). The record of a pair is one entry of ``metrics.json``'s
``pair_results`` (plus private ``_matches``/``_inliers``/``_correct`` for the match figures).
The metrics themselves are :mod:`.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from superpoint_ros.geometry import rescale_homography

from . import metrics as M
from .extraction import extract_passes
from .methods import Method
from .protocol import Protocol


def pair_metrics(
    method: Method,
    rep0: dict[str, np.ndarray],
    rep1: dict[str, np.ndarray],
    hom0: dict[str, np.ndarray],
    hom1: dict[str, np.ndarray],
    H_0to1: np.ndarray,
    size0: tuple[int, int],
    size1: tuple[int, int],
    protocol: Protocol,
) -> dict[str, Any]:
    """All metrics of one pair from cached predictions.

    ``rep*``/``hom*``: predictions (``keypoints [N, 2]``, ``scores [N]``, ``descriptors
    [N, D]`` for ``hom``) at ``protocol.rep_size``/``hom_size``; ``H_0to1`` the GT between the
    *original* images of sizes ``size0``/``size1`` (rescaled here to each protocol size).
    Returns the per-pair record of ``metrics.json`` (plus private ``_matches``/``_inliers``).
    """
    p = protocol
    H_rep = rescale_homography(H_0to1, size0, p.rep_size, size1, p.rep_size)
    H_hom = rescale_homography(H_0to1, size0, p.hom_size, size1, p.hom_size)
    rep = M.repeatability(
        rep0["keypoints"], rep1["keypoints"], H_rep, p.rep_size, p.rep_size, p.correct_distance
    )
    out: dict[str, Any] = {
        "repeatability": rep["repeatability"],
        "mle": rep["mle"],
        "keypoints0": int(len(hom0["keypoints"])),
        "keypoints1": int(len(hom1["keypoints"])),
    }
    k0, k1 = hom0["keypoints"], hom1["keypoints"]
    d0, d1 = hom0.get("descriptors"), hom1.get("descriptors")
    if d0 is None or d1 is None or d0.shape[1] == 0:  # a detector without descriptors
        out.update(nn_map=math.nan, matching_score=math.nan, corner_error=math.nan)
        out.update(correct=None, matches=0, inliers=0, correct_matches=0)
        return out
    matches, _ = method.match(d0, d1)
    nn, nn_dist = method.nearest(d0, d1)
    out.update(
        nn_map=M.nn_map(k0, k1, nn, nn_dist, H_hom, p.hom_size, p.correct_distance),
        matching_score=M.matching_score(
            k0, k1, matches, H_hom, p.hom_size, p.hom_size, p.correct_distance
        ),
    )
    out.update(
        matching_metrics(
            k0,
            k1,
            matches,
            H_hom,
            p.hom_size,
            p.correct_distance,
            p.eps,
            threshold=p.ransac_threshold,
            max_iters=p.ransac_max_iters,
            confidence=p.ransac_confidence,
        )
    )
    return out


def matching_metrics(
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    matches: np.ndarray,
    H_0to1: np.ndarray,
    size0: tuple[int, int],
    correct_distance: float,
    eps: Sequence[float],
    **ransac: Any,
) -> dict[str, Any]:
    """The homography and match figures of one pair's descriptor ``matches [M, 2]`` between
    ``kpts0 [N0, 2]`` and ``kpts1 [N1, 2]`` (image 0 of size ``size0`` (h, w), ground truth
    ``H_0to1``): OpenCV RANSAC on the matched points (``ransac``: ``threshold``, ``max_iters``,
    ``confidence`` of ``metrics.estimate_homography``), the mean corner error of the estimate,
    whether it is correct at each ``eps``, and the matches within ``correct_distance`` px of
    the ground truth. The offline evaluation (:func:`pair_metrics`) and the training's
    validation score their pairs with it.

    Returns ``corner_error``, ``correct`` (``{eps_key: bool}``), ``matches``, ``inliers``,
    ``correct_matches``, and the private ``_matches``, ``_inliers``, ``_correct [M]``.
    """
    matches = np.asarray(matches, dtype=np.int64).reshape(-1, 2)
    H_est, inliers = M.estimate_homography(kpts0[matches[:, 0]], kpts1[matches[:, 1]], **ransac)
    err = M.corner_error(H_est, H_0to1, size0)
    correct = M.match_errors(kpts0, kpts1, matches, H_0to1) <= correct_distance
    return {
        "corner_error": err,
        "correct": M.homography_correct(err, eps),
        "matches": int(len(matches)),
        "inliers": int(inliers.sum()),
        "correct_matches": int(correct.sum()),
        "_matches": matches,
        "_inliers": inliers,
        "_correct": correct,
    }


def summarise(records: Sequence[dict], eps: Sequence[float]) -> dict[str, Any]:
    """Summary of per-pair records (``metrics.aggregate``)."""
    return M.aggregate(records, eps)


Predictions = Callable[[str, int], Mapping[str, np.ndarray]]  # (pass, image index) -> pred


def sequence_records(
    method: Method,
    sequence: str,
    kind: str,
    predictions: Predictions,
    homography: Callable[[int, int], np.ndarray],
    sizes: Mapping[int, tuple[int, int]],
    protocol: Protocol,
) -> list[dict[str, Any]]:
    """Per-pair records of one sequence: :func:`pair_metrics` on (reference, target) for every
    protocol target whose image exists (``sizes``: original (h, w) per image index).

    ``predictions(pass, index)``: the method's prediction for image ``index`` at the pass's
    protocol size (``pass`` = ``rep`` or ``hom``); ``homography(index, reference)``: the GT
    between the original images (``HomographySequence.homography``). Records start with
    ``sequence``, ``kind``, ``pair`` (``"1-4"``) and keep the private ``_matches``,
    ``_inliers``, ``_correct`` keys (for :func:`match_figure`; :func:`public_record` drops them).
    """
    ref = protocol.reference
    records = []
    for t in protocol.targets:
        if t not in sizes or ref not in sizes:
            continue
        rec = pair_metrics(
            method,
            predictions("rep", ref),
            predictions("rep", t),
            predictions("hom", ref),
            predictions("hom", t),
            homography(t, ref),
            sizes[ref],
            sizes[t],
            protocol,
        )
        records.append({"sequence": sequence, "kind": kind, "pair": f"{ref}-{t}", **rec})
    return records


def public_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A pair record without its private ``_*`` keys (what ``metrics.json`` stores)."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def evaluate_pair(
    method: Method,
    image0: np.ndarray,
    image1: np.ndarray,
    H_0to1: np.ndarray,
    protocol: Protocol,
) -> dict[str, Any]:
    """Extract and score one pair: ``method`` (e.g. ``methods.FrontendMethod`` around a loaded
    front-end) on the original images ``image0``/``image1`` (uint8, as
    ``datasets.read_image`` gives them) in both protocol passes, then :func:`pair_metrics`
    with ``H_0to1`` between the original images. Returns the pair's record (with the private
    ``_*`` keys; :func:`public_record` drops them)."""
    pred0 = extract_passes(method, image0, protocol)
    pred1 = extract_passes(method, image1, protocol)
    return pair_metrics(
        method,
        pred0["rep"],
        pred1["rep"],
        pred0["hom"],
        pred1["hom"],
        H_0to1,
        tuple(image0.shape[:2]),
        tuple(image1.shape[:2]),
        protocol,
    )
