"""CIFAR-10 on a CPU budget: the lossless subset (5,170 train / 1,017 test exact pixels), a 44k-parameter
all-conv net (architecture A at width 0.25), Adam, a few epochs, raw + 9 qualities x 1 seed."""

import ml_collections

from experiments._common import PAPER_QUALITIES, jpeg_quantizer, paper_train


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "cifar_q_sweep_small"
    c.data = ml_collections.ConfigDict(dict(name="cifar10_subset", split_seed=0))
    c.quantizer = jpeg_quantizer()
    c.model = ml_collections.ConfigDict(dict(family="image", width=0.25, dropout=0.0))
    c.train = paper_train()
    c.train.update(optimizer="adam", lr=2e-3, lr_decay=0.0, batch_size=64, epochs=8)
    c.grid = ml_collections.ConfigDict(dict(level=["raw"] + PAPER_QUALITIES, arch=["A"], seed=[0]))
    c.tolerance = 0.03
    return c
