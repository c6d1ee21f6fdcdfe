"""Reliability: kills at random moments lose nothing, corrupt files are detected, failures are contained."""

import errno
import json
import pathlib
import shutil

import pytest

from helmjax import atomic_io
from helmjax.testing import crash_harness
from helmjax.sweeps import sweep
from helmjax.errors import UserError
from tests.test_sweep import tiny_config

QUIET = dict(progress=False, log=lambda *_: None)
HARNESS_RUNS = 6  # crash_harness's sweep: 3 levels x 1 arch x 2 seeds


@pytest.mark.slow
def test_bounded_kill_harness_finds_nothing_lost():
    # The time bound is far above what a kill takes (it comes within 0.8 x the reference sweep's time), so the
    # harness must stop on its kill count, never on the clock: a harness that stops early fails the counts below.
    # (One kill keeps CI's time; a kill after a resave is tested on its own below, a kill mid-epoch too, and
    # `python -m helmjax.testing.crash_harness --cycles=40` is the long run, BENCHMARKS.md.)
    summary = crash_harness.harness(cycles=1, seconds=600, seed=7, log=lambda *_: None)
    assert summary["problems"] == []
    assert summary["kills"] == 1 and sum(summary["phases"].values()) == 1  # the kill made and classified
    # Each round (a fresh sweep killed until it finished) was checked run by run against the reference.
    assert summary["rounds"] >= 1 and summary["runs_checked"] == HARNESS_RUNS * summary["rounds"]
    assert summary["sigterm_exit"] == 130


@pytest.mark.slow
def test_a_kill_in_the_middle_of_an_epoch_resumes_at_the_next_batch():
    """SIGKILL a few steps after a checkpoint inside epoch 2 (36 steps, a checkpoint after every 9th): the resumed
    run goes on at the batch after that checkpoint, trains the lost steps again and ends bit-identical to the
    uninterrupted run; epoch 2 pieced together from both processes' logged batches is the uninterrupted run's
    epoch 2, batch for batch, every item once."""
    summary = crash_harness.mid_epoch(log=lambda *_: None)
    assert summary["problems"] == []
    assert summary["epoch_steps"] == 36 and summary["resume_step"] in (9, 18, 27)
    assert summary["lost_steps"] and min(summary["lost_steps"]) == summary["resume_step"]  # the kill lost steps
    assert summary["items"] == summary["distinct_items"] == 36 * 32


@pytest.mark.slow
def test_unreadable_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    c = tiny_config("grid.level=raw", "train.epochs=3")
    straight = sweep.run_sweep(c, tmp_path / "a", **QUIET).rows[0]
    c2 = tiny_config("grid.level=raw", "train.epochs=2")
    sweep.run_sweep(c2, tmp_path / "b", **QUIET)
    run_dir = tmp_path / "b" / c.name / "runs" / "raw-A-s0"
    (run_dir / "result.json").unlink()  # as if killed after epoch 2's checkpoint, before finishing
    for f in (run_dir / "ckpt" / "latest" / "2").rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])  # torn files
    resumed = sweep.run_sweep(c, tmp_path / "b", **QUIET).rows[0]
    for key in ("val_acc", "test_acc", "best_epoch", "epochs"):
        assert resumed[key] == straight[key], key
    # epoch 2's checkpoint was written again over the torn one (orbax skips a step that exists): killed after it,
    # the run resumes from it, not from epoch 1
    (run_dir / "result.json").unlink()
    shutil.rmtree(run_dir / "ckpt" / "latest" / "3")
    caplog.clear()
    again = sweep.run_sweep(c, tmp_path / "b", **QUIET).rows[0]
    assert "unreadable" not in caplog.text
    assert [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert again["test_acc"] == straight["test_acc"]


@pytest.mark.slow
def test_a_corrupt_level_store_shard_is_detected_and_rebuilt(tmp_path, caplog):
    c = tiny_config("grid.level=20", "train.epochs=1")
    first = sweep.run_sweep(c, tmp_path, **QUIET).rows[0]
    [shard] = (tmp_path / "cache" / "stores").glob("pillow_jpeg-20-train-*/*.array_record")
    intact = shard.read_bytes()
    shard.write_bytes(intact[:100] + bytes(len(intact) - 100))  # same size, other bytes: a foreign file
    run_dir = tmp_path / c.name / "runs" / "q20-A-s0"
    for path in sorted(run_dir.rglob("*"), reverse=True):  # the run trains again, reading the store
        path.unlink() if path.is_file() else path.rmdir()
    again = sweep.run_sweep(c, tmp_path, **QUIET).rows[0]
    assert "SHA-256 differs" in caplog.text and "rebuilding it" in caplog.text
    assert shard.read_bytes() == intact  # rebuilt byte for byte
    assert again["test_acc"] == first["test_acc"] and again["bpp"] == first["bpp"]


@pytest.mark.slow
def test_nan_loss_marks_the_run_failed_and_the_sweep_goes_on(tmp_path):
    c = tiny_config("grid.level=raw,10", "train.optimizer=sgd", "train.lr=1e30", "train.lr_decay=0.0")
    out = sweep.run_sweep(c, tmp_path, **QUIET)
    assert out.failed == ["raw-A-s0", "q10-A-s0"]
    rows = [json.loads(l) for l in (tmp_path / c.name / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert "lower train.lr" in rows[0]["error"] and rows[0]["test_acc"] is None


@pytest.mark.slow
def test_disk_full_while_writing_results_keeps_finished_runs(tmp_path, monkeypatch):
    c = tiny_config("grid.level=raw")
    real = atomic_io.write_text

    def full_disk(path, text):
        if pathlib.Path(path).name.startswith("results"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, text)

    monkeypatch.setattr(atomic_io, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        sweep.run_sweep(c, tmp_path, **QUIET)
    assert not list((tmp_path / c.name).glob(".results*.tmp"))  # no temp file left behind
    monkeypatch.setattr(atomic_io, "write_text", real)
    again = sweep.run_sweep(c, tmp_path, **QUIET)  # space is back: nothing is retrained
    assert again.trained == [] and len(again.rows) == 1


def test_workdir_that_cannot_be_created_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(UserError, match="pick a writable --workdir"):
        sweep.run_sweep(tiny_config(), blocker, **QUIET)


def test_atomic_write_never_leaves_half_a_file(tmp_path):
    target = tmp_path / "x.json"
    atomic_io.write_json(target, {"a": 1})

    def explode(f):
        f.write(b"{\"a\": 2, ")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_io.write_with(target, explode)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
