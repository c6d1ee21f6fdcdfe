"""A batch's gradient summed over slices equals the whole batch's; the automatic slice count and its errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helmjax import models
from helmjax.errors import UserError
from helmjax.train import (AUTO, CPU_SLICE_ACTIVATION_BYTES, Trainer, TrainSettings, activation_bytes,
                           auto_micro_batches, resolve_micro_batches)
from tests.conftest import make_stripes

MIB = 2 ** 20


def _train(model, micro_batches, steps=3, is_image=True, x=None, y=None):
    settings = TrainSettings(optimizer="sgd", lr=0.05, batch_size=32, augment=True, micro_batches=micro_batches)
    trainer = Trainer(model, settings, is_image=is_image)
    if x is None:
        ds = make_stripes()
        x, y = ds.x_train[:64], ds.y_train[:64]
    data_x, data_y = trainer.put(x), trainer.put(y)
    state = trainer.init(x, jax.random.key(0))
    losses = []
    for i in range(steps):
        order = np.random.RandomState(i).permutation(len(y))[:32]
        state, metrics = trainer.train_step(state, data_x, data_y, order, jax.random.key(i))
        losses.append(float(metrics["loss_sum"]))
        assert int(metrics["count"]) == 32
    return state, losses


@pytest.mark.parametrize("arch", ["A", "F"])  # F's Dense kernels get their gradient once per batch when sliced
def test_sliced_gradient_equals_the_whole_batch(arch):
    model = models.build("image", arch, 4, width=0.25, dropout=0.0)  # no dropout: the same maths either way
    whole, whole_losses = _train(model, 1)
    for slices in (2, 4):
        sliced, sliced_losses = _train(model, slices)
        np.testing.assert_allclose(sliced_losses, whole_losses, rtol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(sliced.params), jax.tree_util.tree_leaves(whole.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


class _BatchNormNet(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.Dense(8)(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        return nn.Dense(3)(nn.relu(x))


def test_models_with_batch_statistics_always_use_the_whole_batch():
    rng = np.random.RandomState(0)
    x, y = rng.randn(64, 5).astype(np.float32), rng.randint(0, 3, 64).astype(np.int32)
    whole, whole_losses = _train(_BatchNormNet(), 1, is_image=False, x=x, y=y)
    sliced, sliced_losses = _train(_BatchNormNet(), 4, is_image=False, x=x, y=y)
    assert sliced_losses == whole_losses  # slicing would change the statistics, so it is not done at all
    for a, b in zip(jax.tree_util.tree_leaves(sliced), jax.tree_util.tree_leaves(whole)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_automatic_slicing_only_on_a_single_cpu_device():
    settings = TrainSettings(batch_size=128)
    assert resolve_micro_batches(settings, "cpu", 1) == AUTO
    assert resolve_micro_batches(settings, "cpu", 4) == 1
    assert resolve_micro_batches(settings, "gpu", 1) == 1
    assert resolve_micro_batches(TrainSettings(batch_size=128, micro_batches=4), "gpu", 8) == 4


@pytest.mark.parametrize("micro_batches, devices", [(3, 1), (-1, 1), (32, 8)])
def test_a_slice_count_that_does_not_split_the_batch_is_one_clear_error(micro_batches, devices):
    settings = TrainSettings(batch_size=128, micro_batches=micro_batches)
    with pytest.raises(UserError, match=f"train.micro_batches={micro_batches} does not split"):
        resolve_micro_batches(settings, "cpu", devices)


def test_automatic_count_is_the_fewest_slices_that_fit_the_cache_budget():
    assert CPU_SLICE_ACTIVATION_BYTES == 24 * MIB
    assert auto_micro_batches(16 * MIB, 64) == 1
    assert auto_micro_batches(128 * MIB, 128) == 8  # 6 would fit but does not divide 128
    assert auto_micro_batches(100 * MIB, 50) == 5
    assert auto_micro_batches(10_000 * MIB, 4) == 4  # never more slices than rows


def test_activation_bytes_counts_every_layer_output():
    model = models.build("image", "A", 10)
    x = jnp.zeros((2, 32, 32, 3))
    params = model.init(jax.random.key(0), x[:1], train=False)["params"]
    # Per example: convs 32x32x32, 32x32x64, then 16x16x128 (strided conv and its dropout), two 16x16x128 convs,
    # 8x8x128 (strided conv and dropout), 8x8x128 3x3 and 1x1 convs, 8x8x10, and the 10 logits of the model.
    floats = (32 * 32 * 32 + 32 * 32 * 64 + 2 * 16 * 16 * 128 + 2 * 16 * 16 * 128 + 2 * 8 * 8 * 128
              + 2 * 8 * 8 * 128 + 8 * 8 * 10 + 10)
    assert activation_bytes(model, params, x) == 2 * 4 * floats
