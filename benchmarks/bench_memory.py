"""Peak memory and speed of a sweep against the size of its data set: image folders of 2k, 8k, 32k 96x96 crops of
the Kodak photos (10 classes: photo index mod 10), each through `run.py --experiment=image_folder_q_sweep` with raw
+ one JPEG level for one epoch, in a fresh process whose peak RSS (`os.wait4`'s ru_maxrss) is read when it exits.

Prints per size: peak RSS, its growth per extra image against the previous size, wall time, and training images/s
(from the runs' own train_seconds). Run-to-run noise of the peak is about 50 MB: `--repeats 2` runs each size twice.

    python benchmarks/bench_memory.py [--sizes 2000,8000,32000] [--repeats 2] [--steps 30]
                                      [--set train.in_memory_bytes=0]
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import cpu_model  # noqa: E402
from helmjax.paths import data_dir  # noqa: E402

SIZE = 96
CLASSES = 10
BATCH = 64  # image_folder_q_sweep's train.batch_size




def write_folder(root: pathlib.Path, n: int, seed: int = 0):
    """`n` PNG crops at seeded random places of the 24 photos, photo k's crops in class folder k mod 10."""
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((data_dir() / "kodak").glob("kodim*.png"))]
    if not photos:
        sys.exit(f"no Kodak photos under {data_dir() / 'kodak'}; set HELMJAX_DATA_DIR")
    rng = np.random.RandomState(seed)
    for c in range(CLASSES):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        k = i % len(photos)
        photo = photos[k]
        r, c = rng.randint(0, photo.shape[0] - SIZE + 1), rng.randint(0, photo.shape[1] - SIZE + 1)
        Image.fromarray(photo[r:r + SIZE, c:c + SIZE]).save(root / f"c{k % CLASSES}" / f"{i:06d}.png",
                                                            compress_level=1)


def sweep(folder: pathlib.Path, workdir: pathlib.Path, sets, steps: int = 0) -> dict:
    """One sweep in a child process: its peak RSS (bytes), wall time and the runs' training images/s; `steps` > 0
    caps the training steps of the epoch (everything else still reads the whole set)."""
    batch = int(next((s.split("=", 1)[1] for s in sets if s.startswith("train.batch_size=")), BATCH))
    command = [sys.executable, "run.py", "--experiment=image_folder_q_sweep", f"--set=data.root={folder}",
               "--set=grid.level=raw,50", "--set=train.epochs=1", f"--set=train.max_steps_per_epoch={steps}",
               *[f"--set={s}" for s in sets],
               f"--workdir={workdir}", "--noprogress"]
    t0 = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    if status:
        sys.exit(f"the sweep failed ({status}):\n{out[-3000:]}")
    rows = [json.loads(line) for line in (workdir / "image_folder_q_sweep" / "results.jsonl").read_text().splitlines()]
    per_epoch = lambda r: (min(r["n_train"] // batch, steps) if steps else r["n_train"] // batch) * batch
    images = sum(per_epoch(r) * r["epochs"] for r in rows)
    seconds = sum(r["train_seconds"] for r in rows)
    return {"peak": usage.ru_maxrss * 1024, "wall": wall, "images_per_s": images / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,8000,32000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=0, help="cap the training steps of the epoch (0: all); "
                        "listing, checking, level stores and evaluation still cover the whole set")
    parser.add_argument("--set", action="append", default=[], help="more config overrides, e.g. "
                        "train.in_memory_bytes=0 (stream every level)")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; {SIZE}x{SIZE} crops, raw + JPEG q=50, 1 epoch of "
          f"image_folder_q_sweep; training steps: {args.steps or 'all'}; overrides: {args.set or 'none'}")
    previous = None
    for n in map(int, args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = pathlib.Path(tmp) / "images"
            write_folder(folder, n)
            results = [sweep(folder, pathlib.Path(tmp) / f"work{r}", args.set, args.steps)
                       for r in range(args.repeats)]
        peak = statistics.median(r["peak"] for r in results)
        growth = "" if previous is None else \
            f", +{(peak - previous[1]) / (n - previous[0]) / 1e3:.1f} kB per extra image"
        print(f"{n} images: peak RSS {peak / 1e9:.2f} GB (runs: "
              + ", ".join(f"{r['peak'] / 1e9:.2f}" for r in results) + f"){growth}; wall "
              + ", ".join(f"{r['wall']:.0f}" for r in results) + " s; training "
              + ", ".join(f"{r['images_per_s']:.0f}" for r in results) + " images/s", flush=True)
        previous = (n, peak)


if __name__ == "__main__":
    main()
