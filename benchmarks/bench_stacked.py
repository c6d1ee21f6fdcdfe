"""Stacked runs: how many runs per second K runs stacked into one program train, against K runs one by one.

    python -m benchmarks.bench_stacked                   # A at width 0.25 and 1, stacks of 1, 2, 4
    python -m benchmarks.bench_stacked --quick           # tiny: checks the script works
    python -m benchmarks.bench_stacked --widths=1 --stacks=1,2,4,8 --modes=vmap

A lone run is a stack of one, so "sequential" is K stacks of one (one compiled program, reused as a sweep reuses
it) run back to back for `--sequential_steps` steps each, and "stacked" one stack of K for `--steps` steps, in each
stack mode ("unroll": one copy of the lone step per member; "vmap": one batched step). Each member trains on its
own data, after one compiling step. Rates are in run-steps per second (a member's step counts once; divide by the
steps of an epoch for runs' epochs per second) and images per second. The fastest stack size on a machine is the
default of `helmjax.training.performance.default_stack_size`.
"""

import argparse
import dataclasses
import time

import jax
import numpy as np

from helmjax import models
from helmjax.training import performance
from helmjax.training.pipeline import SplitData, StackInput
from helmjax.training.recipe import TrainSettings
from helmjax.training.trainer import Trainer


def stacked_inputs(trainer: Trainer, members: int, size: int, n: int, rng: np.random.RandomState,
                   num_classes: int = 10):
    """(inputs, states, step_key_data) of `members` runs, each on its own `n` random images (its train, validation
    and test sets alike), read through the input pipeline as a sweep reads them."""
    datas = []
    for _ in range(members):
        x = rng.randint(0, 256, (n, size, size, 3), np.uint8)
        y = rng.randint(0, num_classes, n).astype(np.int32)
        datas.append(SplitData(x, y, x, y, x, y))
    inputs = StackInput(datas, trainer.settings, trainer.mesh)
    sample = np.zeros((1, size, size, 3), np.uint8)
    states = trainer.stack_states([trainer.init(sample, jax.random.key(m)) for m in range(members)])
    key_data = trainer.put(np.stack([np.asarray(jax.random.key_data(jax.random.key(m))) for m in range(members)]))
    return inputs, states, key_data


def run_steps_per_second(trainer: Trainer, members: int, steps: int, size: int, n: int, seed: int = 0) -> dict:
    """Member-steps per second of one stack of `members` over `steps` timed steps (host batches included), and its
    compile seconds."""
    rng = np.random.RandomState(seed)
    batch = trainer.settings.batch_size
    inputs, states, key_data = stacked_inputs(trainer, members, size, n, rng)
    batches = inputs.batches(rng.randint(0, n, (steps + 1, members, batch)))
    t0 = time.perf_counter()
    first = next(batches)
    states, metrics = trainer.train_step(states, first.x, first.y, key_data, first.step)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for b in batches:
        states, metrics = trainer.train_step(states, b.x, b.y, key_data, b.step)
    jax.block_until_ready((states, metrics))
    return {"run_steps_per_s": members * steps / (time.perf_counter() - t0), "compile_s": compile_s}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="A")
    parser.add_argument("--widths", default="0.25,1")
    parser.add_argument("--stacks", default="1,2,4")
    parser.add_argument("--modes", default="unroll,vmap", help="stack modes to time (performance.STACK_MODES)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each stack")
    parser.add_argument("--sequential_steps", type=int, default=10, help="timed steps of each lone run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs")
    args = parser.parse_args()
    if args.quick:
        args.widths, args.stacks, args.batch, args.image_size = "0.25", "1,2", 16, 16
        args.steps, args.sequential_steps = 3, 3
    platform = jax.default_backend()
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()} ({platform}), jax {jax.__version__}; "
          f"arch {args.arch}, batch {args.batch}, {args.image_size}x{args.image_size} images; default stack "
          f"{performance.default_stack_size(platform)} ({performance.default_stack_mode(platform)})")
    n = args.batch * 4
    for width in (float(w) for w in args.widths.split(",")):
        model = models.build("image", args.arch, 10, width=width)
        settings = TrainSettings(batch_size=args.batch, augment=True)
        trainers = {mode: Trainer(model, dataclasses.replace(settings, stack_mode=mode), is_image=True)
                    for mode in args.modes.split(",")}
        lone = next(iter(trainers.values()))
        for members in (int(k) for k in args.stacks.split(",")):
            elapsed = sum(args.sequential_steps / run_steps_per_second(lone, 1, args.sequential_steps,
                                                                       args.image_size, n, seed=m)["run_steps_per_s"]
                          for m in range(members))
            sequential = members * args.sequential_steps / elapsed
            print(f"{args.arch} width {width:g}, {members} runs: one by one {sequential:7.2f} run-steps/s "
                  f"({sequential * args.batch:7.1f} images/s)", flush=True)
            for mode, trainer in trainers.items():
                r = run_steps_per_second(trainer, members, args.steps, args.image_size, n)
                print(f"    stacked ({mode:6s}) {r['run_steps_per_s']:7.2f} run-steps/s "
                      f"({r['run_steps_per_s'] * args.batch:7.1f} images/s)  speed-up "
                      f"{r['run_steps_per_s'] / sequential:5.2f}x  (compile {r['compile_s']:5.1f} s)", flush=True)


if __name__ == "__main__":
    main()
