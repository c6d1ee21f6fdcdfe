"""Training throughput (images/s) of the large-scale networks (`helmjax.models.imagenet`) at their input sizes.

    python -m benchmarks.bench_models                          # all four, batch 32
    python -m benchmarks.bench_models --archs=resnet64 --steps=10
The real jitted step of a lone run (forward and backward, optimizer update, the input pipeline's host batches and
augmentation; the trainer's performance profile, "cpu" on a CPU), 1000 classes, width 1: one compiling step,
`--warm` more untimed, then the timed ones (`--steps`, or each architecture's own default, few for ResNet-50 so
that each finishes in about 3 minutes on 2 cores). Prints the machine first, then per architecture its images/s,
seconds per step, compile time and parameter count.
"""

import argparse
import time

import jax
import numpy as np

from benchmarks.bench_stacked import stacked_inputs
from benchmarks.machine import cpu_model
from helmjax import models
from helmjax.models import imagenet
from helmjax.training.recipe import TrainSettings
from helmjax.training.trainer import Trainer

# Timed steps per architecture when --steps is 0: about a minute of timing each on a 2-core CPU.
DEFAULT_STEPS = {"alexnet": 10, "caffenet": 10, "resnet50": 3, "resnet64": 5}


def images_per_second(arch: str, batch: int, warm: int, steps: int, width: float = 1.0) -> dict:
    size = imagenet.INPUT_SIZES[arch]
    trainer = Trainer(models.build("imagenet", arch, 1000, width=width), TrainSettings(batch_size=batch),
                      is_image=True)
    rng = np.random.RandomState(0)
    n = 2 * batch
    inputs, states, key_data = stacked_inputs(trainer, 1, size, n, rng, num_classes=1000)
    batches = inputs.batches(rng.randint(0, n, (1 + warm + steps, 1, batch)))

    def step(states):
        b = next(batches)
        states, metrics = trainer.train_step(states, b.x, b.y, key_data, b.step)
        jax.block_until_ready((states, metrics))
        return states

    t0 = time.perf_counter()
    states = step(states)
    compile_s = time.perf_counter() - t0
    for _ in range(warm):
        states = step(states)
    t0 = time.perf_counter()
    for _ in range(steps):
        states = step(states)
    elapsed = time.perf_counter() - t0
    return {"size": size, "images_per_s": steps * batch / elapsed, "step_s": elapsed / steps,
            "compile_s": compile_s, "params": models.param_count(trainer.member_state(states, 0).params),
            "profile": trainer.profile.name,
            "slices": trainer.performance_record(np.zeros((1, size, size, 3), np.uint8))["micro_batches"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default=",".join(imagenet.ARCHS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warm", type=int, default=2, help="untimed steps after the compiling one")
    parser.add_argument("--steps", type=int, default=0, help="timed steps (0: each architecture's default)")
    parser.add_argument("--width", type=float, default=1.0)
    args = parser.parse_args()
    print(f"cpu: {cpu_model()}; device: {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}, "
          f"batch {args.batch}, width {args.width}, {args.warm} warm steps", flush=True)
    for arch in args.archs.split(","):
        steps = args.steps or DEFAULT_STEPS[arch]
        r = images_per_second(arch, args.batch, args.warm, steps, args.width)
        print(f"{arch:9s} {r['size']}x{r['size']}: {r['images_per_s']:7.2f} images/s  ({r['step_s']:.2f} s/step over "
              f"{steps} steps, compile {r['compile_s']:.1f} s, {r['params']:,} params, profile {r['profile']}, "
              f"{r['slices']} gradient slices)", flush=True)


if __name__ == "__main__":
    main()
