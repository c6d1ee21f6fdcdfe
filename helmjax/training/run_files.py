"""Writing a run directory's files (their names and readers are `helmjax.layout`'s).

`config.json` (the run, its config and the performance settings it trained with), `metrics.jsonl` (one row per
epoch, appended), `test_correct.npy` (per test example, with the best-validation parameters) and, once finished,
`result.json` (the done marker, written last); checkpoints are `checkpoints`'. Only the primary process writes
these (orbax checkpoints excepted: every process takes part in those). `best_epoch_key` is the one rule that picks
a run's best epoch from its metrics rows.
"""

import json
import math
import pathlib
from typing import Optional, Sequence

import numpy as np

from helmjax import atomic_io, trace
from helmjax.distributed import is_primary
from helmjax.layout import METRICS_FILE, RESULT_FILE, RUN_CONFIG_FILE, TEST_CORRECT_FILE, read_metrics


def best_epoch_key(row: dict, by: str = "val_acc") -> tuple:
    """A metrics row's rank as the run's best epoch (the greatest wins). `by="val_acc"` (`train.best_epoch_by`, the
    default): the highest validation accuracy; on a tie (a small validation split saturates: many epochs at 100%)
    the lower validation loss; then the earliest epoch. `by="val_loss"`: the lowest validation loss, then the
    highest accuracy, then the earliest epoch (keeps improving after the accuracy saturates: the ladders' choice). A
    non-finite loss ranks below every finite one."""
    loss = row["val_loss"]
    loss_rank = -loss if math.isfinite(loss) else -math.inf
    if by == "val_loss":
        return loss_rank, row["val_acc"], -row["epoch"]
    return row["val_acc"], loss_rank, -row["epoch"]


def best_epoch_row(history: Sequence[dict], by: str = "val_acc") -> Optional[dict]:
    """The best epoch's metrics row by `best_epoch_key` (None when there are no rows)."""
    return max(history, key=lambda row: best_epoch_key(row, by), default=None)


def rewind_metrics(run_dir: pathlib.Path, start_epoch: int, by: str = "val_acc") -> Optional[dict]:
    """Drops rows past the resume point (those epochs are trained again); returns the best epoch's row so far (None
    when none)."""
    history = [r for r in read_metrics(run_dir) if r["epoch"] <= start_epoch]
    if is_primary():
        atomic_io.write_text(pathlib.Path(run_dir) / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in history))
    return best_epoch_row(history, by)


def append_metrics(run_dir: pathlib.Path, row: dict):
    if not is_primary():
        return
    trace.event(f"metrics {pathlib.Path(run_dir).name} {row['epoch']}")
    with open(pathlib.Path(run_dir) / METRICS_FILE, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


def write_test_correct(run_dir: pathlib.Path, correct: np.ndarray):
    if is_primary():
        atomic_io.write_npy(pathlib.Path(run_dir) / TEST_CORRECT_FILE, correct)


def write_config(run_dir: pathlib.Path, record: dict):
    if is_primary():
        atomic_io.write_json(pathlib.Path(run_dir) / RUN_CONFIG_FILE, record)


def write_result(run_dir: pathlib.Path, row: dict):
    """The run's `result.json`: its done (or failed) marker, written last."""
    if is_primary():
        atomic_io.write_json(pathlib.Path(run_dir) / RESULT_FILE, row)
