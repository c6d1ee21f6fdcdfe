"""The one epoch loop: trains (or resumes) a stack of runs, each in its own directory; a lone run is a stack of one.

Per epoch each member's metrics row is written, then its best checkpoint (when validation improved), then its
latest checkpoint, so a kill at any moment leaves a resume point that an uninterrupted run passes through. With
`train.checkpoint_every_steps`, a checkpoint every that many steps within an epoch too, holding the epoch's metric
sums so far; every checkpoint holds the input pipeline's position, so a resumed run goes on at the next batch and is
bit for bit the uninterrupted one. The best epoch is chosen on validation, never on test (`run_files.best_epoch_key`:
accuracy, then loss on ties); test accuracy is measured once, with the best-validation parameters. Members restart
from their furthest checkpoints; members whose checkpoints disagree (one was lost to a kill) are trained as separate
stacks, one per resume position. A member whose loss becomes NaN or infinite fails alone: its files stop at its last
good epoch and the others go on.
"""

import dataclasses
import itertools
import math
import pathlib
import threading
import time
from typing import Callable, List, Optional, Sequence, Union

import jax
import numpy as np

from helmjax import trace
from helmjax.layout import read_metrics
from helmjax.training import run_files
from helmjax.training.checkpoints import Checkpoint, RunCheckpoints, epoch_end
from helmjax.training.pipeline import Split, SplitData, StackInput, epoch_keys
from helmjax.training.trainer import Trainer


class StopRequested(Exception):
    """SIGTERM/Ctrl-C arrived: training stopped at a clean point; every latest checkpoint is complete."""


@dataclasses.dataclass
class StopFlag:
    """Set from a signal handler; checked between steps."""
    event: threading.Event = dataclasses.field(default_factory=threading.Event)

    def set(self):
        self.event.set()

    def __bool__(self):
        return self.event.is_set()


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run is marked failed with this reason."""


def check_finite(loss: float, epoch: int):
    if not math.isfinite(loss):
        raise TrainingDiverged(f"training loss became {loss} at epoch {epoch}; lower train.lr or check the data")


def failed_result(error: str) -> dict:
    return {"val_acc": None, "test_acc": None, "val_top5_acc": None, "test_top5_acc": None, "best_epoch": None,
            "epochs": None, "train_seconds": None, "num_test": None, "status": "failed", "error": error}


def train_run(run_dir: pathlib.Path, trainer: Trainer, data: Union[Split, SplitData], *, seed: int, epochs: int,
              **callbacks) -> dict:
    """One run: a stack of one (`train_runs`)."""
    return train_runs([run_dir], trainer, [data], [seed], epochs, **callbacks)[0]


def train_runs(run_dirs: Sequence[pathlib.Path], trainer: Trainer, datas: Sequence[Union[Split, SplitData]],
               seeds: Sequence[int], epochs: int, *, stop: Optional[StopFlag] = None,
               on_epoch: Optional[Callable[[int, dict], None]] = None,
               on_step: Optional[Callable[[int, int], None]] = None) -> List[dict]:
    """Trains (or resumes) run `run_dirs[m]` with `seeds[m]` on `datas[m]`, all together, to `epochs`.

    A data is a `pipeline.Split` of sources or `SplitData` (host arrays); a data object given to several members is
    evaluated once for them. Returns one result per member: accuracies, best epoch, timing, or
    `failed_result(reason)`. `on_epoch(m, row)` follows member m's metrics row; `on_step(i, steps)` each step.
    `epoch_seconds` and `train_seconds` are the stack's wall time divided by its members, so they add up to the
    machine time spent. Raises `StopRequested` when `stop` is set, with every member's checkpoints complete.
    """
    members = len(run_dirs)
    if not members or len(datas) != members or len(seeds) != members:
        raise ValueError(f"train_runs needs one data and one seed per run: {members} runs, {len(datas)} datas, "
                         f"{len(seeds)} seeds")
    run_dirs = [pathlib.Path(d) for d in run_dirs]
    if len({d.resolve() for d in run_dirs}) != members:
        raise ValueError("train_runs got the same run directory twice")
    for d in run_dirs:
        d.mkdir(parents=True, exist_ok=True)
    checkpoints = [RunCheckpoints(d) for d in run_dirs]
    try:
        inputs = StackInput(datas, trainer.settings, trainer.mesh)
        if trainer.steps_per_epoch and trainer.steps_per_epoch != inputs.steps_per_epoch:
            raise ValueError(f"the trainer's schedule counts {trainer.steps_per_epoch} steps per epoch, the input has "
                             f"{inputs.steps_per_epoch}")
        keys = [jax.random.split(jax.random.key(seed)) for seed in seeds]
        restored = [_restore_start(checkpoints[m], trainer.init(inputs.sample(m), init_key))
                    for m, (init_key, _) in enumerate(keys)]
        starts = [(c.position["epoch"], c.position["step"]) for c in restored]
        if len(set(starts)) == 1:
            return _train_stack(run_dirs, checkpoints, trainer, inputs, [k for _, k in keys], restored, epochs,
                                stop, on_epoch, on_step)
    finally:
        for c in checkpoints:
            c.close()
    del restored, inputs
    results = [None] * members
    for start in sorted(set(starts)):
        group = [m for m in range(members) if starts[m] == start]
        relay = None if on_epoch is None else (lambda k, row, group=group: on_epoch(group[k], row))
        group_results = train_runs([run_dirs[m] for m in group], trainer, [datas[m] for m in group],
                                   [seeds[m] for m in group], epochs, stop=stop, on_epoch=relay, on_step=on_step)
        for m, result in zip(group, group_results):
            results[m] = result
    return results


def _restore_start(checkpoints: RunCheckpoints, fresh_state) -> Checkpoint:
    """The furthest checkpoint, or a fresh start: `fresh_state` before the first step of epoch 1."""
    restored = checkpoints.restore_latest(fresh_state)
    return Checkpoint(0, fresh_state, {}, epoch_end(0)) if restored is None else restored


def _epoch_sums(metas: Sequence[dict], trainer: Trainer):
    """The metric sums of a resumed epoch's steps so far, as `train_steps` adds them (members stacked), or None at
    an epoch's start."""
    saved = [meta.get("sums") for meta in metas]
    if saved[0] is None:
        return None
    return {name: trainer.put(np.asarray([s[name][1] for s in saved], saved[0][name][0])) for name in saved[0]}


