"""The demo's input: frames on disk, their ground truth, and the camera bag made from them.

Three sources, one result (:class:`DemoInput`):

* ``None``: a synthetic moving-camera sequence over a photo scikit-image ships
  (:mod:`.sequence`), with exact ground truth;
* a folder holding an HPatches or Oxford sequence (``1..K.ppm`` + ``H_1_n``), or a folder of
  such sequences (the first one, by name, is used): the images in order, ground truth from
  the files;
* any other folder of frames (sorted by name, as ``superpoint bag images`` sorts them): no
  ground truth, so the correctness figures are left out.

Every frame is stretched to one size (the first frame's, at most ``MAX_WIDTH`` wide; the node
would restart its tracks on a size change), the ground truth follows
(``geometry.rescale_homography``), and the frames become a camera bag on ``IMAGE_TOPIC`` with
the project's bag writer (``write_image_bag``), stamped at the camera rate. Everything lives in
``<work>/input_<source>/`` (:func:`input_folder_name`) with a ``manifest.json`` whose key names
what made it: a second run with the same key reuses the folder instead of making it again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from superpoint_ros.errors import ConfigError, InputError
from superpoint_ros.geometry import Size, rescale_homography
from superpoint_training.bags.writer import list_frames, write_image_bag
from superpoint_training.data.sequences import find_sequences, load_sequence
from superpoint_training.evaluation.datasets import read_image

from .sequence import SequenceConfig, synthesise_sequence

IMAGE_TOPIC = "/camera/image_raw"
FRAME_ID = "camera"
MAX_WIDTH = 640  # wider frames are scaled down (aspect kept): the demo must stay quick on a CPU
MAX_FRAMES = 300  # a longer frame folder is cut here
PHOTOS = ("coffee", "astronaut", "rocket", "chelsea", "hubble_deep_field")  # CC0/public domain
ENCODING = "mono8"
FORMAT = 1  # bump when the folder's layout or the synthesis changes: old caches are remade


@dataclass
class DemoInput:
    """Frames ``frames[i]`` (PNG files of one size), ``H_0to[i]`` (frame 0 -> i) or None, and
    the camera bag. ``reused``: found in the cache rather than made now."""

    description: str
    frames: list[Path]
    size: Size
    H_0to: list[np.ndarray] | None
    bag: Path
    rate: float
    reused: bool = False


def photo(name: str) -> np.ndarray:
    """One of scikit-image's photos (``PHOTOS``), as uint8 BGR."""
    if name not in PHOTOS:
        raise ConfigError(f"unknown photo {name!r}; choose from {', '.join(PHOTOS)}")
    try:
        from skimage import data
    except ImportError:
        raise InputError("scikit-image is not installed: pip install scikit-image, or give a "
                         "folder of frames (DEMO_INPUT=DIR)") from None  # fmt: skip
    image = getattr(data, name)()
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image


def fitted_size(size: Size, max_width: int = MAX_WIDTH) -> Size:
    """``size`` scaled down (aspect kept) to at most ``max_width`` wide."""
    h, w = size
    if w <= max_width:
        return (h, w)
    return (max(8, round(h * max_width / w)), max_width)


def _frames_key(paths: list[Path]) -> list:
    return [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in paths]


def _plan(source: str | None, config: SequenceConfig, photo_name: str, rate: float):
    """``(key material, description, make)``: ``make()`` returns ``(frames, H_0to or None)``
    as arrays; the key changes whenever the result would."""
    if source is None:
        desc = (f"synthetic: {config.frames} frames of {config.size[0]}x{config.size[1]} from "
                f"scikit-image's '{photo_name}' photo (camera path, lighting and noise seed "
                f"{config.seed})")  # fmt: skip

        def make_synthetic():
            seq = synthesise_sequence(photo(photo_name), config)
            return seq.frames, seq.H_0to

        return ["synthetic", asdict(config), photo_name, rate], desc, make_synthetic
    root = Path(source).expanduser()
    if not root.is_dir():
        raise InputError(f"DEMO_INPUT {root} is not a folder")
    seq = load_sequence(root)
    if seq is None and any(load_sequence(p) for p in root.iterdir() if p.is_dir()):
        seq = find_sequences(root)[0]
    if seq is not None:
        indices = sorted(seq.images)
        paths = [seq.image(n) for n in indices]
        desc = f"sequence {seq.name} ({seq.layout} layout, {len(paths)} images) from {root}"

        def make_sequence():
            images = [read_image(p, grayscale=False) for p in paths]
            target = fitted_size(images[0].shape[:2])
            H_0to = [
                rescale_homography(seq.homography(n), images[0].shape[:2], target,
                                   images[k].shape[:2], target)
                for k, n in enumerate(indices)
            ]  # fmt: skip
            return [_stretch(im, target) for im in images], H_0to

        return ["sequence", _frames_key(paths), rate], desc, make_sequence
    paths = list_frames(root)[:MAX_FRAMES]
    desc = f"{len(paths)} frames from {root} (no ground truth)"

    def make_frames():
        first = read_image(paths[0], grayscale=False)
        target = fitted_size(first.shape[:2])
        return [_stretch(read_image(p, grayscale=False), target) for p in paths], None

    return ["frames", _frames_key(paths), rate], desc, make_frames


