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


@pytest.mark.parametrize("arch", list(audio.ARCHS))
def test_parameter_count_is_the_papers_minus_248(arch):
    _, variables = _init(arch, (1, 96, 173, 1))
    # Keras counts BatchNorm's moving mean and variance as parameters; here they live in `batch_stats`.
    count = models.param_count(variables["params"]) + models.param_count(variables["batch_stats"])
    assert count == audio.PAPER_PARAMS[arch] - 248 == audio.CORRECTED_PARAMS[arch]
    assert variables["batch_stats"]["BatchNorm_0"]["mean"].shape == (32,)  # over channels, not mel rows


def test_paper_counts_are_the_published_table():
    assert audio.PAPER_PARAMS == {"A": 101412, "B": 170436, "C": 427492, "D": 808356, "E": 824868, "F": 3715460}


@pytest.mark.parametrize("arch", list(audio.ARCHS))
def test_fsdd_feature_shape_works_without_channel_axis(arch):
    module, _ = _init(arch, (2, 64, 63), num_classes=10)
    x = jax.random.normal(jax.random.key(1), (2, 64, 63))
    variables = module.init(jax.random.key(0), x, train=False)
    logits = module.apply(variables, x, train=False)
    assert logits.shape == (2, 10) and bool(jnp.all(jnp.isfinite(logits)))


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
