"""Stacked runs leave what lone runs (stacks of one) leave: the same files, numbers within float tolerance (a stack
of three and a stack of one are two compiled programs), resumable alone and back, with clean stops, per-member
divergence and data parallelism. Bit-identity is asserted only where one compiled program runs again (a stopped
or resumed run)."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from helmjax import models
from helmjax.training import performance
from helmjax.training.checkpoints import RunCheckpoints, latest_epoch_on_disk
from helmjax.training.loop import StopFlag, StopRequested, train_run, train_runs
from helmjax.training.recipe import TrainSettings
from helmjax.layout import read_metrics
from helmjax.training.pipeline import SplitData, StackInput
from helmjax.training.trainer import Trainer
from tests.conftest import make_stripes

ROOT = pathlib.Path(__file__).resolve().parent.parent
SETTINGS = TrainSettings(optimizer="sgd", lr=0.02, lr_decay=0.0, batch_size=32, eval_batch_size=64, augment=True)
SEEDS = [0, 1, 2]
EPOCHS = 2
TIMING = ("epoch_seconds", "train_seconds")
# Two compiled programs (a stack and a lone run, or one program on two CPUs) sum in different orders: XLA promises
# no bit-identity between them (seen: train_loss 1.38569768 vs 1.38569752 on an EPYC without AVX-512). Losses
# within rel 1e-5 (~1e-7 seen); an accuracy may move by one example of the 64 validation / 128 test examples, three
# of the 192 training ones. These models still predict one class for every example (top-two logit margins >= 2e-3,
# against logit shifts of ~1e-6 between programs), so best_epoch, an integer, is compared exactly.
TOLERANCE = {"train_loss": dict(rel=1e-5), "val_loss": dict(rel=1e-5), "final_train_loss": dict(rel=1e-5),
             "train_acc": dict(abs=1 / 64), "val_acc": dict(abs=1 / 64), "test_acc": dict(abs=1 / 128)}


def _without_timing(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMING}


def assert_close(got, want):
    """Metric rows (lists) or results (dicts) of two programs agree: the same keys, integer and schedule fields
    (epoch, step, lr, best_epoch, epochs, num_test, status) exactly, float metrics within TOLERANCE."""
    if isinstance(want, list):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w)
        return
    assert set(got) == set(want)
    for key, value in _without_timing(want).items():
        if key in TOLERANCE and value is not None:  # None: a failed result
            assert got[key] == pytest.approx(value, **TOLERANCE[key]), key
        else:
            assert got[key] == value, key


def _split(ds) -> SplitData:
    return SplitData(ds.x_train[:192], ds.y_train[:192], ds.x_train[192:], ds.y_train[192:], ds.x_test, ds.y_test)


def _trainer(stack_mode: str = "unroll") -> Trainer:
    return Trainer(models.build("image", "A", 4, width=0.25, dropout=0.2),
                   dataclasses.replace(SETTINGS, stack_mode=stack_mode), is_image=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """One compiled trainer per stack mode, two datasets ("levels"), the lone runs to compare with and one
    uninterrupted unrolled stack of the same runs (the reference for stacked runs that stop and resume)."""
    trainer = _trainer("unroll")
    level_a, level_b = _split(make_stripes(0)), _split(make_stripes(1))
    datas = [level_a, level_b, level_a]  # two seeds on one level, one on another
    lone_dir = tmp_path_factory.mktemp("lone")
    lone = [train_run(lone_dir / f"r{m}", trainer, data, seed=seed, epochs=EPOCHS)
            for m, (data, seed) in enumerate(zip(datas, SEEDS))]
    stacked_dir, stacked_seen = tmp_path_factory.mktemp("stacked"), []
    stacked = train_runs([stacked_dir / f"r{m}" for m in range(3)], trainer, datas, SEEDS, EPOCHS,
                         on_epoch=lambda m, row: stacked_seen.append((m, row["epoch"])))
    return dict(trainer=trainer, datas=datas, lone_dir=lone_dir, lone=lone, stacked_dir=stacked_dir,
                stacked=stacked, stacked_seen=stacked_seen, vmap=_trainer("vmap"))


def _params(run_dir: pathlib.Path, trainer: Trainer, which: str = "latest", part: str = "state"):
    """(epoch, leaves) of a run's checkpoint: the whole train state, or with part="params" the weights only."""
    template = trainer.init(np.zeros((1, 16, 16, 3), np.uint8), jax.random.key(0))
    checkpoints = RunCheckpoints(run_dir)
    try:
        restored = checkpoints.restore_latest(template) if which == "latest" else checkpoints.restore_best(template)
    finally:
        checkpoints.close()
    tree = restored[1].params if part == "params" else restored[1]
    return restored[0], [np.asarray(a) for a in jax.tree_util.tree_leaves(tree)]


