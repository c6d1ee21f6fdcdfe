"""Stacked sweeps: training images/s (summed over members) of K runs stacked into one program vs K runs one by one.

    python benchmarks/bench_stacked.py                   # A at width 0.25 and 1, stacks of 1, 4, 10
    python benchmarks/bench_stacked.py --quick           # tiny: checks the script works
    python benchmarks/bench_stacked.py --widths=1 --stacks=1,2,4 --steps=20

Sequential runs reuse one compiled `Trainer` (as a sweep does), so K of them run at the lone step rate; the
script times K lone runs back to back all the same (`--sequential_steps` steps each) and the stack for `--steps`
steps, each member on its own data, after one compiling step, in each stack mode ("vmap": members in
parallel, "unroll": one copy of the lone step per member inside one program). Prints the device, then per
(width, K) the sequential rate and each mode's rate and speed-up.
"""

import argparse
import time

import jax
import numpy as np

from helmjax import models
from helmjax.stacked import StackedTrainer, default_stack_mode, default_stack_size
from helmjax.train import Trainer, TrainSettings


def random_data(trainer: Trainer, rng: np.random.RandomState, n: int, size: int, num_classes: int = 10):
    x = rng.randint(0, 256, (n, size, size, 3), np.uint8)
    y = rng.randint(0, num_classes, n).astype(np.int32)
    return trainer.put(x), trainer.put(y)


def sequential_images_per_second(trainer: Trainer, runs: int, steps: int, size: int, n: int) -> float:
    """K lone runs one after the other, each on its own data and seed, with the compiled step reused."""
    rng = np.random.RandomState(0)
    batch = trainer.settings.batch_size
    elapsed = 0.0
    for run in range(runs):
        x, y = random_data(trainer, rng, n, size)
        state = trainer.init(np.zeros((1, size, size, 3), np.uint8), jax.random.key(run))
        order = [trainer.shard_batch(rng.randint(0, n, batch)) for _ in range(steps + 1)]
        state, metrics = trainer.train_step(state, x, y, order[0], jax.random.key(0))  # compiles on run 0
        jax.block_until_ready(metrics)
        t0 = time.perf_counter()
        for i in range(1, steps + 1):
            state, metrics = trainer.train_step(state, x, y, order[i], jax.random.key(i))
        jax.block_until_ready((state, metrics))
        elapsed += time.perf_counter() - t0
    return runs * steps * batch / elapsed


def stacked_inputs(stacked: StackedTrainer, members: int, size: int, n: int, rng: np.random.RandomState,
                   num_classes: int = 10):
    """(data_x, data_y, data_of_member, states, step_key_data) of `members` runs, each on its own random data."""
    trainer = stacked.trainer
    xs, ys = zip(*(random_data(trainer, rng, n, size, num_classes) for _ in range(members)))
    data_x, data_y = stacked.stack_arrays(xs), stacked.stack_arrays(ys)
    del xs, ys
    data_of_member = trainer.put(np.arange(members, dtype=np.int32))
    sample = np.zeros((1, size, size, 3), np.uint8)
    states = stacked.stack_states([trainer.init(sample, jax.random.key(m)) for m in range(members)])
    key_data = trainer.put(np.stack([np.asarray(jax.random.key_data(jax.random.key(m))) for m in range(members)]))
    return data_x, data_y, data_of_member, states, key_data


def stacked_images_per_second(stacked: StackedTrainer, members: int, steps: int, size: int, n: int) -> dict:
    trainer = stacked.trainer
    rng = np.random.RandomState(1)
    batch = trainer.settings.batch_size
    data_x, data_y, data_of_member, states, key_data = stacked_inputs(stacked, members, size, n, rng)
    order = [stacked.put_members(rng.randint(0, n, (members, batch))) for _ in range(steps + 1)]
    t0 = time.perf_counter()
    states, metrics = stacked.train_step(states, data_x, data_y, data_of_member, order[0], key_data, 0)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        states, metrics = stacked.train_step(states, data_x, data_y, data_of_member, order[i], key_data, i)
    jax.block_until_ready((states, metrics))
    return {"images_per_s": members * steps * batch / (time.perf_counter() - t0), "compile_s": compile_s}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="A")
    parser.add_argument("--widths", default="0.25,1")
    parser.add_argument("--stacks", default="1,4,10")
    parser.add_argument("--modes", default="vmap,unroll", help="stack modes to time (helmjax.stacked.STACK_MODES)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each stack")
    parser.add_argument("--sequential_steps", type=int, default=10, help="timed steps of each sequential run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs")
    args = parser.parse_args()
    if args.quick:
        args.widths, args.stacks, args.batch, args.image_size = "0.25", "1,2", 16, 16
        args.steps, args.sequential_steps = 3, 3
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()} ({jax.default_backend()}), "
          f"jax {jax.__version__}; arch {args.arch}, batch {args.batch}, {args.image_size}x{args.image_size} "
          f"images; default_stack_size() = {default_stack_size()}, "
          f"default_stack_mode() = {default_stack_mode()}")
    n = args.batch * 4
    for width in (float(w) for w in args.widths.split(",")):
        settings = TrainSettings(batch_size=args.batch, augment=True)
        trainer = Trainer(models.build("image", args.arch, 10, width=width), settings, is_image=True)
        for members in (int(k) for k in args.stacks.split(",")):
            seq = sequential_images_per_second(trainer, members, args.sequential_steps, args.image_size, n)
            print(f"{args.arch} width {width:g}, {members:2d} runs: sequential {seq:8.1f} images/s", flush=True)
            for mode in args.modes.split(","):
                r = stacked_images_per_second(StackedTrainer(trainer, mode), members, args.steps, args.image_size, n)
                print(f"    stacked ({mode:4s}) {r['images_per_s']:8.1f} images/s  speed-up "
                      f"{r['images_per_s'] / seq:5.2f}x  (compile {r['compile_s']:5.1f} s)", flush=True)


if __name__ == "__main__":
    main()