def _sums_meta(sums, m: int) -> dict:
    """Member m's metric sums, exactly, as JSON: {name: [dtype, value]}."""
    return {name: [value.dtype.name, value[m].item()] for name, value in sums.items()}


def _checkpoint_ends(start: int, steps: int, every: int) -> List[int]:
    """The step counts after which an epoch resumed at step `start` stops to checkpoint: every `every` steps of the
    epoch (none when 0), and its end."""
    within = range(every, steps, every) if every else []
    return [k for k in within if k > start] + [steps]


def _train_stack(run_dirs, checkpoints, trainer: Trainer, inputs: StackInput, train_keys,
                 restored: List[Checkpoint], epochs, stop, on_epoch, on_step) -> List[dict]:
    """The epoch loop of members that all resume from one position."""
    members = len(run_dirs)
    position = restored[0].position
    start_epoch = position["epoch"] - 1  # completed
    train_seconds = [float(c.meta.get("train_seconds", 0.0)) for c in restored]
    epoch_base_seconds = float(restored[0].meta.get("epoch_seconds", 0.0))  # of the resumed epoch's steps so far
    sums = _epoch_sums([c.meta for c in restored], trainer)
    # Shapes and shardings of a member's state, for restoring `best` (the arrays themselves get donated).
    template = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding),
                                      restored[0].state)
    states = trainer.stack_states([c.state for c in restored])
    del restored
    bests = [run_files.rewind_metrics(d, start_epoch, trainer.settings.best_epoch_by) for d in run_dirs]
    failures = [None] * members

    for run_dir in run_dirs:
        trace.event(f"train {run_dir.name} from-epoch {start_epoch} step {position['step']}")
    step_hook = _stopping_step_hook(stop, on_step, run_dirs, inputs.steps_per_epoch)
    steps, every = inputs.steps_per_epoch, trainer.settings.checkpoint_every_steps
    batches = inputs.train(train_keys, position)
    try:
        for epoch in range(start_epoch + 1, epochs + 1):
            t0 = time.perf_counter()
            step_keys = [epoch_keys(k, epoch)[1] for k in train_keys]
            for end in _checkpoint_ends(batches.get_state()["step"], steps, every):
                todo = end - batches.get_state()["step"]
                states, sums = trainer.train_steps(states, itertools.islice(batches, todo), step_keys, sums,
                                                   step_hook)
                if end < steps:
                    seconds = (time.perf_counter() - t0) / members
                    _save_mid_epoch(checkpoints, trainer, states, sums, batches.get_state(), failures, steps,
                                    [t + seconds for t in train_seconds], epoch_base_seconds + seconds)
            train_losses, train_accs = trainer.mean_metrics(sums, members)
            sums = None
            evaluations = trainer.evaluate(states, inputs.evaluation("val"), inputs.data_of_member, top5=True)
            seconds = (time.perf_counter() - t0) / members
            member_steps = trainer.member_steps(states)
            for m, run_dir in enumerate(run_dirs):
                if failures[m] is not None:
                    continue
                try:
                    check_finite(float(train_losses[m]), epoch)
                except TrainingDiverged as e:
                    failures[m] = str(e)
                    continue
                val_loss, val_acc, _, val_top5 = evaluations[m]
                train_seconds[m] += seconds
                row = {"epoch": epoch, "step": int(member_steps[m]), "train_loss": float(train_losses[m]),
                       "train_acc": float(train_accs[m]), "val_loss": val_loss, "val_acc": val_acc,
                       "epoch_seconds": epoch_base_seconds + seconds,
                       "lr": float(trainer.learning_rate(int(member_steps[m])))}
                if val_top5 is not None:  # models of more than 5 classes
                    row["val_top5_acc"] = val_top5
                bests[m] = _record_epoch(run_dir, checkpoints[m], trainer.member_state(states, m), row, bests[m],
                                         train_seconds[m], trainer.settings.best_epoch_by)
                if on_epoch is not None:
                    on_epoch(m, row)
            epoch_base_seconds = 0.0
            if stop:
                raise StopRequested()
            if all(f is not None for f in failures):
                break
    finally:
        batches.close()
    del states
    return _finish(trainer, run_dirs, checkpoints, template, inputs, train_seconds, failures, epochs)


