"""The paper's large-scale networks (ImageNet, Places, COWC): AlexNet, CaffeNet, ResNet-50, and a ResNet for 64x64.

Standard architectures at their published parameter counts (`REFERENCE_PARAMS`, 1000 classes, width 1), built
from the same fields as the CIFAR models: the width knob (`scaled_width` on every hidden channel count and dense
width) and the layers `conv`, `dense`, `dropout_layer`, flax's own by default, the trainer's performance profile's
in a run (`helmjax.training.performance`). Inputs are float32 NHWC in [0, 1], as for the CIFAR models (no mean
subtraction inside; `train.standardize` is the trainer's option). The ResNets follow flax's ImageNet example
(`examples/imagenet/models.py`), BatchNorm statistics in `batch_stats`; AlexNet and CaffeNet have none.
Every architecture takes the same knobs (`width`, `dropout`), so one sweep can hold any of them.
"""

import functools
import math
from typing import Any, Callable, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from helmjax.models.knobs import Knobs, ModuleDef, scaled_width


def adaptive_avg_pool(x: jax.Array, size: Tuple[int, int]) -> jax.Array:
    """torch's AdaptiveAvgPool2d on NHWC: output cell i averages rows floor(i H / n) .. ceil((i + 1) H / n) - 1, so
    any feature map (smaller ones repeat cells) gives `size` cells, and the dense layer after it one shape."""
    def bounds(length, n):
        return [(i * length // n, -(-(i + 1) * length // n)) for i in range(n)]

    rows = [jnp.stack([jnp.mean(x[:, r0:r1, c0:c1], axis=(1, 2)) for c0, c1 in bounds(x.shape[2], size[1])], axis=1)
            for r0, r1 in bounds(x.shape[1], size[0])]
    return jnp.stack(rows, axis=1)


def caffe_max_pool(x: jax.Array, window: int, stride: int) -> jax.Array:
    """Caffe's max pooling: unpadded, but the output size rounds up (ceil((H - k) / s) + 1), the last window
    overhanging the edge; at CaffeNet's 227x227 every pooling divides exactly, so this equals a VALID pool there."""
    def overhang(length):
        return (math.ceil((length - window) / stride)) * stride + window - length

    pads = ((0, overhang(x.shape[1])), (0, overhang(x.shape[2])))
    return nn.max_pool(x, (window, window), strides=(stride, stride), padding=pads)  # pads are -inf for a max


def local_response_norm(x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> jax.Array:
    """Caffe's LRN across channels: x / (k + alpha / size * sum of x^2 over `size` neighbouring channels)^beta,
    the window centred and cut at the ends (Caffe divides alpha by the window size; torch's LocalResponseNorm too)."""
    half = size // 2
    sums = jax.lax.reduce_window(jnp.square(x), 0.0, jax.lax.add, (1, 1, 1, size), (1, 1, 1, 1),
                                 ((0, 0), (0, 0), (0, 0), (half, size - 1 - half)))
    return x / jnp.power(k + alpha / size * sums, beta)


class AlexNet(Knobs):
    """torchvision's `alexnet` (Krizhevsky 2014, "One weird trick": one tower, 64-192-384-256-256 convolutions):
    reference count 61,100,840 at 1000 classes. 224x224 input; adaptive average pooling to 6x6 before the dense
    layers makes the count independent of the input size."""
    num_classes: int
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x, *, train: bool):
        w = functools.partial(scaled_width, multiplier=self.width)
        pool = functools.partial(nn.max_pool, window_shape=(3, 3), strides=(2, 2), padding="VALID")
        x = pool(nn.relu(self.conv(w(64), (11, 11), strides=(4, 4), padding=((2, 2), (2, 2)))(x)))
        x = pool(nn.relu(self.conv(w(192), (5, 5), padding=((2, 2), (2, 2)))(x)))
        x = nn.relu(self.conv(w(384), (3, 3), padding=((1, 1), (1, 1)))(x))
        x = nn.relu(self.conv(w(256), (3, 3), padding=((1, 1), (1, 1)))(x))
        x = pool(nn.relu(self.conv(w(256), (3, 3), padding=((1, 1), (1, 1)))(x)))
        x = adaptive_avg_pool(x, (6, 6)).reshape((x.shape[0], -1))
        drop = self.dropout_layer(self.dropout, deterministic=not train)
        x = nn.relu(self.dense(w(4096))(drop(x)))
        x = nn.relu(self.dense(w(4096))(drop(x)))
        return self.dense(self.num_classes)(x)


class CaffeNet(Knobs):
    """BVLC reference CaffeNet (Caffe's `bvlc_reference_caffenet`: AlexNet with pooling before LRN), one tower.

    227x227 input; convolutions as Caffe's prototxt: conv1 11x11 stride 4 unpadded ("valid"), conv2 5x5 pad 2,
    conv3-5 3x3 pad 1; pooling 3x3 stride 2 with Caffe's rounding up; LRN (5, 1e-4, 0.75) after pool1 and pool2.
    The original splits conv2, conv4 and conv5 into 2 groups (two GPUs); with `groups=1` (the default, "single
    tower") every filter sees all input channels and the reference count is the ungrouped one (`REFERENCE_PARAMS`),
    62,378,344 at 1000 classes; `groups=2` gives the original's 60,965,224.
    """
    num_classes: int
    dropout: float = 0.5
    groups: int = 1  # 2: the original's grouped conv2, conv4, conv5

    @nn.compact
    def __call__(self, x, *, train: bool):
        w = functools.partial(scaled_width, multiplier=self.width)
        pool = functools.partial(caffe_max_pool, window=3, stride=2)
        grouped = functools.partial(self.conv, feature_group_count=self.groups)
        x = local_response_norm(pool(nn.relu(self.conv(w(96), (11, 11), strides=(4, 4), padding="VALID")(x))))
        x = local_response_norm(pool(nn.relu(grouped(w(256), (5, 5), padding=((2, 2), (2, 2)))(x))))
        x = nn.relu(self.conv(w(384), (3, 3), padding=((1, 1), (1, 1)))(x))
        x = nn.relu(grouped(w(384), (3, 3), padding=((1, 1), (1, 1)))(x))
        x = pool(nn.relu(grouped(w(256), (3, 3), padding=((1, 1), (1, 1)))(x)))
        x = x.reshape((x.shape[0], -1))
        drop = self.dropout_layer(self.dropout, deterministic=not train)
        x = drop(nn.relu(self.dense(w(4096))(x)))
        x = drop(nn.relu(self.dense(w(4096))(x)))
        return self.dense(self.num_classes)(x)


class ResNetBlock(nn.Module):
    """flax's ImageNet example's basic block: two 3x3 convolutions, the second's BatchNorm scale starting at 0."""
    filters: int
    conv: ModuleDef
    norm: ModuleDef
    act: Callable
    strides: Tuple[int, int] = (1, 1)

    @nn.compact
    def __call__(self, x):
        residual = x
        y = self.act(self.norm()(self.conv(self.filters, (3, 3), self.strides)(x)))
        y = self.norm(scale_init=nn.initializers.zeros_init())(self.conv(self.filters, (3, 3))(y))
        if residual.shape != y.shape:
            residual = self.conv(self.filters, (1, 1), self.strides, name="conv_proj")(residual)
            residual = self.norm(name="norm_proj")(residual)
        return self.act(residual + y)


class BottleneckResNetBlock(nn.Module):
    """flax's ImageNet example's bottleneck block: 1x1, 3x3 (strided), 1x1 to 4x the filters."""
    filters: int
    conv: ModuleDef
    norm: ModuleDef
    act: Callable
    strides: Tuple[int, int] = (1, 1)

    @nn.compact
    def __call__(self, x):
        residual = x
        y = self.act(self.norm()(self.conv(self.filters, (1, 1))(x)))
        y = self.act(self.norm()(self.conv(self.filters, (3, 3), self.strides)(y)))
        y = self.norm(scale_init=nn.initializers.zeros_init())(self.conv(self.filters * 4, (1, 1))(y))
        if residual.shape != y.shape:
            residual = self.conv(self.filters * 4, (1, 1), self.strides, name="conv_proj")(residual)
            residual = self.norm(name="norm_proj")(residual)
        return self.act(residual + y)


class ResNet(Knobs):
    """flax's ImageNet example's `ResNet`: a stem, stages of blocks (stage i has 64 * 2^i filters, its first block
    strided from stage 1 on), global average pooling, a dense layer to the classes.

    stem "imagenet": 7x7 stride-2 convolution, BatchNorm, ReLU, 3x3 stride-2 max pool (224x224 input).
    stem "small": 3x3 stride-1 convolution, BatchNorm, ReLU, no pool, for 64x64 input (downsampled ImageNet,
    Chrabaszcz et al. 2017, whose WRNs keep the full resolution in the first stage the same way).
    `dropout` (0 by default, as in the reference) drops the pooled features before the dense layer; it is here so
    every architecture of the family takes the same knobs.
    """
    num_classes: int
    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    block_cls: Any = BottleneckResNetBlock
    stem: str = "imagenet"
    dropout: float = 0.0
    act: Callable = nn.relu

    @nn.compact
    def __call__(self, x, *, train: bool):
        w = functools.partial(scaled_width, multiplier=self.width)
        conv = functools.partial(self.conv, use_bias=False)
        norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5)
        if self.stem == "imagenet":
            x = conv(w(64), (7, 7), (2, 2), padding=((3, 3), (3, 3)), name="conv_init")(x)
            x = self.act(norm(name="bn_init")(x))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        else:
            assert self.stem == "small", self.stem
            x = self.act(norm(name="bn_init")(conv(w(64), (3, 3), name="conv_init")(x)))
        for i, block_size in enumerate(self.stage_sizes):
            for j in range(block_size):
                strides = (2, 2) if i > 0 and j == 0 else (1, 1)
                x = self.block_cls(w(64 * 2 ** i), strides=strides, conv=conv, norm=norm, act=self.act)(x)
        x = jnp.mean(x, axis=(1, 2))
        x = self.dropout_layer(self.dropout, deterministic=not train)(x)
        return self.dense(self.num_classes)(x)


ARCHS = {
    "alexnet": AlexNet,
    "caffenet": CaffeNet,
    # The paper's "ResCeption" is the authors' own residual Inception variant, not a published network with a
    # definition or weights to match; ResNet-50 stands in for it as the standard residual ImageNet classifier, the
    # one whose accuracy and training recipe are documented and reproducible.
    "resnet50": functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BottleneckResNetBlock),
    "resnet64": functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=ResNetBlock, stem="small"),
}

