"""The training parts of `benchmarks.gpu_check`: images/s of the real train step per architecture, one evaluation
pass, and run-steps/s of stacks of several sizes (what `training.performance.default_stack_size` should be).

They time the same compiled steps a sweep runs (`helmjax.training.trainer.Trainer`), through the benchmarks that
measure them on CPU (`bench_train`, `bench_stacked`), so a GPU figure and a CPU figure mean the same thing.
"""

import dataclasses
import time

import jax
import numpy as np

from benchmarks.bench_stacked import run_steps_per_second, stacked_inputs
from benchmarks.bench_train import helmjax_images_per_second
from helmjax import models
from helmjax.training import performance
from helmjax.training.recipe import TrainSettings
from helmjax.training.trainer import Trainer


def _evaluation_images_per_second(arch: str, batch: int, n: int) -> dict:
    """One evaluation pass over `n` images (the best-epoch test pass of a run), after a compiling pass."""
    trainer = Trainer(models.build("image", arch, 10), TrainSettings(batch_size=batch, eval_batch_size=1000),
                      is_image=True)
    inputs, states, _ = stacked_inputs(trainer, 1, 32, n, np.random.RandomState(0))
    jax.block_until_ready(trainer.evaluate(states, inputs.evaluation("test"), inputs.data_of_member))
    start = time.perf_counter()
    jax.block_until_ready(trainer.evaluate(states, inputs.evaluation("test"), inputs.data_of_member))
    return {"images": n, "images_per_s": n / (time.perf_counter() - start)}


def part_train(sizes: dict) -> dict:
    out = {}
    for arch in sizes["archs"]:
        out[arch] = helmjax_images_per_second(arch, sizes["batch"], sizes["steps"])
    out["evaluation_A"] = _evaluation_images_per_second("A", sizes["batch"], 10 * sizes["batch"])
    return out


def part_stack(sizes: dict) -> dict:
    """Run-steps/s of one stack per size and mode; the fastest per lone run says the default stack size."""
    platform = jax.default_backend()
    model = models.build("image", sizes["arch"], 10)
    settings = TrainSettings(batch_size=sizes["batch"], augment=True)
    out = {"platform": platform, "current_default": {"size": performance.default_stack_size(platform),
                                                     "mode": performance.default_stack_mode(platform)}}
    for mode in performance.STACK_MODES:
        trainer = Trainer(model, dataclasses.replace(settings, stack_mode=mode), is_image=True)
        for members in sizes["members"]:
            if mode == "unroll" and members > 8:
                continue  # one copy of the step per member: compile time grows with the stack
            result = run_steps_per_second(trainer, members, sizes["steps"], 32, sizes["batch"] * 4)
            out[f"{mode}_{members}"] = dict(result, images_per_s=result["run_steps_per_s"] * sizes["batch"])
    timed = {k: v["run_steps_per_s"] for k, v in out.items() if isinstance(v, dict) and "run_steps_per_s" in v}
    out["fastest"] = max(timed, key=timed.get)
    return out