def assert_weights_close(run_dir: pathlib.Path, lone_dir: pathlib.Path, trainer: Trainer):
    """Latest and best checkpoints hold the same epochs and weights within 1e-4 (two programs; see the vmap test)."""
    for which in ("latest", "best"):
        (epoch, got), (lone_epoch, want) = (_params(run_dir, trainer, which, "params"),
                                            _params(lone_dir, trainer, which, "params"))
        assert epoch == lone_epoch
        assert max(float(np.max(np.abs(a - b))) for a, b in zip(got, want)) < 1e-4


def assert_bit_identical(run_dir: pathlib.Path, reference_dir: pathlib.Path, trainer: Trainer):
    """One compiled program ran both: metric rows, test correctness and whole checkpointed states are equal."""
    assert [_without_timing(r) for r in read_metrics(run_dir)] == \
           [_without_timing(r) for r in read_metrics(reference_dir)]
    assert np.array_equal(np.load(run_dir / "test_correct.npy"), np.load(reference_dir / "test_correct.npy"))
    for which in ("latest", "best"):
        (epoch, got), (reference_epoch, want) = _params(run_dir, trainer, which), \
            _params(reference_dir, trainer, which)
        assert epoch == reference_epoch
        assert all(np.array_equal(a, b) for a, b in zip(got, want))


@pytest.mark.slow
def test_unrolled_stack_matches_lone_runs_to_float_tolerance(setup):
    assert setup["stacked_seen"] == [(m, e) for e in (1, 2) for m in range(3)]
    dirs = [setup["stacked_dir"] / f"r{m}" for m in range(3)]
    for m, (run_dir, result) in enumerate(zip(dirs, setup["stacked"])):
        lone_dir = setup["lone_dir"] / f"r{m}"
        assert (run_dir / "ckpt" / "latest" / "2").is_dir() and (run_dir / "ckpt" / "best").is_dir()
        assert_close(read_metrics(run_dir), read_metrics(lone_dir))
        assert_close(result, setup["lone"][m])
        stacked_correct, lone_correct = np.load(run_dir / "test_correct.npy"), np.load(lone_dir / "test_correct.npy")
        assert stacked_correct.shape == lone_correct.shape == (128,)
        assert np.sum(stacked_correct != lone_correct) <= 2  # a borderline example or two may flip
        assert_weights_close(run_dir, lone_dir, setup["trainer"])
    # Members really differ (seeds and data), so the agreements above are not one run compared thrice.
    assert len({read_metrics(d)[-1]["train_loss"] for d in dirs}) == 3


@pytest.mark.slow
def test_vmapped_stack_matches_lone_runs_to_float_tolerance(setup, tmp_path):
    dirs = [tmp_path / f"r{m}" for m in range(3)]
    results = train_runs(dirs, setup["vmap"], setup["datas"], SEEDS, EPOCHS)
    for m, run_dir in enumerate(dirs):
        # Grouped convolutions sum in another order: ~1e-8 per step with SGD (Adam would amplify the noise in
        # near-zero gradients to whole update steps), compounding over 12 steps.
        assert_close(read_metrics(run_dir), read_metrics(setup["lone_dir"] / f"r{m}"))
        assert_close(results[m], setup["lone"][m])
        # The weights agree to float tolerance. Not bit for bit: a batched matmul or grouped convolution sums in
        # another order, so a ReLU input within rounding of zero can flip in one run and not the other; the
        # gradient through that unit then differs, and momentum carries it on (seen: up to 1.3e-5 in the weights,
        # 1.5e-4 in the momentum after these 12 steps). A mixed-up member, key or batch moves them by 1e-2 or more.
        assert_weights_close(run_dir, setup["lone_dir"] / f"r{m}", setup["trainer"])


