"""One training run in its own directory: resume from the latest checkpoint, log metrics, keep the best.

The directory holds `config.json`, `metrics.jsonl` (one line per epoch), orbax checkpoints (`ckpt/latest`,
`ckpt/best`), `test_correct.npy` and, once finished, `result.json` (the done marker). The best epoch is chosen on
validation accuracy, never on test; test accuracy is measured once, with the best-validation parameters.
"""

import dataclasses
import json
import pathlib
import threading
import time
from typing import Callable, Optional

import jax
import numpy as np

from helmjax import atomic_io, trace
from helmjax.checkpoints import RunCheckpoints
from helmjax.distributed import is_primary
from helmjax.train import Trainer, check_finite

RESULT_FILE = "result.json"
METRICS_FILE = "metrics.jsonl"


class StopRequested(Exception):
    """SIGTERM/Ctrl-C arrived: the run stopped at a clean point; its latest checkpoint is complete."""


@dataclasses.dataclass
class StopFlag:
    """Set from a signal handler; checked between steps."""
    event: threading.Event = dataclasses.field(default_factory=threading.Event)

    def set(self):
        self.event.set()

    def __bool__(self):
        return self.event.is_set()


@dataclasses.dataclass(frozen=True)
class SplitData:
    """Device arrays of one run: train (without the validation part), validation and test."""
    x_train: jax.Array
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    x_test: jax.Array
    y_test: jax.Array


def read_metrics(run_dir: pathlib.Path) -> list:
    """Epoch rows of `metrics.jsonl`; a torn last line (a kill mid-write) is ignored."""
    path = pathlib.Path(run_dir) / METRICS_FILE
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def read_result(run_dir: pathlib.Path) -> Optional[dict]:
    path = pathlib.Path(run_dir) / RESULT_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # never happens with atomic writes; treat as not done


def stopping_step_hook(stop: Optional[StopFlag], on_step: Optional[Callable[[int, int], None]]):
    """Called after each step: raises `StopRequested` once `stop` is set (the epoch is abandoned, the previous
    epoch's checkpoint stays the resume point), else reports progress."""
    def hook(i, n):
        if stop:
            raise StopRequested()
        if on_step is not None:
            on_step(i, n)
    return hook


def rewind_metrics(run_dir: pathlib.Path, start_epoch: int) -> float:
    """Drops metric rows past the resume point (those epochs will be trained again); returns the best
    validation accuracy so far (-1 when none)."""
    history = [r for r in read_metrics(run_dir) if r["epoch"] <= start_epoch]
    if is_primary():
        atomic_io.write_text(pathlib.Path(run_dir) / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in history))
    return max((r["val_acc"] for r in history), default=-1.0)


