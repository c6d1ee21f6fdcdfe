"""The train step learns, augmentation keeps orientation, a resumed run equals an uninterrupted one, and the
best epoch is chosen on validation, not test."""

import json

import jax
import numpy as np
import pytest

from helmjax import models
from helmjax.training.checkpoints import RunCheckpoints
from helmjax.training.inputs import augment
from helmjax.training.loop import StopFlag, StopRequested, TrainingDiverged, check_finite, train_run
from helmjax.training.recipe import TrainSettings
from helmjax.layout import read_metrics
from helmjax.training.step import make_train_step
from helmjax.training.trainer import SplitData, Trainer
from tests.conftest import make_stripes

SETTINGS = TrainSettings(optimizer="adam", lr=3e-3, lr_decay=0.0, batch_size=32, eval_batch_size=64,
                         augment=False)


def _trainer(settings=SETTINGS):
    return Trainer(models.build("image", "A", 4, width=0.25, dropout=0.0), settings, is_image=True)


def _split(ds):
    return SplitData(ds.x_train[:192], ds.y_train[:192], ds.x_train[192:], ds.y_train[192:], ds.x_test, ds.y_test)


def test_train_steps_lower_the_loss_on_a_fixed_batch():
    ds = make_stripes()
    trainer = _trainer()
    step = jax.jit(make_train_step(trainer.model, trainer.tx, SETTINGS, True, lambda x: 1))
    state = trainer.init(ds.x_train, jax.random.key(0))
    losses = []
    for i in range(8):
        state, metrics = step(state, ds.x_train[:32], ds.y_train[:32], jax.random.key(i))
        assert int(metrics["count"]) == 32
        losses.append(float(metrics["loss_sum"]) / 32)
    assert losses[-1] < 0.7 * losses[0], losses


def test_an_epoch_is_its_plan_through_train_steps_and_a_given_order_is_followed():
    """train_epoch is its epoch plan run by train_steps (bit-identical); batches a caller draws its own way (as
    learned_jpeg's classifiers do) are trained in that order; no step leaves the state as it was."""
    ds = make_stripes()
    trainer = _trainer()
    data, of_member = trainer.stack_data([_split(ds)])
    key = jax.random.key(0)
    fresh = lambda: trainer.stack_states([trainer.init(ds.x_train, key)])
    params = lambda states: [np.asarray(a) for a in jax.tree_util.tree_leaves(trainer.member_state(states, 0).params)]
    order, step_key = trainer.epoch_plan(192, key)
    epoch, epoch_loss, _ = trainer.train_epoch(fresh(), data, of_member, [key])
    steps, steps_loss, _ = trainer.train_steps(fresh(), data, of_member, order[:, None], [step_key])
    assert all(np.array_equal(a, b) for a, b in zip(params(epoch), params(steps))) and epoch_loss == steps_loss
    reordered, _, _ = trainer.train_steps(fresh(), data, of_member, order[::-1, None], [step_key])
    assert not all(np.array_equal(a, b) for a, b in zip(params(epoch), params(reordered)))
    untouched, loss, accuracy = trainer.train_steps(fresh(), data, of_member, np.zeros((0, 1, 32), int), [key])
    assert trainer.member_steps(untouched).tolist() == [0] and np.isnan(loss).all() and np.isnan(accuracy).all()
    assert all(np.array_equal(a, b) for a, b in zip(params(fresh()), params(untouched)))


def test_augment_shifts_by_at_most_ten_percent_and_flips_width():
    image = np.zeros((1, 20, 20, 1), np.float32)
    image[0, :, :3] = 1.0  # a bar on the left edge
    outs = np.stack([np.asarray(augment(image, jax.random.key(k), 0.1))[0, ..., 0] for k in range(40)])
    left, right = outs[:, 10, :10].sum(1), outs[:, 10, 10:].sum(1)
    assert ((left > 0) ^ (right > 0)).all()  # the bar stays a vertical bar, on one side (flip is horizontal)
    assert (right > 0).any() and (left > 0).any()
    widths = (outs[:, 10] > 0).sum(1)
    assert widths.min() >= 1 and widths.max() <= 5  # a 3-px bar shifted by at most 2 px (10% of 20), edge-filled


def test_nan_loss_is_an_error():
    with pytest.raises(TrainingDiverged, match="lower train.lr"):
        check_finite(float("nan"), 3)


