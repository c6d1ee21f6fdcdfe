"""The CPU speed layers change speed, not maths: the sub-pixel strided-conv gradient equals XLA's, so does the
patch-matmul convolution for few input channels, the bit-sliced dropout is an exact Bernoulli draw, the XLA
library-fusion option is probed, not assumed, and a performance profile swaps layers without touching parameters."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from helmjax import models
from helmjax.errors import UserError
from helmjax.models import conv as conv_module
from helmjax.models.conv import conv_general_dilated, strided_input_gradient
from helmjax.models.dropout import Dropout, _bits_per_draw, bernoulli_mask
from helmjax.training import performance
from helmjax.training.recipe import TrainSettings

NHWC = ("NHWC", "HWIO", "NHWC")
CASES = [  # (height, width, kernel, stride, padding)
    (32, 32, 3, 2, "SAME"), (33, 31, 3, 2, "SAME"), (8, 8, 3, 2, "SAME"), (17, 20, 5, 3, "SAME"),
    (12, 12, 3, 2, "VALID"), (10, 9, 4, 2, ((2, 1), (0, 3))), (7, 7, 1, 2, "SAME"), (9, 11, 2, 2, "VALID"),
]


def _lax_conv(x, w, stride, padding):
    return lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=NHWC)


@pytest.mark.parametrize("height,width,kernel,stride,padding", CASES)
def test_subpixel_input_gradient_equals_xlas(height, width, kernel, stride, padding):
    rng = np.random.RandomState(height * 100 + width)
    x = jnp.asarray(rng.randn(2, height, width, 5), jnp.float32)
    w = jnp.asarray(rng.randn(kernel, kernel, 5, 7), jnp.float32)
    y, vjp = jax.vjp(lambda x: _lax_conv(x, w, stride, padding), x)
    g = jnp.asarray(rng.randn(*y.shape), jnp.float32)
    pads = lax.padtype_to_pads((height, width), (kernel, kernel), (stride, stride), padding) \
        if isinstance(padding, str) else padding
    expected = vjp(g)[0]
    got = strided_input_gradient(g, w, x.shape, (stride, stride), pads)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(expected))))


@pytest.mark.slow
@pytest.mark.parametrize("height,width,kernel,stride,padding", CASES[:4])
def test_drop_in_conv_has_laxs_output_and_gradients(height, width, kernel, stride, padding):
    rng = np.random.RandomState(1)
    x = jnp.asarray(rng.randn(3, height, width, 4), jnp.float32)
    w = jnp.asarray(rng.randn(kernel, kernel, 4, 6), jnp.float32)

    def loss(conv, x, w):
        y = conv(x, w, (stride, stride), padding, dimension_numbers=NHWC)
        return jnp.sum(jnp.sin(y))

    assert np.array_equal(conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=NHWC),
                          _lax_conv(x, w, stride, padding))  # the forward pass is lax's own
    ours = jax.grad(lambda x, w: loss(conv_general_dilated, x, w), argnums=(0, 1))(x, w)
    theirs = jax.grad(lambda x, w: loss(lax.conv_general_dilated, x, w), argnums=(0, 1))(x, w)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(b))))
    # vmapped over a stack of kernels (stacked sweeps) it still agrees
    ws = jnp.stack([w, 2 * w])
    stacked = jax.vmap(jax.grad(lambda w: loss(conv_general_dilated, x, w)))(ws)
    lone = [jax.grad(lambda w: loss(lax.conv_general_dilated, x, w))(k) for k in ws]
    for a, b in zip(stacked, lone):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(b))))


PATCH_CASES = [  # (height, width, kernel, c_in, padding): patches of 27, 18, 50, 64 values
    (32, 32, 3, 3, "SAME"), (9, 13, 3, 2, "VALID"), (11, 10, 5, 2, ((2, 1), (0, 3))), (8, 8, 4, 4, "SAME"),
]


@pytest.mark.slow
@pytest.mark.parametrize("height,width,kernel,c_in,padding", PATCH_CASES)
def test_few_channel_convolution_is_one_patch_matmul_with_laxs_values(height, width, kernel, c_in, padding):
    rng = np.random.RandomState(height * kernel + c_in)
    x = jnp.asarray(rng.rand(3, height, width, c_in), jnp.float32)
    w = jnp.asarray(rng.randn(kernel, kernel, c_in, 8), jnp.float32)

    def loss(conv, x, w):
        return jnp.sum(jnp.sin(conv(x, w, (1, 1), padding, dimension_numbers=NHWC)))

    jaxpr = str(jax.make_jaxpr(lambda x, w: conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=NHWC))(x, w))
    assert "dot_general" in jaxpr and "conv_general_dilated" not in jaxpr  # the fast path was taken
    ours, theirs = (conv(x, w, (1, 1), padding, dimension_numbers=NHWC)
                    for conv in (conv_general_dilated, lax.conv_general_dilated))
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(theirs))))
    grads = [jax.grad(lambda x, w: loss(conv, x, w), argnums=(0, 1))(x, w)
             for conv in (conv_general_dilated, lax.conv_general_dilated)]
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(b))))
    stacked = jax.vmap(jax.grad(lambda w: loss(conv_general_dilated, x, w)))(jnp.stack([w, -w]))
    for a, k in zip(stacked, (w, -w)):
        b = jax.grad(lambda w: loss(lax.conv_general_dilated, x, w))(k)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(b))))


@pytest.mark.parametrize("c_in", [8, 1])  # 72 > PATCH_MATMUL_MAX and 9 < PATCH_MATMUL_MIN values per patch
def test_longer_and_shorter_patches_stay_xlas_convolution(c_in):
    x = jnp.ones((1, 8, 8, c_in), jnp.float32)
    w = jnp.ones((3, 3, c_in, 4), jnp.float32)
    assert not conv_module.PATCH_MATMUL_MIN <= 3 * 3 * c_in <= conv_module.PATCH_MATMUL_MAX
    jaxpr = str(jax.make_jaxpr(lambda x, w: conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC))(x, w))
    assert "conv_general_dilated" in jaxpr and "dot_general" not in jaxpr


def test_other_convolutions_go_to_lax_unchanged():
    rng = np.random.RandomState(2)
    x = jnp.asarray(rng.randn(2, 9, 9, 4), jnp.float32)
    w = jnp.asarray(rng.randn(3, 3, 2, 4), jnp.float32)
    grouped = conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=NHWC, feature_group_count=2)
    assert np.array_equal(grouped, lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=NHWC,
                                                            feature_group_count=2))
    w4 = jnp.asarray(rng.randn(3, 3, 4, 4), jnp.float32)
    dilated = conv_general_dilated(x, w4, (2, 2), "SAME", rhs_dilation=(2, 2), dimension_numbers=NHWC)
    assert np.array_equal(dilated, lax.conv_general_dilated(x, w4, (2, 2), "SAME", rhs_dilation=(2, 2),
                                                            dimension_numbers=NHWC))
    assert dilated.shape == (2, 5, 5, 4)


def test_bits_per_draw_is_exact_or_falls_back():
    assert [_bits_per_draw(p) for p in (0.5, 0.75, 0.25, 0.125, 0.3, 0.4)] == [1, 2, 2, 3, 0, 0]


@pytest.mark.parametrize("keep", [0.5, 0.75, 0.4])
def test_bernoulli_mask_has_the_right_rate_and_independent_neighbours(keep):
    n = 1 << 20
    mask = np.asarray(bernoulli_mask(jax.random.key(0), keep, (n,)))
    sigma = np.sqrt(keep * (1 - keep) / n)
    assert abs(mask.mean() - keep) < 5 * sigma
    # Neighbours share a random word when bits are sliced: their joint rate must still be keep^2.
    both = (mask[:-1] & mask[1:]).mean()
    assert abs(both - keep * keep) < 5 * np.sqrt(keep * keep * (1 - keep * keep) / n)
    other = np.asarray(bernoulli_mask(jax.random.key(1), keep, (n,)))
    assert (mask != other).mean() > 0.3


def test_dropout_scales_kept_units_and_is_identity_when_deterministic():
    x = jnp.asarray(np.random.RandomState(3).rand(64, 8, 8, 16) + 0.5, jnp.float32)
    layer = Dropout(0.5)
    y = layer.apply({}, x, rngs={"dropout": jax.random.key(0)})
    kept = np.asarray(y) != 0
    assert 0.45 < kept.mean() < 0.55
    np.testing.assert_allclose(np.asarray(y)[kept], 2 * np.asarray(x)[kept], rtol=1e-6)
    assert np.array_equal(Dropout(0.5, deterministic=True).apply({}, x), x)
    assert np.array_equal(Dropout(0.0).apply({}, x, rngs={"dropout": jax.random.key(0)}), x)
    assert not np.any(Dropout(1.0).apply({}, x, rngs={"dropout": jax.random.key(0)}))


def test_library_fusion_option_is_probed_and_only_the_cpu_profile_uses_it():
    assert performance.cpu_accepts((("xla_cpu_no_such_option_exists", "1"),)) is False
    cpu = performance.choose(TrainSettings(), "cpu", 1)
    assert cpu.compiler_options == performance.CPU_COMPILER_OPTIONS  # this jaxlib (requirements.txt's) accepts it
    assert performance.choose(TrainSettings(), "gpu", 1).compiler_options is None
    assert performance.choose(TrainSettings(performance="plain"), "cpu", 1).compiler_options is None


def test_profiles_are_chosen_from_the_platform_and_named_in_config():
    assert performance.choose(TrainSettings(), "cpu", 1).name == "cpu"
    assert performance.choose(TrainSettings(), "tpu", 4).name == "accelerator"
    assert performance.choose(TrainSettings(performance="plain"), "gpu", 1).dropout_layer is nn.Dropout
    with pytest.raises(UserError, match="train.performance='fast' is not a profile"):
        performance.choose(TrainSettings(performance="fast"), "cpu", 1)
    with pytest.raises(UserError, match="train.stack_mode='pmap'"):
        performance.choose(TrainSettings(stack_mode="pmap"), "cpu", 1)


@pytest.mark.slow
@pytest.mark.parametrize("family, arch, shape", [("image", "F", (2, 32, 32, 3)), ("audio", "B", (2, 96, 100, 1))])
def test_a_profile_swaps_layers_not_parameters(family, arch, shape):
    plain = models.build(family, arch, 10)
    fast = performance.choose(TrainSettings(), "cpu", 1).fill(plain)
    assert fast.conv is not nn.Conv and fast.dropout_layer is Dropout  # the CPU layers are in
    x = jnp.asarray(np.random.RandomState(0).rand(*shape), jnp.float32)
    variables = plain.init(jax.random.key(0), x, train=False)
    assert jax.tree_util.tree_map(np.shape, fast.init(jax.random.key(0), x, train=False)) == \
        jax.tree_util.tree_map(np.shape, variables)  # same names and shapes: checkpoints move between profiles
    np.testing.assert_allclose(fast.apply(variables, x, train=False), plain.apply(variables, x, train=False),
                               rtol=1e-5, atol=1e-5)
    record = performance.choose(TrainSettings(), "cpu", 1).record(fast, x)
    assert record["conv"] == "flax.linen.linear.Conv(conv_general_dilated=helmjax.models.conv.conv_general_dilated)"
    assert record["dropout_layer"] == "helmjax.models.dropout.Dropout" and record["dense"] == "flax.linen.linear.Dense"