def _save_mid_epoch(checkpoints, trainer: Trainer, states, sums, position: dict, failures, steps: int,
                    train_seconds: List[float], epoch_seconds: float):
    """Every good member's checkpoint within an epoch: state, the epoch's sums so far and the next batch's
    position."""
    sums = jax.device_get(sums)
    step_count = (position["epoch"] - 1) * steps + position["step"]
    for m, checkpoint in enumerate(checkpoints):
        if failures[m] is None:
            meta = {"epoch": position["epoch"] - 1, "train_seconds": train_seconds[m], "epoch_seconds": epoch_seconds,
                    "sums": _sums_meta(sums, m)}
            checkpoint.save_mid_epoch(step_count, trainer.member_state(states, m), meta, position)


def _stopping_step_hook(stop: Optional[StopFlag], on_step: Optional[Callable[[int, int], None]], run_dirs,
                        steps: int):
    """Called after each step with its batch: traces the items each member trained on (for the crash harness), then
    raises `StopRequested` once `stop` is set (the rest of the epoch is abandoned, the last checkpoint stays the
    resume point), else reports progress."""
    def hook(batch):
        if trace.enabled():
            for run_dir, rows in zip(run_dirs, batch.rows):
                trace.event(f"batch {run_dir.name} {batch.epoch} {batch.step} {','.join(map(str, rows.tolist()))}")
        if stop:
            raise StopRequested()
        if on_step is not None:
            on_step(batch.step, steps)
    return hook


def _record_epoch(run_dir: pathlib.Path, checkpoints: RunCheckpoints, state, row: dict, best: Optional[dict],
                  train_seconds: float, by: str = "val_acc") -> Optional[dict]:
    """Writes an epoch's metrics row, its best checkpoint when it beats `best` (the best row so far, None when none)
    by `run_files.best_epoch_key` (ranked `by`), and its latest checkpoint, in that order; returns the best row so far."""
    epoch = row["epoch"]
    run_files.append_metrics(run_dir, row)
    meta = {"epoch": epoch, "train_seconds": train_seconds}
    if best is None or run_files.best_epoch_key(row, by) > run_files.best_epoch_key(best, by):
        best = row
        checkpoints.drop_best_from(epoch)  # a stale "future" best from before a kill
        checkpoints.save_best(epoch, state, meta)
    checkpoints.save_latest(epoch, state, meta)
    checkpoints.drop_mid_epoch()  # behind the checkpoint just written
    return best


def _finish(trainer: Trainer, run_dirs, checkpoints, template, inputs: StackInput, train_seconds, failures,
            epochs: int) -> List[dict]:
    """Results of every member: test accuracy with its best-validation parameters, evaluated as one stack."""
    bests, best_states = [], []
    for m, run_dir in enumerate(run_dirs):
        if failures[m] is not None:
            bests.append(None)
            best_states.append(None)
            continue
        history = read_metrics(run_dir)
        if not history:
            raise ValueError(f"run {run_dir.name} has no epochs (train.epochs={epochs})")
        best = run_files.best_epoch_row(history, trainer.settings.best_epoch_by)
        restored = checkpoints[m].restore_best(template)
        if restored is None or restored.epoch != best["epoch"]:
            raise RuntimeError(f"best checkpoint of {run_dir} is missing; delete the run directory to retrain it")
        bests.append((history, best))
        best_states.append(restored.state)
    good = next((state for state in best_states if state is not None), None)
    if good is None:
        return [failed_result(f) for f in failures]
    # A failed member's slot is filled with a good member's state: evaluated along, never reported.
    tests = trainer.evaluate(trainer.stack_states([good if s is None else s for s in best_states]),
                             inputs.evaluation("test"), inputs.data_of_member, top5=True)
    results = []
    for m, run_dir in enumerate(run_dirs):
        if failures[m] is not None:
            results.append(failed_result(failures[m]))
            continue
        (history, best), (_, test_acc, test_correct, test_top5) = bests[m], tests[m]
        run_files.write_test_correct(run_dir, test_correct)
        results.append({"val_acc": best["val_acc"], "test_acc": test_acc, "best_epoch": best["epoch"],
                        # top-5: None for 5 classes or fewer (and for validation, epochs from before it was kept)
                        "val_top5_acc": best.get("val_top5_acc"), "test_top5_acc": test_top5,
                        "epochs": len(history), "train_seconds": train_seconds[m], "num_test": int(len(test_correct)),
                        "final_train_loss": history[-1]["train_loss"]})
    return results
