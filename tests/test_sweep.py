"""End-to-end sweeps on a tiny dataset: results, checkpoints, skipping finished runs, clean stops, bad input."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from helmjax import config as config_lib
from helmjax.data import level_store
from helmjax.sweeps import sweep
from helmjax.distributed import RunClaim
from helmjax.errors import UserError
from helmjax.reporting.results_table import format_table, sweet_spot
from helmjax.training import performance

ROOT = pathlib.Path(__file__).resolve().parent.parent
QUIET = dict(progress=False, log=lambda *_: None)


def tiny_config(*extra):
    c = config_lib.load_experiment("cifar_q_sweep_small")
    return config_lib.apply_overrides(c, ["data.name=stripes", "quantizer.name=pillow_jpeg", "grid.level=raw,10,90", "train.epochs=2",
                                          "train.batch_size=32", "train.eval_batch_size=64", *extra])


def test_smoke_sweep_writes_results_checkpoints_and_skips_finished_runs(tmp_path):
    c = tiny_config()
    out = sweep.run_sweep(c, tmp_path, progress=False, log=lambda *_: None)
    assert out.trained == ["raw-A-s0", "q10-A-s0", "q90-A-s0"]
    rows = [json.loads(l) for l in (tmp_path / c.name / "results.jsonl").read_text().splitlines()]
    assert [r["quality"] for r in rows] == ["raw", 10, 90]
    for r in rows:
        assert r["status"] == "done" and r["epochs"] == 2 and r["params"] > 0
        run_dir = tmp_path / c.name / "runs" / r["run"]
        assert (run_dir / "ckpt" / "best").is_dir() and (run_dir / "ckpt" / "latest" / "2").is_dir()
        history = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [h["epoch"] for h in history] == [1, 2]
        # The best epoch is the best validation one: highest accuracy, then lowest loss, then the earliest.
        best = sorted(history, key=lambda h: (-h["val_acc"], h["val_loss"], h["epoch"]))[0]
        assert r["best_epoch"] == best["epoch"] and r["val_acc"] == best["val_acc"]
        # Test accuracy is the share of the test set the best checkpoint got right, k/n exactly.
        correct = np.load(run_dir / "test_correct.npy")
        assert correct.shape == (r["num_test"],) == (128,) and r["test_acc"] == np.count_nonzero(correct) / 128
    assert rows[0]["bpp"] == 24.0 and 0 < rows[1]["bpp"] < rows[2]["bpp"]
    assert 0 < rows[1]["bpp_payload"] < rows[1]["bpp"] and rows[1]["bpp_payload"] < rows[2]["bpp_payload"]
    header = (tmp_path / c.name / "results.csv").read_text().splitlines()[0].split(",")
    for column in ("quality", "bpp", "arch", "params", "seed", "val_acc", "test_acc", "best_epoch", "epochs",
                   "train_seconds"):
        assert column in header
    examples = np.load(tmp_path / c.name / "examples.npz")
    assert set(examples.files) == {"raw", "level_10", "level_90"}

    stamp = (tmp_path / c.name / "runs" / "raw-A-s0" / "result.json").stat().st_mtime_ns
    again = sweep.run_sweep(c, tmp_path, progress=False, log=lambda *_: None)
    assert again.trained == [] and len(again.skipped) == 3
    assert (tmp_path / c.name / "runs" / "raw-A-s0" / "result.json").stat().st_mtime_ns == stamp
    assert again.rows == out.rows


@pytest.mark.slow
def test_only_filter_runs_part_and_the_rest_later(tmp_path):
    c = tiny_config()
    first = sweep.run_sweep(c, tmp_path, only={"level": {"raw"}}, progress=False, log=lambda *_: None)
    assert first.trained == ["raw-A-s0"]
    rest = sweep.run_sweep(c, tmp_path, progress=False, log=lambda *_: None)
    assert rest.trained == ["q10-A-s0", "q90-A-s0"] and rest.skipped == ["raw-A-s0"]


@pytest.mark.slow
def test_stop_before_any_step_leaves_no_result_and_resumes(tmp_path):
    c = tiny_config("grid.level=raw")
    stop = sweep.StopFlag()
    stop.set()
    with pytest.raises(sweep.StopRequested):
        sweep.run_sweep(c, tmp_path, stop=stop, progress=False, log=lambda *_: None)
    assert not (tmp_path / c.name / "runs" / "raw-A-s0" / "result.json").exists()
    assert sweep.run_sweep(c, tmp_path, progress=False, log=lambda *_: None).trained == ["raw-A-s0"]


@pytest.mark.slow
def test_jax_codec_and_pillow_give_identical_sweeps(tmp_path):
    c = tiny_config("grid.level=10")
    pillow = sweep.run_sweep(c, tmp_path / "pillow", **QUIET).rows
    jax_rows = sweep.run_sweep(config_lib.apply_overrides(c, ["quantizer.name=jax_jpeg"]), tmp_path / "jax",
                               **QUIET).rows
    same = ("bpp", "bpp_payload", "val_acc", "test_acc", "best_epoch")
    assert [{k: r[k] for k in same} for r in pillow] == [{k: r[k] for k in same} for r in jax_rows]


@pytest.mark.slow
def test_stacked_sweep_gives_the_rows_of_one_by_one_and_records_how_it_trained(tmp_path):
    c = tiny_config("grid.level=raw,10", "grid.seed=[0, 1]")
    lone = sweep.run_sweep(c, tmp_path / "lone", **QUIET)
    stacked = sweep.run_sweep(config_lib.apply_overrides(c, ["train.stack=3"]), tmp_path / "stacked", **QUIET)
    assert stacked.trained == lone.trained == ["raw-A-s0", "raw-A-s1", "q10-A-s0", "q10-A-s1"]
    # Two compiled programs (stacks of 3 and 1, and 1 alone): the same runs, epochs and accuracies, give or take
    # a borderline example of the 64 validation / 128 test ones (tests/test_stacked.py compares them closely).
    for got, want in zip(stacked.rows, lone.rows):
        assert {k: got[k] for k in ("run", "bpp", "epochs")} == {k: want[k] for k in ("run", "bpp", "epochs")}
        assert got["val_acc"] == pytest.approx(want["val_acc"], abs=1 / 64)
        assert got["test_acc"] == pytest.approx(want["test_acc"], abs=1 / 128)
    config = json.loads((tmp_path / "stacked" / c.name / "runs" / "raw-A-s0" / "config.json").read_text())
    assert config["stack"] == {"size": 3, "mode": "unroll", "members": ["raw-A-s0", "raw-A-s1", "q10-A-s0"]}
    lone_config = json.loads((tmp_path / "lone" / c.name / "runs" / "q10-A-s1" / "config.json").read_text())
    assert lone_config["stack"] == {"size": 1, "mode": "unroll", "members": ["q10-A-s1"]}
    # The performance profile, compiler options and slice count the run trained with (CPU, one device).
    assert lone_config["performance"]["profile"] == "cpu" and lone_config["performance"]["micro_batches"] == 1
    assert lone_config["performance"]["compiler_options"] == performance.CPU_COMPILER_OPTIONS


def test_stacks_are_runs_of_one_architecture_resuming_from_one_epoch_in_grid_order(tmp_path):
    specs = [sweep.RunSpec(level, arch, seed, f"{level}-{arch}-s{seed}")
             for level in ("raw", 10) for arch in ("A", "B") for seed in (0, 1)]
    dirs = [tmp_path / spec.name for spec in specs]
    (dirs[1] / "ckpt" / "latest" / "3").mkdir(parents=True)  # raw-A-s1 resumes from epoch 3
    assert sweep.plan_stacks(specs, dirs, stack_size=1) == [[k] for k in range(8)]
    assert sweep.plan_stacks(specs, dirs, stack_size=8) == [[0, 4, 5], [1], [2, 3, 6, 7]]
    assert sweep.plan_stacks(specs, dirs, stack_size=2) == [[0, 4], [1], [2, 3], [5], [6, 7]]


@pytest.mark.slow
def test_levels_are_stored_once_as_files_whose_size_is_the_rate(tmp_path):
    fast = ("train.epochs=1", "train.max_steps_per_epoch=2")
    c = tiny_config("grid.level=raw,10", *fast)
    sweep.run_sweep(c, tmp_path, progress=False, log=lambda *_: None)
    root = tmp_path / "cache" / "stores"
    stores = sorted(p.name.rsplit("-", 1)[0] for p in root.iterdir())
    assert stores == ["pillow_jpeg-10-test", "pillow_jpeg-10-train", "raw-test", "raw-train"]
    built = {p: p.stat().st_mtime_ns for p in root.rglob("*.array_record")}
    # the level's rate is the stored files' size, exactly (train then test)
    jpeg = [level_store.LevelStore(next(root.glob(f"pillow_jpeg-10-{split}-*"))) for split in ("train", "test")]
    with np.load(tmp_path / c.name / "rates" / "q10.npz") as f:
        assert np.array_equal(f["file"], np.concatenate([8.0 * np.array([len(s[i][0]) for i in range(len(s))])
                                                         for s in jpeg]))
    rows = [json.loads(line) for line in (tmp_path / c.name / "results.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["quality"] == 10)
    pixels = jpeg[0].plan.item_shape[0] * jpeg[0].plan.item_shape[1]
    assert float(row["bpp"]) == pytest.approx(sum(s.index["record_bytes"] * 8 for s in jpeg)
                                              / sum(len(s) for s in jpeg) / pixels)
    # another sweep of the workdir on the same data reads the same stores: nothing is encoded again
    other = tiny_config("grid.level=raw,10", "grid.seed=1", "name=other_sweep", *fast)
    sweep.run_sweep(other, tmp_path, progress=False, log=lambda *_: None)
    assert (tmp_path / "other_sweep" / "results.jsonl").is_file()
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.array_record")} == built


@pytest.mark.parametrize("override, message", [
    ("grid.level=raw,0", "out of range"),
    ("grid.level=raw,101", "use an integer in \\[1, 100\\]"),
    ("grid.arch=A,Q", "unknown image architecture 'Q'"),
    ("quantizer.name=nope", "unknown quantizer 'nope'"),
    ("data.name=nope", "unknown dataset 'nope'"),
    ("train.optimizer=rmsprop", "unknown optimizer"),
    ("train.micro_batches=3", "train.micro_batches=3 does not split train.batch_size"),
    ("train.stack_mode=pmap", "train.stack_mode='pmap'; use one of unroll, vmap"),
    ("train.performance=fast", "train.performance='fast' is not a profile; use one of auto, cpu, accelerator, plain"),
])
def test_bad_grid_is_rejected_before_anything_is_written(tmp_path, override, message):
    with pytest.raises(UserError, match=message):
        sweep.run_sweep(tiny_config(override), tmp_path, progress=False, log=lambda *_: None)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_a_run_claimed_by_another_worker_is_left_to_it(tmp_path):
    c = tiny_config("grid.level=raw,10")
    other = RunClaim(tmp_path / c.name / "runs" / "raw-A-s0")
    assert other.acquire()
    try:
        out = sweep.run_sweep(c, tmp_path, progress=False, log=lambda *_: None)
    finally:
        other.release()
    assert out.busy == ["raw-A-s0"] and out.trained == ["q10-A-s0"]
    # the claim is gone (as when a worker dies): the next pass picks the run up
    assert sweep.run_sweep(c, tmp_path, progress=False, log=lambda *_: None).trained == ["raw-A-s0"]


@pytest.mark.slow
def test_workers_split_the_grid(tmp_path):
    c = tiny_config("grid.level=raw,10,90")
    a = sweep.run_sweep(c, tmp_path, worker=(0, 2), progress=False, log=lambda *_: None)
    b = sweep.run_sweep(c, tmp_path, worker=(1, 2), progress=False, log=lambda *_: None)
    assert a.trained == ["raw-A-s0", "q90-A-s0"] and b.trained == ["q10-A-s0"]
    assert len(b.rows) == 3


def test_sweet_spot_is_the_lowest_level_within_tolerance_of_raw():
    acc = {"raw": 0.80, 100: 0.81, 50: 0.79, 20: 0.78, 10: 0.70, 5: 0.79, 1: 0.5}
    assert sweet_spot(acc, 0.025) == 20  # 5 is within tolerance but 10 below it is not: the curve broke at 10
    assert sweet_spot({100: 0.8}, 0.01) is None
    rows = [dict(run="r", level_name="quality", level=l, arch="A", status="done", test_acc=a, bpp=1.0)
            for l, a in acc.items()]
    assert "sweet spot quality 20" in format_table(rows, 0.025)


def _run_cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_bad_set_is_one_line_exit_2_and_writes_nothing(tmp_path):
    out = _run_cli("--experiment=cifar_q_sweep_small", "--set", "train.epochz=3", f"--workdir={tmp_path}/w",
                   cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown key" in out.stderr
    assert not (tmp_path / "w").exists()
    out = _run_cli("--experiment=nope", cwd=tmp_path)
    assert out.returncode == 2 and "unknown experiment 'nope'" in out.stderr


def test_cli_list_names_every_experiment_and_its_grid(tmp_path):
    out = _run_cli("--list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "cifar_q_sweep " in out.stdout and "180 runs (10 levels x 6 archs x 3 seeds)" in out.stdout
    assert "cifar_q_sweep_small" in out.stdout and "demo_q_sweep" in out.stdout


def test_a_data_set_read_on_demand_sweeps_as_the_same_arrays_in_memory(tmp_path):
    """Items read on demand (here arrays in an uncompressed .npz) go through the same stores and pipeline: the same
    accuracies as the arrays held in memory (same program), their levels built from the raw level's store."""
    from tests.conftest import make_stripes
    from helmjax.data import catalog
    from helmjax.data.items import LazyItems, npz_arrays
    ref = make_stripes()
    path = tmp_path / "stripes.npz"
    np.savez(path, x_train=ref.x_train, x_test=ref.x_test)

    def lazy_stripes():
        arrays = npz_arrays(path, ("x_train", "x_test"))
        assert all(isinstance(a, LazyItems) for a in arrays.values())
        return type(ref)("lazy_stripes", arrays["x_train"], ref.y_train, arrays["x_test"], ref.y_test, ref.classes)

    catalog.register("lazy_stripes", lazy_stripes, modality="image", needs="nothing (test fixture)")
    fast = ("grid.level=raw,10", "train.epochs=1", "train.max_steps_per_epoch=3")
    held = sweep.run_sweep(tiny_config(*fast), tmp_path / "held", **QUIET).rows
    read = sweep.run_sweep(tiny_config("data.name=lazy_stripes", *fast), tmp_path / "read", **QUIET).rows
    fields = ("level", "val_acc", "test_acc", "bpp")
    assert [{k: r[k] for k in fields} for r in read] == [{k: r[k] for k in fields} for r in held]
    stores = tmp_path / "read" / "cache" / "stores"
    assert sorted(p.name.rsplit("-", 1)[0] for p in stores.iterdir()) == [
        "pillow_jpeg-10-test", "pillow_jpeg-10-train", "raw-test", "raw-train"]