# The input size each architecture is built for (height = width).
INPUT_SIZES = {"alexnet": 224, "caffenet": 227, "resnet50": 224, "resnet64": 64}

# Parameters at 1000 classes and width 1 (BatchNorm scale and bias included, its running statistics not: those are
# `batch_stats`), asserted exactly in the tests.
REFERENCE_PARAMS = {
    # torchvision.models.alexnet.
    "alexnet": 61_100_840,
    # bvlc_reference_caffenet's layer shapes without groups. Weights + biases: conv1 11*11*3*96 + 96 = 34,944;
    # conv2 5*5*96*256 + 256 = 614,656; conv3 3*3*256*384 + 384 = 885,120; conv4 3*3*384*384 + 384 = 1,327,488;
    # conv5 3*3*384*256 + 256 = 884,992; fc6 6*6*256*4096 + 4096 = 37,752,832; fc7 4096*4096 + 4096 = 16,781,312;
    # fc8 4096*1000 + 1000 = 4,097,000; sum 62,378,344. The grouped original (conv2, conv4, conv5 see half the
    # input channels: 307,456 + 663,936 + 442,624) has 1,413,120 fewer: 60,965,224.
    "caffenet": 62_378_344,
    # flax examples/imagenet ResNet50 (= torchvision.models.resnet50).
    "resnet50": 25_557_032,
    # torchvision.models.resnet18 (11,689,512) with its 7x7x3x64 stem convolution (9,408) replaced by a 3x3x3x64 one
    # (1,728): 11,689,512 - 9,408 + 1,728. Pools add no parameters and the 64x64 input does not change the count.
    "resnet64": 11_681_832,
}
