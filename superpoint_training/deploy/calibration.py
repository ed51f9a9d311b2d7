"""The calibration set of a static INT8 quantisation: which photos, and each one prepared exactly
as the front-end prepares a camera frame (``superpoint_ros.frontend.preprocess.prepare``: grey,
stretched to the calibration size, scaled to [0, 1]), so the activation ranges are those the
quantised graph meets at run time.

``select_calibration_images`` picks the files (recursive, sorted, spread evenly over the sorted
list so every sub-folder is represented); ``calibration_record`` is what the quantised file's
metadata says about them (count, folder name, size, a hash of the chosen names: enough to tell
two calibrations apart without shipping the list). ``CalibrationImages`` feeds them to ONNX
Runtime's calibrator one image at a time (it has ``get_next``, all ONNX Runtime asks of a
calibration data reader), reading each file only when it is needed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from superpoint_ros.errors import ConfigError, InputError
from superpoint_ros.frontend.preprocess import prepare
from superpoint_ros.image_io import read_image
from superpoint_training.data.images import IMAGE_EXTENSIONS, list_images

DEFAULT_COUNT = 100  # photos; ranges settle well before (see README "INT8 on the CPU")
DEFAULT_SIZE = (480, 640)  # (h, w): the size the front-end runs at on a VGA camera


def spread(n_total: int, count: int) -> list[int]:
    """``min(count, n_total)`` indices spread evenly over ``range(n_total)``, first one 0:
    ``spread(10, 3) == [0, 3, 6]``, ``spread(4, 9) == [0, 1, 2, 3]``."""
    if count <= 0:
        raise ConfigError(f"calibration count must be positive, got {count}")
    k = min(count, n_total)
    return [i * n_total // k for i in range(k)]


def select_calibration_images(folder: str | os.PathLike, count: int = DEFAULT_COUNT) -> list[str]:
    """Relative POSIX names of ``count`` images under ``folder`` (all of them when there are
    fewer), evenly spread over the sorted list; ``InputError`` when there is none."""
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise InputError(f"calibration folder {root} is a file, not a folder of photos")
    names = list_images(root)  # InputError when the folder does not exist
    if not names:
        raise InputError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) under calibration folder {root}"
        )
    return [names[i] for i in spread(len(names), count)]


def names_sha256(names: Sequence[str]) -> str:
    """Hash of the chosen image names (one a line, in the order used)."""
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()


def calibration_record(
    folder: str | os.PathLike, names: Sequence[str], size: tuple[int, int]
) -> dict[str, Any]:
    """What the quantised model's metadata says about its calibration set."""
    return {
        "count": len(names),
        "folder": Path(folder).resolve().name,
        "size": [int(size[0]), int(size[1])],
        "names_sha256": names_sha256(names),
    }


def calibration_tensor(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (uint8 grey or BGR) -> the network input ``[1, 1, h, w]`` float32 in [0, 1], by
    the front-end's own preparation at ``size``."""
    return prepare(image, size).tensor


def stride_for(count: int, most: int) -> int:
    """The largest divisor of ``count`` not above ``most``: how many images ONNX Runtime's
    calibrator holds at once (it keeps every intermediate tensor of the images of one stride,
    about 0.2 GB per 480x640 image for the demo model, then folds them into its ranges)."""
    return max(d for d in range(1, max(1, min(count, most)) + 1) if count % d == 0)


class CalibrationImages:
    """ONNX Runtime calibration data reader over image files: ``get_next()`` returns
    ``{"image": [1, 1, h, w]}`` for the next file of the current range, ``None`` after its last;
    ``set_range(start, end)`` selects ``files[start:end]`` (ONNX Runtime's strided
    calibration)."""

    def __init__(self, files: Sequence[str | os.PathLike], size: tuple[int, int] = DEFAULT_SIZE):
        if not files:
            raise InputError("no calibration images")
        self.files = [Path(f) for f in files]
        self.size = size
        self._next, self._end = 0, len(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, min(end_index, len(self.files))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        path = self.files[self._next]
        self._next += 1
        return {"image": calibration_tensor(read_image(path), self.size)}

    def rewind(self) -> None:
        self.set_range(0, len(self.files))
