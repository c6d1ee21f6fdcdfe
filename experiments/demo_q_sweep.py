"""The embedded default (`python run.py`): the procedural camera dataset, JPEG raw + 7 qualities, a small
all-conv net; no download, under 5 minutes on a 2-core CPU. Its curve is flat at high quality and falls at
low quality, where JPEG erases the fine-detail classes."""

import ml_collections

from experiments._common import jpeg_quantizer, paper_train


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "demo_q_sweep"
    # The sensor and the scenes (helmjax/data/camera.py): photons at full scale, read noise in electrons, the range
    # of the grating's contrast; `--set data.photons=100` makes the data noisier.
    c.data = ml_collections.ConfigDict(dict(name="camera", seed=0, n_train=3000, n_test=2000, photons=400.0,
                                            read_noise=4.0, contrast_low=0.045, contrast_high=0.06, split_seed=0))
    c.quantizer = jpeg_quantizer()
    c.model = ml_collections.ConfigDict(dict(family="image", width=0.25, dropout=0.0))
    c.train = paper_train()
    c.train.update(optimizer="adam", lr=2e-3, lr_decay=0.0, batch_size=64, epochs=8, augment=False, standardize=True)
    # One seed per level and three at the lossless reference, whose spread is the training-noise estimate every
    # comparison borrows (so the answer is not "exploratory"); 7 levels keep the demo under 5 minutes on 2 cores.
    c.grid = ml_collections.ConfigDict(dict(level=["raw", 1, 5, 10, 20, 30, 50, 100], arch=["A"], seed=[0],
                                            reference_seed=[0, 1, 2]))
    c.tolerance = 0.03
    c.analysis = ml_collections.ConfigDict(dict(margin=1.0, confidence=0.95))
    return c
