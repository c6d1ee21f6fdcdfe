"""The one epoch loop: trains (or resumes) a stack of runs, each in its own directory; a lone run is a stack of one.

Per epoch each member's metrics row is written, then its best checkpoint (when validation improved), then its
latest checkpoint, so a kill at any moment leaves a resume point that an uninterrupted run passes through. The
best epoch is chosen on validation accuracy, never on test; test accuracy is measured once, with the
best-validation parameters. Members restart from their latest checkpoints; members whose checkpoints disagree
(one was lost to a kill) are trained as separate stacks, one per resume epoch. A member whose loss becomes NaN or
infinite fails alone: its files stop at its last good epoch and the others go on.
"""

import dataclasses
import math
import pathlib
import threading
import time
from typing import Callable, List, Optional, Sequence

import jax

from helmjax import trace
from helmjax.layout import read_metrics
from helmjax.training import run_files
from helmjax.training.checkpoints import RunCheckpoints
from helmjax.training.trainer import SplitData, Trainer


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
    return {"val_acc": None, "test_acc": None, "best_epoch": None, "epochs": None, "train_seconds": None,
            "num_test": None, "status": "failed", "error": error}


def train_run(run_dir: pathlib.Path, trainer: Trainer, data: SplitData, *, seed: int, epochs: int,
              **callbacks) -> dict:
    """One run: a stack of one (`train_runs`)."""
    return train_runs([run_dir], trainer, [data], [seed], epochs, **callbacks)[0]


