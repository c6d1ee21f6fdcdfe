"""Throughput of the JAX JPEG codec against Pillow (libjpeg-turbo) encode+decode, in one process.

Prints images/s of: exact forward (called eagerly, as quantize_dataset does, and inside a user's jit),
soft (cubic) forward, exact forward+grad, Pillow encode+decode, at 32x32 (batch 1024) and 256x256
(batch 64); then the time to quantize a CIFAR-10-sized set (60000x32x32x3, the real lossless CIFAR
subset tiled when available, else noise) at 10 qualities. With --stages, the time of each stage of the
exact pipeline at 256x256.

The machine may be shared: every repetition times all candidates back to back (interleaved), and the
ratio to Pillow is the median of the per-repetition ratios.

    python benchmarks/bench_jpeg.py            # full sizes
    python benchmarks/bench_jpeg.py --quick    # small sizes, to check the script works
    python benchmarks/bench_jpeg.py --stages   # also a stage-by-stage profile
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
from helmjax.quantizers.jpeg import pipeline


def _interleaved(candidates: dict, repeats: int) -> dict:
    """Wall times {name: [seconds per repetition]}: one warm-up (compilation) call each, then every
    repetition runs all candidates back to back, so load from other processes hits them alike."""
    for fn in candidates.values():
        jax.block_until_ready(fn())
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return times


def _median_ratio(times: dict, name: str, reference: str) -> float:
    """Median over repetitions of (reference time / name time): the speed of `name` relative to it."""
    return float(np.median(np.array(times[reference]) / np.array(times[name])))


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
    names = ("exact", "exact in jit", "soft", "fwd+grad", "pillow")
    print(f"{'size':>9} {'batch':>6} | " + " ".join(f"{n:>12}" for n in names)
          + "  (median images/s; exact/pillow and exact-in-jit/pillow: median ratios)")
    for size, batch in configs:
        images = _sample_images(batch, size)
        device_images = jnp.asarray(images)
        float_images = device_images.astype(jnp.float32)
        exact_in_jit = jax.jit(lambda x: jpeg.compress(x, quality))
        soft = jax.jit(lambda x: jpeg.compress(x, float(quality), mode="cubic"))
        grad = jax.jit(jax.grad(lambda x, q: jnp.mean(jpeg.compress(x, q) ** 2), argnums=(0, 1)))
        q = jnp.float32(quality)
        times = _interleaved({
            "exact": lambda: jpeg.compress(device_images, quality),
            "exact in jit": lambda: exact_in_jit(device_images),
            "soft": lambda: soft(float_images),
            "fwd+grad": lambda: grad(float_images, q),
            "pillow": lambda: _pillow_round_trip(images, quality),
        }, repeats)
        rates = [batch / np.median(times[n]) for n in names]
        print(f"{size:>4}x{size:<4} {batch:>6} | " + " ".join(f"{r:>12.0f}" for r in rates)
              + f"  ({_median_ratio(times, 'exact', 'pillow'):.2f}x, "
              f"{_median_ratio(times, 'exact in jit', 'pillow'):.2f}x)")


def bench_stages(size: int, batch: int, quality: int, repeats: int, subsampling: str = "4:2:0") -> None:
    """Milliseconds of each jitted stage of the eager exact pipeline (the stages `compress` runs)."""
    images = jnp.asarray(_sample_images(batch, size))
    qualities = np.full((batch,), quality, np.int32)
    luma, chroma = jnp.asarray(jpeg.LUMA_TABLE), jnp.asarray(jpeg.CHROMA_TABLE)
    stages = pipeline.STAGED
    groups = pipeline.groups(3, subsampling)
    colour = stages.colour(images)
    planes = [stages.group_plane(colour, indices=tuple(ix), fx=fx, fy=fy) for ix, (fx, fy) in groups]
    blocks = [stages.flat_blocks(p) for p in planes]
    coefs = [stages.fdct(b) for b in blocks]
    tables = stages.tables(qualities, luma, chroma, channels=3)
    group_tables = [pipeline.group_table(tables, indices) for indices, _ in groups]
    dequantized = [stages.dequantize(c, t) for c, t in zip(coefs, group_tables)]
    samples = [stages.idct(d) for d in dequantized]
    sizes = [(-(-size // fy), -(-size // fx)) for _, (fx, fy) in groups]
    comps = [stages.crop_blocks(s, rows=r, cols=c) for s, (r, c) in zip(samples, sizes)]
    fx, fy = groups[-1][1]
    upsampled = comps[:-1] + [stages.upsample(comps[-1], fx=fx, fy=fy, height=size, width=size)]
    candidates = {"colour": lambda: stages.colour(images)}
    for i, (indices, (fx, fy)) in enumerate(groups):
        name = {(0,): "Y", (1, 2): "CbCr", (0, 1, 2): "YCbCr"}[tuple(indices)]
        candidates[f"downsample + pad {name}"] = (lambda i=i, ix=tuple(indices), fx=fx, fy=fy:
                                                  stages.group_plane(colour, indices=ix, fx=fx, fy=fy))
        candidates[f"to blocks {name}"] = lambda i=i: stages.flat_blocks(planes[i])
        candidates[f"forward DCT {name}"] = lambda i=i: stages.fdct(blocks[i])
        candidates[f"quantize/dequantize {name}"] = lambda i=i: stages.dequantize(coefs[i], group_tables[i])
        candidates[f"inverse DCT {name}"] = lambda i=i: stages.idct(dequantized[i])
        candidates[f"from blocks {name}"] = (lambda i=i: stages.crop_blocks(samples[i], rows=sizes[i][0],
                                                                           cols=sizes[i][1]))
    if (fx, fy) != (1, 1):
        candidates["upsample CbCr"] = lambda: stages.upsample(comps[-1], fx=fx, fy=fy, height=size, width=size)
    candidates["colour back"] = lambda: stages.merge(upsampled, channels=3, subsampling=subsampling)
    candidates["whole compress"] = lambda: jpeg.compress(images, quality, subsampling=subsampling)
    candidates["pillow"] = lambda: _pillow_round_trip(np.asarray(images), quality)
    times = _interleaved(candidates, repeats)
    print(f"stages at {size}x{size}, batch {batch}, {subsampling} (median ms):")
    for name, values in times.items():
        print(f"  {name:<36} {1e3 * np.median(values):8.1f}")


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
    parser.add_argument("--stages", action="store_true", help="also time each stage of the exact pipeline")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device(s)); "
          f"Pillow libjpeg-turbo {features.version('libjpeg_turbo')}")
    if args.quick:
        bench_sizes([(32, 64), (256, 4)], args.quality, repeats=2)
        if args.stages:
            bench_stages(256, 4, args.quality, repeats=2)
        bench_dataset(1000, 3, 256)
    else:
        bench_sizes([(32, 1024), (256, 64)], args.quality, args.repeats)
        if args.stages:
            bench_stages(256, 64, args.quality, args.repeats)
        bench_dataset(args.dataset_size, args.num_qualities, args.chunk)


if __name__ == "__main__":
    main()