def append_metrics(run_dir: pathlib.Path, row: dict):
    trace.event(f"metrics {pathlib.Path(run_dir).name} {row['epoch']}")
    with open(pathlib.Path(run_dir) / METRICS_FILE, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


def restore_start(checkpoints: RunCheckpoints, fresh_state):
    """(start epoch, state, train seconds so far): the latest checkpoint, or (0, `fresh_state`, 0.0)."""
    restored = checkpoints.restore_latest(fresh_state)
    if restored is None:
        return 0, fresh_state, 0.0
    start_epoch, state, meta = restored
    return start_epoch, state, float(meta.get("train_seconds", 0.0))


def record_epoch(run_dir: pathlib.Path, checkpoints: RunCheckpoints, state, row: dict, best_val: float,
                 train_seconds: float) -> float:
    """Writes an epoch's metrics row, its best checkpoint when validation improved, and its latest checkpoint,
    in that order; returns the best validation accuracy so far."""
    epoch = row["epoch"]
    if is_primary():
        append_metrics(run_dir, row)
    meta = {"epoch": epoch, "train_seconds": train_seconds}
    if row["val_acc"] > best_val:
        best_val = row["val_acc"]
        drop_steps_from(checkpoints.best, epoch)  # stale "future" best from before a kill
        checkpoints.save_best(epoch, state, meta)
    checkpoints.save_latest(epoch, state, meta)
    return best_val


def best_row(run_dir: pathlib.Path, epochs: int):
    """(metrics history, the row of the best-validation epoch; ties go to the earliest)."""
    history = read_metrics(run_dir)
    if not history:
        raise ValueError(f"run {pathlib.Path(run_dir).name} has no epochs (train.epochs={epochs})")
    return history, max(history, key=lambda r: (r["val_acc"], -r["epoch"]))


def restore_best_state(checkpoints: RunCheckpoints, template, run_dir: pathlib.Path, best_epoch: int):
    restored = checkpoints.restore_best(template)
    if restored is None or restored[0] != best_epoch:
        raise RuntimeError(f"best checkpoint of {run_dir} is missing; delete the run directory to retrain it")
    return restored[1]


def run_result(run_dir: pathlib.Path, history: list, best: dict, test_acc: float, test_correct: np.ndarray,
               train_seconds: float) -> dict:
    """A finished run's result fields; writes its per-example test correctness."""
    if is_primary():
        atomic_io.write_npy(pathlib.Path(run_dir) / "test_correct.npy", test_correct)
    return {"val_acc": best["val_acc"], "test_acc": test_acc, "best_epoch": best["epoch"],
            "epochs": len(history), "train_seconds": train_seconds, "num_test": int(len(test_correct)),
            "final_train_loss": history[-1]["train_loss"]}


def train_run(run_dir: pathlib.Path, trainer: Trainer, data: SplitData, *, seed: int, epochs: int,
              stop: Optional[StopFlag] = None, on_epoch: Optional[Callable[[dict], None]] = None,
              on_step: Optional[Callable[[int, int], None]] = None) -> dict:
    """Trains (or resumes) one run to `epochs`; returns its result fields (accuracies, best epoch, timing).

    Raises `StopRequested` when `stop` is set, after leaving the latest complete checkpoint in place, and
    `TrainingDiverged` on a NaN/inf loss.
    """
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = RunCheckpoints(run_dir)
    try:
        init_rng, train_rng = jax.random.split(jax.random.key(seed))
        start_epoch, state, train_seconds = restore_start(
            checkpoints, trainer.init(np.asarray(data.x_train[:1]), init_rng))
        best_val = rewind_metrics(run_dir, start_epoch)

        trace.event(f"train {run_dir.name} from-epoch {start_epoch}")
        step_hook = stopping_step_hook(stop, on_step)
        for epoch in range(start_epoch + 1, epochs + 1):
            t0 = time.perf_counter()

            state, train_loss, train_acc = trainer.train_epoch(state, data.x_train, data.y_train,
                                                               jax.random.fold_in(train_rng, epoch), step_hook)
            check_finite(train_loss, epoch)
            val_loss, val_acc, _ = trainer.evaluate(state, data.x_val, data.y_val)
            seconds = time.perf_counter() - t0
            train_seconds += seconds
            row = {"epoch": epoch, "step": int(state.step), "train_loss": train_loss, "train_acc": train_acc,
                   "val_loss": val_loss, "val_acc": val_acc, "epoch_seconds": seconds,
                   "lr": float(trainer.learning_rate(int(state.step)))}
            best_val = record_epoch(run_dir, checkpoints, state, row, best_val, train_seconds)
            if on_epoch is not None:
                on_epoch(row)
            if stop:
                raise StopRequested()

        history, best = best_row(run_dir, epochs)
        best_state = restore_best_state(checkpoints, state, run_dir, best["epoch"])
        _, test_acc, test_correct = trainer.evaluate(best_state, data.x_test, data.y_test)
        return run_result(run_dir, history, best, test_acc, test_correct, train_seconds)
    finally:
        checkpoints.close()


def drop_steps_from(manager, epoch: int):
    manager.reload()
    for step in manager.all_steps():
        if step >= epoch:
            manager.delete(step)


def failed_result(error: str) -> dict:
    return {"val_acc": None, "test_acc": None, "best_epoch": None, "epochs": None, "train_seconds": None,
            "num_test": None, "status": "failed", "error": error}
