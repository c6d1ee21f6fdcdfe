"""Tables learned for the task against the standard ones on real photographs: the CIFAR-10 lossless subset
(5,170 / 1,017 exact pixels), JPEG with the Annex K tables at 3 qualities around its knee and JPEG with tables
learned for the least task loss at 3 target payload rates (`learned_jpeg`, learned on the training split through
fixed classifiers), 2 seeds, fresh classifiers trained from scratch on each compressed copy, raw runs shared.

CPU-sized like `codec_sweep` (A at width 0.25, Adam, 8 epochs; about 30 minutes on 2 cores, about 20 of them
learning the tables)."""

import ml_collections

from experiments import cifar_q_sweep_small
from experiments.codec_demo import codec_axis

CODEC_LEVELS = {
    "jax_jpeg": [10, 25, 75],  # quality: 0.58, 1.05, 2.31 payload bits per pixel here
    "learned_jpeg": [0.5, 0.8, 1.1],  # target payload bits per pixel
}


def get_config() -> ml_collections.ConfigDict:
    c = cifar_q_sweep_small.get_config()
    c.name = "learned_jpeg_cifar"
    c.grid.update(level=["raw"] + CODEC_LEVELS["jax_jpeg"], seed=[0, 1], reference_seed=[],
                  axes=[codec_axis(CODEC_LEVELS)])
    return c
