"""The paper's CIFAR-10 classifiers A-F (Friedland et al.), plus width knobs for small demo models.

Downsampling is a stride-2 3x3 conv with no activation followed by dropout, as in the authors' code; the final
Dense/Conv to the classes has no ReLU (the original's bug is not repeated). Inputs are float32 NHWC in [0, 1].
The layers themselves are fields (`conv`, `dense`, `dropout_layer`), as in flax's ImageNet example: flax's own by
default, and the trainer fills in its performance profile's (`helmjax.training.performance`).
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from helmjax.models.knobs import Knobs, scaled_width


class CifarNet(Knobs):
    """One class for all six architectures: `blocks` stride-2 blocks after the stem, then an all-conv or dense head."""
    num_classes: int
    blocks: int = 1
    head: str = "conv"  # "conv": Conv 3x3 -> Conv 1x1 -> Conv 1x1 to classes -> global average pool
    dense_units: Sequence[int] = ()  # for head="dense": hidden Dense layers (ReLU + dropout each)
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x, *, train: bool):
        w = functools.partial(scaled_width, multiplier=self.width)
        conv3 = functools.partial(self.conv, kernel_size=(3, 3), padding="SAME")
        drop = self.dropout_layer(self.dropout, deterministic=not train)
        x = nn.relu(conv3(w(32))(x))
        x = nn.relu(conv3(w(64))(x))
        x = drop(conv3(w(128), strides=(2, 2))(x))
        for _ in range(self.blocks):
            x = nn.relu(conv3(w(128))(x))
            x = nn.relu(conv3(w(128))(x))
            x = drop(conv3(w(128), strides=(2, 2))(x))
        if self.head == "conv":
            x = nn.relu(conv3(w(128))(x))
            x = nn.relu(self.conv(w(128), (1, 1), padding="VALID")(x))
            x = self.conv(self.num_classes, (1, 1), padding="VALID")(x)
            return jnp.mean(x, axis=(1, 2))
        x = x.reshape((x.shape[0], -1))
        for units in self.dense_units:
            x = drop(nn.relu(self.dense(w(units))(x)))
        return self.dense(self.num_classes)(x)


ARCHS = {
    "A": functools.partial(CifarNet, blocks=1, head="conv"),
    "B": functools.partial(CifarNet, blocks=1, head="dense", dense_units=(64, 256)),
    "C": functools.partial(CifarNet, blocks=2, head="conv"),
    "D": functools.partial(CifarNet, blocks=2, head="dense", dense_units=(128, 256)),
    "E": functools.partial(CifarNet, blocks=1, head="dense", dense_units=(128, 256)),
    "F": functools.partial(CifarNet, blocks=1, head="dense", dense_units=(128, 256, 256)),
}

# The paper's parameter counts (10 classes, width 1), asserted exactly in the tests.
PAPER_PARAMS = {"A": 701_386, "B": 1_079_562, "C": 1_144_138, "D": 1_276_618, "E": 1_620_298, "F": 1_686_090}
