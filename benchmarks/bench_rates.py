"""Prints the true rates of JPEG levels (file, payload, header bits per pixel) next to lossless references.

    python benchmarks/bench_rates.py            # camera demo data + CIFAR-10 lossless subset, FSDD audio
    python benchmarks/bench_rates.py --quick    # 300 images per dataset: checks the script works

Every mean comes with a 95% percentile-bootstrap interval over images (2000 resamples). Also printed: the
JPEG XL effort scan that chose `lossless.JPEGXL_EFFORT`, lossless encode speed, and the CPU.
"""

import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # run as a script: the repo's packages

from benchmarks.machine import cpu_model  # noqa: E402
from helmjax.data import catalog  # noqa: E402
from helmjax.quantizers import lossless, mp3, pillow_jpeg  # noqa: E402

QUALITIES = (1, 5, 10, 20, 30, 50, 75, 90, 100)
RESAMPLES = 2000




def mean_ci(values: np.ndarray, seed: int = 0) -> str:
    """'mean [lo, hi]' with a 95% percentile bootstrap over items."""
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = np.concatenate([values[rng.integers(0, len(values), (200, len(values)))].mean(axis=1)
                            for _ in range(RESAMPLES // 200)])
    lo, hi = np.percentile(means, [2.5, 97.5])
    return f"{values.mean():7.3f} [{lo:7.3f}, {hi:7.3f}]"


def jpeg_table(x: np.ndarray):
    pixels = x.shape[1] * x.shape[2]
    print(f"{'q':>4} | {'file bpp':^26} | {'payload bpp':^26} | {'header bpp':^26}")
    for q in QUALITIES:
        file, payload = (b.astype(np.float64) / pixels for b in pillow_jpeg.coded_bits(x, q, "4:2:0"))
        print(f"{q:>4} | {mean_ci(file)} | {mean_ci(payload)} | {mean_ci(file - payload)}", flush=True)


def lossless_table(x: np.ndarray, threads: int):
    pixels = x.shape[1] * x.shape[2]
    print(f"{'lossless codec':<16} | {'bpp':^26} | images/s (1 thread, {threads} threads) | settings")
    for name in lossless.IMAGE_CODECS:
        codec = lossless.image_codec(name)
        t0 = time.perf_counter()
        bits = lossless.item_bits(x, codec, workers=1)
        one = len(x) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        again = lossless.item_bits(x, codec, workers=threads)
        many = len(x) / (time.perf_counter() - t0)
        assert np.array_equal(bits, again)
        print(f"{name:<16} | {mean_ci(bits / pixels)} | {one:8.0f} {many:8.0f} | {codec.description}", flush=True)


def effort_scan(x: np.ndarray):
    """Size and speed of JPEG XL lossless at every effort (one thread), to justify the chosen one."""
    import imagecodecs
    pixels = x.shape[1] * x.shape[2]
    print(f"JPEG XL lossless effort scan on {len(x)} images ({imagecodecs.jpegxl_version()}, one thread):")
    print(f"{'effort':>6} | {'bpp':>7} | {'images/s':>8}")
    imagecodecs.jpegxl_encode(x[0], lossless=True, effort=1, numthreads=1)  # load the library first
    for effort in range(1, 10):
        best = float("inf")
        for _ in range(3):  # best of three: the machine is shared
            t0 = time.perf_counter()
            sizes = [len(imagecodecs.jpegxl_encode(i, lossless=True, effort=effort, numthreads=1)) for i in x]
            best = min(best, time.perf_counter() - t0)
        speed = len(x) / best
        print(f"{effort:>6} | {8 * np.mean(sizes) / pixels:7.3f} | {speed:8.0f}"
              + ("   <- chosen" if effort == lossless.JPEGXL_EFFORT else ""), flush=True)


def audio_table(limit):
    ds = catalog.load("fsdd")
    x = np.concatenate([ds.x_train, ds.x_test])[:limit]
    seconds = x.shape[1] / ds.sample_rate
    codec = lossless.dataset_codec(ds.sample_rate)
    t0 = time.perf_counter()
    flac = lossless.item_bits(x, codec)
    speed = len(x) / (time.perf_counter() - t0)
    print(f"\nFSDD ({len(x)} clips of {seconds:g} s at {ds.sample_rate} Hz), kbit/s:")
    print(f"{'level':<10} | {'file':^26} | {'payload (MP3 main data)':^26}")
    print(f"{'PCM 16':<10} | {16.0 * ds.sample_rate / 1000:7.3f}{'':19} |")
    print(f"{'FLAC':<10} | {mean_ci(flac / seconds / 1000)} | ({speed:.0f} clips/s; {codec.description})")
    for kbps in (8, 16, 32, 64):
        files = [mp3.encode(c, kbps, sample_rate=ds.sample_rate) for c in x]
        file = np.array([8.0 * len(f) for f in files]) / seconds / 1000
        payload = np.array([8.0 * mp3.payload_bytes(f) for f in files]) / seconds / 1000
        print(f"{'MP3 ' + str(kbps):<10} | {mean_ci(file)} | {mean_ci(payload)}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 images per dataset, 300 clips")
    parser.add_argument("--threads", type=int, default=2, help="threads for the lossless speed column")
    args = parser.parse_args()
    limit = 300 if args.quick else None
    print(f"CPU: {cpu_model()}")
    sets = {"camera (demo_q_sweep: seed 0, 3000 train + 2000 test)":
            catalog.load("camera", seed=0, n_train=3000, n_test=2000),
            "CIFAR-10 lossless subset (5170 train + 1017 test)": catalog.load("cifar10_subset")}
    for label, ds in sets.items():
        x = np.concatenate([ds.x_train, ds.x_test])[:limit]
        print(f"\n{label}: {len(x)} images {x.shape[1]}x{x.shape[2]}x{x.shape[3]}, JPEG 4:2:0 (Pillow "
              f"{pillow_jpeg.Image.__version__}); bits per pixel, mean [95% bootstrap interval over images]")
        jpeg_table(x)
        lossless_table(x, args.threads)
    cifar = catalog.load("cifar10_subset").x_train[:300 if args.quick else 2000]
    print()
    effort_scan(cifar)
    audio_table(limit)


if __name__ == "__main__":
    main()
