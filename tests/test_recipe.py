"""The ImageNet-style recipe: schedules in epochs, weight decay on kernels only, label smoothing of the training loss,
random-resized and center crops, top-5 accuracy, and configs whose digests stay as they were at the defaults."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helmjax import config as config_lib
from helmjax import models
from helmjax.errors import UserError
from helmjax.layout import read_metrics
from helmjax.sweeps import identity
from helmjax.sweeps.plan import make_plan
from helmjax.training.inputs import _crop_box, center_crop, random_resized_crop
from helmjax.training.loop import train_run
from helmjax.training.pipeline import SplitData, train_steps_per_epoch
from helmjax.training.recipe import TrainSettings, TrainState, decayed_kernels, learning_rate_schedule, make_optimizer
from helmjax.training.step import make_eval_step, make_train_step, training_losses
from helmjax.training.trainer import Trainer
from tests.conftest import make_stripes

RECIPE_KEYS = tuple(config_lib.RECIPE_DEFAULTS)


def _lr(settings, steps_per_epoch, steps):
    schedule = learning_rate_schedule(settings, steps_per_epoch)
    return np.array([float(schedule(s)) for s in steps])


def test_cosine_ramps_up_over_the_warmup_then_decays_to_zero_at_the_last_step():
    settings = TrainSettings(lr=0.4, lr_schedule="cosine", warmup_epochs=2, epochs=10)
    lr = _lr(settings, 10, [0, 5, 10, 15, 20, 60, 100, 120])  # 100 steps, 20 of warm-up
    np.testing.assert_allclose(lr[:5], [0.0, 0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(lr[5], 0.4 * 0.5 * (1 + np.cos(np.pi * 40 / 80)), rtol=1e-5)  # half-way: 0.2
    assert lr[6] == lr[7] == 0.0
    no_warmup = _lr(dataclasses.replace(settings, warmup_epochs=0.0), 10, [0, 50, 99])
    np.testing.assert_allclose(no_warmup, [0.4, 0.2, 0.4 * 0.5 * (1 + np.cos(np.pi * 99 / 100))], atol=1e-7)


def test_step_schedule_drops_tenfold_at_the_first_step_after_each_boundary_epoch():
    settings = TrainSettings(lr=0.1, lr_schedule="step", lr_steps=(3, 6, 8), warmup_epochs=0.5, epochs=10)
    lr = _lr(settings, 10, [0, 2, 5, 29, 30, 59, 60, 79, 80, 99])
    np.testing.assert_allclose(lr, [0.0, 0.04, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 1e-4, 1e-4], rtol=1e-5)


def test_the_default_schedule_is_the_keras_decay_and_epoch_schedules_need_the_steps_per_epoch():
    settings = TrainSettings(lr=0.05, lr_decay=1e-3)
    np.testing.assert_allclose(_lr(settings, 0, [0, 1000]), [0.05, 0.025])
    np.testing.assert_allclose(_lr(dataclasses.replace(settings, warmup_epochs=1.0), 4, [2, 4, 1000]),
                               [0.05 / (1 + 4e-3) / 2, 0.05 / (1 + 4e-3), 0.025], rtol=1e-6)
    with pytest.raises(ValueError, match="steps per epoch"):
        learning_rate_schedule(TrainSettings(lr_schedule="cosine"))
    for bad, match in ((dict(lr_schedule="linear"), "lr_schedule"), (dict(lr_schedule="step"), "lr_steps"),
                       (dict(lr_schedule="step", lr_steps=[6, 3]), "lr_steps"), (dict(weight_decay=-1.0), "decay"),
                       (dict(label_smoothing=1.0), "label_smoothing"), (dict(augment_mode="crop"), "augment_mode"),
                       (dict(crop_size=-1), "crop_size"), (dict(best_epoch_by="val_top5_acc"), "best_epoch_by")):
        with pytest.raises(UserError, match=match):
            make_optimizer(TrainSettings(**bad), 10)


def test_weight_decay_shrinks_conv_and_dense_kernels_only():
    model = models.build("imagenet", "resnet64", 10, width=0.25)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)), train=False))["params"]
    mask = decayed_kernels(shapes)
    paths = {jax.tree_util.keystr(p): m for p, m in jax.tree_util.tree_leaves_with_path(mask)}
    assert any(k.endswith("['scale']") for k in paths) and any("Dense" in k for k in paths)
    assert paths == {k: k.endswith("['kernel']") for k in paths}  # not biases, not BatchNorm scales and offsets
    params = jax.tree_util.tree_map(lambda s: jnp.ones(s.shape, s.dtype), shapes)
    settings = TrainSettings(lr=0.1, lr_decay=0.0, momentum=0.0, weight_decay=0.01)
    tx = make_optimizer(settings)
    updates, _ = tx.update(jax.tree_util.tree_map(jnp.zeros_like, params), tx.init(params), params)
    for (path, update), decayed in zip(jax.tree_util.tree_leaves_with_path(updates), jax.tree_util.tree_leaves(mask)):
        np.testing.assert_allclose(update, -0.1 * 0.01 if decayed else 0.0, rtol=1e-6, err_msg=str(path))
    plain = make_optimizer(dataclasses.replace(settings, weight_decay=0.0))
    assert jax.tree_util.tree_structure(plain.init(params)) != jax.tree_util.tree_structure(tx.init(params))


class _Linear(nn.Module):
    """A linear classifier of 4 classes: the smallest model a train step can update."""

    @nn.compact
    def __call__(self, x, train: bool):
        return nn.Dense(4)(x.reshape(x.shape[0], -1))


def test_label_smoothing_is_in_the_training_loss_and_not_in_evaluation():
    logits = jnp.asarray([[2.0, 0.0, -1.0, 0.5]])
    log_p = jax.nn.log_softmax(logits)[0]
    target = np.full(4, 0.1 / 4) + np.eye(4)[2] * 0.9
    np.testing.assert_allclose(training_losses(logits, jnp.asarray([2]), 0.1), [-(target * log_p).sum()], rtol=1e-6)
    np.testing.assert_allclose(training_losses(logits, jnp.asarray([2]), 0.0), [-log_p[2]], rtol=1e-6)

    ds = make_stripes()
    plain = TrainSettings(optimizer="adam", lr_decay=0.0, batch_size=32, augment=False, performance="plain")
    smooth = dataclasses.replace(plain, label_smoothing=0.2)
    trainer = Trainer(_Linear(), plain, is_image=True)
    state = trainer.init(ds.x_train, jax.random.key(0))
    x, y, mask = ds.x_train[:32], ds.y_train[:32], np.ones(32, bool)
    losses = [float(jax.jit(make_train_step(trainer.model, trainer.tx, s, True, lambda x: 1))(
        state, x, y, jax.random.key(1))[1]["loss_sum"]) for s in (plain, smooth)]
    assert losses[0] != losses[1]
    evals = [jax.jit(make_eval_step(trainer.model, s))(state, x, y, mask) for s in (plain, smooth)]
    assert float(evals[0][0]) == float(evals[1][0]) and np.array_equal(evals[0][1], evals[1][1])


def test_random_resized_crop_has_the_crop_size_is_drawn_from_the_key_and_flips_horizontally():
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (6, 16, 16, 3)).astype(np.uint8)
    crop = jax.jit(random_resized_crop, static_argnums=2)
    a, b, c = (np.asarray(crop(images, jax.random.key(k), (12, 12))) for k in (1, 1, 2))
    assert a.shape == (6, 12, 12, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # The whole image at its own size is the image itself, or its mirror (never upside down); both occur.
    uncropped = jax.jit(lambda key: random_resized_crop(images[:1], key, (16, 16), scale=(1, 1), ratio=(1, 1))[0])
    whole = [np.asarray(uncropped(jax.random.key(k))) for k in range(12)]
    flipped = [np.array_equal(w, images[0, :, ::-1]) for w in whole]
    assert all(f or np.array_equal(w, images[0]) for f, w in zip(flipped, whole)) and 0 < sum(flipped) < 12
    boxes = np.asarray(jax.jit(jax.vmap(lambda k: _crop_box(k, 16, 20, (0.08, 1.0), (3 / 4, 4 / 3), 10)))(
        jax.random.split(jax.random.key(3), 500)))
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 16).all() and (left + w <= 20).all()
    assert (h * w >= 0.08 * 320 * 0.5).all() and len({(t, l, hh, ww) for t, l, hh, ww in boxes}) > 400


def test_center_crop_takes_the_middle_window():
    images = np.arange(2 * 5 * 6 * 1).reshape(2, 5, 6, 1)
    np.testing.assert_array_equal(center_crop(images, 3), images[:, 1:4, 1:4])
    np.testing.assert_array_equal(center_crop(images, 4)[0, ..., 0], [[1, 2, 3, 4], [7, 8, 9, 10],
                                                                      [13, 14, 15, 16], [19, 20, 21, 22]])
    assert center_crop(images, 0) is images
    with pytest.raises(UserError, match="crop_size=6 is larger"):
        center_crop(images, 6)


class _Logits(nn.Module):
    """Its input is its output: logits chosen by the test."""

    @nn.compact
    def __call__(self, x, train: bool):
        return x


def test_top5_counts_labels_among_the_five_highest_logits_and_needs_more_than_five_classes():
    logits = np.array([[9, 8, 7, 6, 5, 4, 3],    # label 0: top-1
                       [9, 8, 7, 6, 5, 4, 3],    # label 4: 5th, top-5 only
                       [9, 8, 7, 6, 5, 4, 3],    # label 5: 6th, neither
                       [1, 2, 3, 4, 5, 6, 7],    # label 2: 5th from the top, top-5 only
                       [0, 0, 0, 0, 0, 0, 0],    # label 3: a tie of all, argmax takes the first: top-5 only
                       [3, 9, 0, 0, 0, 0, 0]], np.float32)  # label 1: top-1, but a padded row
    y = np.array([0, 4, 5, 2, 3, 1], np.int32)
    mask = np.array([True] * 5 + [False])
    state = TrainState(jnp.zeros((), jnp.int32), {}, {}, None)
    _, correct, top5 = jax.jit(make_eval_step(_Logits(), TrainSettings(), top5=True))(state, logits, y, mask)
    assert np.asarray(correct).tolist() == [True, False, False, False, False, False]
    assert np.asarray(top5).tolist() == [True, True, False, True, True, False]
    few = make_eval_step(_Logits(), TrainSettings(), top5=True)(state, logits[:, :5], np.minimum(y, 4), mask)
    assert few[2] is None and len(make_eval_step(_Logits(), TrainSettings())(state, logits, y, mask)) == 2


def test_new_keys_at_their_defaults_keep_an_existing_digest_and_are_checked():
    config = config_lib.load_experiment("demo_q_sweep")
    assert {k: config.train[k] for k in RECIPE_KEYS} == {k: list(v) if isinstance(v, tuple) else v
                                                         for k, v in config_lib.RECIPE_DEFAULTS.items()}
    defaults = TrainSettings()
    assert {k: getattr(defaults, k) for k in RECIPE_KEYS} == config_lib.RECIPE_DEFAULTS
    assert {f"train.{k}" for k in RECIPE_KEYS} <= set(identity.DEFAULT_NOT_SHAPING)
    tree = config.to_dict()
    without = dict(tree, train={k: v for k, v in tree["train"].items() if k not in RECIPE_KEYS})
    # As a sweep from before the keys recorded itself (quantizer version aside, which only a config has).
    shaping = {k: v for k, v in identity.shaping(config).items() if k != "quantizer.version"}
    assert identity.digest(identity.shaping(without)) == identity.digest(shaping)
    as_tuple = dict(tree, train=dict(tree["train"], lr_steps=()))  # a tuple and a list of the same values are one
    assert identity.digest(identity.shaping(as_tuple)) == identity.digest(shaping)
    for override in ("train.lr_schedule=cosine", "train.weight_decay=1e-4", "train.label_smoothing=0.1",
                     "train.warmup_epochs=5", "train.crop_size=24", "train.augment_mode=random_resized_crop",
                     "train.lr_steps=30,60,80"):
        changed = config_lib.apply_overrides(config, [override])
        assert identity.config_digest(changed) != identity.config_digest(config), override
    steps = make_plan(config_lib.apply_overrides(config, ["train.lr_schedule=step", "train.lr_steps=30,60,80"]))
    assert steps.settings[0].train.lr_steps == (30, 60, 80)
    with pytest.raises(UserError, match="lr_steps"):
        make_plan(config_lib.apply_overrides(config, ["train.lr_schedule=step"]))
    with pytest.raises(UserError, match="unknown key"):
        config_lib.apply_overrides(config, ["train.lr_shedule=cosine"])


def test_one_run_with_the_whole_recipe_trains_on_crops_and_reports_top5(tmp_path):
    ds = make_stripes(size=16)
    data = SplitData(ds.x_train[:192], ds.y_train[:192], ds.x_train[192:], ds.y_train[192:], ds.x_test, ds.y_test)
    settings = TrainSettings(optimizer="sgd", lr=0.05, batch_size=32, eval_batch_size=64, epochs=2,
                             lr_schedule="cosine", warmup_epochs=0.5, weight_decay=5e-4, label_smoothing=0.1,
                             augment_mode="random_resized_crop", crop_size=12)
    steps = train_steps_per_epoch(192, settings)
    model = models.build("image", "A", 8, width=0.25, dropout=0.0)  # 8 outputs for 4 classes: top-5 is defined
    trainer = Trainer(model, settings, is_image=True, steps_per_epoch=steps)
    assert trainer.model_input(ds.x_train).shape == (1, 12, 12, 3)
    # A model that takes only 12x12 inputs trains and evaluates on the 16x16 stored images, with and without
    # augmentation (random or center crops).
    for augment in (True, False):
        linear = Trainer(_Linear(), dataclasses.replace(settings, augment=augment), is_image=True,
                         steps_per_epoch=steps)
        state = linear.init(ds.x_train, jax.random.key(0))
        assert state.params["Dense_0"]["kernel"].shape == (12 * 12 * 3, 4)
        state, metrics = jax.jit(make_train_step(linear.model, linear.tx, linear.settings, True, lambda x: 1))(
            state, ds.x_train[:32], ds.y_train[:32], jax.random.key(1))
        assert np.isfinite(float(metrics["loss_sum"]))
        assert jax.jit(make_eval_step(linear.model, linear.settings))(state, ds.x_test[:8], ds.y_test[:8],
                                                                      np.ones(8, bool))[1].shape == (8,)
    result = train_run(tmp_path / "run", trainer, data, seed=0, epochs=2)
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [6, 12]
    np.testing.assert_allclose([r["lr"] for r in rows], [0.05 * 0.5 * (1 + np.cos(np.pi * 3 / 9)), 0.0], atol=1e-7)
    assert all(r["val_top5_acc"] >= r["val_acc"] for r in rows)
    assert result["test_top5_acc"] >= result["test_acc"] and result["val_top5_acc"] >= result["val_acc"]
    assert np.isfinite(result["final_train_loss"])
    with pytest.raises(ValueError, match="steps per epoch"):
        train_run(tmp_path / "other", Trainer(model, settings, is_image=True, steps_per_epoch=steps + 1), data,
                  seed=0, epochs=1)


def test_bfloat16_compute_is_a_recorded_choice_that_shapes_the_run():
    from helmjax.training import performance
    from helmjax.training.step import apply_model
    settings = TrainSettings(batch_size=4, performance="accelerator", compute_dtype="bfloat16", augment=False)
    trainer = Trainer(models.build("imagenet", "resnet64", 10, width=0.125), settings, is_image=True)
    x = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    record = trainer.profile.record(trainer.model, x.astype(np.float32) / 255)
    assert "dtype=bfloat16" in record["conv"] and "dtype=bfloat16" in record["dense"]
    state = trainer.init(x[:1], jax.random.key(0))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(state.params))
    logits, _ = apply_model(trainer.model, state.params, state.batch_stats, jnp.asarray(x, jnp.float32) / 255, False)
    assert logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))
    with pytest.raises(UserError, match="compute_dtype"):
        performance.check_settings(dataclasses.replace(settings, compute_dtype="float16"))
    base = config_lib.load_experiment("imagenet64_q_sweep")
    bf16 = config_lib.apply_overrides(base, ["train.compute_dtype=bfloat16"])
    assert identity.digest(identity.shaping(bf16)) != identity.digest(identity.shaping(base))
