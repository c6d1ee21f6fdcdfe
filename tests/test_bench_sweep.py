"""The sweep projection's arithmetic (benchmarks/bench_sweep.py): groups, epochs, evaluation, quantizing."""

import pytest

from benchmarks.bench_sweep import ArchCost, project_seconds


def test_projection_counts_groups_epochs_and_evaluations():
    costs = {"A": ArchCost(step_s=0.5, eval_image_s=0.001), "F": ArchCost(step_s=2.0, eval_image_s=0.002)}
    got = project_seconds({"A": 30, "F": 4}, costs, stack=8, epochs=10, steps_per_epoch=100, val_size=50,
                          test_size=200, quantize_s=7.0)
    # A: ceil(30 / 8) = 4 groups x 10 epochs x 100 steps x 0.5 s, plus 30 runs x (10 x 50 + 200) images x 1 ms
    assert got["A"] == pytest.approx(4 * 10 * 100 * 0.5 + 30 * 700 * 0.001)
    # F: 4 runs fill one group of 8
    assert got["F"] == pytest.approx(1 * 10 * 100 * 2.0 + 4 * 700 * 0.002)
    assert got["quantize"] == 7.0
    assert got["total"] == pytest.approx(got["A"] + got["F"] + 7.0)


def test_unstacked_runs_train_one_after_the_other():
    got = project_seconds({"A": 3}, {"A": ArchCost(1.0, 0.0)}, stack=1, epochs=2, steps_per_epoch=5, val_size=0,
                          test_size=0, quantize_s=0.0)
    assert got["A"] == 3 * 2 * 5 * 1.0
