"""Match figures: one pair's matches drawn over both images, green where correct under the
ground truth, red where wrong, with the pair's figures in a title band."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from superpoint_ros.visualize import draw_matches as draw

from .datasets import HomographySequence, iter_pairs
from .extraction import prediction, slug
from .protocol import Protocol
from .report import fmt


def sequence_match_figure(
    method: str,
    seq: HomographySequence,
    rec: dict[str, Any],
    arrays: dict[str, np.ndarray],
    protocol: Protocol,
    out_dir: Path,
) -> str | None:
    """:func:`match_figure` of one pair of a folder sequence (images re-read at ``hom_size``)."""
    ref, t = (int(v) for v in rec["pair"].split("-"))
    pair = next(
        iter_pairs(
            seq,
            protocol.hom_size,
            ref,
            (t,),
            grayscale=True,
            interpolation=protocol.interpolation,
        )
    )
    return match_figure(
        method,
        seq.name,
        rec,
        (pair["image0"], pair["image1"]),
        (prediction(arrays, "hom", ref)["keypoints"], prediction(arrays, "hom", t)["keypoints"]),
        protocol,
        out_dir,
    )


def match_figure(
    method: str,
    sequence: str,
    record: Mapping[str, Any],
    images: tuple[np.ndarray, np.ndarray],
    keypoints: tuple[np.ndarray, np.ndarray],
    protocol: Protocol,
    out_dir: str | Path,
) -> str | None:
    """Draw one pair record's matches (green: correct under the GT, red: wrong) into
    ``out_dir/matches/<method>/<sequence>_<pair>.png``; returns that path relative to
    ``out_dir``, or None for a record without matches (a detector without descriptors).

    ``images``: both images at ``protocol.hom_size``; ``keypoints``: their ``[N, 2]`` points
    of the descriptor pass (what ``record["_matches"]`` indexes)."""
    if record.get("_matches") is None:
        return None
    rel = Path("matches") / slug(method) / f"{slug(sequence)}_{record['pair']}.png"
    draw_matches(
        *images,
        *keypoints,
        record["_matches"],
        record["_correct"],
        Path(out_dir) / rel,
        title=(
            f"{method} {sequence} {record['pair']}: {record['correct_matches']}/"
            f"{record['matches']} correct (green, <= {protocol.correct_distance:g} px under GT; "
            f"red: wrong), {record['inliers']} RANSAC inliers, corner error "
            f"{fmt(record['corner_error'], 2)} px"
        ),
    )
    return rel.as_posix()


def draw_matches(
    image0: np.ndarray,
    image1: np.ndarray,
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    matches: np.ndarray,
    correct: np.ndarray,
    path: str | Path,
    title: str = "",
) -> Path:
    """``superpoint_ros.visualize.draw_matches`` (side by side, keypoints yellow, ``matches
    [M, 2]`` green where ``correct [M]``, red otherwise) under a white band with ``title``;
    writes ``path`` (PNG)."""
    canvas = draw(image0, image1, np.asarray(kpts0), np.asarray(kpts1), matches, correct)
    if title:
        band = np.full((28, canvas.shape[1], 3), 255, np.uint8)
        cv2.putText(band, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        canvas = np.concatenate([band, canvas], axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"cannot write {path}")
    return path