@pytest.mark.slow
def test_stacked_checkpoints_resume_in_train_run_and_back(setup, tmp_path):
    datas, trainer = setup["datas"], setup["trainer"]
    stacked_first = [tmp_path / f"s{m}" for m in range(3)]
    train_runs(stacked_first, trainer, datas, SEEDS, epochs=1)
    assert [latest_epoch_on_disk(d) for d in stacked_first] == [1, 1, 1]
    for m, d in enumerate(stacked_first):  # epoch 1 ran the program of the uninterrupted stack: bit for bit
        assert [_without_timing(r) for r in read_metrics(d)] == \
               [_without_timing(r) for r in read_metrics(setup["stacked_dir"] / f"r{m}")[:1]]
        train_run(d, trainer, datas[m], seed=SEEDS[m], epochs=EPOCHS)
    lone_first = [tmp_path / f"l{m}" for m in range(3)]
    for m, d in enumerate(lone_first):
        train_run(d, trainer, datas[m], seed=SEEDS[m], epochs=1)
        assert [_without_timing(r) for r in read_metrics(d)] == \
               [_without_timing(r) for r in read_metrics(setup["lone_dir"] / f"r{m}")[:1]]
    results = train_runs(lone_first, trainer, datas, SEEDS, EPOCHS)
    for m in range(3):
        expected = read_metrics(setup["lone_dir"] / f"r{m}")
        assert_close(read_metrics(stacked_first[m]), expected)
        assert_close(read_metrics(lone_first[m]), expected)
        assert_close(results[m], setup["lone"][m])
    # A lone run stopped after epoch 1 and resumed runs one program throughout: bit for bit its uninterrupted run.
    resumed = tmp_path / "lone_resumed"
    train_run(resumed, trainer, datas[0], seed=SEEDS[0], epochs=1)
    result = train_run(resumed, trainer, datas[0], seed=SEEDS[0], epochs=EPOCHS)
    assert _without_timing(result) == _without_timing(setup["lone"][0])
    assert_bit_identical(resumed, setup["lone_dir"] / "r0", trainer)


@pytest.mark.slow
def test_members_resuming_from_different_epochs_train_as_one_stack_per_epoch(setup, tmp_path):
    datas, trainer = setup["datas"], setup["trainer"]
    dirs = [tmp_path / f"r{m}" for m in range(3)]
    train_run(dirs[1], trainer, datas[1], seed=SEEDS[1], epochs=1)
    seen = []
    results = train_runs(dirs, trainer, datas, SEEDS, EPOCHS, on_epoch=lambda m, row: seen.append((m, row["epoch"])))
    assert seen == [(0, 1), (2, 1), (0, 2), (2, 2), (1, 2)]  # r0 and r2 from scratch together, then r1 alone
    for m in range(3):
        assert_close(read_metrics(dirs[m]), read_metrics(setup["lone_dir"] / f"r{m}"))
        assert_close(results[m], setup["lone"][m])


def test_stop_flag_stops_every_member_at_a_complete_checkpoint(setup, tmp_path):
    stop = StopFlag()
    dirs = [tmp_path / f"r{m}" for m in range(3)]

    def on_epoch(m, row):
        stop.set()  # as SIGTERM would, while epoch 1 is being written

    with pytest.raises(StopRequested):
        train_runs(dirs, setup["trainer"], setup["datas"], SEEDS, EPOCHS, stop=stop, on_epoch=on_epoch)
    assert [latest_epoch_on_disk(d) for d in dirs] == [1, 1, 1]
    assert all(len(read_metrics(d)) == 1 for d in dirs)
    results = train_runs(dirs, setup["trainer"], setup["datas"], SEEDS, EPOCHS)
    # Stopped and resumed, the stack ran one program throughout: bit for bit the uninterrupted stack.
    assert [_without_timing(r) for r in results] == [_without_timing(r) for r in setup["stacked"]]
    for m, run_dir in enumerate(dirs):
        assert_bit_identical(run_dir, setup["stacked_dir"] / f"r{m}", setup["trainer"])
        assert_close(results[m], setup["lone"][m])


