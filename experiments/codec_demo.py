"""Which format stores the camera set in the fewest bits without costing accuracy? JPEG (the reference), WebP,
AVIF, JPEG XL and JPEG 2000, each at 4 of its own levels spanning about 0.3-1.5 payload bits per pixel, compared
along bits per pixel (the report's "Codecs at equal accuracy"). The raw runs are trained once and shared by the
codecs (same data, model and recipe).

CPU-sized (under 15 minutes on 2 cores): the noise ladder's data and training (2000 / 1000 images, 6 epochs), 2 seeds
per level and 3 at the lossless reference."""

import ml_collections

from experiments import demo_q_sweep

# Each codec's levels, most compression first, chosen from their rates on these images (BENCHMARKS.md).
CODEC_LEVELS = {
    "jax_jpeg": [5, 10, 20, 50],  # quality; file sizes from Pillow's encoder, pixels identical
    "webp": [1, 5, 20, 50],  # quality
    "avif": [5, 15, 30, 50],  # quality
    "jpegxl": [15.0, 8.0, 4.0, 2.0],  # distance (higher compresses more)
    "jpeg2000": [18.0, 22.0, 25.0, 28.0],  # target PSNR in dB
}


def codec_axis(codec_levels: dict = CODEC_LEVELS) -> list:
    """A grid axis over `quantizer.name`, each codec with its own levels and the lossless reference."""
    return ["codec", [{"quantizer.name": name, "grid.level": ["raw"] + levels} for name, levels in
                      codec_levels.items()]]


def get_config() -> ml_collections.ConfigDict:
    c = demo_q_sweep.get_config()
    c.name = "codec_demo"
    c.data.update(n_train=2000, n_test=1000)
    c.train.epochs = 6
    c.grid.update(level=["raw"] + CODEC_LEVELS["jax_jpeg"], seed=[0, 1], reference_seed=[0, 1, 2],
                  axes=[codec_axis()])
    return c