@pytest.mark.slow
def test_resumed_run_gives_bit_identical_metrics(tmp_path):
    ds = make_stripes()
    settings = TrainSettings(optimizer="sgd", lr=0.05, batch_size=32, eval_batch_size=64, augment=True)
    trainer = _trainer(settings)
    data = _split(ds)
    straight = train_run(tmp_path / "straight", trainer, data, seed=3, epochs=4)
    train_run(tmp_path / "resumed", trainer, data, seed=3, epochs=2)  # "killed" after epoch 2
    resumed = train_run(tmp_path / "resumed", trainer, data, seed=3, epochs=4)
    rows = lambda d: [json.loads(l) for l in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
    strip = lambda r: {k: v for k, v in r.items() if k != "epoch_seconds"}
    assert [strip(r) for r in rows("straight")] == [strip(r) for r in rows("resumed")]
    assert straight["test_acc"] == resumed["test_acc"] and straight["best_epoch"] == resumed["best_epoch"]
    correct = np.load(tmp_path / "resumed" / "test_correct.npy")
    assert correct.shape == (len(ds.x_test),) and correct.mean() == pytest.approx(resumed["test_acc"])


@pytest.mark.slow
def test_stop_flag_stops_cleanly_and_keeps_the_last_checkpoint(tmp_path):
    ds = make_stripes()
    trainer = _trainer()
    data = _split(ds)
    stop = StopFlag()
    seen = []

    def on_epoch(member, row):
        seen.append((member, row["epoch"]))
        stop.set()  # as SIGTERM would, during epoch 1

    with pytest.raises(StopRequested):
        train_run(tmp_path / "r", trainer, data, seed=0, epochs=3, stop=stop, on_epoch=on_epoch)
    assert seen == [(0, 1)]
    assert (tmp_path / "r" / "ckpt" / "latest" / "1").is_dir()
    result = train_run(tmp_path / "r", trainer, data, seed=0, epochs=3)
    assert result["epochs"] == 3


@pytest.mark.slow
def test_best_epoch_is_chosen_on_validation_never_on_test(tmp_path):
    """Validation and test curves that peak at different epochs: the run reports the best-validation epoch and
    that epoch's test accuracy, not the best test accuracy."""
    ds = make_stripes()
    trainer = _trainer()
    # Validation labelled all class 0: it scores the model best while it still guesses class 0 for most images
    # (epoch 1) and worse once it tells the four bands apart. The test set keeps its true labels: best late.
    data = SplitData(ds.x_train[:192], ds.y_train[:192], ds.x_train[192:], np.zeros(64, np.int32), ds.x_test,
                     ds.y_test)
    run_dir, template = tmp_path / "r", trainer.init(ds.x_train[:1], jax.random.key(0))
    test_accs, test_corrects = [], []
    for epoch in (1, 2, 3):  # one run, resumed epoch by epoch (bit-identical to a straight run) to test each epoch
        result = train_run(run_dir, trainer, data, seed=0, epochs=epoch)
        checkpoints = RunCheckpoints(run_dir)
        try:
            latest, state, _ = checkpoints.restore_latest(template)
        finally:
            checkpoints.close()
        assert latest == epoch
        stacked, of_member = trainer.stack_data([data])
        (_, test_acc, test_correct), = trainer.evaluate(trainer.stack_states([state]), stacked.x_test,
                                                        stacked.y_test, of_member)
        test_accs.append(test_acc)
        test_corrects.append(test_correct)
    val_accs = [row["val_acc"] for row in read_metrics(run_dir)]
    best_val, best_test = 1 + int(np.argmax(val_accs)), 1 + int(np.argmax(test_accs))
    # The curves disagree by many examples (seen: val 51, 22, 22 of 64; test 65, 92, 128 of 128).
    assert val_accs[best_val - 1] >= max(a for e, a in enumerate(val_accs, 1) if e != best_val) + 8 / 64
    assert test_accs[best_test - 1] >= max(a for e, a in enumerate(test_accs, 1) if e != best_test) + 8 / 128
    assert best_val != best_test
    assert result["best_epoch"] == best_val and result["val_acc"] == val_accs[best_val - 1]
    assert result["test_acc"] == test_accs[best_val - 1] != max(test_accs)
    assert np.array_equal(np.load(run_dir / "test_correct.npy"), test_corrects[best_val - 1])
