"""Training throughput (images/s) of the CIFAR-10 architectures with the real jitted step, batch 128.

    python -m benchmarks.bench_train --archs=A,F --steps=30
Prints one line per architecture: images/s after compilation, compile time, parameters, and the achieved
GFLOP/s (XLA's own FLOP count of the compiled step; with --peak_tflops, also the fraction of that peak).
With --torch, also times a PyTorch CPU implementation of the same model and batch in the same process,
interleaved: --rounds rounds of --steps helmjax steps then --steps torch steps (the order alternating between
rounds), so a drift in the machine's speed hits both alike. It prints the median rate of each and the median
and range of the per-round ratios.
"""

import argparse
import statistics
import time

import jax
import numpy as np

from benchmarks.bench_stacked import stacked_inputs
from helmjax import models
from helmjax.training.recipe import TrainSettings
from helmjax.training.trainer import Trainer


def make_helmjax_steps(arch: str, batch: int, width: float = 1.0):
    """(run, info): run(k) trains k steps of the real jitted step of a lone run (a stack of one, as a sweep runs
    it) and returns the seconds they took; info holds the compile time, parameter count and XLA's FLOP count of
    one step."""
    trainer = Trainer(models.build("image", arch, 10, width=width), TrainSettings(batch_size=batch, augment=True),
                      is_image=True)
    rng = np.random.RandomState(0)
    n = batch * 8
    inputs, states, key_data = stacked_inputs(trainer, 1, 32, n, rng)
    box = {"states": states, "step": 0}

    def step(states, i):
        b = next(inputs.batches(rng.randint(0, n, (1, 1, batch))))  # a host batch, through the input pipeline
        return trainer.train_step(states, b.x, b.y, key_data, i)

    t0 = time.perf_counter()
    box["states"], metrics = step(box["states"], 0)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    b = next(inputs.batches(np.zeros((1, 1, batch), np.int32)))
    cost = trainer.train_step.lower(box["states"], b.x, b.y, key_data, 0).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost  # older jax: one dict per device
    info = {"compile_s": compile_s, "params": models.param_count(box["states"][0].params),
            "flops": float((cost or {}).get("flops", 0.0))}

    def run(k: int) -> float:
        t0 = time.perf_counter()
        for _ in range(k):
            box["step"] += 1
            box["states"], metrics = step(box["states"], box["step"])
        jax.block_until_ready((box["states"], metrics))
        return time.perf_counter() - t0

    return run, info


def helmjax_images_per_second(arch: str, batch: int, steps: int, width: float = 1.0) -> dict:
    run, info = make_helmjax_steps(arch, batch, width)
    elapsed = run(steps)
    return {"images_per_s": steps * batch / elapsed, "compile_s": info["compile_s"], "params": info["params"],
            "gflops_per_s": info["flops"] * steps / elapsed / 1e9}


def interleaved_against_torch(arch: str, batch: int, steps: int, rounds: int) -> dict:
    """Median helmjax and torch images/s and the per-round ratios, from alternating timed rounds."""
    from benchmarks.torch_reference import make_torch_step

    run, info = make_helmjax_steps(arch, batch)
    torch_step = make_torch_step(arch, batch)

    def run_torch(k: int) -> float:
        t0 = time.perf_counter()
        for _ in range(k):
            torch_step()
        return time.perf_counter() - t0

    ours, theirs = [], []
    for r in range(rounds):
        pair = (run, run_torch) if r % 2 == 0 else (run_torch, run)
        first, second = (batch * steps / f(steps) for f in pair)
        ours.append(first if r % 2 == 0 else second)
        theirs.append(second if r % 2 == 0 else first)
    ratios = [a / b for a, b in zip(ours, theirs)]
    return {"helmjax": statistics.median(ours), "torch": statistics.median(theirs),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "gflops_per_s": info["flops"] * statistics.median(ours) / batch / 1e9, **info}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="A,B,C,D,E,F")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="steps timed (per round with --torch)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds with --torch")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--torch", action="store_true", help="also time the PyTorch reference (CPU), interleaved")
    parser.add_argument("--peak_tflops", type=float, default=0.0,
                        help="the device's float32 peak (e.g. 67 for an H100 SXM without TF32) to print the fraction")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}, "
          f"batch {args.batch}, {args.steps} steps" + (f" x {args.rounds} interleaved rounds" if args.torch else ""))
    for arch in args.archs.split(","):
        if args.torch:
            r = interleaved_against_torch(arch, args.batch, args.steps, args.rounds)
            print(f"arch {arch}: helmjax {r['helmjax']:7.1f} images/s  torch {r['torch']:7.1f} images/s  "
                  f"ratio helmjax/torch {r['ratio']:.2f} (rounds {r['ratio_min']:.2f}-{r['ratio_max']:.2f}; "
                  f"{r['params']:,} params, {r['gflops_per_s']:.0f} GFLOP/s)", flush=True)
            continue
        r = helmjax_images_per_second(arch, args.batch, args.steps, args.width)
        line = (f"arch {arch}: helmjax {r['images_per_s']:8.1f} images/s  (compile {r['compile_s']:.1f} s, "
                f"{r['params']:,} params, {r['gflops_per_s']:.0f} GFLOP/s")
        if args.peak_tflops:
            line += f" = {r['gflops_per_s'] / (args.peak_tflops * 1e3):.1%} of peak"
        print(line + ")", flush=True)


if __name__ == "__main__":
    main()
