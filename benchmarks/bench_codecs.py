"""Encode+decode speed of the imagecodecs quantizers (WebP, AVIF, JPEG XL, JPEG 2000) against Pillow JPEG.

Each codec runs through its registered quantizer (`registry.apply`: one thread, one image at a time, encode,
decode and payload parsing, as a sweep quantizes a data set) at three typical levels, beside the `pillow_jpeg`
quantizer at quality 75 measured in the same run. Sizes: 32x32 (the first 512 images of the lossless CIFAR-10
subset) and 256x256 (the centre crop of each Kodak image). Also printed: the mean file bits per pixel and the CPU.

The machine may be shared: every repetition times all candidates back to back (interleaved), and the ratio to
Pillow JPEG is the median of the per-repetition ratios.

    python benchmarks/bench_codecs.py            # 512 CIFAR images, 24 Kodak crops, 3 repetitions
    python benchmarks/bench_codecs.py --quick    # a few images: checks the script works
"""

import argparse
import pathlib
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # run as a script: the repo's packages

from benchmarks.machine import cpu_model  # noqa: E402
from helmjax.paths import data_file  # noqa: E402
from helmjax.quantizers import codecs, pillow_jpeg, registry  # noqa: E402

LEVELS = {"webp": (50, 75, 90), "avif": (40, 60, 80), "jpegxl": (4.0, 2.0, 1.0), "jpeg2000": (30.0, 35.0, 40.0)}
REFERENCE = ("pillow_jpeg", 75)




def cifar(n: int) -> np.ndarray:
    path = data_file("cifar10/cifar10_lossless_subset.npz")
    if path.exists():
        return np.load(path)["x_train"][:n]
    print(f"(no {path}: smooth random 32x32 images instead)")
    return smooth_noise(n, 32)


def kodak_crops(n: int, size: int = 256) -> np.ndarray:
    paths = sorted(data_file("kodak").glob("kodim*.png"))[:n]
    if not paths:
        print(f"(no Kodak images under {data_file('kodak')}: smooth random {size}x{size} images instead)")
        return smooth_noise(n, size)
    crops = []
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
        crops.append(image[top:top + size, left:left + size])
    return np.stack(crops)


def smooth_noise(n: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (n, size // 8, size // 8, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(s).resize((size, size), Image.BICUBIC)) for s in small])


def interleaved(candidates: dict, repeats: int):
    """({name: the warm-up call's result}, {name: [seconds per repetition]}): each repetition runs every
    candidate back to back, so load from other processes hits them alike."""
    results = {name: fn() for name, fn in candidates.items()}
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return results, times


def bench(label: str, images: np.ndarray, repeats: int):
    pixels = images.shape[1] * images.shape[2]
    runs = [REFERENCE] + [(name, level) for name in codecs.CODECS for level in LEVELS[name]]
    candidates = {run: (lambda run=run: registry.apply(run[0], images, run[1])) for run in runs}
    results, times = interleaved(candidates, repeats)
    bpp = {run: results[run].bits_per_item.mean() / pixels for run in runs}
    print(f"\n{label}: {len(images)} images {images.shape[1]}x{images.shape[2]}x{images.shape[3]}, {repeats} "
          "repetitions (median images/s; ratio = median of per-repetition ratios to Pillow JPEG q75)")
    print("| codec | level | file bpp | images/s | vs Pillow JPEG q75 |")
    print("|---|---|---|---|---|")
    for run in runs:
        spec = registry.get(run[0])
        speed = len(images) / np.median(times[run])
        ratio = float(np.median(np.array(times[REFERENCE]) / np.array(times[run])))
        print(f"| {run[0]} | {spec.level_name} {registry.level_text(run[1])} | {bpp[run]:.2f} | {speed:.0f} | "
              f"{ratio:.2f}x |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few images, one repetition")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cifar", type=int, default=512, help="32x32 images")
    parser.add_argument("--kodak", type=int, default=24, help="256x256 Kodak crops (at most 24)")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    print(f"CPU: {cpu_model()}")
    print(f"{pillow_jpeg.LIBRARY}")
    for name in codecs.CODECS:
        print(f"{name}: {registry.get(name).version}")
    start = time.perf_counter()
    bench("CIFAR-10 lossless subset", cifar(16 if args.quick else args.cifar), repeats)
    bench("Kodak centre crops", kodak_crops(2 if args.quick else args.kodak), repeats)
    print(f"\n{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
