"""Measure `superpoint bag hpatches`: bag size, write time and read-back time on the real data.

    .venv/bin/python benchmarks/bag_write.py [--data ../shared/data] [--repeat 3]

Writes each bag `--repeat` times into a temporary folder (best time reported, the page cache is
warm after the first run) for v_graffiti and for the 5 Oxford sequences together, with both
storages, and reads it back with `read_hpatches_bag` (every image decoded to numpy).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from superpoint_training.bags import find_sequences, read_hpatches_bag, write_hpatches_bag

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cases = [
        ("v_graffiti", args.data / "hpatches" / "v_graffiti"),
        ("oxford (5 seq.)", args.data / "oxford_affine"),
    ]
    configs = [("humble", "sqlite3"), ("jazzy", "mcap")]
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print("| data | images | input MB | distro/storage | bag MB | write s | read s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, folder in cases:
            sequences = find_sequences(folder)
            files = [p for s in sequences for p in (*s.images.values(), *s.homographies.values())]
            input_mb = sum(p.stat().st_size for p in files) / 1e6
            images = sum(len(s.images) for s in sequences)
            for distro, storage in configs:
                writes, reads = [], []
                for i in range(args.repeat):
                    out = Path(tmp) / f"{label[:6]}-{storage}-{i}"
                    start = time.perf_counter()
                    summary = write_hpatches_bag(sequences, out, distro=distro, storage=storage)
                    writes.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    count = sum(len(seq.images) for seq in read_hpatches_bag(out))
                    reads.append(time.perf_counter() - start)
                    assert count == images
                print(
                    f"| {label} | {images} | {input_mb:.1f} | {distro}/{storage} | "
                    f"{summary.size_bytes / 1e6:.1f} | {min(writes):.2f} | {min(reads):.2f} |"
                )


if __name__ == "__main__":
    main()
