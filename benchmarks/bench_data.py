"""Prints CIFAR-10 load times: the 60k JPEG tree (cold decode and cached), the subset, and the tfds path.

    python benchmarks/bench_data.py             # the whole 60k tree, tfds prepared from the subset and from the tree
    python benchmarks/bench_data.py --quick     # 50 files per class and split, subset-only tfds: checks the script works
"""

import argparse
import logging
import pathlib
import sys
import tarfile
import tempfile
import time

from helmjax.data import cifar10, tfds_cifar10
from helmjax.data.image_folder import load_image_folder
from helmjax.data.items import chunks
from helmjax.paths import data_dir


def timed(label: str, fn):
    start = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - start
    extra = f" ({len(out.x_train)} train / {len(out.x_test)} test)" if hasattr(out, "x_train") else ""
    print(f"{label:<44s} {elapsed:7.2f} s{extra}", flush=True)
    return out


def first_files(source: pathlib.Path, dest: pathlib.Path, per_folder: int) -> pathlib.Path:
    """The first `per_folder` files of each class folder of each split, as a smaller tar.gz (for --quick)."""
    counts = {}
    with tarfile.open(source, "r|gz") as tar, tarfile.open(dest, "w:gz") as out:
        for member in tar:
            folder = member.name.rsplit("/", 1)[0]
            if member.isfile() and counts.get(folder, 0) < per_folder:
                counts[folder] = counts.get(folder, 0) + 1
                out.addfile(member, tar.extractfile(member))
    return dest


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data_dir", default=None, help="folder holding cifar10/ (default $HELMJAX_DATA_DIR)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    shared = pathlib.Path(args.data_dir) if args.data_dir else data_dir()
    tree = shared / cifar10.JPEG_TREE_FILE
    if not tree.is_file():
        sys.exit(f"{tree} not found; set HELMJAX_DATA_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        if args.quick:
            tree = first_files(tree, tmp / "cifar10_jpeg75_head.tar.gz", 50)
        timed("subset npz", lambda: cifar10.load_subset(shared))
        timed("JPEG tree, cold (unpack + list + check)", lambda: load_image_folder(tree, cache_dir=tmp / "cache"))
        ds = timed("JPEG tree, cached (list)", lambda: load_image_folder(tree, cache_dir=tmp / "cache"))
        start = time.perf_counter()
        count = sum(len(chunk) for x in (ds.x_train, ds.x_test) for chunk in chunks(x, 1024))
        print(f"{'JPEG tree, every image read on demand':<44s} {time.perf_counter() - start:7.2f} s ({count} images)",
              flush=True)
        timed("JPEG tree, no cache", lambda: load_image_folder(tree))
        sources = ["subset"] if args.quick else ["subset", "jpeg"]
        for source in sources:
            tfds_dir = tmp / f"tfds_{source}"
            timed(f"tfds prepare from {source}", lambda: tfds_cifar10.prepare(tfds_dir, source, shared))
            timed(f"tfds read back ({source})", lambda: cifar10.load_tfds(tfds_dir))


if __name__ == "__main__":
    main()
