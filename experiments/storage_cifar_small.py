"""`storage_cifar` on a 2-core CPU: the lossless CIFAR-10 subset (5,170 train / 1,017 test), 4 training-set sizes
(1/8 to all) x raw + 4 qualities x 2 seeds of architecture A at width 0.25, Adam; 40 minutes measured on a
2-core box with other jobs beside it."""

import ml_collections

from experiments._common import jpeg_quantizer, paper_train

SIZES = [(1.0, 8), (1 / 2, 12), (1 / 4, 16), (1 / 8, 32)]


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "storage_cifar_small"
    c.data = ml_collections.ConfigDict(dict(name="cifar10_subset", split_seed=0))
    c.quantizer = jpeg_quantizer()
    c.model = ml_collections.ConfigDict(dict(family="image", width=0.25, dropout=0.0))
    c.train = paper_train()
    c.train.update(optimizer="adam", lr=2e-3, lr_decay=0.0, batch_size=64)
    c.grid = ml_collections.ConfigDict(dict(
        level=["raw", 10, 25, 50, 90], arch=["A"], seed=[0, 1],
        axes=[["n", [{"data.train_fraction": share, "train.epochs": epochs} for share, epochs in SIZES]]]))
    c.tolerance = 0.03
    c.analysis = ml_collections.ConfigDict(dict(margin=1.0, confidence=0.95, budget=[100e3, 400e3, 1.5e6]))
    return c
