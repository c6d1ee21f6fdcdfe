"""The paper's CIFAR-10 architectures have exactly the paper's parameter counts."""

import jax
import jax.numpy as jnp
import pytest

from helmjax import models
from helmjax.errors import UserError
from helmjax.models.cifar import PAPER_PARAMS


@pytest.mark.parametrize("arch", sorted(PAPER_PARAMS))
def test_cifar_parameter_counts_match_the_paper(arch):
    model = models.build("image", arch, 10)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
    assert models.param_count(shapes["params"]) == PAPER_PARAMS[arch]


def test_width_knob_shrinks_the_model_and_output_has_one_logit_per_class():
    model = models.build("image", "A", 7, width=0.25)
    variables = model.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)), train=False)
    assert models.param_count(variables["params"]) < PAPER_PARAMS["A"] / 10
    assert model.apply(variables, jnp.zeros((2, 32, 32, 3)), train=False).shape == (2, 7)


def test_unknown_arch_is_a_user_error_naming_the_choices():
    with pytest.raises(UserError, match="use one of A, B, C, D, E, F"):
        models.build("image", "Z", 10)
