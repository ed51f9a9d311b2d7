"""Cost of the ROS message conversions at the node's working sizes (480x640, N = M = 1000).

Run: ``.venv/bin/python benchmarks/bench_ros_conversions.py`` (about 2 s). Prints the best of 3
repeats of 200 calls, in milliseconds per call, for the numpy path (``use_cv_bridge=False``).
"""

from __future__ import annotations

import timeit

import numpy as np

from superpoint_ros.ros.conversions import (
    ENCODINGS,
    features_from_msg,
    features_to_msg,
    image_to_numpy,
    matches_from_msg,
    matches_to_msg,
    numpy_to_image,
)


def _ms(fn, number: int = 200) -> float:
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e3


def main() -> None:
    rng = np.random.default_rng(0)
    for encoding, (dtype, channels) in ENCODINGS.items():
        shape = (480, 640) if channels == 1 else (480, 640, channels)
        msg = numpy_to_image(rng.integers(0, 255, shape).astype(dtype), encoding)
        ms = _ms(lambda m=msg: image_to_numpy(m, use_cv_bridge=False))
        print(f"image_to_numpy    480x640 {encoding:8s} {ms:8.3f} ms")
    bgr = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    print(f"numpy_to_image    480x640 bgr8     {_ms(lambda: numpy_to_image(bgr, 'bgr8')):8.3f} ms")
    n = 1000
    kp = rng.uniform(0, 640, (n, 2)).astype(np.float32)
    sc = rng.uniform(size=n).astype(np.float32)
    for d in (256, 128):
        desc = rng.normal(size=(n, d)).astype(np.float32)
        msg = features_to_msg(None, kp, sc, desc)
        to_ms = _ms(lambda de=desc: features_to_msg(None, kp, sc, de))
        from_ms = _ms(lambda m=msg: features_from_msg(m))
        print(f"features_to_msg   N={n} D={d:<4d}  {to_ms:8.3f} ms")
        print(f"features_from_msg N={n} D={d:<4d}  {from_ms:8.3f} ms")
    idx = np.arange(n)
    msg = matches_to_msg(None, kp, kp, sc, idx, idx, idx)
    to_ms = _ms(lambda: matches_to_msg(None, kp, kp, sc, idx, idx, idx))
    print(f"matches_to_msg    M={n}         {to_ms:8.3f} ms")
    print(f"matches_from_msg  M={n}         {_ms(lambda: matches_from_msg(msg)):8.3f} ms")


if __name__ == "__main__":
    main()