def _stretch(image: np.ndarray, size: Size) -> np.ndarray:
    if image.shape[:2] == tuple(size):
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def prepare_input(
    work: Path,
    source: str | None = None,
    config: SequenceConfig | None = None,
    photo_name: str = PHOTOS[0],
    rate: float = 10.0,
) -> DemoInput:
    """Make (or reuse) ``work/input_<source>``: ``frames/NNNNNN.png``, ``ground_truth.json``,
    ``bag/`` and ``manifest.json``."""
    config = config or SequenceConfig()
    if not rate > 0:
        raise ConfigError(f"the camera rate must be > 0 Hz, got {rate}")
    material, desc, make = _plan(source, config, photo_name, rate)
    key = hashlib.sha256(json.dumps([FORMAT, material], default=str).encode()).hexdigest()[:16]
    folder = work / input_folder_name(source)
    manifest = folder / "manifest.json"
    if manifest.is_file():
        try:
            found = _load(folder, json.loads(manifest.read_text()), key)
        except (ValueError, KeyError, OSError):
            found = None
        if found is not None:
            return found
    frames, H_0to = make()
    if len(frames) < 2:
        raise InputError(f"the demo needs at least 2 frames; {desc} has {len(frames)}")
    frame_dir = folder / "frames"
    if frame_dir.is_dir():
        for old in frame_dir.glob("*.png"):
            old.unlink()
    frame_dir.mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)  # a half-made folder is never taken for a finished one
    paths = []
    for i, image in enumerate(frames):
        path = frame_dir / f"{i:06d}.png"
        if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise InputError(f"cannot write {path}")
        paths.append(path)
    if H_0to is not None:
        (folder / "ground_truth.json").write_text(
            json.dumps({"H_0to": [np.asarray(H).tolist() for H in H_0to]})
        )
    bag = folder / "bag"
    write_image_bag(paths, bag, topic=IMAGE_TOPIC, frame=FRAME_ID, encoding=ENCODING, rate=rate,
                    stamps="rate", overwrite=True)  # fmt: skip
    size = tuple(int(v) for v in frames[0].shape[:2])
    manifest.write_text(json.dumps({
        "key": key, "description": desc, "frames": len(paths), "size": size, "rate": rate,
        "ground_truth": H_0to is not None,
    }, indent=1))  # fmt: skip
    return DemoInput(desc, paths, size, H_0to, bag, rate)


def input_folder_name(source: str | None) -> str:
    """``input_synthetic``, or ``input_<folder name>`` for ``source``: one cache per source,
    so switching between them does not remake the other."""
    if source is None:
        return "input_synthetic"
    name = Path(source).expanduser().resolve().name or "root"
    return "input_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def load_input(folder: Path) -> DemoInput:
    """The finished input in ``folder`` whatever made it (``InputError`` if incomplete)."""
    try:
        meta = json.loads((folder / "manifest.json").read_text())
        found = _load(folder, meta, meta["key"])
    except (ValueError, KeyError, OSError):
        found = None
    if found is None:
        raise InputError(f"the demo input {folder} is missing or incomplete; run the demo again")
    return found


def _load(folder: Path, meta: dict, key: str) -> DemoInput | None:
    """The cached input if it was made with ``key`` and is complete, else None."""
    if meta.get("key") != key or not (folder / "bag" / "metadata.yaml").is_file():
        return None
    paths = [folder / "frames" / f"{i:06d}.png" for i in range(int(meta["frames"]))]
    if not all(p.is_file() for p in paths):
        return None
    H_0to = None
    if meta["ground_truth"]:
        H_0to = [
            np.array(H, np.float64)
            for H in json.loads((folder / "ground_truth.json").read_text())["H_0to"]
        ]
    return DemoInput(meta["description"], paths, tuple(meta["size"]), H_0to, folder / "bag",
                     float(meta["rate"]), reused=True)  # fmt: skip
