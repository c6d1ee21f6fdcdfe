"""Wall time of a whole image sweep (cifar_q_sweep by default), projected from pieces measured on this machine.

    python -m benchmarks.bench_sweep                                # cifar_q_sweep: 10 levels x A-F x 3 seeds
    python -m benchmarks.bench_sweep --archs=A,F --set train.epochs=30
    python -m benchmarks.bench_sweep --quick                        # tiny: checks that the script runs

A sweep's time is its quantizing plus, per architecture, ceil(runs / stack) stack groups, each training
`epochs` x (one epoch's steps + a validation pass) and one test pass. Measured here, with the real compiled
steps at the sweep's own settings (batch, stack size and mode, micro-batches) on data of the dataset's shape:
seconds per (stacked) train step and per evaluated image for each architecture, and the quantizer's seconds per
image at each level on real CIFAR-10 images (the lossless subset in $HELMJAX_DATA_DIR; random images without
it). Prints every piece and the projection; loading the dataset and compiling (seconds per program) are left out.
"""

import argparse
import dataclasses
import math
import time
from typing import Dict, Sequence

import jax
import numpy as np

from benchmarks.bench_stacked import stacked_inputs
from helmjax.config import apply_overrides, load_experiment
from helmjax.sweeps.quantized_data import RAW
from helmjax.sweeps.plan import QuantizerPlan, SettingPlan, make_plan
from helmjax.training import performance
from helmjax.training.trainer import Trainer


@dataclasses.dataclass(frozen=True)
class ArchCost:
    """Measured costs of one architecture at the sweep's stack size."""
    step_s: float  # one train step of a whole stack (all its members)
    eval_image_s: float  # one evaluated image of one member


def project_seconds(runs_per_arch: Dict[str, int], costs: Dict[str, ArchCost], stack: int, epochs: int,
                    steps_per_epoch: int, val_size: int, test_size: int, quantize_s: float) -> Dict[str, float]:
    """Seconds per architecture (and "quantize", "total") of a sweep whose runs train `stack` at a time.

    Every run evaluates the validation set each epoch and the test set once; a last, smaller stack group is
    costed as a full one (an upper bound: it runs the same step on fewer members).
    """
    out = {"quantize": quantize_s}
    for arch, runs in runs_per_arch.items():
        cost = costs[arch]
        train = math.ceil(runs / stack) * epochs * steps_per_epoch * cost.step_s
        out[arch] = train + runs * (epochs * val_size + test_size) * cost.eval_image_s
    out["total"] = sum(out.values())
    return out


def measure_arch(setting: SettingPlan, arch: str, stack: int, image_size: int, num_classes: int, steps: int,
                 eval_images: int) -> ArchCost:
    """Seconds per step of a stack of `stack` runs (a lone run is a stack of one) and per evaluated image."""
    settings = setting.train
    trainer = Trainer(setting.model.build(arch, num_classes), settings, is_image=True)
    rng = np.random.RandomState(0)
    n = max(settings.batch_size * 4, eval_images)
    inputs, states, keys = stacked_inputs(trainer, stack, image_size, n, rng, num_classes)
    box = {"states": states}
    del states
    batches = inputs.batches(rng.randint(0, n, (steps + 1, stack, settings.batch_size)))

    def train(i):
        b = next(batches)
        box["states"], metrics = trainer.train_step(box["states"], b.x, b.y, keys, i)
        return metrics

    jax.block_until_ready(train(0))  # compiles
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        metrics = train(i)
    jax.block_until_ready(metrics)
    step_s = (time.perf_counter() - t0) / steps
    trainer.evaluate(box["states"], inputs.evaluation("val"), inputs.data_of_member)  # compiles
    t0 = time.perf_counter()
    trainer.evaluate(box["states"], inputs.evaluation("val"), inputs.data_of_member)
    return ArchCost(step_s, (time.perf_counter() - t0) / (n * stack))


