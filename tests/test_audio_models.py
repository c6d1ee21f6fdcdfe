"""Audio models A-F: exact corrected parameter counts, FSDD-sized input, train/eval behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helmjax import models
from helmjax.errors import UserError
from helmjax.models import audio


def _init(arch, shape, num_classes=12):
    module = models.build("audio", arch, num_classes)
    variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(shape), train=False))
    return module, variables


# The paper's table for 12 classes on 96 x 173 x 1 (Keras counts, BatchNorm's moving mean and variance included)
# and its architectures: (conv loops, dense widths).
PUBLISHED = {"A": 101_412, "B": 170_436, "C": 427_492, "D": 808_356, "E": 824_868, "F": 3_715_460}
PAPER_LAYERS = {"A": (3, ()), "B": (4, (128,)), "C": (3, (64, 128)), "D": (3, (128,)), "E": (3, (128, 128)),
                "F": (2, (128,))}


def keras_count(conv_loops, fc_units, batchnorm_axis, classes=12, mels=96, frames=173):
    """Parameters by hand: Conv32 3x3 'valid' -> BatchNorm (4 numbers per normalised index); per loop
    Conv32 3x3 'valid' -> MaxPool 2x2; flatten; Dense layers with biases."""
    h, w = mels - 2, frames - 2
    count = (9 * 1 * 32 + 32) + 4 * {"mel": h, "channel": 32}[batchnorm_axis]
    for _ in range(conv_loops):
        count += 9 * 32 * 32 + 32
        h, w = (h - 2) // 2, (w - 2) // 2
    inputs = h * w * 32
    for units in (*fc_units, classes):
        count += inputs * units + units
        inputs = units
    return count


@pytest.mark.parametrize("arch", list(audio.ARCHS))
def test_parameter_count_is_the_papers_minus_248(arch):
    # The hand count with the original's BatchNorm over the 94 mel rows reproduces the published table ...
    assert keras_count(*PAPER_LAYERS[arch], batchnorm_axis="mel") == PUBLISHED[arch]
    # ... and the model, BatchNorm over the 32 channels, has that count less 4 x (94 - 32) = 248.
    _, variables = _init(arch, (1, 96, 173, 1))
    # Keras counts BatchNorm's moving mean and variance as parameters; here they live in `batch_stats`.
    count = models.param_count(variables["params"]) + models.param_count(variables["batch_stats"])
    assert count == keras_count(*PAPER_LAYERS[arch], batchnorm_axis="channel") == PUBLISHED[arch] - 248
    assert count == audio.CORRECTED_PARAMS[arch]
    assert variables["batch_stats"]["BatchNorm_0"]["mean"].shape == (32,)  # over channels, not mel rows


@pytest.mark.parametrize("arch", list(audio.ARCHS))
def test_fsdd_feature_shape_works_without_channel_axis(arch):
    module, _ = _init(arch, (2, 64, 63), num_classes=10)
    x = jax.random.normal(jax.random.key(1), (2, 64, 63))
    variables = module.init(jax.random.key(0), x, train=False)
    logits = module.apply(variables, x, train=False)
    assert logits.shape == (2, 10) and bool(jnp.all(jnp.isfinite(logits)))


@pytest.mark.slow
def test_train_mode_updates_batch_stats_and_uses_dropout():
    module = models.build("audio", "A", 12)
    x = jax.random.normal(jax.random.key(1), (4, 40, 60, 1))
    variables = module.init(jax.random.key(0), x, train=False)
    a, updates = module.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"])
    b, _ = module.apply(variables, x, train=True, rngs={"dropout": jax.random.key(3)}, mutable=["batch_stats"])
    assert not np.allclose(a, b)  # different dropout masks
    assert not np.allclose(updates["batch_stats"]["BatchNorm_0"]["mean"], 0.0)
    np.testing.assert_array_equal(module.apply(variables, x, train=False), module.apply(variables, x, train=False))


def test_width_knob_shrinks_the_model_and_too_small_input_is_a_user_error():
    _, full = _init("D", (1, 96, 173, 1))
    half_module = models.build("audio", "D", 12, width=0.5)
    half = jax.eval_shape(lambda: half_module.init(jax.random.key(0), jnp.zeros((1, 96, 173, 1)), train=False))
    assert models.param_count(half["params"]) < models.param_count(full["params"]) / 2
    with pytest.raises(UserError, match="too small"):
        _init("B", (1, 96, 16, 1))
