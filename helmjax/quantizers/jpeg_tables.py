"""The IJG quantization tables and libjpeg's quality scaling: shared by the codec (jax) and the analysis (numpy).

No jax import here, so the analysis stays numpy-only; the codec passes `xp=jax.numpy`.
"""

import numpy as np

# ITU-T T.81 Annex K tables K.1 (luminance) and K.2 (chrominance), row-major in natural (not zigzag) order.
LUMA_TABLE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99], np.int32).reshape(8, 8)
CHROMA_TABLE = np.array([
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99], np.int32).reshape(8, 8)


def quality_scale(quality, xp=np):
    """libjpeg's `jpeg_quality_scaling` on an integer array: quality (clamped to [1, 100]) -> scale in percent.

    `xp` is the array namespace (numpy, or jax.numpy for traced qualities), so the rule is written once.
    """
    quality = xp.clip(quality, 1, 100)
    return xp.where(quality < 50, 5000 // quality, 200 - 2 * quality)


def scaled_table(base, quality, xp=np):
    """The table libjpeg writes at `quality` (`jpeg_add_quant_table`, force_baseline: entries in [1, 255]).

    `base` (8, 8), `quality` (...,) integers -> int32 (..., 8, 8).
    """
    scale = quality_scale(xp.asarray(quality, xp.int32), xp)[..., None, None]
    return xp.clip((xp.asarray(base, xp.int32) * scale + 50) // 100, 1, 255)


def ijg_scale_factor(quality: int) -> int:
    """The scale in percent at one quality, as a Python int."""
    return int(quality_scale(np.asarray(int(quality), np.int32)))
