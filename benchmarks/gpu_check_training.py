"""The training parts of `benchmarks.gpu_check`: images/s of the real train step per architecture, one evaluation
pass, run-steps/s of stacks of several sizes (what `training.performance.default_stack_size` should be), and the
64x64 ResNet trained through the streamed level-store pipeline (what an ImageNet-64 sweep's step costs).

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


def part_imagenet(sizes: dict) -> dict:
    """Images/s of the 64x64 ResNet (`models.imagenet`, 1000 classes) trained from a level store read batch by batch
    (`train.in_memory_bytes=0`, as an ImageNet-scale sweep reads its levels): random images stored as PNG, decoded
    in `sizes["workers"]` grain processes (0: in this one). The first step (compilation) is timed apart."""
    import pathlib
    import tempfile
    from helmjax.data import level_store
    from helmjax.training.pipeline import Split, StackInput, StoreSource
    rng = np.random.RandomState(0)
    n, size, batch, steps = sizes["items"], sizes["size"], sizes["batch"], sizes["steps"]
    x = rng.randint(0, 256, (n, size, size, 3)).astype(np.uint8)
    y = rng.randint(0, 1000, n)
    settings = TrainSettings(batch_size=batch, in_memory_bytes=0, data_workers=sizes["workers"])
    trainer = Trainer(models.build("imagenet", "resnet64", 1000, width=sizes["width"]), settings, is_image=True)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        level_store.build(pathlib.Path(tmp) / "raw", x, y, None, "raw", workers=max(1, sizes["workers"]))
        store_seconds = time.perf_counter() - start
        source = StoreSource(level_store.LevelStore(pathlib.Path(tmp) / "raw"))
        inputs = StackInput([Split(source, source, source)], settings, trainer.mesh)
        states = trainer.stack_states([trainer.init(inputs.sample(0), jax.random.key(0))])
        key_data = trainer.put(np.asarray(jax.random.key_data(jax.random.key(0)))[None])
        batches = inputs.batches(rng.randint(0, n, (1 + steps, 1, batch)))
        start = time.perf_counter()
        first = next(batches)
        states, metrics = trainer.train_step(states, first.x, first.y, key_data, first.step)
        jax.block_until_ready((states, metrics))
        compile_seconds = time.perf_counter() - start
        start = time.perf_counter()
        for b in batches:
            states, metrics = trainer.train_step(states, b.x, b.y, key_data, b.step)
        jax.block_until_ready((states, metrics))
        seconds = time.perf_counter() - start
    return {"arch": "resnet64", "width": sizes["width"], "size": size, "batch": batch, "steps": steps,
            "data_workers": sizes["workers"], "params": models.param_count(trainer.member_state(states, 0).params),
            "images_per_s": steps * batch / seconds, "compile_seconds": compile_seconds,
            "store_items_per_s": n / store_seconds, "loss": float(np.asarray(metrics["loss_sum"]).sum())}
