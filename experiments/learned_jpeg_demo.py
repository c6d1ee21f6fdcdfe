"""Tables learned for the task against the standard ones, on the camera set: JPEG with the Annex K tables at 4
qualities and JPEG with luma and chroma tables learned for task loss + λ·rate (`learned_jpeg`) at 4 λ, compared
along bits per pixel (the report's "Codecs at equal accuracy"). Both are real JPEG files; the learned tables are
learned once per λ on the training split (a fixed classifier trained on raw, a calibrated rate proxy) and saved
with the sweep (`settings/<tag>/cache/fitted/*.json`); every run trains a fresh classifier from scratch on the
compressed copy. The raw runs are trained once and shared.

CPU-sized like `codec_demo` (2000 / 1000 images, 6 epochs, 2 seeds per level and 3 at the lossless reference):
learning the tables takes about 2 minutes of it (`python -m benchmarks.bench_learned_jpeg`)."""

import ml_collections

from experiments import codec_demo

# Most compression first. Measured here (version 2 tables): payload 0.60 bits per pixel at λ = 0.5, 0.66 at 0.1
# (fresh classifiers 93% and 95%, raw 99%), 0.73 at 0.03 and 0.81 at 0.01 (`bench_learned_jpeg`); JPEG's q* is q=20
# at 0.89. Adam moves every table entry at its own pace, so the rate is not strictly monotone in λ (0.003: 0.70).
CODEC_LEVELS = {
    "jax_jpeg": [5, 10, 20, 50],  # quality
    "learned_jpeg": [0.5, 0.1, 0.03, 0.01],  # λ: loss nats per payload bit per pixel (higher compresses more)
}


def get_config() -> ml_collections.ConfigDict:
    c = codec_demo.get_config()
    c.name = "learned_jpeg_demo"
    c.grid.update(axes=[codec_demo.codec_axis(CODEC_LEVELS)])
    return c
