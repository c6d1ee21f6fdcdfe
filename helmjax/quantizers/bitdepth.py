"""Bit-depth reduction: keep the top `bits` of each 8-bit channel (the paper's R_max view of quantization).

This is also the worked example of a user-defined quantizer: a plain function (images, level) -> Quantized,
registered through the same public `register` call a user makes from their own code.
"""

import numpy as np

from helmjax.quantizers import Quantized, register


def reduce_bits(images: np.ndarray, bits: int) -> Quantized:
    """uint8 images with all but the top `bits` bits of each channel cleared; coded size = bits per sample."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images: bitdepth needs uint8 images, got {images.dtype}; convert with np.uint8 first")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
        raise ValueError(f"bits: expected an integer in [1, 8], got {bits!r}")
    mask = np.uint8((0xFF << (8 - int(bits))) & 0xFF)
    samples_per_item = int(np.prod(images.shape[1:]))
    return Quantized(images & mask, np.full(len(images), int(bits) * samples_per_item, np.int64))


def quantization_step(bits: int) -> float:
    """N_approx: the spacing of the values that remain, 2^(8 - bits)."""
    return 2.0 ** (8 - int(bits))


register("bitdepth", reduce_bits, modality="image", level_name="bits", level_range=(1, 8), label="bit depth",
         unit="bits", prefix="b", step=quantization_step, version="1",
         description="keep the top b of 8 bits per channel")
