"""Your own images: a folder (or tar) of class subfolders vs JPEG quality; set data.root (and data.image_size if
the images differ in size). A small all-conv net (A at width 0.5), Adam, raw + 9 qualities x 1 seed."""

import ml_collections

from experiments._common import PAPER_QUALITIES, jpeg_quantizer, paper_train


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "image_folder_q_sweep"
    c.data = ml_collections.ConfigDict(dict(name="image_folder", root="", image_size=None, test_fraction=0.2,
                                            seed=0, split_seed=0))
    c.quantizer = jpeg_quantizer()
    c.model = ml_collections.ConfigDict(dict(family="image", width=0.5, dropout=0.25))
    c.train = paper_train()
    c.train.update(optimizer="adam", lr=1e-3, lr_decay=0.0, batch_size=64, epochs=30)
    c.grid = ml_collections.ConfigDict(dict(level=["raw"] + PAPER_QUALITIES, arch=["A"], seed=[0]))
    c.tolerance = 0.02
    return c
