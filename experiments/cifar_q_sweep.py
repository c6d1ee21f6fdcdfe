"""The paper's CIFAR-10 experiment at full scale: q in raw + 9 JPEG qualities x architectures A-F x 3 seeds.

Meant for a GPU or TPU machine (180 trainings of 200 epochs). Shrink it with --set / --only, e.g.
`--set train.epochs=30 --only arch=A,F`. Data: a prepared tfds cifar10, else the 60k JPEG-75 tree in
$HELMJAX_DATA_DIR (already lossy: its 'raw' is JPEG-75, so qualities above 75 measure nothing new).
"""

import ml_collections

from experiments._common import PAPER_QUALITIES, jpeg_quantizer, paper_train


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "cifar_q_sweep"
    # tfds_data_dir: a prepared tfds cifar10 (None: $TFDS_DATA_DIR or ~/tensorflow_datasets).
    c.data = ml_collections.ConfigDict(dict(name="cifar10", source="auto", tfds_data_dir=None, split_seed=0))
    c.quantizer = jpeg_quantizer()
    c.model = ml_collections.ConfigDict(dict(family="image", width=1.0, dropout=0.5))
    c.train = paper_train()
    c.grid = ml_collections.ConfigDict(dict(level=["raw"] + PAPER_QUALITIES, arch=list("ABCDEF"), seed=[0, 1, 2]))
    c.tolerance = 0.01
    return c
