"""The storage question on CIFAR-10: the training-set size (1/16 of the 45k training images to all, nested and
class-balanced) crossed with JPEG qualities, for the storage law and budget answers (`storage_demo` explains).

Accelerator-sized: 5 sizes x 6 levels x 3 seeds = 90 trainings of architecture A (Adam at width 1; 30 epochs at
all images and more at smaller sizes, so each size sees about 1.2 million training images): about 110 million
training images in all, i.e. 110e6 / (images per second) of accelerator time; `benchmarks/gpu_check.py` measures
that throughput (no GPU figure was measured when this was written).
Data: a prepared tfds cifar10, else the 60k JPEG-75 tree in $HELMJAX_DATA_DIR (already lossy: its 'raw' is
JPEG-75). `storage_cifar_small` is the 2-core CPU version on the lossless subset.
"""

import ml_collections

from experiments._common import jpeg_quantizer, paper_train

SIZES = [(1.0, 30), (1 / 2, 40), (1 / 4, 60), (1 / 8, 120), (1 / 16, 240)]


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "storage_cifar"
    c.data = ml_collections.ConfigDict(dict(name="cifar10", source="auto", tfds_data_dir=None, split_seed=0))
    c.quantizer = jpeg_quantizer()
    c.model = ml_collections.ConfigDict(dict(family="image", width=1.0, dropout=0.0))
    c.train = paper_train()
    c.train.update(optimizer="adam", lr=1e-3, lr_decay=0.0, batch_size=128)
    c.grid = ml_collections.ConfigDict(dict(
        level=["raw", 10, 25, 50, 75, 90], arch=["A"], seed=[0, 1, 2],
        axes=[["n", [{"data.train_fraction": share, "train.epochs": epochs} for share, epochs in SIZES]]]))
    c.tolerance = 0.01
    c.analysis = ml_collections.ConfigDict(dict(margin=1.0, confidence=0.95, budget=[5e6, 20e6, 80e6]))
    return c
