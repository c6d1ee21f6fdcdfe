"""The large-scale networks (AlexNet, CaffeNet, ResNet-50, ResNet for 64x64) have their references' exact parameter
counts and output shapes (shapes only: nothing of their 25-62 M parameters is allocated), BatchNorm statistics
only where they have BatchNorm, Caffe's layers as Caffe computes them, and a ResNet trains through the train step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helmjax import models
from helmjax.models import imagenet
from helmjax.models.imagenet import adaptive_avg_pool, caffe_max_pool, local_response_norm
from helmjax.training.recipe import TrainSettings
from helmjax.training.step import apply_model, make_eval_step, make_train_step
from helmjax.training.trainer import Trainer

WITH_BATCH_STATS = {"alexnet": False, "caffenet": False, "resnet50": True, "resnet64": True}


def _shapes(module, size, batch=2):
    """(logits, variables) of `module` on a `batch` of size x size RGB images, as shapes."""
    x = jnp.zeros((batch, size, size, 3))
    return jax.eval_shape(lambda: module.init_with_output(jax.random.key(0), x, train=False))


@pytest.mark.parametrize("arch", list(imagenet.ARCHS))
def test_counts_equal_the_references_and_batch_stats_exist_only_with_batchnorm(arch):
    logits, variables = _shapes(models.build("imagenet", arch, 1000), imagenet.INPUT_SIZES[arch])
    assert models.param_count(variables["params"]) == imagenet.REFERENCE_PARAMS[arch]
    assert logits.shape == (2, 1000)
    assert ("batch_stats" in variables) == WITH_BATCH_STATS[arch]


def test_published_counts_of_the_variants_the_references_derive_from():
    # CaffeNet as released (conv2, conv4, conv5 in 2 groups): 60,965,224.
    _, grouped = _shapes(imagenet.CaffeNet(1000, groups=2), 227, batch=1)
    assert models.param_count(grouped["params"]) == 60_965_224
    # ResNet-18 with the ImageNet stem is torchvision's resnet18, 11,689,512; the 64x64 ResNet differs only by its
    # 3x3 stem convolution in place of the 7x7 one.
    resnet18 = imagenet.ResNet(1000, stage_sizes=(2, 2, 2, 2), block_cls=imagenet.ResNetBlock)
    _, resnet18 = _shapes(resnet18, 224, batch=1)
    assert models.param_count(resnet18["params"]) == 11_689_512
    _, small = _shapes(models.build("imagenet", "resnet64", 1000), 64, batch=1)
    assert models.param_count(small["params"]) == 11_689_512 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64


@pytest.mark.parametrize("arch, size", [("alexnet", 64), ("alexnet", 256), ("caffenet", 224), ("resnet50", 160)])
def test_other_input_sizes_keep_the_count(arch, size):
    """AlexNet pools adaptively to 6x6; Caffe's rounded-up pooling brings 224 to CaffeNet's 6x6 too; ResNets pool
    globally."""
    logits, variables = _shapes(models.build("imagenet", arch, 5), size)
    assert logits.shape == (2, 5)
    full = imagenet.REFERENCE_PARAMS[arch]
    dense_in = {"alexnet": 4096, "caffenet": 4096, "resnet50": 2048}[arch]
    assert models.param_count(variables["params"]) == full - (1000 - 5) * (dense_in + 1)


@pytest.mark.parametrize("arch", ["alexnet", "caffenet"])
def test_models_without_batchnorm_take_the_train_steps_apply(arch):
    module = models.build("imagenet", arch, 10, width=0.5)
    size = imagenet.INPUT_SIZES[arch]
    params = _shapes(module, size)[1]["params"]
    x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    logits, batch_stats = jax.eval_shape(lambda p, x: apply_model(module, p, {}, x, True, jax.random.key(0)),
                                         params, x)
    assert logits.shape == (2, 10) and batch_stats == {}
    assert models.param_count(params) < imagenet.REFERENCE_PARAMS[arch] / 3


def test_caffe_layers_compute_as_caffe():
    rng = np.random.RandomState(0)
    x = rng.rand(1, 2, 3, 7).astype(np.float32) * 20
    # LRN across channels: alpha divided by the window size, the window cut at the first and last channels.
    padded = np.pad(np.square(x), ((0, 0), (0, 0), (0, 0), (2, 2)))
    sums = sum(padded[..., i:i + 7] for i in range(5))
    np.testing.assert_allclose(local_response_norm(jnp.asarray(x)), x / (1 + 1e-4 / 5 * sums) ** 0.75, rtol=1e-6)
    # Pooling rounds up: 14 rows give 7 windows, the last one over rows 12 and 13 only.
    x = rng.rand(1, 14, 14, 1).astype(np.float32)
    pooled = np.asarray(caffe_max_pool(jnp.asarray(x), 3, 2))
    assert pooled.shape == (1, 7, 7, 1) and pooled[0, 6, 6, 0] == x[0, 12:, 12:, 0].max()
    assert pooled[0, 0, 0, 0] == x[0, :3, :3, 0].max()
    # Adaptive pooling: 6x6 stays, 12x12 averages 2x2 blocks, 1x1 repeats.
    np.testing.assert_array_equal(adaptive_avg_pool(jnp.asarray(x[:, :6, :6]), (6, 6)), x[:, :6, :6])
    blocks = x[:, :12, :12].reshape(1, 6, 2, 6, 2, 1).mean(axis=(2, 4))
    np.testing.assert_allclose(adaptive_avg_pool(jnp.asarray(x[:, :12, :12]), (6, 6)), blocks, rtol=1e-6)
    np.testing.assert_array_equal(adaptive_avg_pool(jnp.asarray(x[:, :1, :1]), (6, 6)),
                                  np.broadcast_to(x[:, :1, :1], (1, 6, 6, 1)))


def test_resnet64_train_step_updates_batch_stats_and_evaluates_with_them():
    settings = TrainSettings(batch_size=4, lr=0.1)
    trainer = Trainer(models.build("imagenet", "resnet64", 10, width=0.25), settings, is_image=True)
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, (4, 64, 64, 3)).astype(np.uint8)
    y = np.arange(4, dtype=np.int32)
    state = trainer.init(x, jax.random.key(0))
    before = jax.tree_util.tree_map(np.asarray, state.batch_stats)
    step = jax.jit(make_train_step(trainer.model, trainer.tx, settings, True,
                                   lambda x: trainer.profile.slices(trainer.model, x)))
    state, metrics = step(state, x, y, jax.random.key(1))
    assert int(metrics["count"]) == 4 and np.isfinite(float(metrics["loss_sum"]))
    after = jax.tree_util.tree_leaves(state.batch_stats)
    assert len(after) == len(jax.tree_util.tree_leaves(before)) > 0
    assert all(not np.array_equal(a, b) for a, b in zip(after, jax.tree_util.tree_leaves(before)))
    loss_sum, correct = jax.jit(make_eval_step(trainer.model, settings))(state, x, y, np.ones(4, bool))
    assert np.isfinite(float(loss_sum)) and correct.shape == (4,)


@pytest.mark.slow
def test_resnet64_learns_above_chance_on_a_small_real_subset(tmp_path, shared_data):
    """1000 CIFAR-10 images (chance 10%): a narrow ResNet-64 trained a few epochs through the one training path
    scores far above chance on 500 held-out images (5 binomial sds of chance is 16.7%)."""
    from helmjax.data import cifar10
    from helmjax.training.loop import train_run
    from helmjax.training.pipeline import SplitData
    ds = cifar10.load_subset(shared_data)
    x, y = ds.x_train[:1200], ds.y_train[:1200]
    data = SplitData(x[:1000], y[:1000], x[1000:], y[1000:], ds.x_test[:500], ds.y_test[:500])
    settings = TrainSettings(optimizer="adam", lr=3e-3, lr_decay=0.0, batch_size=50, eval_batch_size=100,
                             augment=True, epochs=4)
    trainer = Trainer(models.build("imagenet", "resnet64", 10, width=0.25), settings, is_image=True)
    result = train_run(tmp_path / "run", trainer, data, seed=0, epochs=4)
    assert result["test_acc"] > 0.2, result