def quantize_seconds_per_image(quantizer: QuantizerPlan, levels: Sequence, sample: np.ndarray) -> Dict:
    """Seconds per image of the sweep's quantizer at each level (raw costs nothing), after one warm-up call."""
    out = {}
    for level in levels:
        if level == RAW:
            out[level] = 0.0
            continue
        quantizer.spec.apply(sample, level, **quantizer.options)  # compiles / warms the codec
        t0 = time.perf_counter()
        quantizer.spec.apply(sample, level, **quantizer.options)
        out[level] = (time.perf_counter() - t0) / len(sample)
    return out


def quantizer_sample(count: int, image_shape: Sequence[int]) -> np.ndarray:
    try:
        from helmjax.data import cifar10
        x = cifar10.load_subset().x_train[:count]
        if tuple(x.shape[1:]) == tuple(image_shape):
            return x
    except Exception as e:  # no data dir: random images (JPEG codes them more slowly than photos)
        print(f"(quantizer timed on random images: {e})")
    return np.random.RandomState(0).randint(0, 256, (count, *image_shape), np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="cifar_q_sweep")
    parser.add_argument("--set", action="append", default=[], help="config override key=value, as run.py")
    parser.add_argument("--archs", default="", help="only these architectures (default: the experiment's grid)")
    parser.add_argument("--train_size", type=int, default=50000, help="training examples before the validation split")
    parser.add_argument("--test_size", type=int, default=10000)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10, help="timed train steps per architecture")
    parser.add_argument("--quantize_sample", type=int, default=500, help="images timed per quality level")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs")
    args = parser.parse_args()
    config = apply_overrides(load_experiment(args.experiment), args.set)
    if args.quick:
        config = apply_overrides(config, ["model.width=0.25", "train.batch_size=16"])
        args.steps, args.quantize_sample, args.archs = 2, 16, args.archs or "A"
    archs = args.archs.split(",") if args.archs else list(config.grid.arch)
    levels, seeds = list(config.grid.level), list(config.grid.seed)
    setting = make_plan(config).settings[0]
    profile = performance.choose(setting.train, jax.default_backend(), jax.device_count())
    stack = profile.stack_size
    val_size = int(round(args.train_size * config.train.val_fraction))
    steps_per_epoch = (args.train_size - val_size) // config.train.batch_size
    if config.train.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.train.max_steps_per_epoch)
    image_shape = (args.image_size, args.image_size, 3)
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()} ({jax.default_backend()}), "
          f"jax {jax.__version__}; {args.experiment}: {len(levels)} levels x {len(archs)} archs x {len(seeds)} seeds, "
          f"{config.train.epochs} epochs of {steps_per_epoch} steps (batch {config.train.batch_size}), "
          f"val {val_size}, test {args.test_size}; stack {stack} ({profile.stack_mode})", flush=True)

    costs = {}
    for arch in archs:
        members = min(stack, len(levels) * len(seeds))
        cost = measure_arch(setting, arch, members, args.image_size, args.num_classes, args.steps,
                            min(1000, args.test_size))
        costs[arch] = cost
        print(f"arch {arch}: {cost.step_s * 1e3:8.1f} ms per step of {members} run(s) = "
              f"{members * config.train.batch_size / cost.step_s:8.1f} training images/s; evaluation "
              f"{1 / cost.eval_image_s:9.1f} images/s", flush=True)
    per_image = quantize_seconds_per_image(setting.quantizer, levels, quantizer_sample(args.quantize_sample, image_shape))
    quantize_s = sum(per_image.values()) * (args.train_size + args.test_size)
    print(f"quantizer {config.quantizer.name}: " + ", ".join(
        f"{level}: {1 / s:.0f} images/s" for level, s in per_image.items() if s) +
        f" -> {quantize_s / 60:.1f} min for all levels", flush=True)

    total = project_seconds({a: len(levels) * len(seeds) for a in archs}, costs, stack, config.train.epochs,
                            steps_per_epoch, val_size, args.test_size, quantize_s)
    print("projected wall time: " + ", ".join(f"{k} {v / 3600:.2f} h" for k, v in total.items() if k != "total")
          + f"; TOTAL {total['total'] / 3600:.2f} h ({total['total'] / 86400:.2f} days)")


if __name__ == "__main__":
    main()
