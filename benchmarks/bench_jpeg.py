"""Throughput of the JAX JPEG codec against Pillow (libjpeg-turbo) encode+decode, in one process.

Prints images/s of: exact forward, soft (cubic) forward, exact forward+grad, Pillow encode+decode, at
32x32 (batch 1024) and 256x256 (batch 64); then the time to quantize a CIFAR-10-sized set (60000x32x32x3,
the real lossless CIFAR subset tiled when available, else noise) at 10 qualities.

    python benchmarks/bench_jpeg.py            # full sizes
    python benchmarks/bench_jpeg.py --quick    # small sizes, to check the script works
"""

import argparse
import io
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, features

from helmjax.paths import data_file
from helmjax.quantizers import jpeg


def _best_of(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls after one warm-up (compilation) call."""
    jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def _pillow_round_trip(images: np.ndarray, quality: int) -> None:
    for image in images:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=quality)
        np.asarray(Image.open(io.BytesIO(buf.getvalue())))


def _sample_images(n: int, size: int) -> np.ndarray:
    """Natural-looking images: crops of the CIFAR subset upscaled, or smooth noise when it is absent."""
    path = data_file("cifar10/cifar10_lossless_subset.npz")
    if path.exists():
        base = np.load(path)["x_train"][:n]
        base = np.resize(base, (n,) + base.shape[1:])
        if size != 32:
            base = np.stack([np.asarray(Image.fromarray(b).resize((size, size), Image.BILINEAR)) for b in base])
        return base
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def bench_sizes(configs, quality: int, repeats: int) -> None:
    print(f"{'size':>9} {'batch':>6} | {'exact fwd':>10} {'soft fwd':>10} {'fwd+grad':>10} {'pillow':>10}  "
          f"(images/s; exact/pillow)")
    for size, batch in configs:
        images = _sample_images(batch, size)
        device_images = jnp.asarray(images)
        float_images = device_images.astype(jnp.float32)
        exact = jax.jit(lambda x: jpeg.compress(x, quality))
        soft = jax.jit(lambda x: jpeg.compress(x, float(quality), mode="cubic"))
        grad = jax.jit(jax.grad(lambda x, q: jnp.mean(jpeg.compress(x, q) ** 2), argnums=(0, 1)))
        q = jnp.float32(quality)
        t_exact = _best_of(lambda: exact(device_images), repeats)
        t_soft = _best_of(lambda: soft(float_images), repeats)
        t_grad = _best_of(lambda: grad(float_images, q), repeats)
        t_pillow = _best_of(lambda: _pillow_round_trip(images, quality), repeats)
        rates = [batch / t for t in (t_exact, t_soft, t_grad, t_pillow)]
        print(f"{size:>4}x{size:<4} {batch:>6} | " + " ".join(f"{r:>10.0f}" for r in rates)
              + f"  ({rates[0] / rates[3]:.2f}x)")


def bench_dataset(n: int, num_qualities: int, chunk: int) -> None:
    images = _sample_images(n, 32)
    qualities = np.linspace(5, 95, num_qualities).astype(np.int32)
    jpeg.quantize_dataset(images[:chunk], qualities, chunk=chunk)  # compile
    start = time.perf_counter()
    out = jpeg.quantize_dataset(images, qualities, chunk=chunk)
    elapsed = time.perf_counter() - start
    print(f"dataset {n}x32x32x3 at {num_qualities} qualities (chunk {chunk}): {elapsed:.1f} s "
          f"({out.shape[0] * out.shape[1] / elapsed:.0f} images/s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: check that the script runs")
    parser.add_argument("--quality", type=int, default=75)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dataset-size", type=int, default=60000)
    parser.add_argument("--num-qualities", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=2048)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device(s)); "
          f"Pillow libjpeg-turbo {features.version('libjpeg_turbo')}")
    if args.quick:
        bench_sizes([(32, 64), (256, 4)], args.quality, repeats=2)
        bench_dataset(1000, 3, 256)
    else:
        bench_sizes([(32, 1024), (256, 64)], args.quality, args.repeats)
        bench_dataset(args.dataset_size, args.num_qualities, args.chunk)


if __name__ == "__main__":
    main()
