"""The codec comparison on real photographs: the CIFAR-10 lossless subset (5,170 / 1,017 exact pixels), JPEG, WebP,
AVIF, JPEG XL and JPEG 2000 at 3 levels each around JPEG's knee, 2 seeds (the raw runs shared by the codecs).

CPU-sized like `cifar_q_sweep_small` (A at width 0.25, Adam, 8 epochs; about 30 minutes on 2 cores). On an
accelerator, all of CIFAR-10 and the full-width model: `--set data.name=cifar10 --set model.width=1.0
--set train.epochs=50`."""

import ml_collections

from experiments import cifar_q_sweep_small
from experiments.codec_demo import codec_axis

CODEC_LEVELS = {
    "jax_jpeg": [10, 25, 75],
    "webp": [5, 25, 75],
    "avif": [15, 30, 60],
    "jpegxl": [8.0, 4.0, 1.5],
    "jpeg2000": [22.0, 28.0, 34.0],
}


def get_config() -> ml_collections.ConfigDict:
    c = cifar_q_sweep_small.get_config()
    c.name = "codec_sweep"
    c.grid.update(level=["raw"] + CODEC_LEVELS["jax_jpeg"], seed=[0, 1], reference_seed=[],
                  axes=[codec_axis(CODEC_LEVELS)])
    return c
