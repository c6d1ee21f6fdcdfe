"""Prints how fast a level store builds (items/s over the local cores) for JPEG, WebP and AVIF, and checks that its
size on disk agrees with the rate in its index (records = rate x items / 8; the rest is ArrayRecord framing).

    python -m benchmarks.bench_store                      # 2000 crops of 32x32 from the Kodak photos
    python -m benchmarks.bench_store --n 200 --workers 1  # a quick check that the script works
    python -m benchmarks.bench_store --size 96            # 96x96 crops
"""

import argparse
import math
import os
import pathlib
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from benchmarks.machine import cpu_model
from helmjax.data import level_store
from helmjax.paths import data_dir

LEVELS = (("pillow_jpeg", 50), ("webp", 60), ("avif", 50))




def kodak_crops(n: int, size: int) -> np.ndarray:
    """`n` crops of size x size from the 24 Kodak photos, round-robin over the photos, on a grid in each."""
    folder = data_dir() / "kodak"
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("kodim*.png"))]
    if not photos:
        sys.exit(f"no Kodak photos in {folder}; set HELMJAX_DATA_DIR to the folder holding kodak/")
    grids = [[(r, c) for r in range(0, p.shape[0] - size + 1, size) for c in range(0, p.shape[1] - size + 1, size)]
             for p in photos]
    if n > sum(map(len, grids)):
        sys.exit(f"the Kodak photos hold only {sum(map(len, grids))} crops of {size}x{size}; ask for fewer")
    crops, k = [], 0
    while len(crops) < n:
        photo, grid = photos[k % len(photos)], grids[k % len(photos)]
        if k // len(photos) < len(grid):
            r, c = grid[k // len(photos)]
            crops.append(photo[r:r + size, c:c + size])
        k += 1
    return np.stack(crops)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--shard_size", type=int, default=0, help="default: n / (4 x workers), so every core works")
    args = parser.parse_args()
    x = kodak_crops(args.n, args.size)
    y = np.arange(len(x)) % 10
    shard_size = args.shard_size or -(-len(x) // (4 * args.workers))
    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; building with "
          f"{args.workers} processes, {len(x)} crops of {args.size}x{args.size}, {shard_size} per shard")
    print(f"{'level':<16s} {'items/s':>8s} {'bpp':>8s} {'records B':>10s} {'rate x N/8':>10s} {'shards B':>10s} "
          f"{'on disk B':>10s} {'framing':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for quantizer, level in LEVELS:
            folder = pathlib.Path(tmp) / f"{quantizer}-{level}"
            start = time.perf_counter()
            index = level_store.build(folder, x, y, quantizer, level, shard_size=shard_size, workers=args.workers)
            elapsed = time.perf_counter() - start
            from_rate = index["rates"]["file_bits_per_item"] * index["num_records"] / 8
            shards = sum((folder / s["file"]).stat().st_size for s in index["shards"])
            on_disk = sum(p.stat().st_size for p in folder.iterdir())  # shards, .npy, pending entries, index
            # the rate is the records' mean size to float precision; the shards are exactly what the index says
            assert math.isclose(from_rate, index["record_bytes"], rel_tol=1e-12), (from_rate, index["record_bytes"])
            assert shards == index["stored_bytes"], (shards, index["stored_bytes"])
            name, bpp = f"{quantizer} {level}", index["rates"]["bits_per_pixel"]
            print(f"{name:<16s} {len(x) / elapsed:8.0f} {bpp:8.3f} "
                  f"{index['record_bytes']:10d} {from_rate:10.0f} {shards:10d} {on_disk:10d} "
                  f"{(shards - index['record_bytes']) / shards:8.1%}")


if __name__ == "__main__":
    main()