def train_runs(run_dirs: Sequence[pathlib.Path], trainer: Trainer, datas: Sequence[SplitData],
               seeds: Sequence[int], epochs: int, *, stop: Optional[StopFlag] = None,
               on_epoch: Optional[Callable[[int, dict], None]] = None,
               on_step: Optional[Callable[[int, int], None]] = None) -> List[dict]:
    """Trains (or resumes) run `run_dirs[m]` with `seeds[m]` on `datas[m]`, all together, to `epochs`.

    Returns one result per member: accuracies, best epoch, timing, or `failed_result(reason)`. `on_epoch(m, row)`
    follows member m's metrics row; `on_step(i, steps)` each step. `epoch_seconds` and `train_seconds` are the
    stack's wall time divided by its members, so they add up to the machine time spent. Raises `StopRequested`
    when `stop` is set, with every member's latest checkpoint complete.
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
        keys = [jax.random.split(jax.random.key(seed)) for seed in seeds]
        restored = [_restore_start(checkpoints[m], trainer.init(datas[m].x_train[:1], init_key))
                    for m, (init_key, _) in enumerate(keys)]
        starts = [start for start, _, _ in restored]
        if len(set(starts)) == 1:
            return _train_stack(run_dirs, checkpoints, trainer, datas, [k for _, k in keys], restored, epochs,
                                stop, on_epoch, on_step)
    finally:
        for c in checkpoints:
            c.close()
    del restored
    results = [None] * members
    for start in sorted(set(starts)):
        group = [m for m in range(members) if starts[m] == start]
        relay = None if on_epoch is None else (lambda k, row, group=group: on_epoch(group[k], row))
        group_results = train_runs([run_dirs[m] for m in group], trainer, [datas[m] for m in group],
                                   [seeds[m] for m in group], epochs, stop=stop, on_epoch=relay, on_step=on_step)
        for m, result in zip(group, group_results):
            results[m] = result
    return results


def _restore_start(checkpoints: RunCheckpoints, fresh_state):
    """(start epoch, state, train seconds so far): the latest checkpoint, or (0, `fresh_state`, 0.0)."""
    restored = checkpoints.restore_latest(fresh_state)
    if restored is None:
        return 0, fresh_state, 0.0
    start_epoch, state, meta = restored
    return start_epoch, state, float(meta.get("train_seconds", 0.0))


def _train_stack(run_dirs, checkpoints, trainer: Trainer, datas, train_keys, restored, epochs, stop, on_epoch,
                 on_step) -> List[dict]:
    """The epoch loop of members that all resume from one epoch."""
    members = len(run_dirs)
    start_epoch = restored[0][0]
    train_seconds = [seconds for _, _, seconds in restored]
    # Shapes and shardings of a member's state, for restoring `best` (the arrays themselves get donated).
    template = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding),
                                      restored[0][1])
    states = trainer.stack_states([state for _, state, _ in restored])
    del restored
    best_val = [run_files.rewind_metrics(d, start_epoch) for d in run_dirs]
    data, data_of_member = trainer.stack_data(datas)
    failures = [None] * members

    for run_dir in run_dirs:
        trace.event(f"train {run_dir.name} from-epoch {start_epoch}")
    step_hook = _stopping_step_hook(stop, on_step)
    for epoch in range(start_epoch + 1, epochs + 1):
        t0 = time.perf_counter()
        states, train_losses, train_accs = trainer.train_epoch(
            states, data, data_of_member, [jax.random.fold_in(k, epoch) for k in train_keys], step_hook)
        evaluations = trainer.evaluate(states, data.x_val, data.y_val, data_of_member)
        seconds = (time.perf_counter() - t0) / members
        steps = trainer.member_steps(states)
        for m, run_dir in enumerate(run_dirs):
            if failures[m] is not None:
                continue
            try:
                check_finite(float(train_losses[m]), epoch)
            except TrainingDiverged as e:
                failures[m] = str(e)
                continue
            val_loss, val_acc, _ = evaluations[m]
            train_seconds[m] += seconds
            row = {"epoch": epoch, "step": int(steps[m]), "train_loss": float(train_losses[m]),
                   "train_acc": float(train_accs[m]), "val_loss": val_loss, "val_acc": val_acc,
                   "epoch_seconds": seconds, "lr": float(trainer.learning_rate(int(steps[m])))}
            best_val[m] = _record_epoch(run_dir, checkpoints[m], trainer.member_state(states, m), row, best_val[m],
                                        train_seconds[m])
            if on_epoch is not None:
                on_epoch(m, row)
        if stop:
            raise StopRequested()
        if all(f is not None for f in failures):
            break
    del states
    return _finish(trainer, run_dirs, checkpoints, template, data, data_of_member, train_seconds, failures, epochs)


def _stopping_step_hook(stop: Optional[StopFlag], on_step: Optional[Callable[[int, int], None]]):
    """Called after each step: raises `StopRequested` once `stop` is set (the epoch is abandoned, the previous
    epoch's checkpoints stay the resume point), else reports progress."""
    def hook(i, n):
        if stop:
            raise StopRequested()
        if on_step is not None:
            on_step(i, n)
    return hook


def _record_epoch(run_dir: pathlib.Path, checkpoints: RunCheckpoints, state, row: dict, best_val: float,
                  train_seconds: float) -> float:
    """Writes an epoch's metrics row, its best checkpoint when validation improved, and its latest checkpoint, in
    that order; returns the best validation accuracy so far."""
    epoch = row["epoch"]
    run_files.append_metrics(run_dir, row)
    meta = {"epoch": epoch, "train_seconds": train_seconds}
    if row["val_acc"] > best_val:
        best_val = row["val_acc"]
        checkpoints.drop_best_from(epoch)  # a stale "future" best from before a kill
        checkpoints.save_best(epoch, state, meta)
    checkpoints.save_latest(epoch, state, meta)
    return best_val


def _finish(trainer: Trainer, run_dirs, checkpoints, template, data: SplitData, data_of_member, train_seconds,
            failures, epochs: int) -> List[dict]:
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
        best = max(history, key=lambda r: (r["val_acc"], -r["epoch"]))  # ties go to the earliest
        restored = checkpoints[m].restore_best(template)
        if restored is None or restored[0] != best["epoch"]:
            raise RuntimeError(f"best checkpoint of {run_dir} is missing; delete the run directory to retrain it")
        bests.append((history, best))
        best_states.append(restored[1])
    good = next((state for state in best_states if state is not None), None)
    if good is None:
        return [failed_result(f) for f in failures]
    # A failed member's slot is filled with a good member's state: evaluated along, never reported.
    tests = trainer.evaluate(trainer.stack_states([good if s is None else s for s in best_states]), data.x_test,
                             data.y_test, data_of_member)
    results = []
    for m, run_dir in enumerate(run_dirs):
        if failures[m] is not None:
            results.append(failed_result(failures[m]))
            continue
        (history, best), (_, test_acc, test_correct) = bests[m], tests[m]
        run_files.write_test_correct(run_dir, test_correct)
        results.append({"val_acc": best["val_acc"], "test_acc": test_acc, "best_epoch": best["epoch"],
                        "epochs": len(history), "train_seconds": train_seconds[m], "num_test": int(len(test_correct)),
                        "final_train_loss": history[-1]["train_loss"]})
    return results
