"""Training throughput (images/s) of the CIFAR-10 architectures with the real jitted step, batch 128.

    python benchmarks/bench_train.py --archs=A,F --steps=30
Prints one line per architecture: images/s after compilation, compile time, parameters, and the achieved
GFLOP/s (XLA's own FLOP count of the compiled step; with --peak_tflops, also the fraction of that peak).
With --torch, also times a PyTorch CPU implementation of the same model and batch in the same run.
"""

import argparse
import time

import jax
import numpy as np

from helmjax import models
from helmjax.train import Trainer, TrainSettings


def helmjax_images_per_second(arch: str, batch: int, steps: int, width: float = 1.0) -> dict:
    model = models.build("image", arch, 10, width=width)
    settings = TrainSettings(batch_size=batch, augment=True)
    trainer = Trainer(model, settings, is_image=True)
    rng = np.random.RandomState(0)
    n = batch * 8
    x = trainer.put(rng.randint(0, 256, (n, 32, 32, 3), np.uint8))
    y = trainer.put(rng.randint(0, 10, n).astype(np.int32))
    state = trainer.init(np.zeros((1, 32, 32, 3), np.uint8), jax.random.key(0))
    order = [rng.randint(0, n, batch) for _ in range(steps)]
    t0 = time.perf_counter()
    state, metrics = trainer.train_step(state, x, y, order[0], jax.random.key(0))
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(1, steps):
        state, metrics = trainer.train_step(state, x, y, order[i], jax.random.key(i))
    jax.block_until_ready((state, metrics))
    elapsed = time.perf_counter() - t0
    cost = trainer.train_step.lower(state, x, y, order[0], jax.random.key(0)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost  # older jax: one dict per device
    flops = float((cost or {}).get("flops", 0.0))
    return {"images_per_s": (steps - 1) * batch / elapsed, "compile_s": compile_s,
            "params": models.param_count(state.params), "gflops_per_s": flops * (steps - 1) / elapsed / 1e9}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archs", default="A,B,C,D,E,F")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--torch", action="store_true", help="also time the PyTorch reference (CPU)")
    parser.add_argument("--peak_tflops", type=float, default=0.0,
                        help="the device's float32 peak (e.g. 67 for an H100 SXM without TF32) to print the fraction")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}, "
          f"batch {args.batch}, {args.steps} steps")
    for arch in args.archs.split(","):
        r = helmjax_images_per_second(arch, args.batch, args.steps, args.width)
        line = (f"arch {arch}: helmjax {r['images_per_s']:8.1f} images/s  (compile {r['compile_s']:.1f} s, "
                f"{r['params']:,} params, {r['gflops_per_s']:.0f} GFLOP/s")
        if args.peak_tflops:
            line += f" = {r['gflops_per_s'] / (args.peak_tflops * 1e3):.1%} of peak"
        line += ")"
        if args.torch:
            from benchmarks.torch_reference import torch_images_per_second
            t = torch_images_per_second(arch, args.batch, args.steps)
            line += f"  torch {t:8.1f} images/s  ratio helmjax/torch {r['images_per_s'] / t:.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