def test_a_diverging_member_fails_alone(setup, tmp_path):
    good, _, _ = setup["datas"]
    # Labels out of range make the cross-entropy NaN from the first step: that member diverges at epoch 1.
    poisoned = dataclasses.replace(good, y_train=np.full(192, 99, np.int32))
    dirs = [tmp_path / f"r{m}" for m in range(3)]
    results = train_runs(dirs, setup["trainer"], [good, poisoned, good], SEEDS, EPOCHS)
    assert results[1]["status"] == "failed" and "training loss became nan at epoch 1" in results[1]["error"]
    assert read_metrics(dirs[1]) == [] and not (dirs[1] / "test_correct.npy").exists()
    for m in (0, 2):
        assert_close(read_metrics(dirs[m]), read_metrics(setup["lone_dir"] / f"r{m}"))
        assert_close(results[m], setup["lone"][m])


def test_a_lone_run_that_diverges_fails_and_leaves_no_result_files(setup, tmp_path):
    good = setup["datas"][0]
    result = train_run(tmp_path / "r", setup["trainer"], dataclasses.replace(good, y_train=np.full(192, 99, np.int32)),
                       seed=0, epochs=EPOCHS)
    assert result["status"] == "failed" and "training loss became nan at epoch 1" in result["error"]
    assert read_metrics(tmp_path / "r") == [] and not (tmp_path / "r" / "test_correct.npy").exists()


def test_shared_data_is_stacked_once_and_shapes_must_agree(setup):
    trainer = setup["trainer"]
    a, b, _ = setup["datas"]
    inputs = StackInput([a, b, a, a], trainer.settings, trainer.mesh)
    assert len(inputs.splits) == 2 and inputs.data_of_member == [0, 1, 0, 0]
    tests = list(inputs.evaluation("test"))  # one eval batch of both data sets, read once for the four members
    assert len(tests) == 2 and tests[0].x.shape == (2, 64, 16, 16, 3)
    assert np.array_equal(np.concatenate([np.asarray(t.x[1]) for t in tests]), b.x_test)
    smaller = _split(make_stripes(2, n_test=64))
    with pytest.raises(ValueError, match="test differs"):
        StackInput([a, smaller], trainer.settings, trainer.mesh)
    with pytest.raises(ValueError, match="one data and one seed per run"):
        train_runs([pathlib.Path("x")], trainer, [a, b], [0], EPOCHS)


def test_default_stack_size_and_mode_come_from_the_platform_and_config():
    cpu, gpu = performance.choose(SETTINGS, "cpu", 1), performance.choose(SETTINGS, "gpu", 1)
    assert (cpu.stack_size, cpu.stack_mode) == (1, "unroll") and (gpu.stack_size, gpu.stack_mode) == (8, "vmap")
    assert performance.choose(dataclasses.replace(SETTINGS, stack=4, stack_mode="vmap"), "cpu", 1).stack_size == 4


DATA_PARALLEL_SCRIPT = """
import json, pathlib, sys, tempfile
import jax, numpy as np
from helmjax.training.loop import train_runs
from helmjax.layout import read_metrics
from tests.conftest import make_stripes
from tests.test_stacked import _split, _trainer
trainer = _trainer(sys.argv[1])
datas = [_split(make_stripes(0)), _split(make_stripes(1))]
from helmjax.training.pipeline import StackInput
batch = next(StackInput(datas, trainer.settings, trainer.mesh).batches(np.zeros((1, 2, 32), np.int32)))
index_sharding = batch.x.sharding
with tempfile.TemporaryDirectory() as d:
    d = pathlib.Path(d)
    results = train_runs([d / "r0", d / "r1"], trainer, datas, [0, 1], epochs=1)
    rows = [read_metrics(d / name) for name in ("r0", "r1")]
print(json.dumps({"devices": jax.device_count(), "spec": list(index_sharding.spec), "rows": rows}))
"""


@pytest.mark.slow
def test_data_parallel_stacks_shard_the_batch_axis_only(setup):
    """Two devices, each with half of every member's batch, give the one-device lone numbers (float tolerance:
    the batch sums are split across devices)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out = subprocess.run([sys.executable, "-c", DATA_PARALLEL_SCRIPT, "unroll"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["devices"] == 2 and got["spec"] == [None, "data"]
    for m in range(2):
        (row,), lone = got["rows"][m], read_metrics(setup["lone_dir"] / f"r{m}")[0]
        assert row["step"] == lone["step"] == 6
        assert row["train_loss"] == pytest.approx(lone["train_loss"], rel=1e-4, abs=1e-5)
        assert row["val_loss"] == pytest.approx(lone["val_loss"], rel=1e-4, abs=1e-5)
        assert abs(row["val_acc"] - lone["val_acc"]) <= 1 / 64
