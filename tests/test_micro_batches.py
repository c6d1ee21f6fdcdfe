"""A batch's gradient as the mean of its slices' equals the whole batch's; the automatic slice count and its
errors; the slice count a run used is recorded."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helmjax import models
from helmjax.errors import UserError
from helmjax.training import performance
from helmjax.training.micro_batches import (AUTO, CPU_SLICE_ACTIVATION_BYTES, activation_bytes,
                                            auto_micro_batches, micro_batched, slice_count)
from helmjax.training.recipe import TrainSettings
from helmjax.training.step import make_train_step
from helmjax.training.trainer import Trainer
from tests.conftest import make_stripes

MIB = 2 ** 20


def _train(model, slices, steps=3, is_image=True, x=None, y=None):
    """`steps` train steps with the batch's gradient taken over `slices` slices."""
    settings = TrainSettings(optimizer="sgd", lr=0.05, batch_size=32, augment=True)
    trainer = Trainer(model, settings, is_image=is_image)
    step = jax.jit(make_train_step(trainer.model, trainer.tx, settings, is_image, lambda x: slices))
    if x is None:
        ds = make_stripes()
        x, y = ds.x_train[:64], ds.y_train[:64]
    state = trainer.init(x, jax.random.key(0))
    losses = []
    for i in range(steps):
        order = np.random.RandomState(i).permutation(len(y))[:32]
        state, metrics = step(state, x[order], y[order], jax.random.key(i))
        losses.append(float(metrics["loss_sum"]))
        assert int(metrics["count"]) == 32
    return state, losses


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["A", "F"])  # a conv head and a dense head
def test_sliced_gradient_equals_the_whole_batch(arch):
    model = models.build("image", arch, 4, width=0.25, dropout=0.0)  # no dropout: the same maths either way
    whole, whole_losses = _train(model, 1)
    for slices in (2, 4):
        sliced, sliced_losses = _train(model, slices)
        np.testing.assert_allclose(sliced_losses, whole_losses, rtol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(sliced.params), jax.tree_util.tree_leaves(whole.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_micro_batched_takes_interleaved_slices_and_sums_aux():
    def grad_fn(params, batch, rng):
        x, y = batch
        return {"w": jnp.mean(x) * params["w"]}, {"rows": jnp.sum(y), "count": jnp.asarray(y.shape[0])}

    x = jnp.arange(8.0)
    y = jnp.arange(8)
    grads, aux = micro_batched(grad_fn, 4)({"w": jnp.asarray(2.0)}, (x, y), jax.random.key(0))
    assert float(grads["w"]) == 2.0 * float(jnp.mean(x))  # mean of the slices' gradients: the batch's
    assert int(aux["rows"]) == 28 and int(aux["count"]) == 8  # sums over the slices

    def first_rows(params, batch, rng):
        x, _ = batch
        return {"w": x[0]}, {}
    grads, _ = micro_batched(first_rows, 4)({"w": jnp.asarray(0.0)}, (x, y), jax.random.key(0))
    assert float(grads["w"]) == (0 + 1 + 2 + 3) / 4  # slice j holds rows j, j + 4: interleaved
    assert micro_batched(grad_fn, 1) is grad_fn


class _BatchNormNet(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.Dense(8)(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        return nn.Dense(3)(nn.relu(x))


def test_models_with_batch_statistics_always_use_the_whole_batch():
    x = jnp.zeros((64, 5))
    assert slice_count(_BatchNormNet(), x, 4) == 1 and slice_count(_BatchNormNet(), x, AUTO) == 1
    assert slice_count(models.build("image", "A", 3, width=0.25), jnp.zeros((64, 8, 8, 3)), 4) == 4


def test_automatic_slicing_only_on_a_single_cpu_device():
    settings = TrainSettings(batch_size=128)
    assert performance.choose(settings, "cpu", 1).micro_batches == AUTO
    assert performance.choose(settings, "cpu", 4).micro_batches == 1
    assert performance.choose(settings, "gpu", 1).micro_batches == 1
    assert performance.choose(TrainSettings(batch_size=128, micro_batches=4), "gpu", 8).micro_batches == 4


@pytest.mark.parametrize("micro_batches, devices", [(3, 1), (-1, 1), (32, 8)])
def test_a_slice_count_that_does_not_split_the_batch_is_one_clear_error(micro_batches, devices):
    settings = TrainSettings(batch_size=128, micro_batches=micro_batches)
    with pytest.raises(UserError, match=f"train.micro_batches={micro_batches} does not split"):
        performance.choose(settings, "cpu", devices)


def test_automatic_count_is_the_fewest_slices_that_fit_the_cache_budget():
    assert CPU_SLICE_ACTIVATION_BYTES == 24 * MIB
    assert auto_micro_batches(16 * MIB, 64) == 1
    assert auto_micro_batches(128 * MIB, 128) == 8  # 6 would fit but does not divide 128
    assert auto_micro_batches(100 * MIB, 50) == 5
    assert auto_micro_batches(10_000 * MIB, 4) == 4  # never more slices than rows


def test_activation_bytes_counts_every_layer_output():
    model = models.build("image", "A", 10)
    x = jnp.zeros((2, 32, 32, 3))
    # Per example: convs 32x32x32, 32x32x64, then 16x16x128 (strided conv and its dropout), two 16x16x128 convs,
    # 8x8x128 (strided conv and dropout), 8x8x128 3x3 and 1x1 convs, 8x8x10, and the 10 logits of the model.
    floats = (32 * 32 * 32 + 32 * 32 * 64 + 2 * 16 * 16 * 128 + 2 * 16 * 16 * 128 + 2 * 8 * 8 * 128
              + 2 * 8 * 8 * 128 + 8 * 8 * 10 + 10)
    assert activation_bytes(model, x) == 2 * 4 * floats


@pytest.mark.slow
def test_the_slice_count_a_run_uses_is_the_one_recorded():
    """Model A at width 1 on batches of 128 CIFAR images: 135 MB of activations, so 8 slices of 17 MB."""
    trainer = Trainer(models.build("image", "A", 10), TrainSettings(batch_size=128), is_image=True)
    record = trainer.performance_record(np.zeros((1, 32, 32, 3), np.uint8))
    assert record["micro_batches"] == 8 and record["profile"] == "cpu"
    seen = []
    step = make_train_step(trainer.model, trainer.tx, trainer.settings, True,
                           lambda x: seen.append(trainer.profile.slices(trainer.model, x)) or seen[-1])
    state = trainer.init(np.zeros((1, 32, 32, 3), np.uint8), jax.random.key(0))
    jax.eval_shape(step, state, jnp.zeros((128, 32, 32, 3), jnp.uint8), jnp.zeros(128, jnp.int32),
                   jax.random.key(0))
    assert seen == [8]
